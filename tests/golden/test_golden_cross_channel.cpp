// The cross-channel network (models/cross_channel.h) against its PyTorch 1.13 twin, from
// tests/golden/cross_channel.safetensors (written by tools/golden_cross_channel.py; its docstring lists every
// tensor). Each variant (full, no_mask, plain_unet) at width 1/32, f64, input 2 x 3 x 64 x 48. For each variant the
// test loads PyTorch's initial state by name (strict: every name, shape and dtype must fit, which checks the
// state-dict interface), then compares
//   - a training-mode forward_all (mask logits, B', B'' as the variant has them) and the combined loss;
//   - after loss.backward(), the gradient of every parameter and of the input;
//   - the BatchNorm running statistics after that forward (and num_batches_tracked = 1);
//   - an eval-mode forward that follows (with those running statistics);
//   - the losses before each of 3 Adam steps (lr from the file) and after the third, restarted from the file's
//     state.
// An f32 copy of each network repeats the training forward, loss and input gradient against the same f64 answers.
// Every tensor in the file must be compared.
//
// Tolerances. Both sides compute in f64 and differ in summation order only, but each sub-network is 31 convolutions
// deep with a train-mode BatchNorm after every block, some over as few as 24 values (2 x 4 x 3 at the bottleneck),
// so rounding differences grow through the forward and again through the backward. Outputs and losses are O(1),
// gradients up to O(1). f64: outputs, running statistics and the loss 1e-11 + 1e-9 |ref|, gradients
// 1e-10 + 1e-8 |ref|, Adam losses 1e-9 relative (Adam divides each gradient by its root mean square plus
// eps = 1e-8, which amplifies tiny gradient differences into parameter differences of up to lr x (error / eps)).
// The errors seen are at most 1.2 % of these tolerances (outputs), 0.3 % (gradients), 1 % (Adam losses).
// f32 is judged by NMSE (mse(ref - got) / mse(ref)), not elementwise: at width 1/32 some channels are one or two
// wide, and a ReLU or max-pool decision that f32 rounding flips moves single pixels by up to 5e-3, and the
// BatchNorms over mostly-zero channels divide by tiny standard deviations. PyTorch's own f32 run of this network
// differs from its f64 run by NMSE 2e-7 on B'' and 2e-2 (!) on the full network's input gradient; filmgrad's f32
// shows 1e-7 and 1e-4. Bounds: outputs NMSE 1e-5, loss 1e-5 relative, input gradient NMSE 0.1 (a wrong skip,
// a swapped concatenation or a missing ReLU gives NMSE near 1). FG_GOLDEN_VERBOSE=1 prints the largest error
// relative to its tolerance per group.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "models/cross_channel.h"
#include "nn/optim.h"
#include "tests/support/test_util.h"

namespace fg::models {
namespace {

struct Tolerance {
  double atol, rtol;
};
constexpr Tolerance kOutput{1e-11, 1e-9};
constexpr Tolerance kGradient{1e-10, 1e-8};
constexpr double kAdamLossRtol = 1e-9;
constexpr double kOutputNmseF32 = 1e-5;
constexpr double kLossRtolF32 = 1e-5;
constexpr double kInputGradNmseF32 = 0.1;

bool verbose() {
  const char* v = std::getenv("FG_GOLDEN_VERBOSE");
  return v != nullptr && std::string(v) == "1";
}

class Golden {
 public:
  Golden() : file_(test::golden("cross_channel")) {}
  const Tensor& get(const std::string& name) {
    used_.insert(name);
    return file_.get(name);
  }
  bool has(const std::string& name) const { return file_.has(name); }
  std::string meta(const std::string& key) const {
    auto it = file_.metadata.find(key);
    FG_CHECK(it != file_.metadata.end(), "cross_channel.safetensors: metadata has no '" << key << "'");
    return it->second;
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [name, t] : file_.tensors) {
      if (!used_.count(name)) out.push_back(name);
    }
    return out;
  }
  size_t count_with_prefix(const std::string& prefix) const {
    size_t n = 0;
    for (const auto& [name, t] : file_.tensors) n += name.rfind(prefix, 0) == 0;
    return n;
  }

 private:
  const SafeTensors& file_;
  std::set<std::string> used_;
};

Golden& golden() {
  static Golden g;
  return g;
}

// Largest |got - ref| / (atol + rtol |ref|) over the elements; <= 1 passes.
double worst_ratio(const Tensor& ref, const Tensor& got, Tolerance tol) {
  const auto r = ref.to_vector(), g = got.to_vector();
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double err = std::fabs(g[i] - r[i]);
    if (!std::isfinite(g[i])) return INFINITY;
    worst = std::max(worst, err / (tol.atol + tol.rtol * std::fabs(r[i])));
  }
  return worst;
}

struct Group {
  std::string name;
  double worst = 0;
  ~Group() {
    if (verbose()) std::printf("  %-36s worst error / tolerance %.3g\n", name.c_str(), worst);
  }
  void compare(const std::string& what, const Tensor& ref, const Tensor& got, Tolerance tol) {
    ASSERT_EQ(ref.shape(), got.shape()) << what;
    worst = std::max(worst, worst_ratio(ref, got, tol));
    EXPECT_TRUE(test::all_close(ref, got.to(DType::F64), tol.atol, tol.rtol)) << what;
  }
};

const char* kVariants[] = {"full", "no_mask", "plain_unet"};

double width() {
  return std::stod(golden().meta("width"));
}

// The file's initial state for `variant`, in the network's dtypes (the file holds everything as f64).
std::map<std::string, Tensor> initial_state(const std::string& variant, const nn::Module& net) {
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : net.state_dict()) {
    const std::string key = variant + ".state." + name;
    if (golden().has(key)) state[name] = golden().get(key).to(t.dtype());
  }
  return state;
}

std::unique_ptr<CrossChannelNet> load_net(const std::string& variant, DType dtype) {
  Generator gen(0);
  auto net = std::make_unique<CrossChannelNet>(gen, parse_cross_channel_variant(variant), width());
  net->to(dtype);
  const auto state = initial_state(variant, *net);
  // The file holds exactly the network's state (strict loading then checks names, shapes and dtypes).
  EXPECT_EQ(state.size(), golden().count_with_prefix(variant + ".state.")) << variant;
  net->load_state_dict(state, /*strict=*/true);
  return net;
}

std::vector<std::pair<std::string, Variable>> outputs_of(const CrossChannelOutput& out) {
  std::vector<std::pair<std::string, Variable>> v;
  if (out.mask_logits.defined()) v.emplace_back("mask_logits", out.mask_logits);
  if (out.b_cross.defined()) v.emplace_back("b_cross", out.b_cross);
  v.emplace_back("b_final", out.b_final);
  return v;
}

double combined_loss(CrossChannelNet& net, const Variable& x) {
  return cross_channel_loss(net.forward_all(x), Variable(golden().get("true_mask")), Variable(golden().get("b_clean")))
      .item();
}

TEST(GoldenCrossChannel, ChannelsAndParameterCounts) {
  // Width 1/32: 2, 4, 8, 16, 16, 16, 8, 4, 2, 1.
  Generator gen(0);
  SubUNet sub(gen, 3, width());
  std::string channels = "[";
  for (size_t i = 0; i < sub.block_channels().size(); ++i) {
    channels += (i ? ", " : "") + std::to_string(sub.block_channels()[i]);
  }
  EXPECT_EQ(channels + "]", golden().meta("channels"));
  for (const char* v : kVariants) {
    CrossChannelNet net(gen, parse_cross_channel_variant(v), width());
    EXPECT_EQ(std::to_string(net.num_parameters()), golden().meta(std::string("num_parameters.") + v)) << v;
  }
  // PyTorch's counts at width 1, which tests/models/test_cross_channel.cpp asserts for filmgrad's networks.
  EXPECT_EQ(golden().meta("num_parameters_width1.full"), "98858499");
  EXPECT_EQ(golden().meta("num_parameters_width1.no_mask"), "65904898");
  EXPECT_EQ(golden().meta("num_parameters_width1.plain_unet"), "32953025");
}

TEST(GoldenCrossChannel, ForwardBackwardEvalF64) {
  for (const char* v : kVariants) {
    SCOPED_TRACE(v);
    const std::string p = v;
    if (verbose()) std::printf("%s, f64\n", v);
    auto net = load_net(p, DType::F64);
    net->train();
    const Variable x(golden().get("x").clone(), /*requires_grad=*/true);
    const CrossChannelOutput out = net->forward_all(x);
    const Variable loss =
        cross_channel_loss(out, Variable(golden().get("true_mask")), Variable(golden().get("b_clean")));
    {
      Group g{"train outputs and loss"};
      for (const auto& [name, y] : outputs_of(out))
        g.compare(name, golden().get(p + ".train." + name), y.data(), kOutput);
      g.compare("loss", golden().get(p + ".train.loss"), loss.data().reshape({1}), kOutput);
    }
    loss.backward();
    {
      Group g{"gradients"};
      size_t n = 0;
      for (const auto& [name, param] : net->named_parameters()) {
        ASSERT_TRUE(param.grad().defined()) << name;
        g.compare(name, golden().get(p + ".grad." + name), param.grad(), kGradient);
        ++n;
      }
      g.compare("x", golden().get(p + ".grad.x"), x.grad(), kGradient);
      EXPECT_EQ(n + 1, golden().count_with_prefix(p + ".grad."));
    }
    {
      Group g{"running statistics after"};
      size_t n = 0;
      for (const auto& [name, buf] : net->named_buffers()) {
        if (name.size() >= 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0) {
          EXPECT_EQ(buf.item(), 1.0) << name;
          continue;
        }
        g.compare(name, golden().get(p + ".after." + name), buf, kOutput);
        ++n;
      }
      EXPECT_EQ(n, golden().count_with_prefix(p + ".after."));
    }
    net->eval();
    {
      NoGradGuard no_grad;
      Group g{"eval outputs"};
      const CrossChannelOutput ev = net->forward_all(Variable(golden().get("x")));
      for (const auto& [name, y] : outputs_of(ev))
        g.compare(name, golden().get(p + ".eval." + name), y.data(), kOutput);
      EXPECT_EQ(outputs_of(ev).size(), golden().count_with_prefix(p + ".eval."));
    }
  }
}

TEST(GoldenCrossChannel, ThreeAdamStepsF64) {
  const double lr = std::stod(golden().meta("adam_lr"));
  for (const char* v : kVariants) {
    SCOPED_TRACE(v);
    const std::string p = v;
    auto net = load_net(p, DType::F64);
    net->train();
    nn::AdamOptions opts;
    opts.lr = lr;
    nn::Adam opt(net->parameters(), opts);
    const Variable x(golden().get("x"));
    std::vector<double> losses;
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      const Variable loss = cross_channel_loss(net->forward_all(x), Variable(golden().get("true_mask")),
                                               Variable(golden().get("b_clean")));
      loss.backward();
      opt.step();
      losses.push_back(loss.item());
    }
    {
      NoGradGuard no_grad;
      losses.push_back(combined_loss(*net, x));
    }
    const auto ref = golden().get(p + ".adam_losses").to_vector();
    ASSERT_EQ(ref.size(), losses.size());
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_NEAR(losses[i], ref[i], kAdamLossRtol * std::fabs(ref[i])) << "loss " << i;
      worst = std::max(worst, std::fabs(losses[i] - ref[i]) / (kAdamLossRtol * std::fabs(ref[i])));
    }
    if (verbose()) std::printf("%s: Adam losses worst error / tolerance %.3g\n", v, worst);
    // The steps change the loss (so the comparison says something about the update).
    EXPECT_GT(std::fabs(ref[3] - ref[0]), 1e-3);
  }
}

TEST(GoldenCrossChannel, ForwardBackwardF32) {
  for (const char* v : kVariants) {
    SCOPED_TRACE(v);
    const std::string p = v;
    auto net = load_net(p, DType::F32);
    net->train();
    const Variable x(golden().get("x").to(DType::F32), /*requires_grad=*/true);
    const CrossChannelOutput out = net->forward_all(x);
    const Variable loss = cross_channel_loss(out, Variable(golden().get("true_mask").to(DType::F32)),
                                             Variable(golden().get("b_clean").to(DType::F32)));
    for (const auto& [name, y] : outputs_of(out)) {
      const double e = test::nmse(golden().get(p + ".train." + name), y.data().to(DType::F64));
      if (verbose()) std::printf("%s f32: %s NMSE %.3g\n", v, name.c_str(), e);
      EXPECT_LT(e, kOutputNmseF32) << name;
    }
    const double ref_loss = golden().get(p + ".train.loss").item();
    EXPECT_NEAR(loss.item(), ref_loss, kLossRtolF32 * ref_loss);
    loss.backward();
    const double e = test::nmse(golden().get(p + ".grad.x"), x.grad().to(DType::F64));
    if (verbose()) std::printf("%s f32: input gradient NMSE %.3g\n", v, e);
    EXPECT_LT(e, kInputGradNmseF32);
  }
}

// Runs last (GoogleTest keeps the order of definition within a file): every tensor was compared.
TEST(GoldenCrossChannel, ZzEveryTensorCompared) {
  golden().get("x");
  golden().get("true_mask");
  golden().get("b_clean");
  const auto unused = golden().unused();
  EXPECT_TRUE(unused.empty()) << unused.size() << " tensors never compared, the first: " << unused.front();
}

}  // namespace
}  // namespace fg::models
