// Master weights of mixed_precision.h.
#include "nn/mixed_precision.h"

#include "kernels/elementwise.h"
#include "tensor/error.h"

namespace fg::nn {

namespace {

// How many bits of mantissa and exponent a floating dtype keeps, as an order: f16 and bf16 are both below f32
// but neither holds the other (f16 has more mantissa, bf16 more exponent).
int width_rank(DType dt) {
  switch (dt) {
    case DType::F64:
      return 3;
    case DType::F32:
      return 2;
    case DType::F16:
    case DType::BF16:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

MixedPrecision::MixedPrecision(std::vector<Variable> model_params, DType master_dtype)
    : model_(std::move(model_params)), master_dtype_(master_dtype) {
  FG_CHECK(dtype_is_floating(master_dtype), "master weights must be floating point, got " << dtype_name(master_dtype));
  NoGradGuard no_grad;
  masters_.reserve(model_.size());
  for (const Variable& p : model_) {
    FG_CHECK(p.defined() && p.is_leaf(), "mixed precision needs the model's parameters (leaf Variables)");
    const DType dt = p.dtype();
    FG_CHECK(width_rank(master_dtype) > width_rank(dt) || master_dtype == dt,
             "master weights in " << dtype_name(master_dtype) << " cannot hold a " << dtype_name(dt)
                                  << " parameter exactly; use master weights at least as wide as the model (f32 "
                                     "for f16 and bf16 models)");
    // clone: the master never shares storage with the model, even when the dtypes are equal.
    masters_.emplace_back(p.data().to(master_dtype).clone(), /*requires_grad=*/true);
  }
}

void MixedPrecision::copy_masters_to_model() const {
  NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) {
    Tensor dst = model_[i].data();
    dst.copy_(masters_[i].data());
  }
}

void MixedPrecision::copy_model_to_masters() const {
  NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) {
    Tensor dst = masters_[i].data();
    dst.copy_(model_[i].data());
  }
}

bool MixedPrecision::grads_to_masters(double inv_scale) const {
  NoGradGuard no_grad;
  bool finite = true;
  for (size_t i = 0; i < model_.size(); ++i) {
    const Tensor& g = model_[i].grad();
    masters_[i].zero_grad();
    if (!g.defined()) continue;
    Tensor wide = g.to(master_dtype_);
    if (inv_scale != 1.0) wide = kernels::mul_scalar(wide, inv_scale);
    // A gradient that aliases the model's (same dtype) must not be shared: the optimizer reads it as its own.
    else if (wide.shares_storage_with(g))
      wide = wide.clone();
    if (finite) finite = kernels::all_finite(wide);
    masters_[i].set_grad(wide);
    model_[i].zero_grad();
  }
  return finite;
}

bool MixedPrecision::step(Optimizer& optimizer, LossScaler& scaler) const {
  const bool finite = grads_to_masters(1.0 / scaler.scale());
  if (finite) {
    optimizer.step();
    copy_masters_to_model();
  }
  scaler.update(!finite);
  for (const Variable& m : masters_) m.zero_grad();
  for (const Variable& p : model_) p.zero_grad();
  return finite;
}

}  // namespace fg::nn
