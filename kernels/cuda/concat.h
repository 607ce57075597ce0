// CUDA entry point for kernels/concat.h: concatenation along one dim into a new contiguous tensor on the inputs'
// device. Every dtype. (Its inverse, the gradient, is a slice: a view, made contiguous by the strided copy kernel
// of tensor/cuda/tensor_kernels.h.)
#pragma once
#include <vector>

#include "kernels/concat.h"

namespace fg::kernels::cuda {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim);

}  // namespace fg::kernels::cuda
