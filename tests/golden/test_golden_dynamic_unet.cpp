// The Dynamic U-Net against its PyTorch 1.13 twin, from tests/golden/dynamic_unet.safetensors (written by
// tools/golden_dynamic_unet.py; the script's docstring lists every tensor). The network is width 1/32, f64, input
// 2x3x64x64. The test loads PyTorch's state into filmgrad's model by name (strict: every name, shape and dtype
// must fit, which checks the state-dict interface), then compares
//   - a training-mode forward, and after y.backward(gy) the input gradient and every parameter gradient;
//   - every buffer after that forward (BatchNorm running statistics and num_batches_tracked, and the spectral
//     norm vectors u, v after their power iteration);
//   - an eval-mode forward that follows;
//   - the losses of 3 Adam steps (lr 1e-3) on MSE against a fixed target, restarted from the loaded state, and
//     every parameter after them.
// Spectral norm: PyTorch's spectral_norm runs one power iteration in a forward pre-hook on every training-mode
// forward and none in eval; filmgrad's SpectralNorm does the same. Both sides therefore run exactly one iteration
// in the training forward (u, v are compared after it), none in the eval forward (which uses the u, v that
// iteration left, as PyTorch's does), and one in each Adam step, which starts again from the file's u, v.
// Every tensor in the file must be compared, and the parameter and buffer order must equal PyTorch's.
//
// Tolerances. Both sides compute in f64 and differ only in summation order (about 1e-16 relative per sum), but
// the network is some 50 layers deep with train-mode BatchNorms that divide by the standard deviation of as few as 8
// values, so rounding differences grow from input to output and again through the backward: the errors seen are
// about 1e-15 on the outputs (which lie in (-3, 3)), 1e-14 on gradients and buffers, 1e-14 on the parameters after
// Adam and 1e-16 relative on the losses. The tolerances sit two to three orders of magnitude above that, far below
// any real mistake (a blur padded on the wrong side gives errors of 1e-1): outputs 1e-12 + 1e-10 |ref|, gradients
// and buffers 1e-11 + 1e-9 |ref|, parameters after Adam 1e-10 + 1e-9 |ref| (Adam divides each gradient by its own
// root mean square plus eps = 1e-8, so a gradient error e near eps moves the update by up to lr e / eps), losses
// 1e-12 relative. FG_GOLDEN_VERBOSE=1 prints the largest error / tolerance per group.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "models/dynamic_unet.h"
#include "nn/optim.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

struct Tolerance {
  double atol, rtol;
};
constexpr Tolerance kOutput{1e-12, 1e-10};
constexpr Tolerance kGradient{1e-11, 1e-9};
constexpr Tolerance kAfterAdam{1e-10, 1e-9};
constexpr double kLossRtol = 1e-12;

// Reads the golden file and records which of its tensors were compared.
class Golden {
 public:
  Golden() : file_(test::golden("dynamic_unet")) {}
  const Tensor& get(const std::string& name) {
    used_.insert(name);
    return file_.get(name);
  }
  std::string meta(const std::string& key) const {
    auto it = file_.metadata.find(key);
    FG_CHECK(it != file_.metadata.end(), "dynamic_unet.safetensors: metadata has no '" << key << "'");
    return it->second;
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [name, t] : file_.tensors)
      if (!used_.count(name)) out.push_back(name);
    return out;
  }
  // The tensors named "<prefix><key>", by key.
  std::map<std::string, Tensor> with_prefix(const std::string& prefix) {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : file_.tensors) {
      if (name.rfind(prefix, 0) == 0) {
        out[name.substr(prefix.size())] = t;
        used_.insert(name);
      }
    }
    return out;
  }

 private:
  const SafeTensors& file_;
  std::set<std::string> used_;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(item);
  return out;
}

// Largest |got - ref| / (atol + rtol |ref|) per group, for FG_GOLDEN_VERBOSE.
std::map<std::string, double> g_worst;

void compare(const std::string& group, const std::string& name, const Tensor& ref, const Tensor& got, Tolerance tol) {
  ASSERT_TRUE(got.defined()) << name << ": filmgrad has no value";
  const Tensor g = got.to(DType::F64);
  EXPECT_TRUE(test::all_close(ref, g, tol.atol, tol.rtol)) << name;
  if (ref.shape() != g.shape()) return;
  const std::vector<double> r = ref.to_vector(), v = g.to_vector();
  double worst = 0.0;
  for (size_t i = 0; i < r.size(); ++i)
    worst = std::max(worst, std::fabs(v[i] - r[i]) / (tol.atol + tol.rtol * std::fabs(r[i])));
  g_worst[group] = std::max(g_worst[group], worst);
}

// The golden state converted to the model's dtypes (the file is all f64; num_batches_tracked is i64 here).
std::map<std::string, Tensor> state_for(const nn::Module& model, const std::map<std::string, Tensor>& golden) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : model.state_dict()) {
    auto it = golden.find(name);
    if (it != golden.end()) out[name] = it->second.to(t.dtype());
  }
  for (const auto& [name, t] : golden)
    if (!out.count(name)) out[name] = t;  // left for the strict loader to report as unexpected
  return out;
}

TEST(GoldenDynamicUNet, MatchesPyTorch) {
  Golden g;
  models::DynamicUNetConfig cfg;
  cfg.width = std::stod(g.meta("width"));
  cfg.out_channels = std::stoll(g.meta("out_channels"));
  cfg.y_lo = std::stod(g.meta("y_lo"));
  cfg.y_hi = std::stod(g.meta("y_hi"));
  Generator gen(1);
  models::DynamicUNet net(gen, cfg);
  net.to(DType::F64);

  // Names in PyTorch's order: the state-dict interface, and the order an optimizer numbers parameters in.
  std::vector<std::string> ours_params, ours_buffers;
  for (const auto& [name, p] : net.named_parameters()) ours_params.push_back(name);
  for (const auto& [name, b] : net.named_buffers()) ours_buffers.push_back(name);
  EXPECT_EQ(ours_params, split_commas(g.meta("parameters")));
  EXPECT_EQ(ours_buffers, split_commas(g.meta("buffers")));

  const std::map<std::string, Tensor> initial = state_for(net, g.with_prefix("state."));
  net.load_state_dict(initial);  // strict

  // ---- one training-mode forward and its backward ----
  net.train();
  const Variable x(g.get("x").clone(), /*requires_grad=*/true);
  const Variable y = net(x);
  compare("y_train", "y_train", g.get("y_train"), y.data(), kOutput);
  y.backward(g.get("gy"));
  compare("gradients", "grad.x", g.get("grad.x"), x.grad(), kGradient);
  for (const auto& [name, p] : net.named_parameters())
    compare("gradients", "grad." + name, g.get("grad." + name), p.grad(), kGradient);
  for (const auto& [name, b] : net.named_buffers())
    compare("buffers", "after_forward." + name, g.get("after_forward." + name), b, kGradient);

  // ---- eval mode, from the state that forward left ----
  net.eval();
  {
    NoGradGuard no_grad;
    compare("y_eval", "y_eval", g.get("y_eval"), net(Variable(g.get("x"))).data(), kOutput);
  }

  // ---- 3 Adam steps from the loaded state again ----
  net.load_state_dict(initial);
  net.train();
  net.zero_grad();
  nn::AdamOptions options;
  options.lr = std::stod(g.meta("adam_lr"));
  nn::Adam opt(net.parameters(), options);
  const Variable input(g.get("x"));
  const Variable target(g.get("target"));
  const std::vector<double> ref_losses = g.get("adam.losses").to_vector();
  ASSERT_EQ(int64_t(ref_losses.size()), std::stoll(g.meta("adam_steps")));
  for (size_t step = 0; step < ref_losses.size(); ++step) {
    opt.zero_grad();
    const Variable loss = mse_loss(net(input), target);
    loss.backward();
    opt.step();
    EXPECT_NEAR(loss.item(), ref_losses[step], kLossRtol * std::fabs(ref_losses[step])) << "Adam step " << step;
    g_worst["adam losses"] = std::max(
        g_worst["adam losses"], std::fabs(loss.item() - ref_losses[step]) / (kLossRtol * std::fabs(ref_losses[step])));
  }
  for (const auto& [name, p] : net.named_parameters())
    compare("after adam", "adam.final." + name, g.get("adam.final." + name), p.data(), kAfterAdam);

  EXPECT_EQ(g.unused(), std::vector<std::string>{}) << "tensors in the golden file that the test never compared";

  if (std::getenv("FG_GOLDEN_VERBOSE")) {
    for (const auto& [group, worst] : g_worst)
      std::printf("%-12s largest error / tolerance: %.3g\n", group.c_str(), worst);
  }
}

}  // namespace
}  // namespace fg
