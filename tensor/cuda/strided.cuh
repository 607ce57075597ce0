// Strided index math for kernels that walk tensors of any layout (copies, casts, fills, broadcasting binary ops,
// reductions). Include from .cu files only.
//
// An OffsetCalc<N> maps a logical row-major element number to the element offset of each of N operands that share
// one shape (a broadcast operand has stride 0 on its broadcast dims). make_offset_calc() first drops size-1 dims
// and merges neighbouring dims that are laid out contiguously in every operand, so a contiguous tensor becomes one
// dim and the common cases cost one multiply; at most kMaxDims dims may remain (an fg::Error otherwise).
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fg::cuda {

constexpr int kMaxDims = 8;

template <int N>
struct OffsetCalc {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  // Element offsets (not including any tensor's own offset) of logical element `linear`.
  __host__ __device__ void offsets(int64_t linear, int64_t (&out)[N]) const {
    for (int k = 0; k < N; ++k) out[k] = 0;
    if (ndim == 1) {
      for (int k = 0; k < N; ++k) out[k] = linear * strides[k][0];
      return;
    }
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
      for (int k = 0; k < N; ++k) out[k] += i * strides[k][d];
    }
  }
};

// shape: the common shape; strides[k]: operand k's strides over that shape (same length as shape).
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const Shape* const (&strides)[N]) {
  // Keep the dims of size != 1, outermost first.
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> st(N);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    sizes.push_back(shape[d]);
    for (int k = 0; k < N; ++k) st[size_t(k)].push_back((*strides[k])[d]);
  }
  // Merge dim d into d + 1 (its inner neighbour) when every operand steps over d exactly by the inner dim's extent.
  std::vector<int64_t> msizes;
  std::vector<std::vector<int64_t>> mst(N);
  for (size_t d = 0; d < sizes.size(); ++d) {
    bool merge = !msizes.empty();
    for (int k = 0; k < N && merge; ++k) merge = mst[size_t(k)].back() == st[size_t(k)][d] * sizes[d];
    if (merge) {
      msizes.back() *= sizes[d];
      for (int k = 0; k < N; ++k) mst[size_t(k)].back() = st[size_t(k)][d];
    } else {
      msizes.push_back(sizes[d]);
      for (int k = 0; k < N; ++k) mst[size_t(k)].push_back(st[size_t(k)][d]);
    }
  }
  FG_CHECK(msizes.size() <= size_t(kMaxDims), "CUDA strided kernels handle at most "
                                                  << kMaxDims << " non-mergeable dims, got a tensor of shape "
                                                  << shape_str(shape) << "; make it contiguous first");
  OffsetCalc<N> calc;
  calc.ndim = int(msizes.size());
  for (size_t d = 0; d < msizes.size(); ++d) {
    calc.sizes[d] = msizes[d];
    for (int k = 0; k < N; ++k) calc.strides[k][d] = mst[size_t(k)][d];
  }
  if (calc.ndim == 0) {  // a single element (or an empty shape): one dim of size 1
    calc.ndim = 1;
    calc.sizes[0] = 1;
    for (int k = 0; k < N; ++k) calc.strides[k][0] = 0;
  }
  return calc;
}

}  // namespace fg::cuda
