// conv2d as three implicit GEMMs: the operands and epilogues (see kernels/cuda/gemm_common.h for the contract)
// that kernels/cuda/conv2d.cu hands to the tiled kernels of kernels/cuda/gemm_core.cuh. Plain C++ with
// __host__ __device__ functions, so tests/ops/test_cuda_indexing.cpp runs every address computation here on the
// CPU against the reference convolution.
//
// The tiled kernels read channels-last copies, with channels padded with zeros to a multiple of kChannelAlign:
//   xt  (N, H, W, Cp)    of x (N, C, H, W)
//   dyt (N, OH, OW, Op)  of grad_out (N, O, OH, OW)
//   wf  (O, KH, KW, Cp)  of w (O, C, KH, KW), for the forward
//   wd  (C, KH, KW, Op)  of w, for backward-input
// so that for one pixel and one kernel tap, 8 consecutive channels are 16 contiguous, aligned bytes: one vector
// load and one bounds check cover 8 (f16/bf16) or 4 (f32) multiply-adds' worth of input. Padded channels hold
// zeros, so they add nothing. The reduction index k always runs over (kh, kw, channel) with the channel fastest.
//
//   forward          y  (O, pixels)   = wf (O, KK*Cp)   x  im2col(xt) (KK*Cp, pixels)       [M = O, N = N*OH*OW]
//   backward-input   dx (C, pixels)   = wd (C, KK*Op)   x  gather(dyt) (KK*Op, in-pixels)   [M = C, N = N*H*W]
//   backward-weight  dw (O, KK*Cp)    = dyt^T (O, px)   x  im2col(xt)^T (px, KK*Cp)         [M = O, N = KK*Cp]
// The outputs are written straight into NCHW (OIHW for dw) by the epilogues; padded rows/columns are dropped.
// Backward-input gathers, for each input pixel, the output pixels whose window covers it (oh = (ih + ph - kh*dh) /
// sh when exact), so every dx element is written once, without atomics; with stride s, (s^2 - 1)/s^2 of the taps
// are zeros that the GEMM still multiplies (the price of a gather without atomics).
#pragma once
#include <cstdint>

#include "kernels/conv2d.h"
#include "kernels/cuda/gemm_common.h"
#include "tensor/error.h"

namespace fg::cuda {

constexpr int kChannelAlign = 8;  // 16 bytes of f16/bf16; two f32 vectors

inline int64_t round_up(int64_t v, int64_t a) {
  return (v + a - 1) / a * a;
}

// Every size of one convolution, as the kernels use them.
struct ConvDims {
  int N = 0, C = 0, H = 0, W = 0;  // x: (N, C, H, W)
  int O = 0, KH = 0, KW = 0;       // w: (O, C, KH, KW)
  int OH = 0, OW = 0;              // y: (N, O, OH, OW)
  int sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int Cp = 0, Op = 0;  // C and O rounded up to kChannelAlign: the channel counts of the channels-last copies
  FastDivmod div_Cp, div_Op, div_KW, div_OW, div_W, div_P, div_HW, div_sh, div_sw;

  FG_HD int P() const { return OH * OW; }
  FG_HD int HW() const { return H * W; }
  FG_HD int KK() const { return KH * KW; }
};

// Throws fg::Error for a bad geometry (through kernels::conv2d_output_size) or for sizes beyond the kernels'
// 32-bit indexing.
inline ConvDims make_conv_dims(const Shape& xs, const Shape& ws, const kernels::Conv2dGeometry& g) {
  const auto [OH, OW] = kernels::conv2d_output_size(xs[2], xs[3], ws[2], ws[3], g);
  const int64_t Cp = round_up(xs[1], kChannelAlign), Op = round_up(ws[0], kChannelAlign);
  const int64_t KK = ws[2] * ws[3];
  // The largest index any kernel forms: the channels-last copies, the outputs, the weights in either order.
  const int64_t largest = std::max({xs[0] * xs[2] * xs[3] * Cp, xs[0] * OH * OW * Op, xs[0] * xs[1] * xs[2] * xs[3],
                                    xs[0] * ws[0] * OH * OW, ws[0] * KK * Cp, xs[1] * KK * Op});
  FG_CHECK(largest < INT32_MAX, "conv2d (CUDA): x "
                                    << shape_str(xs) << " with w " << shape_str(ws)
                                    << " is too large for the kernels' 32-bit indexing; split the batch");
  FG_CHECK(g.stride_h < INT32_MAX && g.stride_w < INT32_MAX && g.pad_h < INT32_MAX && g.pad_w < INT32_MAX &&
               g.dilation_h * ws[2] < INT32_MAX && g.dilation_w * ws[3] < INT32_MAX,
           "conv2d (CUDA): stride, padding or dilation too large");
  ConvDims d;
  d.N = int(xs[0]);
  d.C = int(xs[1]);
  d.H = int(xs[2]);
  d.W = int(xs[3]);
  d.O = int(ws[0]);
  d.KH = int(ws[2]);
  d.KW = int(ws[3]);
  d.OH = int(OH);
  d.OW = int(OW);
  d.sh = int(g.stride_h);
  d.sw = int(g.stride_w);
  d.ph = int(g.pad_h);
  d.pw = int(g.pad_w);
  d.dh = int(g.dilation_h);
  d.dw = int(g.dilation_w);
  d.Cp = int(Cp);
  d.Op = int(Op);
  d.div_Cp = FastDivmod(d.Cp);
  d.div_Op = FastDivmod(d.Op);
  d.div_KW = FastDivmod(d.KW);
  d.div_OW = FastDivmod(std::max(1, d.OW));
  d.div_W = FastDivmod(std::max(1, d.W));
  d.div_P = FastDivmod(std::max(1, d.OH * d.OW));
  d.div_HW = FastDivmod(std::max(1, d.H * d.W));
  d.div_sh = FastDivmod(d.sh);
  d.div_sw = FastDivmod(d.sw);
  return d;
}

// ---- operands ----

// A dense row-major (rows, K) matrix read along K: the reordered weights wf (rows O) and wd (rows C). K is a
// multiple of kVec and rows start 16-byte aligned, so a vector is either wholly inside or wholly outside.
template <typename E>
struct DenseRowsK {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::K_CONTIG;
  const E* data = nullptr;
  int rows = 0, K = 0;

  struct MnState {
    const E* row;
    bool valid;
  };
  struct KState {
    int k;
    bool valid;
  };
  FG_HD MnState mn_state(int, int m) const {
    const bool valid = m < rows;
    return {valid ? data + int64_t(m) * K : data, valid};
  }
  FG_HD KState k_state(int k) const { return {k, k < K}; }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    return s.valid && k.valid ? load_vec(s.row + k.k) : zero_vec();
  }
};

// A dense row-major (K, cols) matrix read along its columns: dyt viewed as (pixels, Op) is A of backward-weight,
// element (m = o, k = pixel). cols is a multiple of kVec.
template <typename E>
struct DenseRowsMN {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::MN_CONTIG;
  const E* data = nullptr;
  int cols = 0, K = 0;

  struct MnState {
    int mn;
    bool valid;
  };
  struct KState {
    const E* row;
    bool valid;
  };
  FG_HD MnState mn_state(int, int mn) const { return {mn, mn < cols}; }
  FG_HD KState k_state(int k) const {
    const bool valid = k < K;
    return {valid ? data + int64_t(k) * cols : data, valid};
  }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    return s.valid && k.valid ? load_vec(k.row + s.mn) : zero_vec();
  }
};

// Forward B: im2col of xt, element (k = (kh, kw, c), n = (img, oh, ow)) = x[img, c, oh*sh - ph + kh*dh,
// ow*sw - pw + kw*dw], zero in the padding.
template <typename E>
struct FpropInput {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::K_CONTIG;
  const E* xt = nullptr;
  ConvDims d;

  struct MnState {
    int pixel_base;  // img * H * W: the image's first pixel in xt
    int ih0, iw0;    // the window's top-left input position (may be negative: padding)
    bool valid;
  };
  struct KState {
    int c;         // first channel of the vector
    int dih, diw;  // kh * dh, kw * dw
    bool valid;
  };
  FG_HD MnState mn_state(int, int n) const {
    MnState s{0, 0, 0, n < d.N * d.P()};
    if (!s.valid) return s;
    int img, p, oh, ow;
    d.div_P.divmod(n, img, p);
    d.div_OW.divmod(p, oh, ow);
    s.pixel_base = img * d.H * d.W;
    s.ih0 = oh * d.sh - d.ph;
    s.iw0 = ow * d.sw - d.pw;
    return s;
  }
  FG_HD KState k_state(int k) const {
    KState s{0, 0, 0, k < d.KK() * d.Cp};
    int r, kh, kw;
    d.div_Cp.divmod(k, r, s.c);
    d.div_KW.divmod(r, kh, kw);
    s.dih = kh * d.dh;
    s.diw = kw * d.dw;
    return s;
  }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    const int ih = s.ih0 + k.dih, iw = s.iw0 + k.diw;
    if (!s.valid || !k.valid || ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) return zero_vec();
    return load_vec(xt + (s.pixel_base + ih * d.W + iw) * d.Cp + k.c);
  }
};

// Backward-input B: element (k = (kh, kw, o), n = (img, ih, iw)) = dy[img, o, oh, ow] where oh = (ih + ph -
// kh*dh) / sh and ow = (iw + pw - kw*dw) / sw are exact, non-negative and inside the output; zero otherwise.
template <typename E>
struct DgradGradOut {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::K_CONTIG;
  const E* dyt = nullptr;
  ConvDims d;

  struct MnState {
    int pixel_base;  // img * OH * OW: the image's first pixel in dyt
    int th0, tw0;    // ih + ph, iw + pw
    bool valid;
  };
  struct KState {
    int o;         // first output channel of the vector
    int dth, dtw;  // kh * dh, kw * dw
    bool valid;
  };
  FG_HD MnState mn_state(int, int n) const {
    MnState s{0, 0, 0, n < d.N * d.HW()};
    if (!s.valid) return s;
    int img, p, ih, iw;
    d.div_HW.divmod(n, img, p);
    d.div_W.divmod(p, ih, iw);
    s.pixel_base = img * d.P();
    s.th0 = ih + d.ph;
    s.tw0 = iw + d.pw;
    return s;
  }
  FG_HD KState k_state(int k) const {
    KState s{0, 0, 0, k < d.KK() * d.Op};
    int r, kh, kw;
    d.div_Op.divmod(k, r, s.o);
    d.div_KW.divmod(r, kh, kw);
    s.dth = kh * d.dh;
    s.dtw = kw * d.dw;
    return s;
  }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    const int th = s.th0 - k.dth, tw = s.tw0 - k.dtw;
    if (!s.valid || !k.valid || th < 0 || tw < 0) return zero_vec();
    int oh, rh, ow, rw;
    d.div_sh.divmod(th, oh, rh);
    d.div_sw.divmod(tw, ow, rw);
    if (rh != 0 || rw != 0 || oh >= d.OH || ow >= d.OW) return zero_vec();
    return load_vec(dyt + (s.pixel_base + oh * d.OW + ow) * d.Op + k.o);
  }
};

// Backward-weight B: element (k = (img, oh, ow), n = (kh, kw, c)) = x[img, c, oh*sh - ph + kh*dh, ow*sw - pw +
// kw*dw], zero in the padding: the forward's im2col, transposed.
template <typename E>
struct WgradInput {
  using T = E;
  static constexpr int kVec = 16 / int(sizeof(E));
  static constexpr OperandLayout kLayout = OperandLayout::MN_CONTIG;
  const E* xt = nullptr;
  ConvDims d;

  struct MnState {
    int c;         // first channel of the vector
    int dih, diw;  // kh*dh - ph, kw*dw - pw
    bool valid;
  };
  struct KState {
    int pixel_base;  // img * H * W
    int ih0, iw0;    // oh * sh, ow * sw
    bool valid;
  };
  FG_HD MnState mn_state(int, int n) const {
    MnState s{0, 0, 0, n < d.KK() * d.Cp};
    int r, kh, kw;
    d.div_Cp.divmod(n, r, s.c);
    d.div_KW.divmod(r, kh, kw);
    s.dih = kh * d.dh - d.ph;
    s.diw = kw * d.dw - d.pw;
    return s;
  }
  FG_HD KState k_state(int k) const {
    KState s{0, 0, 0, k < d.N * d.P()};
    if (!s.valid) return s;
    int img, p, oh, ow;
    d.div_P.divmod(k, img, p);
    d.div_OW.divmod(p, oh, ow);
    s.pixel_base = img * d.H * d.W;
    s.ih0 = oh * d.sh;
    s.iw0 = ow * d.sw;
    return s;
  }
  FG_HD Vec16 load(const MnState& s, const KState& k) const {
    const int ih = k.ih0 + s.dih, iw = k.iw0 + s.diw;
    if (!s.valid || !k.valid || ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) return zero_vec();
    return load_vec(xt + (k.pixel_base + ih * d.W + iw) * d.Cp + s.c);
  }
};

// ---- epilogues ----

// Forward: (m = o, n = (img, oh, ow)) -> y[img, o, oh, ow] = sum + bias[o].
template <typename E>
struct FpropOutput {
  E* y = nullptr;
  const E* bias = nullptr;  // (O) or null
  int O = 0, P = 0;
  FastDivmod div_P;

  struct Col {
    int offset;  // img * O * P + p
  };
  FG_HD Col col(int, int n) const {
    int img, p;
    div_P.divmod(n, img, p);
    return {img * O * P + p};
  }
  FG_HD bool keep(int, int) const { return true; }
  template <typename A>
  FG_HD void store(int m, const Col& c, A v) const {
    if (bias) v += A(to_acc(bias[m]));
    y[c.offset + m * P] = from_acc<E>(v);
  }
};

// Backward-input: (m = c, n = (img, ih, iw)) -> dx[img, c, ih, iw].
template <typename E>
struct DgradOutput {
  E* dx = nullptr;
  int C = 0, HW = 0;
  FastDivmod div_HW;

  struct Col {
    int offset;  // img * C * HW + p
  };
  FG_HD Col col(int, int n) const {
    int img, p;
    div_HW.divmod(n, img, p);
    return {img * C * HW + p};
  }
  FG_HD bool keep(int, int) const { return true; }
  template <typename A>
  FG_HD void store(int m, const Col& c, A v) const {
    dx[c.offset + m * HW] = from_acc<E>(v);
  }
};

// Backward-weight: (m = o, n = (kh, kw, c)) -> dw[o, c, kh, kw]; the padded channels c >= C are dropped.
template <typename E>
struct WgradOutput {
  E* dw = nullptr;
  int C = 0, KK = 0;
  FastDivmod div_Cp;

  struct Col {
    int offset;  // c * KK + r
    bool valid;  // c < C
  };
  FG_HD Col col(int, int n) const {
    int r, c;
    div_Cp.divmod(n, r, c);
    return {c * KK + r, c < C};
  }
  FG_HD bool keep(int, int) const { return true; }
  template <typename A>
  FG_HD void store(int m, const Col& c, A v) const {
    if (c.valid) dw[m * C * KK + c.offset] = from_acc<E>(v);
  }
};

// ---- the three problems ----

template <typename E>
using FpropProblem = GemmProblem<DenseRowsK<E>, FpropInput<E>, FpropOutput<E>>;
template <typename E>
using DgradProblem = GemmProblem<DenseRowsK<E>, DgradGradOut<E>, DgradOutput<E>>;
template <typename E>
using WgradProblem = GemmProblem<DenseRowsMN<E>, WgradInput<E>, WgradOutput<E>>;

// wf: (O, KH, KW, Cp), xt: (N, H, W, Cp), bias: (O) or null -> y: (N, O, OH, OW).
template <typename E>
FpropProblem<E> fprop_problem(const ConvDims& d, const E* wf, const E* xt, const E* bias, E* y) {
  FpropProblem<E> p;
  p.a = {wf, d.O, d.KK() * d.Cp};
  p.b.xt = xt;
  p.b.d = d;
  p.epi = {y, bias, d.O, d.P(), d.div_P};
  p.M = d.O;
  p.N = d.N * d.P();
  p.K = d.KK() * d.Cp;
  return p;
}

// wd: (C, KH, KW, Op), dyt: (N, OH, OW, Op) -> dx: (N, C, H, W).
template <typename E>
DgradProblem<E> dgrad_problem(const ConvDims& d, const E* wd, const E* dyt, E* dx) {
  DgradProblem<E> p;
  p.a = {wd, d.C, d.KK() * d.Op};
  p.b.dyt = dyt;
  p.b.d = d;
  p.epi = {dx, d.C, d.HW(), d.div_HW};
  p.M = d.C;
  p.N = d.N * d.HW();
  p.K = d.KK() * d.Op;
  return p;
}

// dyt: (N, OH, OW, Op), xt: (N, H, W, Cp) -> dw: (O, C, KH, KW).
template <typename E>
WgradProblem<E> wgrad_problem(const ConvDims& d, const E* dyt, const E* xt, E* dw) {
  WgradProblem<E> p;
  p.a = {dyt, d.Op, d.N * d.P()};
  p.b.xt = xt;
  p.b.d = d;
  p.epi = {dw, d.C, d.KK(), d.div_Cp};
  p.M = d.O;
  p.N = d.KK() * d.Cp;
  p.K = d.N * d.P();
  return p;
}

}  // namespace fg::cuda
