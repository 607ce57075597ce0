// The 3x3 median filter: the classical baseline for dust and scratch removal that `filmgrad eval` scores beside
// every network (apps/evaluate.h). Small specks (one or two pixels across) are replaced by their neighbourhood;
// everything else is smoothed a little, which is why it loses SSIM on clean detail.
//
// median_filter3x3: out[c, y, x] = the median of the 9 values in[c, y + dy, x + dx], dy, dx in {-1, 0, 1}, with
// coordinates clamped to the image (edge pixels repeat, OpenCV's BORDER_REPLICATE). Each channel on its own.
// Exact: the output is one of the input values, so it is the same on every machine.
#pragma once
#include "tensor/tensor.h"

namespace fg::data {

// image: (C, H, W) f32 CPU, any strides, C, H, W >= 1 -> a new contiguous (C, H, W) f32 tensor. fg::Error naming
// the problem for anything else.
Tensor median_filter3x3(const Tensor& image);

}  // namespace fg::data
