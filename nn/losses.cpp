// Composite losses: see nn/losses.h.
#include "nn/losses.h"

#include "tensor/error.h"

namespace fg::nn {

namespace {

void check_pair(const char* what, const Variable& a, const Variable& b) {
  FG_CHECK(a.defined() && b.defined(), what << ": both inputs must be defined");
  FG_CHECK(a.dim() == 4 && a.shape() == b.shape(),
           what << ": inputs must be two (N, C, H, W) tensors of the same shape, got " << shape_str(a.shape())
                << " and " << shape_str(b.shape()));
}

}  // namespace

Variable ssim_loss(const Variable& x, const Variable& y, int64_t window_size) {
  check_pair("ssim_loss", x, y);
  FG_CHECK(window_size >= 1, "ssim_loss: window_size must be at least 1, got " << window_size);
  return add_scalar(neg(ssim(x, y, window_size, 1.5)), 1.0);
}

Variable gram_style_loss(const Variable& feature_in, const Variable& feature_target, double weight) {
  check_pair("gram_style_loss", feature_in, feature_target);
  return mul_scalar(l1_loss(gram_matrix(feature_in), gram_matrix(feature_target)), kGramStyleScale * weight * weight);
}

}  // namespace fg::nn
