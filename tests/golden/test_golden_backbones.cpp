// ResNet34 (with and without fc), VGG16-BN and VGG16 features and the NoGAN critic against PyTorch 1.13 /
// torchvision 0.14, from tests/golden/backbones.safetensors (written by tools/golden_backbones.py, whose docstring
// describes the file). For each model case the filmgrad model is built at the case's width, converted to f64, loaded
// with PyTorch's state dict (load_state_dict; the body-only ResNet loads the fc model's state through
// load_torchvision, which skips fc.*), and run forward and backward in each stored mode from that state: every
// output, the input gradient, every parameter gradient and, after a training-mode forward, every buffer (BatchNorm's
// running statistics and batch counter, spectral norm's u and v) are compared. The small models' state-dict names,
// order and shapes are compared with PyTorch's too.
//
// The critic's Dropout2d cannot be compared in training mode (PyTorch's generator is not reproduced), so it runs in
// eval mode (dropout is the identity) and in training mode with p = 0, where BatchNorm's batch statistics and the
// spectral-norm power iteration are both deterministic.
//
// Tolerances (f64): |got - ref| <= 1e-9 max|ref| + 1e-7 |ref| per tensor. The models chain 20-40 layers, each
// of which agrees with PyTorch to ~1e-15 relative (tests/golden/test_golden_ops.cpp); BatchNorm's division by small
// batch deviations and the long backward chains amplify the rounding differences of summation order to the errors
// seen, at most ~1e-13 of a tensor's largest value (FG_GOLDEN_VERBOSE=1 prints them), so the bound leaves three
// orders of margin while any wiring mistake (a wrong stride, order, skip or name) gives errors of order 1.
// Parameter gradients add 1e-12 times the largest parameter gradient of the run to atol: in training mode the bias
// of a conv followed by BatchNorm (VGG16-BN) has a true gradient of exactly zero (BatchNorm removes any per-channel
// shift), so both sides hold rounding noise (~1e-15) that no relative bound on that tensor alone can compare.
// f32 (eval mode, forward only): the same weights and input rounded to f32 against the f64 answer, NMSE <= 1e-9;
// f32 rounding carried through the models gives 1e-14 to 3e-11 (the critic, the deepest, is the largest).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "models/critic.h"
#include "models/resnet.h"
#include "models/vgg.h"
#include "tests/support/model_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using test::state_lines;

const SafeTensors& file() {
  return test::golden("backbones");
}

std::set<std::string>& used_keys() {
  static std::set<std::string> used;
  return used;
}

const Tensor& stored(const std::string& key) {
  used_keys().insert(key);
  return file().get(key);
}

std::string meta(const std::string& key) {
  auto it = file().metadata.find(key);
  FG_CHECK(it != file().metadata.end(), "backbones golden file: no metadata '"
                                            << key << "' (regenerate: /usr/bin/python3 tools/golden_backbones.py)");
  return it->second;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream is(s);
  while (std::getline(is, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

bool verbose() {
  const char* v = std::getenv("FG_GOLDEN_VERBOSE");
  return v && *v && std::string(v) != "0";
}

// ---------------------------------------------------------------------------------------------------------------
// Building each case's model.

using Outputs = std::vector<std::pair<std::string, Variable>>;

struct Case {
  std::shared_ptr<nn::Module> module;
  std::function<Outputs(const Variable&)> run;  // the stored outputs, in the file's order
};

Case build(const std::string& name, const std::string& mode) {
  const std::string arch = meta(name + ".arch");
  const double width = std::stod(meta(name + ".width"));
  Generator gen(7);
  Case c;
  if (arch == "resnet34") {
    auto m = std::make_shared<models::ResNet34>(gen, width, std::stoll(meta(name + ".num_classes")));
    c.module = m;
    if (m->num_classes() > 0) {
      c.run = [m](const Variable& x) { return Outputs{{"y", (*m)(x)}}; };
    } else {
      c.run = [m](const Variable& x) {
        const models::ResNetFeatures f = m->forward_features(x);
        return Outputs{{"s4", f.s4}, {"s3", f.s3}, {"s2", f.s2}, {"s1", f.s1}, {"out", f.out}};
      };
    }
  } else if (arch == "vgg16" || arch == "vgg16_bn") {
    auto m = std::make_shared<models::VGG16>(gen, arch == "vgg16_bn", width);
    std::vector<int64_t> taps;
    for (const std::string& t : split(meta(name + ".taps"), ',')) taps.push_back(std::stoll(t));
    c.module = m;
    c.run = [m, taps](const Variable& x) {
      const std::vector<Variable> ys = m->forward_taps(x, taps);
      Outputs out;
      for (size_t i = 0; i < taps.size(); ++i) out.emplace_back("tap" + std::to_string(taps[i]), ys[i]);
      return out;
    };
  } else if (arch == "critic") {
    // dropout: "eval:0.15,train:0"
    double p = -1;
    for (const std::string& item : split(meta(name + ".dropout"), ',')) {
      const auto parts = split(item, ':');
      FG_CHECK(parts.size() == 2, "critic.dropout: bad item '" << item << "'");
      if (parts[0] == mode) p = std::stod(parts[1]);
    }
    FG_CHECK(p >= 0, "critic.dropout names no p for mode " << mode);
    const auto size = split(meta(name + ".input_size"), 'x');
    FG_CHECK(size.size() == 2, "critic.input_size: expected HxW");
    const int64_t h = std::stoll(size[0]), w = std::stoll(size[1]);
    auto m = std::make_shared<models::NoGanCritic>(gen, width, p);
    c.module = m;
    c.run = [m, h, w](const Variable& x) { return Outputs{{"y", (*m)(upsample_nearest2d(x, h, w))}}; };
  } else {
    throw Error("backbones golden file: case " + name + " has an unknown arch '" + arch + "'");
  }
  c.module->to(DType::F64);
  return c;
}

// The case's stored state, as a state dict for `module` (BatchNorm's batch counters back to i64).
std::map<std::string, Tensor> stored_state(const std::string& source) {
  const std::string prefix = source + ".state.";
  std::map<std::string, Tensor> state;
  for (const auto& [key, t] : file().tensors) {
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    used_keys().insert(key);
    const std::string name = key.substr(prefix.size());
    const std::string suffix = "num_batches_tracked";
    const bool counter =
        name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    state.emplace(name, counter ? t.to(DType::I64) : t);
  }
  FG_CHECK(!state.empty(), "backbones golden file: no state for " << source);
  return state;
}

void load(const std::string& name, Case& c) {
  auto it = file().metadata.find(name + ".state_from");
  if (it == file().metadata.end()) {
    c.module->load_state_dict(stored_state(name), /*strict=*/true);
    return;
  }
  // The body-only ResNet loads the classifier's state, fc.* included, through load_torchvision.
  auto resnet = std::dynamic_pointer_cast<models::ResNet34>(c.module);
  FG_CHECK(resnet != nullptr, "state_from is only used for the ResNet body");
  resnet->load_torchvision(stored_state(it->second));
}

// ---------------------------------------------------------------------------------------------------------------
// Comparison.

struct Tally {
  double worst = 0;  // largest |got - ref| / (max|ref| + 1e-3 floor_scale) over the tensors compared
  std::string worst_name;
  int tensors = 0;
};

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// |got - ref| <= 1e-9 max|ref| + 1e-12 floor_scale + 1e-7 |ref| (see the file header for both scales).
void compare(const std::string& what, const Tensor& ref, const Tensor& got, Tally& tally, double floor_scale = 0) {
  ASSERT_TRUE(got.defined()) << what << ": filmgrad produced nothing";
  const double scale = max_abs(ref);
  const Tensor g = got.to(DType::F64);
  EXPECT_TRUE(test::all_close(ref, g, 1e-9 * scale + 1e-12 * floor_scale, 1e-7)) << what;
  if (ref.shape() == g.shape()) {
    const std::vector<double> a = ref.to_vector(), b = g.to_vector();
    double err = 0;
    for (size_t i = 0; i < a.size(); ++i) err = std::max(err, std::abs(a[i] - b[i]));
    const double denominator = scale + 1e-3 * floor_scale;  // the tolerance's scale
    const double rel = denominator > 0 ? err / denominator : err;
    if (rel >= tally.worst) {
      tally.worst = rel;
      tally.worst_name = what;
    }
  }
  ++tally.tensors;
}

bool is_buffer_name(const nn::Module& m, const std::string& name) {
  for (const auto& [b, t] : m.named_buffers())
    if (b == name) return true;
  return false;
}

void run_mode(const std::string& name, const std::string& mode) {
  SCOPED_TRACE(name + " in " + mode + " mode");
  Case c = build(name, mode);
  load(name, c);
  c.module->train(mode == "train");

  const std::string key = name + "." + mode + ".";
  const Variable x(stored(name + ".x"), /*requires_grad=*/true);
  const Outputs outs = c.run(x);

  const std::vector<std::string> names = split(meta(name + ".outputs"), ',');
  ASSERT_EQ(outs.size(), names.size());
  Tally tally;
  Variable total;
  for (size_t i = 0; i < outs.size(); ++i) {
    ASSERT_EQ(outs[i].first, names[i]);
    compare(key + "out." + names[i], stored(key + "out." + names[i]), outs[i].second.data(), tally);
    const Variable gout(stored(key + "gout." + names[i]));
    ASSERT_EQ(gout.shape(), outs[i].second.shape()) << names[i];
    const Variable term = sum(mul(outs[i].second, gout));
    total = total.defined() ? add(total, term) : term;
  }
  total.backward();

  compare(key + "gx", stored(key + "gx"), x.grad(), tally);
  const std::string gprefix = key + "grad.";
  double largest_grad = 0;  // over every parameter gradient of this mode
  for (const auto& [k, t] : file().tensors) {
    if (k.compare(0, gprefix.size(), gprefix) == 0) largest_grad = std::max(largest_grad, max_abs(t));
  }
  std::set<std::string> params;
  for (const auto& [pname, p] : c.module->named_parameters()) {
    params.insert(pname);
    const std::string gkey = key + "grad." + pname;
    ASSERT_TRUE(file().has(gkey)) << "PyTorch stored no gradient for filmgrad's parameter " << pname;
    compare(gkey, stored(gkey), p.grad(), tally, largest_grad);
  }
  for (const auto& [k, t] : file().tensors) {
    if (k.compare(0, gprefix.size(), gprefix) == 0) {
      EXPECT_TRUE(params.count(k.substr(gprefix.size()))) << "PyTorch has a parameter filmgrad lacks: " << k;
    }
  }
  if (mode == "train") {
    const std::string aprefix = name + ".train.after.";
    int buffers = 0;
    for (const auto& [k, t] : file().tensors) {
      if (k.compare(0, aprefix.size(), aprefix) != 0) continue;
      const std::string bname = k.substr(aprefix.size());
      ASSERT_TRUE(is_buffer_name(*c.module, bname)) << "PyTorch has a buffer filmgrad lacks: " << bname;
      for (const auto& [b, value] : c.module->named_buffers())
        if (b == bname) compare(k, stored(k), value, tally);
      ++buffers;
    }
    EXPECT_EQ(size_t(buffers), c.module->named_buffers().size());
  }
  if (verbose())
    std::printf("[ golden   ] %-14s %-5s %4d tensors, worst |diff| / scale %.2e (%s)\n", name.c_str(), mode.c_str(),
                tally.tensors, tally.worst, tally.worst_name.c_str());
}

// f32 forward in eval mode against the f64 answer.
void run_f32_eval(const std::string& name) {
  SCOPED_TRACE(name + " in eval mode, f32");
  Case c = build(name, "eval");
  load(name, c);
  c.module->to(DType::F32);
  c.module->eval();
  const Outputs outs = c.run(Variable(stored(name + ".x").to(DType::F32)));
  for (const auto& [oname, y] : outs) {
    const Tensor& ref = stored(name + ".eval.out." + oname);
    ASSERT_EQ(ref.shape(), y.shape()) << oname;
    const double e = test::nmse(ref, y.data().to(DType::F64));
    EXPECT_LE(e, 1e-9) << oname;
    if (verbose()) std::printf("[ golden   ] %-14s f32   %-6s NMSE %.2e\n", name.c_str(), oname.c_str(), e);
  }
}

void run_case(const std::string& name) {
  {
    // The small model's state-dict names, order and shapes are PyTorch's.
    Case c = build(name, "eval");
    EXPECT_EQ(state_lines(*c.module), meta(name + ".state_names")) << name;
  }
  for (const std::string& mode : split(meta(name + ".modes"), ',')) run_mode(name, mode);
  if (meta(name + ".modes").find("eval") != std::string::npos) run_f32_eval(name);
}

const std::vector<std::string> kCases = {"resnet34_fc", "resnet34_body", "vgg16_bn", "vgg16", "critic"};

// ---------------------------------------------------------------------------------------------------------------

TEST(GoldenBackbones, FileDescribesItself) {
  EXPECT_EQ(meta("_format"), "filmgrad-golden-backbones-1");
  EXPECT_EQ(meta("_generator"), "tools/golden_backbones.py");
  EXPECT_EQ(split(meta("_cases"), ','), kCases) << "a case was added or removed: give it a TEST here";
  for (const auto& [k, t] : file().tensors) EXPECT_EQ(t.dtype(), DType::F64) << k;
}

TEST(GoldenBackbones, ResNet34WithFc) {
  run_case("resnet34_fc");
}
TEST(GoldenBackbones, ResNet34BodyStages) {
  run_case("resnet34_body");
}
TEST(GoldenBackbones, VGG16BNTaps) {
  run_case("vgg16_bn");
}
TEST(GoldenBackbones, VGG16Taps) {
  run_case("vgg16");
}
TEST(GoldenBackbones, NoGanCritic) {
  run_case("critic");
}

// forward() is the last tap (VGG) and layer4's output (ResNet body): the paths the golden cases do not call.
TEST(GoldenBackbones, ForwardMatchesTheComparedPaths) {
  {
    Case c = build("vgg16_bn", "eval");
    load("vgg16_bn", c);
    c.module->eval();
    const Variable y = (*c.module)(Variable(stored("vgg16_bn.x")));
    Tally tally;
    compare("vgg16_bn forward", stored("vgg16_bn.eval.out.tap43"), y.data(), tally);
  }
  {
    Case c = build("resnet34_body", "train");
    load("resnet34_body", c);
    c.module->train();
    const Variable y = (*c.module)(Variable(stored("resnet34_body.x")));
    Tally tally;
    compare("resnet34_body forward", stored("resnet34_body.train.out.out"), y.data(), tally);
  }
}

// Runs last (tests run in the order they are defined): every tensor in the file was read by some case. When only
// some tests were selected (--gtest_filter), the cases not run are run here.
TEST(GoldenBackbones, EveryStoredTensorIsUsed) {
  std::set<std::string> before = used_keys();
  for (const std::string& name : kCases) {
    if (!before.count(name + ".x")) run_case(name);
  }
  for (const auto& [k, t] : file().tensors) EXPECT_TRUE(used_keys().count(k)) << "tensor " << k << " is never compared";
}

}  // namespace
}  // namespace fg
