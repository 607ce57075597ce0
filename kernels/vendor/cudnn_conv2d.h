// The cuDNN twin of the CUDA conv2d (forward, backward-input, backward-weight), selectable at run time
// (kernels/backend.h, OpFamily::CONV2D) so the same training run can be timed on either. Same semantics as
// kernels/conv2d.h: outputs written (=), inputs any strided views on one CUDA device, f32/f64/f16/bf16.
//
// cuDNN is optional: CMake defines FG_WITH_CUDNN when it finds it. Without it these functions exist but throw an
// fg::Error that says how to get the hand-written kernels back. The bias gradient has no twin: it is a plain sum,
// and kernels/cuda/conv2d.h's serves both paths.
//
// How cuDNN is driven: the legacy convolution API (cudnnConvolutionForward / BackwardData / BackwardFilter) with one
// handle per device bound to fg::cuda::stream(device). The algorithm is measured once per distinct problem
// (cudnnFind*AlgorithmEx over the algorithms cudnnGet*Algorithm_v7 lists, workspace up to 1 GiB from the caching
// allocator) and cached; FG_CUDNN_FIND=0 takes the heuristic's first choice instead. f32 convolutions run with
// CUDNN_FMA_MATH (true f32, no TF32, so they can be held to the same tolerance as the hand-written kernels);
// f16/bf16 with tensor cores and f32 accumulation. Only in builds with FG_WITH_CUDA.
#pragma once
#include "kernels/conv2d.h"
#include "tensor/tensor.h"

namespace fg::vendor {

// True when this build links cuDNN.
bool cudnn_available();

// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or undefined -> y: (N, O, OH, OW).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::Conv2dGeometry& g);
// grad_out: (N, O, OH, OW), w -> dL/dx: x_shape.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& x_shape,
                             const kernels::Conv2dGeometry& g);
// grad_out, x -> dL/dw: w_shape.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& w_shape,
                              const kernels::Conv2dGeometry& g);

// The same, writing into `out` (contiguous, of the result's shape, dtype and device).
void conv2d_forward_into(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b,
                         const kernels::Conv2dGeometry& g);
void conv2d_backward_input_into(Tensor& out, const Tensor& grad_out, const Tensor& w, const kernels::Conv2dGeometry& g);
void conv2d_backward_weight_into(Tensor& out, const Tensor& grad_out, const Tensor& x,
                                 const kernels::Conv2dGeometry& g);

}  // namespace fg::vendor
