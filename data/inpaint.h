// Classical inpainting: fills the pixels a damage mask marks from the pixels around them. `filmgrad eval` scores
// it as a baseline beside every network (apps/evaluate.h): the network's own predicted mask, filled by this
// instead of by the network, says how much of the network's gain is finding the damage and how much is
// restoring what lies under it.
//
// inpaint_diffusion: the hole (mask > 0.5) is filled with the harmonic (membrane) interpolant of the pixels around
// it: the solution of Laplace's equation (each hole pixel the mean of its 4 neighbours) with the known pixels as
// boundary values, and zero normal derivative at the image's own edges (a neighbour outside the image is left
// out of the mean). Each channel on its own. Two steps:
//   1. onion peel: rings of hole pixels that touch a known or already filled pixel (8-neighbourhood) get the mean
//      of those, ring by ring from the outside in: a start already close to the solution;
//   2. Gauss-Seidel sweeps (row-major, in place) over the hole until no pixel changes by more than `tolerance` or
//      `max_sweeps` is reached.
// Properties the tests check: known pixels are never changed (bit for bit); a constant image is filled exactly
// (means of equal values, in double, are exact); an affine image (a x + b y + c) is filled to within the
// solver's tolerance (affine functions are harmonic: each pixel is the mean of its 4 neighbours); every filled
// value lies within the range of the known values (a maximum principle: means never leave it).
// A mask with no known pixel at all leaves the image as it is (nothing to fill from).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::data {

struct InpaintOptions {
  int64_t max_sweeps = 500;  // Gauss-Seidel sweeps at most (thin dust and scratches converge in a few dozen)
  double tolerance = 1e-6;   // stop when the largest change in a sweep is below this
};

// image: (C, H, W) f32 CPU; mask: (H, W) or (1, H, W) f32 CPU, the hole where > 0.5. Returns a new contiguous
// (C, H, W) f32 tensor. fg::Error naming the problem for bad shapes or types.
Tensor inpaint_diffusion(const Tensor& image, const Tensor& mask, const InpaintOptions& options = {});

// The hole a soft damage mask stands for: 1 where mask > threshold, then dilated by `dilate` pixels (a square
// (2 dilate + 1)^2 neighbourhood), 0 elsewhere; (1, H, W) f32. The dilation takes in the soft rims of specks that
// the threshold leaves out (they would otherwise be kept as known pixels and bleed into the fill).
// mask: (H, W) or (1, H, W) f32 CPU.
Tensor hole_from_mask(const Tensor& mask, double threshold = 0.5, int64_t dilate = 1);

}  // namespace fg::data
