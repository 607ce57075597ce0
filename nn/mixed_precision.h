// Master weights for mixed-precision training (Micikevicius et al. 2017; what fastai's to_fp16() does): the model
// computes in a narrow dtype (f16 or bf16 on CUDA), while the optimizer updates a wider copy of every parameter
// (the "master weights", f32), so that updates smaller than the narrow dtype's resolution still accumulate.
//
// One step:
//   copy_masters_to_model()      model parameter = cast(master)          (done after every update, and at the start)
//   forward, scaler.scale_loss(loss).backward()                            (the model's gradients, in its dtype)
//   grads_to_masters(1 / scale)  master.grad = cast(model.grad) / scale   (cast first, so unscaling cannot
//                                                                          underflow in the narrow dtype)
//   optimizer.step() on the masters when every gradient is finite, then copy_masters_to_model()
// step() does the last two lines together with a LossScaler (nn/loss_scale.h).
//
// Generic over the (compute, master) dtype pair: the masters take whatever dtype is asked, the model keeps its own.
// On the CPU the pair (f32, f64) exercises every line of this file (tests/nn/test_mixed_precision.cpp); on CUDA
// the trainer uses (bf16 or f16, f32). Casts round to nearest even (Tensor::copy_), so copying a master into the
// model and back is exact when the model's dtype holds the value, and casting a narrow value to the wider dtype is
// always exact.
//
// The masters are built for every parameter given (trainable or not): a parameter that got no gradient in a step
// gives its master no gradient, and the optimizer (nn/optim.h) skips it, so freezing and unfreezing need nothing
// here. Masters live on the model's device.
#pragma once
#include <vector>

#include "autograd/variable.h"
#include "nn/loss_scale.h"
#include "nn/optim.h"

namespace fg::nn {

class MixedPrecision {
 public:
  // model_params: the model's parameters, in the model's order (Module::parameters()). The masters are exact
  // copies of them in `master_dtype`, which must be at least as wide as each parameter's dtype (fg::Error
  // otherwise: masters narrower than the model would lose the very precision they exist to keep).
  MixedPrecision(std::vector<Variable> model_params, DType master_dtype);

  DType master_dtype() const { return master_dtype_; }
  // Leaf Variables in master_dtype, one per model parameter, in the same order: build the optimizer over these.
  const std::vector<Variable>& master_params() const { return masters_; }
  const std::vector<Variable>& model_params() const { return model_; }

  // model parameter = cast(master), in place (the model's tensors keep their storage).
  void copy_masters_to_model() const;
  // master = cast(model parameter): after weights were loaded into the model (exact when the master dtype is at
  // least as wide).
  void copy_model_to_masters() const;

  // For each model parameter with a gradient: its master's gradient = cast(gradient) * inv_scale, and the model's
  // gradient is dropped. Masters of parameters without a gradient get none. Returns true when every master
  // gradient is finite.
  bool grads_to_masters(double inv_scale) const;

  // The whole update: grads_to_masters(1 / scale); when finite, optimizer.step() (an optimizer built over
  // master_params()) and copy_masters_to_model(); scaler.update(); every gradient dropped. Returns true when the
  // optimizer stepped, false when the step was skipped for a non-finite gradient.
  bool step(Optimizer& optimizer, LossScaler& scaler) const;

 private:
  std::vector<Variable> model_;
  std::vector<Variable> masters_;
  DType master_dtype_;
};

}  // namespace fg::nn
