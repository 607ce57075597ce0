// Optimizers: see nn/optim.h. The updates are plain loops over contiguous parameter and gradient buffers, written
// as the sequence of tensor operations torch.optim performs (same operand order, scalars rounded to the
// parameter's dtype), so results agree with PyTorch to rounding.
// Speed: each element's update is independent, so the loops are split over the OpenMP threads and vectorised; the
// result of an element does not depend on either. The Adam loop's sqrt vectorises only without errno (this file is
// built with -fno-math-errno, see CMakeLists.txt; sqrt stays correctly rounded, so no result changes).
#include "nn/optim.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tensor/error.h"
#include "tensor/overlap.h"
#ifdef FG_WITH_CUDA
#include "kernels/cuda/adam.h"
#endif

namespace fg::nn {

namespace {

// Parameters with fewer elements are updated on one thread: forking would cost more than the loop.
constexpr int64_t kParallelElements = 16384;

void check_hyper(const char* opt, double lr, double weight_decay) {
  FG_CHECK(lr >= 0.0, opt << ": invalid learning rate " << lr << " (must be >= 0)");
  FG_CHECK(weight_decay >= 0.0, opt << ": invalid weight_decay " << weight_decay << " (must be >= 0)");
}

std::string join(const std::vector<std::string>& items) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size(); ++i) os << (i ? ", " : "") << items[i];
  return os.str();
}

// torch.optim.SGD's update for one contiguous parameter. b: the momentum buffer, or null without momentum.
template <typename T>
void sgd_loop(T* p, const T* g, T* b, int64_t n, const ParamGroup& group, bool first_step) {
  const T wd = T(group.weight_decay);
  const T mom = T(group.momentum);
  const T neg_lr = T(-group.lr);
  const bool decay = group.weight_decay != 0.0;
#pragma omp parallel for simd if (n > kParallelElements) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T d = decay ? g[i] + wd * p[i] : g[i];
    if (b) {
      b[i] = first_step ? d : b[i] * mom + d;
      d = b[i];
    }
    p[i] = p[i] + neg_lr * d;
  }
}

// torch.optim.Adam / AdamW's update for one contiguous parameter (m: exp_avg, v: exp_avg_sq).
template <typename T>
void adam_loop(T* p, const T* g, T* m, T* v, int64_t n, const ParamGroup& group, bool decoupled, double step_size,
               double bias_correction2_sqrt) {
  const bool l2 = !decoupled && group.weight_decay != 0.0;
  const bool decay_weights = decoupled && group.weight_decay != 0.0;
  const T wd = T(group.weight_decay);
  const T decay_factor = T(1.0 - group.lr * group.weight_decay);
  const T b1 = T(group.momentum), one_minus_b1 = T(1.0 - group.momentum);
  const T b2 = T(group.beta2), one_minus_b2 = T(1.0 - group.beta2);
  const T bc2_sqrt = T(bias_correction2_sqrt);
  const T eps = T(group.eps);
  const T neg_step_size = T(-step_size);
#pragma omp parallel for simd if (n > kParallelElements) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    if (decay_weights) p[i] = p[i] * decay_factor;
    const T d = l2 ? g[i] + wd * p[i] : g[i];
    m[i] = m[i] * b1 + one_minus_b1 * d;
    v[i] = v[i] * b2 + one_minus_b2 * d * d;
    const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] = p[i] + neg_step_size * (m[i] / denom);
  }
}

}  // namespace

// ---- Optimizer ----

void Optimizer::add_param_group(const std::vector<Variable>& params, std::optional<double> lr,
                                std::optional<double> weight_decay) {
  ParamGroup g = defaults_;
  g.params.clear();
  if (lr) g.lr = *lr;
  if (weight_decay) g.weight_decay = *weight_decay;
  check_hyper(name(), g.lr, g.weight_decay);
  for (const auto& p : params) {
    FG_CHECK(p.defined(), name() << ": a parameter is undefined");
    FG_CHECK(p.is_leaf(), name() << ": can't optimize a non-leaf Variable (a result of an op); pass the leaves");
    FG_CHECK(dtype_is_floating(p.dtype()), name() << ": parameters must be floating point, got "
                                                  << dtype_name(p.dtype()));
    for (const auto& other : groups_)
      for (const auto& q : other.params)
        FG_CHECK(!q.same(p), name() << ": a parameter appears in more than one parameter group");
    for (const auto& q : g.params) FG_CHECK(!q.same(p), name() << ": a parameter appears twice in one group");
    g.params.push_back(p);
  }
  state_.resize(state_.size() + g.params.size());
  groups_.push_back(std::move(g));
}

void Optimizer::step() {
  NoGradGuard no_grad;
  size_t index = 0;
  for (const auto& group : groups_) {
    for (const auto& p : group.params) {
      ParamState& state = state_[index++];
      if (!p.grad().defined()) continue;
      Tensor data = p.data();
      FG_CHECK(p.grad().device() == data.device(), name() << ": gradient on " << p.grad().device().str()
                                                           << " but its parameter on " << data.device().str());
      FG_CHECK(data.is_contiguous(), name() << ": parameter " << data.str()
                                            << " is not contiguous; optimizers update contiguous parameters");
      FG_CHECK(p.grad().shape() == data.shape() && p.grad().dtype() == data.dtype(),
               name() << ": gradient " << p.grad().str() << " does not match its parameter " << data.str());
      update(data, p.grad().contiguous(), group, state);
    }
  }
}

void Optimizer::zero_grad() {
  for (const auto& g : groups_)
    for (const auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_hyper(name(), lr, 0.0);
  for (auto& g : groups_) g.lr = lr;
  defaults_.lr = lr;
}

double Optimizer::lr(size_t group) const {
  FG_CHECK(group < groups_.size(), name() << ": no parameter group " << group);
  return groups_[group].lr;
}

void Optimizer::set_momentum(double momentum) {
  FG_CHECK(momentum >= 0.0 && momentum < 1.0, name() << ": momentum (beta1) must be in [0, 1), got " << momentum);
  for (auto& g : groups_) g.momentum = momentum;
  defaults_.momentum = momentum;
}

double Optimizer::momentum(size_t group) const {
  FG_CHECK(group < groups_.size(), name() << ": no parameter group " << group);
  return groups_[group].momentum;
}

const Variable& Optimizer::param_at(int64_t index, const ParamGroup** group) const {
  int64_t i = index;
  for (const auto& g : groups_) {
    if (i < int64_t(g.params.size())) {
      *group = &g;
      return g.params[size_t(i)];
    }
    i -= int64_t(g.params.size());
  }
  FG_ASSERT(false, "parameter index " << index << " out of range");
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& s = state_[i];
    if (s.step == 0 && s.buffers.empty()) continue;
    const std::string prefix = std::to_string(i) + ".";
    out[prefix + "step"] = Tensor::scalar(double(s.step), DType::I64);
    for (const auto& b : s.buffers) out[prefix + b.first] = b.second;
  }
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::vector<std::string> problems;
  std::map<int64_t, std::map<std::string, Tensor>> by_index;
  for (const auto& e : state) {
    const std::string& key = e.first;
    const size_t dot = key.find('.');
    int64_t index = -1;
    if (dot != std::string::npos && dot > 0 &&
        std::all_of(key.begin(), key.begin() + long(dot), [](char c) { return c >= '0' && c <= '9'; }) &&
        dot < 12)
      index = std::stoll(key.substr(0, dot));
    if (index < 0 || index >= num_params()) {
      problems.push_back("unexpected key '" + key + "' (keys are '<parameter index>.<state>' with index < " +
                         std::to_string(num_params()) + ")");
      continue;
    }
    by_index[index][key.substr(dot + 1)] = e.second;
  }
  for (const auto& entry : by_index) {
    const ParamGroup* group = nullptr;
    const Variable& p = param_at(entry.first, &group);
    std::vector<std::string> names = state_names(*group);
    names.push_back("step");
    const std::string prefix = std::to_string(entry.first) + ".";
    for (const auto& n : names)
      if (!entry.second.count(n)) problems.push_back("missing key '" + prefix + n + "'");
    for (const auto& f : entry.second) {
      const Tensor& t = f.second;
      if (std::find(names.begin(), names.end(), f.first) == names.end()) {
        problems.push_back("unexpected key '" + prefix + f.first + "' (" + name() + " keeps " +
                           join(names) + ")");
      } else if (!t.defined()) {
        problems.push_back("'" + prefix + f.first + "' is undefined");
      } else if (f.first == "step") {
        if (t.dtype() != DType::I64 || t.numel() != 1)
          problems.push_back("'" + prefix + "step' must be a single i64, got " + t.str());
      } else if (t.shape() != p.shape() || t.dtype() != p.dtype()) {
        problems.push_back("'" + prefix + f.first + "' is " + t.str() + ", its parameter is " + p.data().str());
      }
    }
  }
  if (!problems.empty()) {
    std::ostringstream os;
    os << name() << ".load_state_dict: the optimizer state does not fit these parameters: ";
    const size_t shown = std::min<size_t>(problems.size(), 10);
    for (size_t i = 0; i < shown; ++i) os << (i ? "; " : "") << problems[i];
    if (problems.size() > shown) os << "; ... and " << problems.size() - shown << " more";
    os << ". Nothing was loaded; build the optimizer over the same parameters, in the same order";
    throw Error(os.str());
  }
  std::vector<ParamState> fresh(state_.size());
  for (const auto& entry : by_index) {
    const ParamGroup* group = nullptr;
    const Variable& p = param_at(entry.first, &group);
    ParamState& s = fresh[size_t(entry.first)];
    for (const auto& f : entry.second) {
      if (f.first == "step") {
        s.step = int64_t(f.second.to(Device::cpu()).item());
      } else {
        s.buffers[f.first] = f.second.to(p.data().device()).clone();
      }
    }
  }
  state_ = std::move(fresh);
}

// ---- SGD ----

SGD::SGD(const std::vector<Variable>& params, const SGDOptions& options) : Optimizer(ParamGroup{}) {
  check_hyper("SGD", options.lr, options.weight_decay);
  FG_CHECK(options.momentum >= 0.0 && options.momentum < 1.0,
           "SGD: momentum must be in [0, 1), got " << options.momentum);
  defaults_.lr = options.lr;
  defaults_.momentum = options.momentum;
  defaults_.weight_decay = options.weight_decay;
  add_param_group(params);
}

std::vector<std::string> SGD::state_names(const ParamGroup& group) const {
  if (group.momentum == 0.0) return {};
  return {"momentum_buffer"};
}

void SGD::update(Tensor& param, const Tensor& grad, const ParamGroup& group, ParamState& state) {
  const int64_t n = param.numel();
  const bool use_momentum = group.momentum != 0.0;
  Tensor buf;
  bool first = false;
  if (use_momentum) {
    auto it = state.buffers.find("momentum_buffer");
    first = it == state.buffers.end();
    if (first)
      it = state.buffers.emplace("momentum_buffer", Tensor::empty(param.shape(), param.dtype(), param.device())).first;
    buf = it->second;
  }
#ifdef FG_WITH_CUDA
  if (param.device().is_cuda()) {  // one fused kernel (kernels/cuda/adam.h), same update
    kernels::cuda::SgdStep st;
    st.lr = group.lr;
    st.weight_decay = group.weight_decay;
    st.momentum = group.momentum;
    st.first_step = first;
    kernels::cuda::sgd_update(param, grad, use_momentum ? &buf : nullptr, st);
    state.step += 1;
    return;
  }
#endif
  // The same rule as the CUDA kernel's (tensor/overlap.h): the loop below runs in any order over the elements.
  check_elementwise_update({&param, &buf}, {&grad}, "SGD");
  FG_DISPATCH_FLOATING(param.dtype(), "SGD", [&] {
    sgd_loop<scalar_t>(param.data<scalar_t>(), grad.data<scalar_t>(), use_momentum ? buf.data<scalar_t>() : nullptr,
                       n, group, first);
  });
  state.step += 1;
}

// ---- Adam, AdamW ----

Adam::Adam(const std::vector<Variable>& params, const AdamOptions& options) : Adam(params, options, false) {}

Adam::Adam(const std::vector<Variable>& params, const AdamOptions& options, bool decoupled_weight_decay)
    : Optimizer(ParamGroup{}), decoupled_(decoupled_weight_decay) {
  check_hyper(name(), options.lr, options.weight_decay);
  FG_CHECK(options.beta1 >= 0.0 && options.beta1 < 1.0, name() << ": invalid beta1 " << options.beta1
                                                               << " (must be in [0, 1))");
  FG_CHECK(options.beta2 >= 0.0 && options.beta2 < 1.0, name() << ": invalid beta2 " << options.beta2
                                                               << " (must be in [0, 1))");
  FG_CHECK(options.eps >= 0.0, name() << ": invalid eps " << options.eps << " (must be >= 0)");
  defaults_.lr = options.lr;
  defaults_.momentum = options.beta1;
  defaults_.beta2 = options.beta2;
  defaults_.eps = options.eps;
  defaults_.weight_decay = options.weight_decay;
  add_param_group(params);
}

std::vector<std::string> Adam::state_names(const ParamGroup&) const { return {"exp_avg", "exp_avg_sq"}; }

void Adam::update(Tensor& param, const Tensor& grad, const ParamGroup& group, ParamState& state) {
  const int64_t n = param.numel();
  if (!state.buffers.count("exp_avg")) {
    state.buffers["exp_avg"] = Tensor::zeros(param.shape(), param.dtype(), param.device());
    state.buffers["exp_avg_sq"] = Tensor::zeros(param.shape(), param.dtype(), param.device());
  }
  Tensor exp_avg = state.buffers["exp_avg"];
  Tensor exp_avg_sq = state.buffers["exp_avg_sq"];
  state.step += 1;
  const double beta1 = group.momentum, beta2 = group.beta2;
  const double bias_correction1 = 1.0 - std::pow(beta1, double(state.step));
  const double bias_correction2 = 1.0 - std::pow(beta2, double(state.step));
  const double step_size = group.lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
#ifdef FG_WITH_CUDA
  if (param.device().is_cuda()) {  // one fused kernel (kernels/cuda/adam.h), same update
    kernels::cuda::AdamStep st;
    st.lr = group.lr;
    st.weight_decay = group.weight_decay;
    st.beta1 = beta1;
    st.beta2 = beta2;
    st.eps = group.eps;
    st.decoupled = decoupled_;
    st.step_size = step_size;
    st.bias_correction2_sqrt = bias_correction2_sqrt;
    kernels::cuda::adam_update(param, grad, exp_avg, exp_avg_sq, st);
    return;
  }
#endif
  check_elementwise_update({&param, &exp_avg, &exp_avg_sq}, {&grad}, name());
  FG_DISPATCH_FLOATING(param.dtype(), name(), [&] {
    adam_loop<scalar_t>(param.data<scalar_t>(), grad.data<scalar_t>(), exp_avg.data<scalar_t>(),
                        exp_avg_sq.data<scalar_t>(), n, group, decoupled_, step_size, bias_correction2_sqrt);
  });
}

AdamW::AdamW(const std::vector<Variable>& params, const AdamWOptions& options) : Adam(params, options, true) {}

}  // namespace fg::nn
