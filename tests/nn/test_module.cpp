// Module: PyTorch state-dict names and order, load_state_dict round trips and every error it reports, freezing by
// prefix, train/eval switching, dtype conversion, registration errors and PyTorch-style printing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "kernels/elementwise.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

// A torchvision-like BasicBlock body: conv1, bn1, conv2, bn2.
class Block : public Module {
 public:
  explicit Block(Generator& gen) : Module("Block") {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(gen, 4, 4, 3, 1, 1, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(4));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(gen, 4, 4, 3, 1, 1, 1, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(4));
  }
  Variable forward(const Variable& x) override {
    return relu(add(bn2->forward(conv2->forward(relu(bn1->forward(conv1->forward(x))))), x));
  }
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
};

// Children registered first and the module's own parameter last: PyTorch still lists own entries first.
class Net : public Module {
 public:
  explicit Net(uint64_t seed) : Module("Net") {
    Generator gen(seed);
    conv1 = register_module("conv1", std::make_shared<Conv2d>(gen, 3, 4, 3, 1, 1, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(4));
    layer1 = register_module("layer1", std::make_shared<Sequential>(
                                           std::initializer_list<std::shared_ptr<Module>>{
                                               std::make_shared<Block>(gen), std::make_shared<Block>(gen)}));
    head = register_module("head", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
                                       std::make_shared<Conv2d>(gen, 4, 2, 1), std::make_shared<ReLU>(),
                                       std::make_shared<BatchNorm2d>(2)}));
    scale = register_parameter("scale", Tensor::ones({1}));
  }
  Variable forward(const Variable& x) override {
    return mul(head->forward(layer1->forward(relu(bn1->forward(conv1->forward(x))))), scale);
  }
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, head;
  Variable scale;
};

std::vector<std::string> bn_names(const std::string& p) {
  return {p + ".weight", p + ".bias", p + ".running_mean", p + ".running_var", p + ".num_batches_tracked"};
}

// The names PyTorch's Net().state_dict() gives for the same structure, in its order.
std::vector<std::string> pytorch_state_dict_names() {
  std::vector<std::string> names = {"scale", "conv1.weight"};
  auto append = [&](const std::vector<std::string>& more) { names.insert(names.end(), more.begin(), more.end()); };
  append(bn_names("bn1"));
  for (const char* b : {"layer1.0", "layer1.1"}) {
    names.push_back(std::string(b) + ".conv1.weight");
    append(bn_names(std::string(b) + ".bn1"));
    names.push_back(std::string(b) + ".conv2.weight");
    append(bn_names(std::string(b) + ".bn2"));
  }
  names.push_back("head.0.weight");
  names.push_back("head.0.bias");
  append(bn_names("head.2"));
  return names;
}

std::map<std::string, Tensor> as_map(const StateDict& sd) {
  std::map<std::string, Tensor> m;
  for (const auto& e : sd) m[e.first] = e.second.clone();
  return m;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string load_error(Module& m, const std::map<std::string, Tensor>& sd, bool strict = true) {
  try {
    m.load_state_dict(sd, strict);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Module, StateDictNamesAndOrderMatchPyTorch) {
  Net net(1);
  std::vector<std::string> got;
  for (const auto& e : net.state_dict()) got.push_back(e.first);
  EXPECT_EQ(got, pytorch_state_dict_names());

  const auto sd = net.state_dict();
  const auto nbt = std::find_if(sd.begin(), sd.end(), [](const auto& e) { return e.first == "bn1.num_batches_tracked"; });
  ASSERT_NE(nbt, sd.end());
  EXPECT_EQ(nbt->second.dtype(), DType::I64);
  EXPECT_EQ(nbt->second.dim(), 0);
  EXPECT_EQ(nbt->second.item(), 0.0);
}

TEST(Module, NamedParametersAndBuffersSplitTheStateDict) {
  Net net(1);
  std::vector<std::string> params, buffers, expected_params, expected_buffers;
  for (const auto& e : net.named_parameters()) params.push_back(e.first);
  for (const auto& e : net.named_buffers()) buffers.push_back(e.first);
  for (const auto& n : pytorch_state_dict_names()) {
    const bool is_buffer = contains(n, "running_") || contains(n, "num_batches_tracked");
    (is_buffer ? expected_buffers : expected_params).push_back(n);
  }
  EXPECT_EQ(params, expected_params);
  EXPECT_EQ(buffers, expected_buffers);
  for (const auto& p : net.parameters()) EXPECT_TRUE(p.requires_grad());

  // conv1 3*4*9 + bn1 8 + per block (2 * 4*4*9 + 2 * 8) + head conv 4*2 + 2 + head bn 4 + scale 1
  const int64_t expected = 108 + 8 + 2 * (288 + 16) + 10 + 4 + 1;
  EXPECT_EQ(net.num_parameters(), expected);

  std::vector<std::string> modules;
  for (const auto& e : net.named_modules()) modules.push_back(e.first);
  const std::vector<std::string> expected_modules = {
      "",         "conv1",          "bn1",           "layer1",          "layer1.0",        "layer1.0.conv1",
      "layer1.0.bn1", "layer1.0.conv2", "layer1.0.bn2", "layer1.1",     "layer1.1.conv1", "layer1.1.bn1",
      "layer1.1.conv2", "layer1.1.bn2", "head",        "head.0",          "head.1",          "head.2"};
  EXPECT_EQ(modules, expected_modules);
}

TEST(Module, SharedParameterIsListedOnceButSavedUnderEachName) {
  Generator gen(3);
  auto conv = std::make_shared<Conv2d>(gen, 2, 2, 1);
  Sequential seq{conv, conv};
  EXPECT_EQ(seq.named_parameters().size(), 2u);  // 0.weight, 0.bias
  EXPECT_EQ(seq.state_dict().size(), 4u);        // 0.*, 1.*
  EXPECT_EQ(seq.num_parameters(), 6);
}

TEST(Module, LoadStateDictRoundTripCopiesValues) {
  Net a(1), b(2);
  a.train();
  // Make the running statistics and counters non-trivial before saving.
  a.forward(Variable(test::random_tensor({2, 3, 5, 5}, 11)));
  const Tensor x = test::random_tensor({2, 3, 5, 5}, 12);
  a.eval();
  b.eval();
  const Tensor ya = a.forward(Variable(x)).data();
  EXPECT_GT(test::nmse(ya, b.forward(Variable(x)).data()), 1e-6);  // different seeds, different nets

  const LoadResult r = b.load_state_dict(a.state_dict());
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_ALL_CLOSE(ya, b.forward(Variable(x)).data(), 0.0, 0.0);
  const auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_ALL_CLOSE(sa[i].second, sb[i].second, 0.0, 0.0);
    EXPECT_FALSE(sa[i].second.shares_storage_with(sb[i].second)) << sa[i].first << " was aliased, not copied";
  }
  EXPECT_EQ(b.bn1->num_batches_tracked(), 1);
  // The layer's own handles see the loaded values.
  EXPECT_ALL_CLOSE(a.conv1->weight().data(), b.conv1->weight().data(), 0.0, 0.0);
}

TEST(Module, LoadStateDictThroughSafetensors) {
  Net a(1), b(2);
  SafeTensors st;
  for (const auto& e : a.state_dict()) st.tensors[e.first] = e.second;
  const SafeTensors back = parse_safetensors(serialize_safetensors(st));
  b.load_state_dict(back.tensors);
  EXPECT_ALL_CLOSE(a.parameter("scale").data(), b.parameter("scale").data(), 0.0, 0.0);
  EXPECT_ALL_CLOSE(a.layer1->at<Block>(1)->conv2->weight().data(), b.layer1->at<Block>(1)->conv2->weight().data(),
                   0.0, 0.0);
}

TEST(Module, LoadStateDictReportsMissingKeys) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd.erase("layer1.1.bn2.running_var");
  sd.erase("conv1.weight");
  const Tensor before = b.conv1->weight().data().clone();
  const std::string msg = load_error(b, sd);
  EXPECT_TRUE(contains(msg, "2 missing keys")) << msg;
  EXPECT_TRUE(contains(msg, "conv1.weight")) << msg;
  EXPECT_TRUE(contains(msg, "layer1.1.bn2.running_var")) << msg;
  EXPECT_FALSE(contains(msg, "unexpected")) << msg;
  // Nothing is loaded when anything is wrong.
  EXPECT_ALL_CLOSE(before, b.conv1->weight().data(), 0.0, 0.0);
  EXPECT_GT(test::nmse(a.head->at<Conv2d>(0)->weight().data(), b.head->at<Conv2d>(0)->weight().data()), 1e-6);
}

TEST(Module, LoadStateDictReportsUnexpectedKeys) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd["fc.weight"] = Tensor::zeros({2, 2});
  const std::string msg = load_error(b, sd);
  EXPECT_TRUE(contains(msg, "1 unexpected key [fc.weight]")) << msg;
  EXPECT_FALSE(contains(msg, "missing")) << msg;
}

TEST(Module, LoadStateDictReportsShapeMismatch) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd["layer1.0.conv1.weight"] = Tensor::zeros({4, 4, 1, 1});
  const std::string msg = load_error(b, sd);
  EXPECT_TRUE(contains(msg, "1 shape mismatch")) << msg;
  EXPECT_TRUE(contains(msg, "layer1.0.conv1.weight: module (4, 4, 3, 3), state dict (4, 4, 1, 1)")) << msg;
  // Shape mismatches are errors even when not strict.
  EXPECT_TRUE(contains(load_error(b, sd, false), "shape mismatch"));
}

TEST(Module, LoadStateDictReportsDtypeMismatch) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd["bn1.running_mean"] = sd["bn1.running_mean"].to(DType::F64);
  sd["bn1.num_batches_tracked"] = Tensor::scalar(3, DType::I32);
  const std::string msg = load_error(b, sd);
  EXPECT_TRUE(contains(msg, "2 dtype mismatches")) << msg;
  EXPECT_TRUE(contains(msg, "bn1.running_mean: module f32, state dict f64")) << msg;
  EXPECT_TRUE(contains(msg, "bn1.num_batches_tracked: module i64, state dict i32")) << msg;
}

TEST(Module, LoadStateDictReportsEverythingInOneError) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd.erase("scale");
  sd["extra"] = Tensor::zeros({1});
  sd["bn1.weight"] = Tensor::zeros({5});
  sd["bn1.bias"] = Tensor::zeros({4}, DType::F64);
  const std::string msg = load_error(b, sd);
  EXPECT_TRUE(contains(msg, "1 missing key [scale]")) << msg;
  EXPECT_TRUE(contains(msg, "1 unexpected key [extra]")) << msg;
  EXPECT_TRUE(contains(msg, "1 shape mismatch [bn1.weight")) << msg;
  EXPECT_TRUE(contains(msg, "1 dtype mismatch [bn1.bias")) << msg;
}

TEST(Module, NonStrictLoadSkipsMissingAndUnexpected) {
  Net a(1), b(2);
  auto sd = as_map(a.state_dict());
  sd.erase("scale");
  sd["extra"] = Tensor::zeros({1});
  Tensor s = b.parameter("scale").data();
  s.fill_(7.0);
  const LoadResult r = b.load_state_dict(sd, false);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"scale"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"extra"});
  EXPECT_EQ(b.parameter("scale").data().item(), 7.0);
  EXPECT_ALL_CLOSE(a.conv1->weight().data(), b.conv1->weight().data(), 0.0, 0.0);
}

TEST(Module, LongKeyListsAreShortened) {
  Net a(1);
  const std::string msg = load_error(a, {});
  EXPECT_TRUE(contains(msg, std::to_string(pytorch_state_dict_names().size()) + " missing keys")) << msg;
  EXPECT_TRUE(contains(msg, "... and " + std::to_string(pytorch_state_dict_names().size() - 10) + " more")) << msg;
}

TEST(Module, FreezeAndUnfreezeByPrefix) {
  Net net(1);
  const int64_t all = net.num_parameters();
  EXPECT_EQ(net.num_parameters(true), all);

  const int64_t block = 2 * 4 * 4 * 9 + 2 * 8;
  EXPECT_EQ(net.freeze(), int64_t(net.named_parameters().size()));
  EXPECT_EQ(net.num_parameters(true), 0);
  EXPECT_EQ(net.unfreeze("layer1"), 2 * 6);  // 6 parameter tensors per block
  EXPECT_EQ(net.num_parameters(true), 2 * block);
  EXPECT_EQ(net.freeze("layer1.1"), 6);
  EXPECT_EQ(net.num_parameters(true), block);
  EXPECT_EQ(net.unfreeze("scale"), 1);  // a full name matches itself
  EXPECT_EQ(net.num_parameters(true), block + 1);
  EXPECT_EQ(net.parameters(true).size(), 7u);

  // A prefix matches whole components only, and a prefix that matches nothing is an error, not a silent no-op.
  try {
    net.freeze("layer");
    FAIL() << "freeze('layer') should throw";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "no parameter name starts with 'layer'")) << e.what();
  }
  EXPECT_EQ(net.unfreeze(""), int64_t(net.named_parameters().size()));
  EXPECT_EQ(net.num_parameters(true), all);
}

TEST(Module, FrozenParametersGetNoGradient) {
  Net net(1);
  net.freeze("conv1");
  Variable y = net.forward(Variable(test::random_tensor({2, 3, 4, 4}, 5)));
  sum(y).backward();
  EXPECT_FALSE(net.conv1->weight().grad().defined());
  EXPECT_TRUE(net.layer1->at<Block>(0)->conv1->weight().grad().defined());
  net.zero_grad();
  for (const auto& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, TrainAndEvalAreRecursiveAndSwitchBatchNorm) {
  Net net(1);
  EXPECT_TRUE(net.is_training());
  net.eval();
  for (const auto& m : net.named_modules()) EXPECT_FALSE(m.second->is_training()) << m.first;
  net.train();
  for (const auto& m : net.named_modules()) EXPECT_TRUE(m.second->is_training()) << m.first;

  BatchNorm2d bn(3);
  Tensor x = test::random_tensor({4, 3, 5, 5}, 9, DType::F32, 2.0, 6.0);  // mean about 4, far from 0
  // Eval with fresh statistics (mean 0, var 1): y = x / sqrt(1 + eps).
  bn.eval();
  const Tensor y_eval = bn.forward(Variable(x)).data();
  EXPECT_ALL_CLOSE(kernels::mul_scalar(x, 1.0 / std::sqrt(1.0 + 1e-5)), y_eval, 1e-6, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked(), 0);
  EXPECT_ALL_CLOSE(Tensor::zeros({3}), bn.running_mean(), 0.0, 0.0);
  // Train: batch statistics (per-channel mean about 0) and the running statistics move.
  bn.train();
  const Tensor y_train = bn.forward(Variable(x)).data();
  const Tensor channel_mean = kernels::sum(y_train, {0, 2, 3});
  for (int64_t c = 0; c < 3; ++c) EXPECT_NEAR(channel_mean.at({c}), 0.0, 1e-3);
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  EXPECT_GT(bn.running_mean().at({0}), 0.3);  // 0.1 * ~4
  bn.forward(Variable(x));
  EXPECT_EQ(bn.num_batches_tracked(), 2);
}

TEST(Module, ToDTypeConvertsFloatingStateAndKeepsHandles) {
  Net net(1);
  net.to(DType::F64);
  for (const auto& e : net.state_dict()) {
    const DType want = contains(e.first, "num_batches_tracked") ? DType::I64 : DType::F64;
    EXPECT_EQ(e.second.dtype(), want) << e.first;
  }
  EXPECT_EQ(net.conv1->weight().dtype(), DType::F64);  // the layer's handle follows
  net.eval();
  const Variable y = net.forward(Variable(test::random_tensor({1, 3, 4, 4}, 3, DType::F64)));
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_THROW(net.to(DType::I32), Error);
}

TEST(Module, RegistrationErrors) {
  Module m("Custom");
  m.register_parameter("w", Tensor::zeros({2}));
  EXPECT_THROW(m.register_parameter("w", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_buffer("w", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("a.b", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("", Tensor::zeros({2})), Error);
  EXPECT_THROW(m.register_parameter("i", Tensor::zeros({2}, DType::I64)), Error);
  EXPECT_THROW(m.register_module("w", std::make_shared<ReLU>()), Error);
  EXPECT_THROW(m.parameter("nope"), Error);
  EXPECT_THROW(m.buffer("nope"), Error);
  EXPECT_THROW(m.child("nope"), Error);
  try {
    m.forward(Variable(Tensor::zeros({1})));
    FAIL() << "a module without a single-input forward must throw";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "Custom has no single-input forward")) << e.what();
  }
}

TEST(Module, ReprMatchesPyTorchPrint) {
  Generator gen(1);
  Sequential seq{std::make_shared<Conv2d>(gen, 3, 8, 3, 1, 1, 1, false), std::make_shared<BatchNorm2d>(8),
                 std::make_shared<ReLU>(),
                 std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
                     std::make_shared<MaxPool2d>(3, 2, 1), std::make_shared<Linear>(gen, 4, 2)})};
  const std::string expected =
      "Sequential(\n"
      "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
      "  (1): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
      "  (2): ReLU()\n"
      "  (3): Sequential(\n"
      "    (0): MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)\n"
      "    (1): Linear(in_features=4, out_features=2, bias=True)\n"
      "  )\n"
      ")";
  EXPECT_EQ(seq.repr(), expected);
}

}  // namespace
}  // namespace fg::nn
