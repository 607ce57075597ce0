// Every differentiable op of the engine. Each family lives in autograd/ops/<family>.cpp: its forward calls the
// Tensor-level entry points in kernels/<family>.h (which dispatch to kernels/cpu/, later kernels/cuda/), and its
// backward Node saves only what it needs. Shapes use PyTorch's conventions and every op matches PyTorch's
// semantics (the golden tests in tests/golden/ check that). Inputs may be non-contiguous views. The CPU supports
// f32 and f64 for every op (f64 is what the gradient checker uses).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/variable.h"
#include "tensor/philox.h"

namespace fg {

// ---- elementwise with numpy broadcasting (autograd/ops/elementwise.cpp) ----
Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable neg(const Variable& a);
Variable add_scalar(const Variable& a, double s);
Variable mul_scalar(const Variable& a, double s);
Variable pow_scalar(const Variable& a, double p);  // a^p (a > 0 where p is not an integer)
Variable sqrt(const Variable& a);
Variable exp(const Variable& a);
Variable log(const Variable& a);
Variable abs(const Variable& a);  // gradient sign(a), 0 at 0
inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }

// ---- views and reshapes (autograd/ops/view.cpp) ----
Variable reshape(const Variable& x, const Shape& shape);
Variable flatten(const Variable& x, int64_t start_dim = 0, int64_t end_dim = -1);
Variable permute(const Variable& x, const std::vector<int64_t>& dims);
Variable transpose(const Variable& x, int64_t a, int64_t b);
Variable expand(const Variable& x, const Shape& shape);
Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Variable concat(const std::vector<Variable>& xs, int64_t dim);  // all shapes equal except along dim

// ---- reductions (autograd/ops/reduce.cpp) ----
// dims empty = all dims. Negative dims count from the end.
Variable sum(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Variable mean(const Variable& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

// ---- activations (autograd/ops/activation.cpp) ----
Variable relu(const Variable& x);
Variable leaky_relu(const Variable& x, double negative_slope = 0.01);
Variable sigmoid(const Variable& x);
Variable tanh(const Variable& x);
// sigmoid(x) * (hi - lo) + lo (fastai's SigmoidRange).
Variable sigmoid_range(const Variable& x, double lo, double hi);
Variable softmax(const Variable& x, int64_t dim);

// ---- regularisation and casts (autograd/ops/dropout.cpp, autograd/ops/cast.cpp) ----
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when !training or p == 0.
// The mask comes from gen (Philox), so CPU and CUDA drop the same elements.
Variable dropout(const Variable& x, double p, bool training, Generator& gen);
// Dropout2d: zeroes whole channels of x (N, C, ...) - one draw per (n, c).
Variable dropout2d(const Variable& x, double p, bool training, Generator& gen);
Variable cast(const Variable& x, DType dtype);  // the gradient is cast back to x's dtype

// ---- convolution and matrix products (autograd/ops/conv2d.cpp, autograd/ops/matmul.cpp) ----
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // zero padding on each side
  int64_t dilation_h = 1, dilation_w = 1;
  static Conv2dParams square(int64_t stride, int64_t pad, int64_t dilation = 1) {
    return {stride, stride, pad, pad, dilation, dilation};
  }
};
// x: (N, C, H, W), w: (O, C, KH, KW), b: (O) or undefined -> (N, O, OH, OW), groups = 1.
Variable conv2d(const Variable& x, const Variable& w, const Variable& b, const Conv2dParams& p = {});
// x: (N, C, L), w: (O, C, K), b: (O) or undefined -> (N, O, OL).
Variable conv1d(const Variable& x, const Variable& w, const Variable& b, int64_t stride = 1, int64_t padding = 0,
                int64_t dilation = 1);
// x: (..., IN), w: (OUT, IN), b: (OUT) or undefined -> (..., OUT).
Variable linear(const Variable& x, const Variable& w, const Variable& b);
Variable matmul(const Variable& a, const Variable& b);  // a: (M, K), b: (K, N) -> (M, N)
Variable bmm(const Variable& a, const Variable& b);     // a: (B, M, K), b: (B, K, N) -> (B, M, N)

// ---- pooling, padding, resampling (autograd/ops/pool.cpp, pad.cpp, pixel_shuffle.cpp, upsample.cpp) ----
// x: (N, C, H, W). PyTorch semantics: max pool pads with -inf; avg pool counts padding when count_include_pad.
Variable max_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t padding = 0);
Variable avg_pool2d(const Variable& x, int64_t kernel, int64_t stride, int64_t padding = 0,
                    bool count_include_pad = true);
Variable replication_pad2d(const Variable& x, int64_t left, int64_t right, int64_t top, int64_t bottom);
Variable zero_pad2d(const Variable& x, int64_t left, int64_t right, int64_t top, int64_t bottom);
// out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]; unshuffle is its inverse.
Variable pixel_shuffle(const Variable& x, int64_t r);
Variable pixel_unshuffle(const Variable& x, int64_t r);
// PyTorch's mode='nearest': src = floor(dst * scale) with scale = float(in_size) / float(out_size) computed in
// f32, exactly as PyTorch rounds it (this differs from exact arithmetic in rare cases; kernels/upsample.h).
Variable upsample_nearest2d(const Variable& x, int64_t out_h, int64_t out_w);

// ---- batch norm (autograd/ops/batch_norm.cpp) ----
// x: (N, C, H, W) or (N, C); weight, bias: (C) or undefined. Training: normalise with the batch's biased variance
// and, when running_mean/var are defined, update them in place: r = (1 - momentum) r + momentum s, with the
// unbiased variance for running_var (PyTorch's rule). Eval: normalise with the running statistics.
Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// Training-mode batch norm whose statistics span several processes (synchronised BatchNorm, dist/ddp.h):
// `all_reduce_sum` sums a host vector of doubles across them in place (every process calls it in the same order:
// twice in the forward, once in the backward). The input gradient is that of the loss averaged over the processes,
// times their number (each process's loss is its own mean), so averaging the parameter gradients afterwards gives
// exactly the gradient one process would compute for the whole batch. Any device; the per-channel sums cross the
// host (2C, then 2C doubles per call).
Variable sync_batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor running_mean,
                         Tensor running_var, double momentum, double eps,
                         std::function<void(std::vector<double>&)> all_reduce_sum);

// ---- losses and image statistics (autograd/ops/loss.cpp, gram.cpp, ssim.cpp) ----
Variable mse_loss(const Variable& pred, const Variable& target);  // mean of squared differences
Variable l1_loss(const Variable& pred, const Variable& target);   // mean of absolute differences
// mean of max(x,0) - x*t + log(1 + exp(-|x|)) (numerically stable); gradients for logits and target.
Variable bce_with_logits(const Variable& logits, const Variable& target);
// x: (N, C, H, W) -> (N, C, C) = X X^T / (C*H*W) with X = x viewed (N, C, H*W).
Variable gram_matrix(const Variable& x);
// pytorch-ssim's SSIM of x and y (N, C, H, W): Gaussian window (window_size, sigma) applied per channel with zero
// padding window_size/2 (same-size map for odd windows; (H+1) x (W+1) for even ones, as pytorch-ssim gives),
// C1 = 0.01^2, C2 = 0.03^2; returns the mean of the SSIM map.
Variable ssim(const Variable& x, const Variable& y, int64_t window_size = 11, double sigma = 1.5);

// ---- self-attention (autograd/ops/self_attention.cpp) ----
// SAGAN / fastai SelfAttention as one op. x: (B, C, H, W); wq, wk: (Ck, C) or (Ck, C, 1); wv: (C, C) or (C, C, 1);
// gamma: (1). With X = x viewed (B, C, N=H*W): f = wq X, g = wk X, h = wv X, beta = softmax over dim 1 of
// f^T g (B, N, N), out = gamma * (h beta) + X, viewed back to (B, C, H, W).
Variable self_attention(const Variable& x, const Variable& wq, const Variable& wk, const Variable& wv,
                        const Variable& gamma);

}  // namespace fg
