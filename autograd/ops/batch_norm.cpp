// Differentiable batch normalisation (autograd/ops.h). The forward computes the statistics (batch ones when
// training, running ones in eval mode), updates the running statistics when training, and normalises; the node
// keeps x, the statistics it used and the weight, which is all the backward formulas need.
#include "kernels/batch_norm.h"

#include <cmath>

#include "autograd/ops.h"
#include "kernels/elementwise.h"

namespace fg {
namespace {

class BatchNormNode : public Node {
 public:
  BatchNormNode(Tensor x, kernels::BatchNormStats stats, Tensor weight, bool training)
      : x_(std::move(x)), stats_(std::move(stats)), weight_(std::move(weight)), training_(training) {}
  const char* name() const override { return "BatchNormBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    kernels::BatchNormGrads g =
        kernels::batch_norm_backward(grad_output, x_, stats_, weight_, training_, inputs[0].requires_grad(),
                                     inputs[1].requires_grad(), inputs[2].requires_grad());
    return {g.input, g.weight, g.bias};
  }
  void release_saved() override {
    x_ = Tensor();
    stats_ = kernels::BatchNormStats();
    weight_ = Tensor();
  }

 private:
  Tensor x_;
  kernels::BatchNormStats stats_;
  Tensor weight_;
  bool training_;
};

// Per-channel host values as a (C) tensor of x's dtype on x's device.
Tensor channel_tensor(const std::vector<double>& v, const Tensor& like) {
  return Tensor::from_vector(v, {int64_t(v.size())}, DType::F64).to(like.dtype()).to(like.device());
}

class SyncBatchNormNode : public Node {
 public:
  SyncBatchNormNode(Tensor x, kernels::BatchNormStats stats, Tensor weight, double count,
                    std::function<void(std::vector<double>&)> all_reduce)
      : x_(std::move(x)),
        stats_(std::move(stats)),
        weight_(std::move(weight)),
        count_(count),
        all_reduce_(std::move(all_reduce)) {}
  const char* name() const override { return "SyncBatchNormBackward"; }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    // The local sums of dy and dy * (x - mean) * invstd, with the global statistics, are this process's bias and
    // weight gradients (averaged across processes later, like every parameter's).
    kernels::BatchNormGrads local =
        kernels::batch_norm_backward(grad_output, x_, stats_, weight_, /*training=*/false, false, true, true);
    const int64_t C = stats_.mean.numel();
    const std::vector<double> gw = local.weight.to_vector(), gb = local.bias.to_vector();
    const std::vector<double> mean = stats_.mean.to_vector(), invstd = stats_.invstd.to_vector();
    std::vector<double> sums(size_t(2 * C));
    for (int64_t c = 0; c < C; ++c) {
      sums[size_t(c)] = gb[size_t(c)];
      sums[size_t(C + c)] = gw[size_t(c)];  // sum(dy * xhat)
    }
    all_reduce_(sums);
    // dx = w invstd (dy - sum(dy)/M - xhat sum(dy xhat)/M), with sums over every process: as a dy + b x + c.
    std::vector<double> a(static_cast<size_t>(C)), b(static_cast<size_t>(C)), c0(static_cast<size_t>(C)),
        zero(static_cast<size_t>(C), 0.0), one(static_cast<size_t>(C), 1.0);
    const std::vector<double> w = weight_.defined() ? weight_.to_vector() : one;
    for (int64_t c = 0; c < C; ++c) {
      const double is = invstd[size_t(c)], k = w[size_t(c)] * is;
      const double mean_dy = sums[size_t(c)] / count_, mean_dy_xhat = sums[size_t(C + c)] / count_;
      a[size_t(c)] = k;
      b[size_t(c)] = -k * is * mean_dy_xhat;
      c0[size_t(c)] = k * (-mean_dy + mean[size_t(c)] * is * mean_dy_xhat);
    }
    const kernels::BatchNormStats identity{channel_tensor(zero, x_), channel_tensor(one, x_)};
    Tensor dx = kernels::batch_norm_forward(grad_output, identity, channel_tensor(a, x_), channel_tensor(c0, x_));
    kernels::add_(dx, kernels::batch_norm_forward(x_, identity, channel_tensor(b, x_), Tensor()));
    return {inputs[0].requires_grad() ? dx : Tensor(), inputs[1].requires_grad() ? local.weight : Tensor(),
            inputs[2].requires_grad() ? local.bias : Tensor()};
  }
  void release_saved() override {
    x_ = Tensor();
    stats_ = kernels::BatchNormStats();
    weight_ = Tensor();
  }

 private:
  Tensor x_;
  kernels::BatchNormStats stats_;
  Tensor weight_;
  double count_;
  std::function<void(std::vector<double>&)> all_reduce_;
};

}  // namespace

Variable sync_batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor running_mean,
                         Tensor running_var, double momentum, double eps,
                         std::function<void(std::vector<double>&)> all_reduce_sum) {
  FG_CHECK(x.defined() && x.dim() >= 2, "sync_batch_norm: expected x of shape (N, C, ...)");
  const Tensor xd = x.data().contiguous();
  const int64_t C = xd.size(1);
  const double n_local = double(xd.numel() / C);
  // Local statistics from the kernel (two passes in double), merged across processes by Chan's rule: the global
  // mean first, then the squared deviations about it, so nothing is lost to cancellation.
  const kernels::BatchNormStats local = kernels::batch_norm_batch_stats(xd, 0.0, Tensor(), Tensor(), 0.0);
  const std::vector<double> lm = local.mean.to_vector(), lis = local.invstd.to_vector();
  std::vector<double> first(size_t(C + 1));
  for (int64_t c = 0; c < C; ++c) first[size_t(c)] = lm[size_t(c)] * n_local;
  first[size_t(C)] = n_local;
  all_reduce_sum(first);
  const double count = first[size_t(C)];
  FG_CHECK(count > 1, "sync_batch_norm: a channel has a single value across all processes");
  std::vector<double> mean(static_cast<size_t>(C)), second(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    mean[size_t(c)] = first[size_t(c)] / count;
    const double local_var = 1.0 / (lis[size_t(c)] * lis[size_t(c)]);  // eps was 0
    const double d = lm[size_t(c)] - mean[size_t(c)];
    second[size_t(c)] = n_local * local_var + n_local * d * d;
  }
  all_reduce_sum(second);
  std::vector<double> invstd(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) invstd[size_t(c)] = 1.0 / std::sqrt(second[size_t(c)] / count + eps);
  if (running_mean.defined() || running_var.defined()) {
    NoGradGuard no_grad;
    std::vector<double> rm = running_mean.defined() ? running_mean.to_vector() : std::vector<double>();
    std::vector<double> rv = running_var.defined() ? running_var.to_vector() : std::vector<double>();
    for (int64_t c = 0; c < C; ++c) {
      if (!rm.empty()) rm[size_t(c)] = momentum * mean[size_t(c)] + (1.0 - momentum) * rm[size_t(c)];
      if (!rv.empty()) rv[size_t(c)] = momentum * (second[size_t(c)] / (count - 1)) + (1.0 - momentum) * rv[size_t(c)];
    }
    if (!rm.empty()) running_mean.copy_(channel_tensor(rm, running_mean));
    if (!rv.empty()) running_var.copy_(channel_tensor(rv, running_var));
  }
  kernels::BatchNormStats stats{channel_tensor(mean, xd), channel_tensor(invstd, xd)};
  const Tensor w = weight.defined() ? weight.data() : Tensor();
  const Tensor b = bias.defined() ? bias.data() : Tensor();
  Tensor y = kernels::batch_norm_forward(xd, stats, w, b);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x, weight, bias}))
    node = std::make_shared<SyncBatchNormNode>(xd, std::move(stats), w, count, std::move(all_reduce_sum));
  return make_result(std::move(y), std::move(node), {x, weight, bias});
}

Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum, double eps) {
  FG_CHECK(x.defined(), "batch_norm: the input is undefined");
  const Tensor xd = x.data().contiguous();
  const Tensor w = weight.defined() ? weight.data() : Tensor();
  const Tensor b = bias.defined() ? bias.data() : Tensor();
  kernels::BatchNormStats stats = training
                                      ? kernels::batch_norm_batch_stats(xd, eps, running_mean, running_var, momentum)
                                      : kernels::batch_norm_running_stats(running_mean, running_var, eps);
  Tensor y = kernels::batch_norm_forward(xd, stats, w, b);
  std::shared_ptr<Node> node;
  if (any_requires_grad({x, weight, bias})) node = std::make_shared<BatchNormNode>(xd, std::move(stats), w, training);
  return make_result(std::move(y), std::move(node), {x, weight, bias});
}

}  // namespace fg
