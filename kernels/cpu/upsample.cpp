// CPU reference for nearest-neighbour resampling (kernels/upsample.h). Inputs are viewed as P = N * C contiguous
// planes. Forward writes (=); backward zeroes grad_input and accumulates (+=) into it, since when the output is
// larger several outputs copy one input.
#include "kernels/upsample.h"
#include "kernels/device_check.h"

#include <vector>

#include "kernels/cpu/loops.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/upsample.h"
#endif

namespace fg::cpu {

namespace {

// Source index of every output row (or column): computed once so the inner loops are plain gathers.
std::vector<int64_t> nearest_source_table(int64_t in_size, int64_t out_size) {
  std::vector<int64_t> table(static_cast<size_t>(out_size));
  for (int64_t d = 0; d < out_size; ++d) table[size_t(d)] = kernels::nearest_source_index(d, in_size, out_size);
  return table;
}

}  // namespace

// x: (P, H, W) contiguous. out: (P, OH, OW) written (=).
template <typename T>
void upsample_nearest2d_forward(const T* x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW, T* out) {
  const std::vector<int64_t> src_h = nearest_source_table(H, OH), src_w = nearest_source_table(W, OW);
#pragma omp parallel for if (P * OH * OW > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* xp = x + plane * H * W;
    T* op = out + plane * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const T* row = xp + src_h[size_t(oh)] * W;
      for (int64_t ow = 0; ow < OW; ++ow) op[oh * OW + ow] = row[src_w[size_t(ow)]];
    }
  }
}

// grad_out: (P, OH, OW) contiguous. grad_input: (P, H, W) zeroed, then accumulated (+=).
template <typename T>
void upsample_nearest2d_backward(const T* grad_out, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 T* grad_input) {
  const std::vector<int64_t> src_h = nearest_source_table(H, OH), src_w = nearest_source_table(W, OW);
#pragma omp parallel for if (P * OH * OW > kParallelGrain) schedule(static)
  for (int64_t plane = 0; plane < P; ++plane) {
    const T* go = grad_out + plane * OH * OW;
    T* gi = grad_input + plane * H * W;
    for (int64_t i = 0; i < H * W; ++i) gi[i] = T(0);
    for (int64_t oh = 0; oh < OH; ++oh) {
      T* row = gi + src_h[size_t(oh)] * W;
      for (int64_t ow = 0; ow < OW; ++ow) row[src_w[size_t(ow)]] += go[oh * OW + ow];
    }
  }
}

}  // namespace fg::cpu

namespace fg::kernels {
namespace {

void check_shapes(const Shape& in, int64_t out_h, int64_t out_w, const char* op) {
  FG_CHECK(in.size() == 4, op << ": expected x of shape (N, C, H, W), got " << shape_str(in));
  FG_CHECK(in[2] >= 1 && in[3] >= 1, op << ": the input " << shape_str(in) << " has an empty spatial size");
  FG_CHECK(out_h >= 1 && out_w >= 1, op << ": the output size must be at least 1x1, got " << out_h << "x" << out_w);
}

}  // namespace

Tensor upsample_nearest2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
#ifdef FG_WITH_CUDA
  if (x.device().is_cuda()) return cuda::upsample_nearest2d_forward(x, out_h, out_w);
#endif
  const char* op = "upsample_nearest2d";
  FG_CHECK(x.defined(), op << ": the input is undefined");
  check_shapes(x.shape(), out_h, out_w, op);
  require_cpu(x, op);
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
  FG_DISPATCH_FLOATING(x.dtype(), op, [&] {
    cpu::upsample_nearest2d_forward<scalar_t>(xc.data<scalar_t>(), x.size(0) * x.size(1), x.size(2), x.size(3), out_h,
                                              out_w, out.data<scalar_t>());
  });
  return out;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape) {
#ifdef FG_WITH_CUDA
  if (grad_out.device().is_cuda()) return cuda::upsample_nearest2d_backward(grad_out, input_shape);
#endif
  const char* op = "upsample_nearest2d backward";
  FG_CHECK(grad_out.defined() && grad_out.dim() == 4, op << ": expected grad_out of shape (N, C, OH, OW)");
  check_shapes(input_shape, grad_out.size(2), grad_out.size(3), op);
  FG_CHECK(grad_out.size(0) == input_shape[0] && grad_out.size(1) == input_shape[1],
           op << ": grad_out " << shape_str(grad_out.shape()) << " does not match input " << shape_str(input_shape));
  require_cpu(grad_out, op, "the output gradient");
  const Tensor go = grad_out.contiguous();
  Tensor grad_input = Tensor::empty(input_shape, grad_out.dtype());
  FG_DISPATCH_FLOATING(grad_out.dtype(), op, [&] {
    cpu::upsample_nearest2d_backward<scalar_t>(go.data<scalar_t>(), input_shape[0] * input_shape[1], input_shape[2],
                                               input_shape[3], grad_out.size(2), grad_out.size(3),
                                               grad_input.data<scalar_t>());
  });
  return grad_input;
}

}  // namespace fg::kernels
