// Differentiable SSIM (pytorch-ssim's definition, kernels/ssim.h). The forward keeps the per-pixel statistics
// (mu_x, mu_y, var_x, var_y, cov_xy) when a gradient is needed, so the backward does not filter the images again;
// it also saves x and y, which the chain rule through E[x^2], E[y^2] and E[xy] multiplies by.
#include "kernels/ssim.h"

#include <memory>
#include <utility>

#include "autograd/ops.h"
#include "tensor/error.h"

namespace fg {

namespace {

class SsimNode : public Node {
 public:
  SsimNode(Tensor x, Tensor y, kernels::SsimStats stats, kernels::SsimParams params)
      : x_(std::move(x)), y_(std::move(y)), stats_(std::move(stats)), params_(params) {}
  const char* name() const override { return "SsimBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    kernels::SsimGrads g = kernels::ssim_backward(grad_output, x_, y_, stats_, params_, inputs[0].requires_grad(),
                                                  inputs[1].requires_grad());
    return {g.x, g.y};
  }
  void release_saved() override {
    x_ = Tensor();
    y_ = Tensor();
    stats_ = kernels::SsimStats();
  }

 private:
  Tensor x_, y_;
  kernels::SsimStats stats_;  // carries the parameters it was made with; the backward checks them against params_
  kernels::SsimParams params_;
};

}  // namespace

Variable ssim(const Variable& x, const Variable& y, int64_t window_size, double sigma) {
  FG_CHECK(x.defined() && y.defined(), "ssim: both images must be defined");
  const kernels::SsimParams params{window_size, sigma};
  const bool record = any_requires_grad({x, y});
  const Tensor xc = x.data().contiguous(), yc = y.data().contiguous();
  kernels::SsimResult r = kernels::ssim(xc, yc, params, /*keep_stats=*/record);
  std::shared_ptr<Node> node;
  if (record) node = std::make_shared<SsimNode>(xc, yc, r.stats, params);
  return make_result(r.value, node, {x, y});
}

}  // namespace fg
