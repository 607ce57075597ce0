// Spectral normalisation (Miyato et al. 2018) as torch.nn.utils.spectral_norm does it (dim 0, the default for
// every layer but transposed convolutions). The owning module's "weight" parameter becomes "weight_orig" (a
// parameter, re-registered last, as PyTorch re-registers it) plus two buffers "weight_u" (h) and "weight_v" (w),
// where W_orig viewed as a matrix is (h = size(0), w = numel / h). Each training forward runs one power iteration
// under no-grad, updating u and v in place:
//   v = normalize(W^T u), u = normalize(W v),   normalize(x) = x / max(||x||, eps);
// in eval no iteration runs. The weight the layer uses is W_orig / sigma with sigma = u^T W_orig v computed with
// differentiable ops and u, v held constant, so the gradient flows through sigma exactly as in PyTorch.
#pragma once
#include <cstdint>

#include "autograd/variable.h"
#include "nn/module.h"
#include "tensor/philox.h"

namespace fg::nn {

// W_orig / (u^T W_mat v), differentiable in W_orig; u: (h), v: (w) are constants. The free-function form of the
// normalised weight (the layer uses it; tests check its gradient).
Variable spectral_normalize(const Variable& weight_orig, const Tensor& u, const Tensor& v);
// u^T W_mat v, no graph.
double spectral_sigma(const Tensor& weight, const Tensor& u, const Tensor& v);
// n power iterations on W_mat, updating u and v in place (CPU, f32/f64).
void spectral_power_iteration(const Tensor& weight, const Tensor& u, const Tensor& v, int64_t iterations,
                              double eps);

class SpectralNorm {
 public:
  // Registers "weight_orig" (holding `weight`'s data and requires_grad), "weight_u" and "weight_v" on `owner`;
  // u and v start as normalised N(0, 1) draws from gen. The caller has already removed `weight` from `owner`.
  SpectralNorm(Module& owner, const Variable& weight, Generator& gen, int64_t power_iterations = 1,
               double eps = 1e-12);

  // The weight for this forward: runs the power iteration first when `training`.
  Variable weight(bool training);
  // sigma for the current u, v (no iteration).
  double sigma() const;

  const Variable& weight_orig() const { return weight_orig_; }
  Tensor u() const { return u_.data(); }
  Tensor v() const { return v_.data(); }
  int64_t power_iterations() const { return power_iterations_; }

 private:
  Variable weight_orig_;
  Variable u_;
  Variable v_;
  int64_t power_iterations_;
  double eps_;
};

}  // namespace fg::nn
