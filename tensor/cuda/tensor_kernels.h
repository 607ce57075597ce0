// The element kernels tensor/ itself needs on CUDA tensors, behind the hooks of tensor/storage.h (installed by
// tensor/cuda/cuda_runtime.cu): Tensor::copy_ between two tensors of one device (any strides, any pair of dtypes:
// contiguous/strided copies, casts, contiguous(), clone()), Tensor::fill_, and the Philox fills of tensor/philox.h.
// Each gives bitwise the CPU's result: the conversions follow tensor/cuda/dtype_convert.cuh, the random fills the
// stream definition of tensor/philox.h (with one caveat for normal_, below). Plain C++ header.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::cuda {

// dst, src: one CUDA device; src already broadcast to dst's shape (stride 0 on broadcast dims), sharing no memory
// with dst except element by element at the same index (Tensor::copy_ checks that first, tensor/overlap.h).
void copy_strided(const Tensor& dst, const Tensor& src);
// Every element of dst (any strides) = value converted as the CPU converts a double.
void fill(const Tensor& dst, double value);
// kind 0: uniform in [a, b); 1: normal with mean a, standard deviation b; 2: bernoulli with probability a.
// Element i (row-major) takes word i of the draw starting at first_block (tensor/philox.h), computed in f64 and
// rounded to dst's dtype. uniform and bernoulli are bitwise the CPU's; normal uses the GPU's f64 log, cos and sin,
// which are within 1-2 ulp of glibc's, so an f64 result may differ in its last bits and an f32/f16/bf16 one only
// in the rare case where that difference straddles a rounding boundary.
void random_fill(const Tensor& dst, uint64_t seed, uint64_t first_block, int kind, double a, double b);

}  // namespace fg::cuda
