// The memory rule of every op that writes into a tensor it did not allocate (in-place arithmetic, copy_, fills,
// random fills, the optimizers' updates, running statistics, the `_into` kernels), on every device. It is
// PyTorch's rule, and it exists because the CPU's loops and a GPU's threads visit elements in different orders:
// an answer that depends on that order would differ between the devices (x += x.t() did: the CPU loop read
// elements it had already updated, the CUDA kernel read a copy).
//
//  1. The written tensor has no two elements at one address (an expand()ed view): check_no_internal_overlap.
//  2. An elementwise op (element i of the output reads only element i of each input) may read the output itself,
//     i.e. the same memory in the same layout ("full overlap": x += x, x.copy_(x)), and any memory the output does
//     not cover. An input that shares some of the output's memory in another layout (x += x.t(), a shifted slice
//     of itself, a broadcast row of itself) is refused: check_no_partial_overlap.
//  3. Any other op (a product, a convolution, a normalisation: an output element reads many input elements) reads
//     no memory it writes: check_no_overlap.
// The checks are exact: two views of one storage whose elements interleave without touching (x[:, 0] and
// x[:, 1]) pass. The common cases (different storages, disjoint byte ranges, the same view) cost a few
// comparisons; only views whose byte ranges intersect are walked element by element. Each error is one line
// naming the op and both tensors, and says what to do: clone() the input first.
#pragma once
#include <initializer_list>

#include "tensor/tensor.h"

namespace fg {

enum class MemOverlap {
  NONE,     // no byte of one is a byte of the other
  FULL,     // the same elements at the same addresses (same offset, strides, element size)
  PARTIAL,  // anything else that shares memory
};

// How `in`, broadcast to out's shape, shares memory with `out`; in's shape must broadcast to out's.
MemOverlap memory_overlap(const Tensor& out, const Tensor& in);
// Whether any byte of `a` is a byte of `b` (any shapes).
bool shares_memory(const Tensor& a, const Tensor& b);
// Whether two elements of `t` share an address (a stride-0 dimension of size > 1, or a hand-built layout).
bool has_internal_overlap(const Tensor& t);

// what: the op, for the message ("add_", "copy_", "conv2d (CUDA)"). Undefined tensors pass.
void check_no_internal_overlap(const Tensor& out, const char* what);
// Rule 2, with rule 1 for `out`.
void check_no_partial_overlap(const Tensor& out, const Tensor& in, const char* what);
// Rule 3, with rule 1 for `out`.
void check_no_overlap(const Tensor& out, const Tensor& in, const char* what);
// Rule 2 for a fused elementwise update with several written tensors (an optimizer step: parameter and state
// buffers written, the gradient read): each written tensor against every other operand. Undefined ones pass.
void check_elementwise_update(std::initializer_list<const Tensor*> written, std::initializer_list<const Tensor*> read,
                              const char* what);
// Rule 3 for a kernel with several outputs (the `_into` entry points): each defined output against every input,
// and the outputs against each other. Undefined tensors pass.
void check_outputs_separate(std::initializer_list<const Tensor*> outputs, std::initializer_list<const Tensor*> inputs,
                            const char* what);

}  // namespace fg
