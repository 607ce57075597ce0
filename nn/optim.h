// Optimizers over leaf Variables, with the update rules of torch.optim (PyTorch 1.13, single-tensor path):
//   SGD   (dampening 0, no Nesterov): g = grad + wd p; buf = g (first step) or momentum buf + g; p -= lr buf
//                                     (buf = g when momentum is 0)
//   Adam  (L2 weight decay): g = grad + wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//                            p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   AdamW (decoupled): p *= 1 - lr wd, then the Adam step with g = grad
// Parameters are updated in place (their storage is kept, so views and modules see the new values) and computed
// in the parameter's dtype (f32 or f64), on the CPU or, for parameters on CUDA, by one fused kernel per parameter
// (kernels/cuda/adam.h) with the same update. step() skips parameters without a gradient.
//
// Parameters are numbered in the order they were added, across groups; the state is exposed as named tensors
// "<index>.step" (i64, shape ()), "<index>.exp_avg", "<index>.exp_avg_sq" (Adam, AdamW) and
// "<index>.momentum_buffer" (SGD with momentum), so a checkpoint can save and restore it.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace fg::nn {

struct ParamGroup {
  std::vector<Variable> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  // SGD: the momentum factor. Adam, AdamW: beta1 (the value one-cycle schedules cycle, as fastai's "mom").
  double momentum = 0.0;
  double beta2 = 0.999;  // Adam, AdamW
  double eps = 1e-8;     // Adam, AdamW
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual const char* name() const = 0;

  void step();
  void zero_grad();  // drops the gradients of every parameter

  // Adds a group; unset hyperparameters come from the optimizer's defaults. A parameter may be in one group only
  // and must be a floating-point leaf.
  void add_param_group(const std::vector<Variable>& params, std::optional<double> lr = std::nullopt,
                       std::optional<double> weight_decay = std::nullopt);
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  int64_t num_params() const { return int64_t(state_.size()); }

  void set_lr(double lr);  // every group
  double lr(size_t group = 0) const;
  void set_momentum(double momentum);  // every group: SGD momentum, Adam beta1
  double momentum(size_t group = 0) const;

  // The live state tensors (not copies): save them before the next step() if a snapshot is needed.
  std::map<std::string, Tensor> state_dict() const;
  // Replaces the state; checks every name, shape and dtype first and throws one fg::Error listing all problems.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  explicit Optimizer(ParamGroup defaults) : defaults_(std::move(defaults)) {}
  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> buffers;  // by state name, same shape and dtype as the parameter
  };
  // Updates one parameter that has a gradient. `param` and `grad` are contiguous tensors of the same dtype and device.
  virtual void update(Tensor& param, const Tensor& grad, const ParamGroup& group, ParamState& state) = 0;
  // The buffer names a parameter's state has once it has taken a step.
  virtual std::vector<std::string> state_names(const ParamGroup& group) const = 0;

  ParamGroup defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // by parameter index

 private:
  const Variable& param_at(int64_t index, const ParamGroup** group) const;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
};

class SGD : public Optimizer {
 public:
  SGD(const std::vector<Variable>& params, const SGDOptions& options);
  const char* name() const override { return "SGD"; }

 protected:
  void update(Tensor& param, const Tensor& grad, const ParamGroup& group, ParamState& state) override;
  std::vector<std::string> state_names(const ParamGroup& group) const override;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class Adam : public Optimizer {
 public:
  Adam(const std::vector<Variable>& params, const AdamOptions& options);
  const char* name() const override { return decoupled_ ? "AdamW" : "Adam"; }

 protected:
  Adam(const std::vector<Variable>& params, const AdamOptions& options, bool decoupled_weight_decay);
  void update(Tensor& param, const Tensor& grad, const ParamGroup& group, ParamState& state) override;
  std::vector<std::string> state_names(const ParamGroup& group) const override;

 private:
  bool decoupled_;
};

// torch.optim.AdamW; its default weight decay is 1e-2 as in PyTorch.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

class AdamW : public Adam {
 public:
  AdamW(const std::vector<Variable>& params, const AdamWOptions& options);
};

}  // namespace fg::nn
