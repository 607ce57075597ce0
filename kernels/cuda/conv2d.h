// Hand-written CUDA conv2d (groups = 1, zero padding, any stride, padding and dilation), with the semantics of
// kernels/conv2d.h: every output is written (=), never accumulated. kernels/conv2d.h's entry points call these for
// CUDA tensors unless the cuDNN twin (kernels/vendor/cudnn_conv2d.h) is selected for OpFamily::CONV2D.
// Available only in builds with FG_WITH_CUDA.
//
// Versions (tests compare each with the CPU reference; bench/bench_cuda_conv2d.cpp times each):
//   CONV_DEFAULT:           production: CONV_IMPLICIT_GEMM_F32 for f32, CONV_WMMA for f16/bf16, CONV_DIRECT for f64.
//   CONV_DIRECT:            one thread per output element, the CPU reference's loops over NCHW; every float dtype.
//   CONV_IMPLICIT_GEMM_F32: channels-last copies (channels padded to 8) + implicit GEMM on the FP32 pipes,
//                           128x128 or 64x64 shared-memory tiles, split-K when the output is small; f32 only.
//   CONV_WMMA:              the same implicit GEMM on the tensor cores (nvcuda::wmma 16x16x16, f32 accumulation),
//                           f16 and bf16.
// The implicit GEMMs (kernels/cuda/conv2d_operands.h, kernels/cuda/gemm_core.cuh): forward M = O, N = N*OH*OW,
// K = KH*KW*C; backward-input M = C, N = N*H*W, K = KH*KW*O; backward-weight M = O, N = KH*KW*C, K = N*OH*OW.
// f16/bf16 inputs are multiplied exactly and summed in f32; the result is rounded once to the output dtype.
#pragma once
#include "kernels/conv2d.h"
#include "kernels/cuda/gemm_common.h"
#include "tensor/tensor.h"

namespace fg::cuda {

enum class Conv2dKernel {
  CONV_DEFAULT,
  CONV_DIRECT,
  CONV_IMPLICIT_GEMM_F32,
  CONV_WMMA,
};
const char* conv2d_kernel_name(Conv2dKernel k);  // "default", "direct", "implicit_gemm_f32", "wmma"

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or undefined -> y: (N, O, OH, OW). Inputs may be any strided views on
// one CUDA device, all of one dtype (f32, f64, f16, bf16). `tuning` forces a tile size or split count (tests,
// benchmarks); the defaults choose by shape.
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::Conv2dGeometry& g,
                      Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT, const GemmTuning& tuning = {});
// grad_out: (N, O, OH, OW), w: (O, C, KH, KW) -> dL/dx: x_shape.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape,
                             const kernels::Conv2dGeometry& g, Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT,
                             const GemmTuning& tuning = {});
// grad_out: (N, O, OH, OW), x: (N, C, H, W) -> dL/dw: w_shape.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape,
                              const kernels::Conv2dGeometry& g, Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT,
                              const GemmTuning& tuning = {});
// grad_out: (N, O, OH, OW) -> dL/db: (O); one block per channel, a fixed-order tree sum (deterministic).
Tensor conv2d_backward_bias(const Tensor& grad_out);

// The same, writing into `out` (contiguous, of the result's shape, dtype and device), so tests can surround the
// output with sentinel bytes.
void conv2d_forward_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                         const kernels::Conv2dGeometry& g, Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT,
                         const GemmTuning& tuning = {});
void conv2d_backward_input_into(Tensor& out, const Tensor& grad_out, const Tensor& w, const kernels::Conv2dGeometry& g,
                                Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT, const GemmTuning& tuning = {});
void conv2d_backward_weight_into(Tensor& out, const Tensor& grad_out, const Tensor& x, const kernels::Conv2dGeometry& g,
                                 Conv2dKernel kernel = Conv2dKernel::CONV_DEFAULT, const GemmTuning& tuning = {});
void conv2d_backward_bias_into(Tensor& out, const Tensor& grad_out);

}  // namespace fg::cuda
