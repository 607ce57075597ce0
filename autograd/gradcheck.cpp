// Finite-difference gradient checker. See gradcheck.h.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "tensor/philox.h"

namespace fg {

namespace {

double projected(const Variable& out, const Tensor& r) {
  const std::vector<double> o = out.data().to_vector(), w = r.to_vector();
  double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += o[i] * w[i];
  return s;
}

}  // namespace

GradCheckResult gradcheck(const std::function<Variable(const std::vector<Variable>&)>& f,
                          const std::vector<Tensor>& inputs, const GradCheckOptions& opt,
                          std::vector<bool> requires_grad) {
  if (requires_grad.empty()) requires_grad.assign(inputs.size(), true);
  FG_ASSERT(requires_grad.size() == inputs.size(), "one requires_grad flag per input");
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) {
    FG_CHECK(t.dtype() == DType::F64 && t.device().is_cpu(), "gradcheck needs f64 CPU inputs, got " << t.str());
    xs.push_back(t.clone());
  }
  std::vector<Variable> vars;
  for (size_t i = 0; i < xs.size(); ++i) vars.emplace_back(xs[i], bool(requires_grad[i]));

  const Variable out = f(vars);
  Generator gen(opt.seed);
  Tensor r = Tensor::empty(out.shape(), DType::F64);
  uniform_(r, gen, 0.5, 1.5);  // positive weights keep every output element in play

  GradCheckResult res;
  std::vector<Variable> checked;
  std::vector<size_t> checked_index;
  for (size_t i = 0; i < vars.size(); ++i)
    if (requires_grad[i]) {
      checked.push_back(vars[i]);
      checked_index.push_back(i);
    }
  FG_ASSERT(out.requires_grad(), "gradcheck: the function's output does not depend on any checked input");
  const std::vector<Tensor> analytic = grad(out, checked, r);

  for (size_t k = 0; k < checked.size(); ++k) {
    const size_t i = checked_index[k];
    Tensor x = xs[i];  // contiguous clone, shared with vars[i]
    double* p = x.data<double>();
    const std::vector<double> a = analytic[k].defined() ? analytic[k].to_vector()
                                                        : std::vector<double>(size_t(x.numel()), 0.0);
    for (int64_t e = 0; e < x.numel(); ++e) {
      const double saved = p[e];
      p[e] = saved + opt.eps;
      double plus, minus;
      {
        NoGradGuard ng;
        plus = projected(f(vars), r);
        p[e] = saved - opt.eps;
        minus = projected(f(vars), r);
      }
      p[e] = saved;
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double err = std::abs(numeric - a[size_t(e)]);
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (res.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        res.ok = false;
        std::ostringstream os;
        os << "input " << i << " " << shape_str(x.shape()) << " element " << e << ": analytic " << a[size_t(e)]
           << " vs numeric " << numeric << " (|diff| " << err << ")";
        res.message = os.str();
      }
    }
  }
  return res;
}

}  // namespace fg
