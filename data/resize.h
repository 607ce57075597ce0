// Resizing and cropping of (C, H, W) images: what the datasets, the evaluation and the demo use to bring photos of
// any size to the training sizes. All functions take a (C, H, W) f32 CPU tensor (any strides; C >= 1) and return a
// new contiguous (C, h, w) f32 tensor; bad sizes throw fg::Error naming them.
//
// resize_area: each output pixel is the mean of the input over its footprint, a box of H/h x W/w input pixels with
//   fractional weights at its edges (OpenCV's INTER_AREA for downscaling). Exact for integer factors (a 2x
//   reduction is the mean of each 2x2 block). Used for shrinking: it does not alias the way sampling does.
//   The footprints are computed in integers (in units of 1 / out pixel), so the edge weights are exact. Growing
//   with it is allowed and gives the same footprint mean (each output pixel then covers one or two input pixels).
// resize_bilinear: half-pixel centres (PyTorch's align_corners=False): source coordinate (i + 0.5) * H / h - 0.5,
//   clamped to the image (edge samples repeat), no antialiasing.
// resize: resize_area along a dimension that shrinks, bilinear along one that grows (so a 2000x1000 -> 300x600 call
//   area-averages the rows and interpolates the columns).
#pragma once
#include <cstdint>

#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::data {

Tensor resize_area(const Tensor& chw, int64_t out_h, int64_t out_w);
Tensor resize_bilinear(const Tensor& chw, int64_t out_h, int64_t out_w);
Tensor resize(const Tensor& chw, int64_t out_h, int64_t out_w);

// Scales so that the shorter side becomes `short_side` (aspect ratio kept, the long side rounded to the nearest
// pixel, at least short_side). Returns the input itself (no copy) when it already has that short side.
Tensor resize_short_side(const Tensor& chw, int64_t short_side);

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// The centred box of h x w in an H x W image ((H - h) / 2 rounded down); throws when it does not fit.
CropBox center_crop_box(int64_t H, int64_t W, int64_t h, int64_t w);
// A uniformly random box of h x w (top in [0, H - h], left in [0, W - w]), drawn from gen.
CropBox random_crop_box(int64_t H, int64_t W, int64_t h, int64_t w, Generator& gen);
// The crop as a new contiguous tensor.
Tensor crop(const Tensor& chw, const CropBox& box);

// Uniform draws from a Generator, one at a time, for the data pipeline (which draws few numbers per image).
// Each call reserves its own Philox block (philox.h), so it advances gen.offset() by exactly 1 whatever it returns.
double uniform(Generator& gen, double lo = 0.0, double hi = 1.0);  // in [lo, hi): lo + (hi - lo) * uniform01(word 0)
// In [lo, hi], inclusive: words 0 and 1 as a 64-bit x, lo + floor(x * (hi - lo + 1) / 2^64) (bias < range / 2^64).
int64_t uniform_int(Generator& gen, int64_t lo, int64_t hi);
bool bernoulli(Generator& gen, double p);  // true with probability p: uniform01(word 0) < p
double normal(Generator& gen, double mean = 0.0, double stddev = 1.0);  // element 0 of philox.h's Box-Muller pair

}  // namespace fg::data
