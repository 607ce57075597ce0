// Matrix products and Gram matrices as GEMM problems: the operands and epilogues (contract in
// kernels/cuda/gemm_common.h) that kernels/cuda/matmul.cu hands to the kernels of kernels/cuda/gemm_core.cuh.
// Plain C++ with __host__ __device__ functions, so tests/ops/test_cuda_indexing.cpp runs them on the CPU.
//
// Operands read strided views in place (no copies for transposes or slices): a matrix whose k index has unit
// stride is read along k (StridedK), one whose m/n index has unit stride along m/n (StridedMN); any other strides
// fall back to element-by-element loads. A product C = A B with A read along m and B along k is computed as
// C^T = B^T A^T instead (swap_operands), so three layout pairs cover every case: (K, K) - e.g. x w^T and the Gram
// matrix X X^T -, (K, MN) - the plain A B -, and (MN, MN) - A^T B.
#pragma once
#include <cstdint>

#include "kernels/cuda/gemm_common.h"

namespace fg::cuda {

// A (batched) matrix read along k: element (b, mn, k) at data[b * batch_stride + mn * s_mn + k * s_k].
// vec_ok: s_k == 1 and every row starts 16-byte aligned, so a vector wholly inside K is one load.
template <typename E>
struct StridedK {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::K_CONTIG;
  const E* data = nullptr;
  int64_t batch_stride = 0, s_mn = 0, s_k = 1;
  int MN = 0, K = 0;
  bool vec_ok = false;

  struct MnState {
    const E* row;
    bool valid;
  };
  struct KState {
    int k;
    bool valid;
  };
  FG_HD MnState mn_state(int b, int mn) const {
    const bool valid = mn < MN;
    return {valid ? data + b * batch_stride + mn * s_mn : data, valid};
  }
  FG_HD KState k_state(int k) const { return {k, k < K}; }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    if (!s.valid || !k.valid) return zero_vec();
    if (vec_ok && k.k + kVec <= K) return load_vec(s.row + k.k);
    Vec16 v = zero_vec();
    for (int i = 0; i < kVec; ++i)
      if (k.k + i < K) vec_set(v, i, s.row[int64_t(k.k + i) * s_k]);
    return v;
  }
};

// A (batched) matrix read along m (or n): element (b, mn, k) at data[b * batch_stride + mn * s_mn + k * s_k].
// vec_ok: s_mn == 1 and every k row starts 16-byte aligned.
template <typename E>
struct StridedMN {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::MN_CONTIG;
  const E* data = nullptr;
  int64_t batch_stride = 0, s_mn = 1, s_k = 0;
  int MN = 0, K = 0;
  bool vec_ok = false;

  struct MnState {
    const E* first;  // element (b, mn, 0)
    int mn;
    bool valid;
  };
  struct KState {
    int64_t offset;  // k * s_k
    bool valid;
  };
  FG_HD MnState mn_state(int b, int mn) const {
    const bool valid = mn < MN;
    return {valid ? data + b * batch_stride + mn * s_mn : data, mn, valid};
  }
  FG_HD KState k_state(int k) const { return {int64_t(k) * s_k, k < K}; }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    if (!s.valid || !k.valid) return zero_vec();
    const E* p = s.first + k.offset;
    if (vec_ok && s.mn + kVec <= MN) return load_vec(p);
    Vec16 v = zero_vec();
    for (int i = 0; i < kVec; ++i)
      if (s.mn + i < MN) vec_set(v, i, p[i * s_mn]);
    return v;
  }
};

// The Gram backward's A: element (b, m, k) = g[b, m, k] + g[b, k, m] for contiguous g (batch, C, C), summed in f32
// and rounded to E (as the CPU rounds it to its element type). Read element by element: the transposed half is
// strided, and the C x C matrix is small and stays in cache.
template <typename E>
struct SymmetricSum {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::K_CONTIG;
  const E* g = nullptr;
  int C = 0;

  struct MnState {
    const E* row;     // g[b, m, :]
    const E* column;  // g[b, :, m]
    bool valid;
  };
  struct KState {
    int k;
    bool valid;
  };
  FG_HD MnState mn_state(int b, int m) const {
    const bool valid = m < C;
    const E* base = g + int64_t(b) * C * C;
    return {valid ? base + int64_t(m) * C : base, valid ? base + m : base, valid};
  }
  FG_HD KState k_state(int k) const { return {k, k < C}; }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    Vec16 v = zero_vec();
    if (!s.valid || !k.valid) return v;
    for (int i = 0; i < kVec; ++i) {
      const int j = k.k + i;
      if (j < C) vec_set(v, i, from_acc<E>(to_acc(s.row[j]) + to_acc(s.column[int64_t(j) * C])));
    }
    return v;
  }
};

// ---- epilogues ----

// out[b * batch_stride + m * s_m + n * s_n] = alpha * sum (+ bias[n], or bias[m] when bias_on_m).
template <typename E>
struct MatrixOutput {
  E* data = nullptr;
  int64_t batch_stride = 0, s_m = 0, s_n = 1;
  double alpha = 1.0;
  const E* bias = nullptr;
  bool bias_on_m = false;

  struct Col {
    int64_t offset;  // b * batch_stride + n * s_n
    int n;
  };
  FG_HD Col col(int b, int n) const { return {b * batch_stride + n * s_n, n}; }
  FG_HD bool keep(int, int) const { return true; }
  template <typename A>
  FG_HD void store(int m, const Col& c, A v) const {
    v *= A(alpha);
    if (bias) v += A(to_acc(bias[bias_on_m ? m : c.n]));
    data[c.offset + m * s_m] = from_acc<E>(v);
  }
};

// The Gram matrix g (batch, C, C), contiguous: only m <= n is computed; each value is written to (m, n) and
// (n, m), so the result is exactly symmetric.
template <typename E>
struct GramOutput {
  E* g = nullptr;
  int C = 0;
  double alpha = 1.0;

  struct Col {
    int64_t base;  // b * C * C
    int n;
  };
  FG_HD Col col(int b, int n) const { return {int64_t(b) * C * C, n}; }
  FG_HD bool keep(int m, int n) const { return m <= n; }
  template <typename A>
  FG_HD void store(int m, const Col& c, A v) const {
    const E value = from_acc<E>(v * A(alpha));
    g[c.base + int64_t(m) * C + c.n] = value;
    if (m != c.n) g[c.base + int64_t(c.n) * C + m] = value;
  }
};

// ---- describing a strided matrix as an operand (host side) ----

// One operand of a product: the logical (MN, K) matrix (A as (M, K); B as (N, K), i.e. transposed) of a tensor.
struct OperandView {
  const void* data = nullptr;
  int64_t batch_stride = 0, s_mn = 0, s_k = 0;
  int64_t MN = 0, K = 0;
  int element_size = 4;
  bool along_k = true;  // read along k (StridedK) rather than along mn (StridedMN)
  bool vec_ok = false;
};

// The operand read along k (along_k) or along mn; vec_ok when that index has unit stride, the data starts 16-byte
// aligned and the row and batch strides keep every row aligned.
inline OperandView describe_operand_along(const void* data, int64_t batch_stride, int64_t s_mn, int64_t s_k, int64_t MN,
                                          int64_t K, int element_size, bool along_k) {
  OperandView v{data, batch_stride, s_mn, s_k, MN, K, element_size, along_k, false};
  const int64_t vec = 16 / element_size;
  const int64_t other = along_k ? s_mn : s_k;
  const bool unit = along_k ? s_k == 1 : s_mn == 1;
  v.vec_ok = unit && reinterpret_cast<uintptr_t>(data) % 16 == 0 && other % vec == 0 && batch_stride % vec == 0;
  return v;
}

// Chooses the read direction: along the unit-stride index, along k when neither (or both) is.
inline OperandView describe_operand(const void* data, int64_t batch_stride, int64_t s_mn, int64_t s_k, int64_t MN,
                                    int64_t K, int element_size) {
  const bool unit_k = s_k == 1 || K == 1, unit_mn = s_mn == 1 || MN == 1;
  return describe_operand_along(data, batch_stride, s_mn, s_k, MN, K, element_size, unit_k || !unit_mn);
}

template <typename E>
StridedK<E> strided_k(const OperandView& v) {
  return {static_cast<const E*>(v.data), v.batch_stride, v.s_mn, v.s_k, int(v.MN), int(v.K), v.vec_ok};
}
template <typename E>
StridedMN<E> strided_mn(const OperandView& v) {
  return {static_cast<const E*>(v.data), v.batch_stride, v.s_mn, v.s_k, int(v.MN), int(v.K), v.vec_ok};
}

// The output of a product as an epilogue: c (batch, M, N) with the given strides. swap_operands turns
// C = A B into C^T = B^T A^T: the operands trade places and the output's m and n strides swap.
struct ProductLayout {
  OperandView a, b;
  int64_t M = 0, N = 0;
  int64_t s_m = 0, s_n = 1;
  bool bias_on_m = false;
};

inline ProductLayout swap_operands(const ProductLayout& p) {
  ProductLayout s = p;
  s.a = p.b;
  s.b = p.a;
  s.M = p.N;
  s.N = p.M;
  s.s_m = p.s_n;
  s.s_n = p.s_m;
  s.bias_on_m = !p.bias_on_m;
  return s;
}

// The three layout pairs the kernels are built for: (K, K), (K, MN), (MN, MN); (MN, K) is swapped into (K, MN).
inline ProductLayout canonical_layout(const ProductLayout& p) {
  return !p.a.along_k && p.b.along_k ? swap_operands(p) : p;
}

// A 3-D strided view: data points at element (0, 0, 0).
struct View3 {
  const void* data;
  int64_t size[3];
  int64_t stride[3];
};

// out (batch, M, N), contiguous, = op(a[i]) op(b[i]): A is a's last two dims (transposed when trans_a), B likewise.
// A dim of size 1 has no meaningful stride; a batch of one gets batch stride 0.
inline ProductLayout product_layout(const View3& a, bool trans_a, const View3& b, bool trans_b, int element_size) {
  ProductLayout l;
  l.M = trans_a ? a.size[2] : a.size[1];
  l.N = trans_b ? b.size[1] : b.size[2];
  const int64_t K = trans_a ? a.size[1] : a.size[2];
  const int64_t a_batch = a.size[0] == 1 ? 0 : a.stride[0], b_batch = b.size[0] == 1 ? 0 : b.stride[0];
  l.a = describe_operand(a.data, a_batch, trans_a ? a.stride[2] : a.stride[1], trans_a ? a.stride[1] : a.stride[2], l.M,
                         K, element_size);
  // B's mn index is n: B (K, N) is stored (K, N), or (N, K) when trans_b.
  l.b = describe_operand(b.data, b_batch, trans_b ? b.stride[1] : b.stride[2], trans_b ? b.stride[2] : b.stride[1], l.N,
                         K, element_size);
  l.s_m = l.N;
  l.s_n = 1;
  return l;
}

// Builds the GEMM problem of a product and calls f(problem): out (batch, M, N) contiguous, bias (N) or null.
// kNaive: one problem type for any layout (element loads through StridedK, no vector loads); otherwise the layout
// is made canonical and one of the three tiled problem types is built.
template <typename E, bool kNaive, class F>
void with_product_problem(const ProductLayout& layout, int64_t batch, int64_t K, E* out, const E* bias, F&& f) {
  const auto fill = [&](auto& p, const ProductLayout& l) {
    p.epi.data = out;
    p.epi.batch_stride = layout.M * layout.N;
    p.epi.s_m = l.s_m;
    p.epi.s_n = l.s_n;
    p.epi.bias = bias;
    p.epi.bias_on_m = l.bias_on_m;
    p.M = int(l.M);
    p.N = int(l.N);
    p.K = int(K);
    p.batch = int(batch);
  };
  if constexpr (kNaive) {
    ProductLayout l = layout;
    l.a.vec_ok = l.b.vec_ok = false;
    GemmProblem<StridedK<E>, StridedK<E>, MatrixOutput<E>> p;
    p.a = strided_k<E>(l.a);
    p.b = strided_k<E>(l.b);
    fill(p, l);
    f(p);
  } else {
    const ProductLayout l = canonical_layout(layout);
    if (l.a.along_k && l.b.along_k) {
      GemmProblem<StridedK<E>, StridedK<E>, MatrixOutput<E>> p;
      p.a = strided_k<E>(l.a);
      p.b = strided_k<E>(l.b);
      fill(p, l);
      f(p);
    } else if (l.a.along_k) {
      GemmProblem<StridedK<E>, StridedMN<E>, MatrixOutput<E>> p;
      p.a = strided_k<E>(l.a);
      p.b = strided_mn<E>(l.b);
      fill(p, l);
      f(p);
    } else {  // canonical_layout leaves no (MN, K) pair
      GemmProblem<StridedMN<E>, StridedMN<E>, MatrixOutput<E>> p;
      p.a = strided_mn<E>(l.a);
      p.b = strided_mn<E>(l.b);
      fill(p, l);
      f(p);
    }
  }
}

// The Gram matrix g (N, C, C) of x (N, C, L) contiguous: A = B = X[n] read along the pixels.
template <typename E>
GemmProblem<StridedK<E>, StridedK<E>, GramOutput<E>> gram_problem(const E* x, E* g, int64_t N, int64_t C, int64_t L,
                                                                  bool naive) {
  OperandView v = describe_operand_along(x, C * L, L, 1, C, L, int(sizeof(E)), true);
  if (naive) v.vec_ok = false;
  GemmProblem<StridedK<E>, StridedK<E>, GramOutput<E>> p;
  p.a = p.b = strided_k<E>(v);
  p.epi.g = g;
  p.epi.C = int(C);
  p.epi.alpha = 1.0 / double(C * L);
  p.M = p.N = int(C);
  p.K = int(L);
  p.batch = int(N);
  p.symmetric = true;
  return p;
}

// dx (N, C, L) = (G' + G'^T)[n] X[n] / (C*L) for grad g (N, C, C) and x (N, C, L), both contiguous: B = X read along
// its pixels (n = pixel, k = channel).
template <typename E>
GemmProblem<SymmetricSum<E>, StridedMN<E>, MatrixOutput<E>> gram_backward_problem(const E* grad, const E* x, E* dx,
                                                                                  int64_t N, int64_t C, int64_t L,
                                                                                  bool naive) {
  OperandView v = describe_operand_along(x, C * L, 1, L, L, C, int(sizeof(E)), false);
  if (naive) v.vec_ok = false;
  GemmProblem<SymmetricSum<E>, StridedMN<E>, MatrixOutput<E>> p;
  p.a.g = grad;
  p.a.C = int(C);
  p.b = strided_mn<E>(v);
  p.epi.data = dx;
  p.epi.batch_stride = C * L;
  p.epi.s_m = L;
  p.epi.s_n = 1;
  p.epi.alpha = 1.0 / double(C * L);
  p.M = int(C);
  p.N = int(L);
  p.K = int(C);
  p.batch = int(N);
  return p;
}

}  // namespace fg::cuda
