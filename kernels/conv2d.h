// 2-D convolution (groups = 1, zero padding, any stride and dilation), PyTorch's conv2d semantics:
//   y[n, o, oh, ow] = b[o] + sum_{c, kh, kw} x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] * w[o, c, kh, kw]
// with OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1 (floor), and the same for OW.
// Every direction exists in several versions, selected by Conv2dAlgo so that tests compare them and benchmarks
// time them:
//   PLAIN:  direct loops over the 7 indices (kernels/cpu/conv2d.cpp, conv2d_*_plain): the readable spec;
//   IM2COL: column tiles (im2col of a bounded range of output positions, so memory stays bounded on big images)
//           times the weight matrix in the CPU GEMM (kernels/cpu/gemm.h; the weights packed once per call),
//           OpenMP-parallel over tiles, images or channel ranges. 1x1 stride-1 unpadded convolutions read x (and
//           write dx) in place, without a column buffer.
//   WINOGRAD: the forward, input gradient and weight gradient of 3x3 stride-1 undilated layers as Winograd
//           F(2x2, 3x3): 16 GEMMs over transformed tiles, 2.25x fewer multiply-adds; results differ from IM2COL's by
//           rounding only.
//   GEMM:   production: WINOGRAD where it applies and an image has at least 64 tiles of 2x2 outputs (below,
//           transforming the weights every call costs more than it saves), IM2COL otherwise; FG_CPU_WINOGRAD=0
//           takes IM2COL everywhere.
// Threading: the GEMM is single-threaded and OpenMP does the splitting (see kernels/matmul.h).
// Inputs may be any strided views (they are made contiguous); results are new contiguous tensors. f32 and f64 on
// the CPU; CUDA tensors go to kernels/cuda/conv2d.h (or the cuDNN twin, kernels/backend.h), which ignore algo.
#pragma once
#include <cstdint>
#include <utility>

#include "tensor/tensor.h"

namespace fg::kernels {

// The window geometry (the autograd layer's fg::Conv2dParams maps onto it field by field).
struct Conv2dGeometry {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // zeros on each side
  int64_t dilation_h = 1, dilation_w = 1;
};

enum class Conv2dAlgo {
  PLAIN,     // direct loops, the reference
  GEMM,      // production: WINOGRAD where it applies and pays, IM2COL otherwise (FG_CPU_WINOGRAD=0: IM2COL)
  IM2COL,    // im2col tiles + the CPU GEMM, every shape and direction
  WINOGRAD,  // F(2x2, 3x3) over the CPU GEMM, for 3x3 stride-1 undilated kernels with at least 16 input and output
             // channels (fg::Error otherwise): the forward, and the input gradient (as the forward of dy with the
             // turned weights; padding at most 2) and the weight gradient (16 GEMMs over the tiles, then G^T dU G)
};

// What the CPU's production path (Conv2dAlgo::GEMM) runs, one line for `filmgrad version`.
const char* conv2d_cpu_algorithms();
// Whether production CPU convolutions may take Winograd (yes unless FG_CPU_WINOGRAD=0; read once).
bool conv2d_cpu_winograd();

// (OH, OW) for an (H, W) input and a (KH, KW) kernel; throws fg::Error when a stride or dilation is below 1, a
// padding is negative, or the dilated kernel is larger than the padded input.
std::pair<int64_t, int64_t> conv2d_output_size(int64_t H, int64_t W, int64_t KH, int64_t KW, const Conv2dGeometry& g);

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or undefined -> y: (N, O, OH, OW).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g,
                      Conv2dAlgo algo = Conv2dAlgo::GEMM);
// grad_out: (N, O, OH, OW), w: (O, C, KH, KW) -> dL/dx: x_shape = (N, C, H, W).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape, const Conv2dGeometry& g,
                             Conv2dAlgo algo = Conv2dAlgo::GEMM);
// grad_out: (N, O, OH, OW), x: (N, C, H, W) -> dL/dw: w_shape = (O, C, KH, KW).
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape,
                              const Conv2dGeometry& g, Conv2dAlgo algo = Conv2dAlgo::GEMM);
// grad_out: (N, O, OH, OW) -> dL/db: (O). One version: a plain sum, already memory-bound.
Tensor conv2d_backward_bias(const Tensor& grad_out);

}  // namespace fg::kernels
