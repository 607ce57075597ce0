// Spectral normalisation: see nn/spectral_norm.h. Built from autograd ops (matmul, sum, div) so it runs wherever
// they run; the power iteration works under no-grad and writes u and v in place.
#include "nn/spectral_norm.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::nn {

namespace {

int64_t matrix_height(const Tensor& w) {
  FG_CHECK(w.dim() >= 1 && w.numel() > 0, "spectral norm: the weight must be non-empty, got " << w.str());
  return w.size(0);
}

// x / max(||x||, eps), PyTorch's F.normalize over a vector.
Tensor normalized(const Tensor& x, double eps) {
  const double norm = std::sqrt(kernels::sum_squares(x));
  return kernels::mul_scalar(x, 1.0 / std::max(norm, eps));
}

}  // namespace

Variable spectral_normalize(const Variable& weight_orig, const Tensor& u, const Tensor& v) {
  const int64_t h = matrix_height(weight_orig.data());
  const int64_t w = weight_orig.numel() / h;
  FG_CHECK(u.numel() == h && v.numel() == w, "spectral norm: u has " << u.numel() << " and v " << v.numel()
                                                 << " elements, the weight " << weight_orig.data().str()
                                                 << " needs " << h << " and " << w);
  // u and v are cloned: the graph keeps them for backward while the next training forward updates the buffers.
  const Variable u_col(u.reshape({h, 1}).clone());
  const Variable v_col(v.reshape({w, 1}).clone());
  const Variable w_mat = reshape(weight_orig, {h, w});
  const Variable sigma = reshape(sum(mul(matmul(w_mat, v_col), u_col)), {1});
  return div(weight_orig, sigma);
}

double spectral_sigma(const Tensor& weight, const Tensor& u, const Tensor& v) {
  NoGradGuard no_grad;
  const int64_t h = matrix_height(weight);
  const int64_t w = weight.numel() / h;
  FG_CHECK(u.numel() == h && v.numel() == w, "spectral norm: u/v sizes " << u.numel() << "/" << v.numel()
                                                 << " do not fit the weight " << weight.str());
  const Variable wv = matmul(Variable(weight.reshape({h, w})), Variable(v.reshape({w, 1})));
  return sum(mul(wv, Variable(u.reshape({h, 1})))).item();
}

void spectral_power_iteration(const Tensor& weight, const Tensor& u, const Tensor& v, int64_t iterations,
                              double eps) {
  NoGradGuard no_grad;
  const int64_t h = matrix_height(weight);
  const int64_t w = weight.numel() / h;
  FG_CHECK(u.numel() == h && v.numel() == w, "spectral norm: u/v sizes " << u.numel() << "/" << v.numel()
                                                 << " do not fit the weight " << weight.str());
  const Variable w_mat(weight.reshape({h, w}));
  const Variable w_mat_t = transpose(w_mat, 0, 1);
  Tensor u_out = u;
  Tensor v_out = v;
  for (int64_t it = 0; it < iterations; ++it) {
    const Tensor v_new = normalized(matmul(w_mat_t, Variable(u_out.reshape({h, 1}))).data(), eps);
    v_out.copy_(v_new.reshape(v_out.shape()));
    const Tensor u_new = normalized(matmul(w_mat, Variable(v_out.reshape({w, 1}))).data(), eps);
    u_out.copy_(u_new.reshape(u_out.shape()));
  }
}

SpectralNorm::SpectralNorm(Module& owner, const Variable& weight, Generator& gen, int64_t power_iterations,
                           double eps)
    : power_iterations_(power_iterations), eps_(eps) {
  FG_CHECK(power_iterations >= 1, "spectral norm: power_iterations must be at least 1, got " << power_iterations);
  FG_CHECK(eps > 0.0, "spectral norm: eps must be positive, got " << eps);
  const Tensor& w = weight.data();
  const int64_t h = matrix_height(w);
  const int64_t width = w.numel() / h;
  Tensor u0 = Tensor::empty({h}, w.dtype());
  Tensor v0 = Tensor::empty({width}, w.dtype());
  init::normal_(u0, gen);
  init::normal_(v0, gen);
  weight_orig_ = owner.register_parameter("weight_orig", w, weight.requires_grad());
  u_ = owner.register_buffer("weight_u", normalized(u0, eps).to(w.device()));
  v_ = owner.register_buffer("weight_v", normalized(v0, eps).to(w.device()));
}

Variable SpectralNorm::weight(bool training) {
  if (training) spectral_power_iteration(weight_orig_.data(), u_.data(), v_.data(), power_iterations_, eps_);
  return spectral_normalize(weight_orig_, u_.data(), v_.data());
}

double SpectralNorm::sigma() const { return spectral_sigma(weight_orig_.data(), u_.data(), v_.data()); }

}  // namespace fg::nn
