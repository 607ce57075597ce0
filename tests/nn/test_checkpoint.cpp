// Checkpoints (nn/checkpoint.h): byte-identical round trips, resumed training that matches uninterrupted training,
// refusals that name the problem and change nothing, and the PyTorch-readable layout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "tensor/error.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

namespace fs = std::filesystem;

// A small network with every kind of state a checkpoint must carry: conv weights and biases, BatchNorm running
// statistics and num_batches_tracked (i64), spectral-norm power-iteration vectors (buffers updated by training
// forwards) and a scalar parameter (self-attention's gamma).
std::shared_ptr<Sequential> make_net(uint64_t seed) {
  Generator gen(seed);
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(gen, 3, 8, 3, 1, 1), std::make_shared<BatchNorm2d>(8), std::make_shared<ReLU>(),
      std::make_shared<SelfAttention>(gen, 8, /*spectral_norm=*/true), std::make_shared<Conv2d>(gen, 8, 3, 1)});
}

std::unique_ptr<Adam> make_adam(const Module& net) {
  AdamOptions o;
  o.lr = 1e-2;
  o.weight_decay = 1e-3;
  return std::make_unique<Adam>(net.parameters(), o);
}

// One training step whose data and learning rate depend only on the step number, so a resumed run sees the same
// batches as an uninterrupted one. Returns the loss.
double train_step(Module& net, Optimizer& opt, int64_t step) {
  Generator data(1000 + uint64_t(step));
  Tensor x = Tensor::empty({2, 3, 6, 6});
  Tensor y = Tensor::empty({2, 3, 6, 6});
  normal_(x, data);
  uniform_(y, data, -1.0, 1.0);
  net.train();
  opt.set_lr(1e-2 / double(1 + step));
  opt.zero_grad();
  const Variable loss = mse_loss(net(Variable(x)), Variable(y));
  loss.backward();
  opt.step();
  return loss.item();
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("fg_ckpt_test_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

CheckpointInfo sample_info() {
  CheckpointInfo info;
  info.model = "test_net";
  info.config = R"({"width": 0.25, "note": "quotes \" and \\ and a newline\n"})";
  info.step = 3;
  info.epoch = 1;
  info.extra["best_val_loss"] = "0.125";
  info.extra["git"] = "abc123";
  return info;
}

// Deep copies, to compare against after a refused load.
std::vector<std::pair<std::string, Tensor>> snapshot(const Module& m) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [k, t] : m.state_dict()) out.emplace_back(k, t.clone());
  return out;
}
std::map<std::string, Tensor> snapshot(const Optimizer& o) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : o.state_dict()) out.emplace(k, t.clone());
  return out;
}

::testing::AssertionResult same_tensors(const Tensor& a, const Tensor& b, const std::string& name) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << name << ": " << a.str() << " vs " << b.str();
  if (a.to_vector() != b.to_vector()) return ::testing::AssertionFailure() << name << ": values differ";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult unchanged(const Module& m, const std::vector<std::pair<std::string, Tensor>>& before) {
  const StateDict now = m.state_dict();
  if (now.size() != before.size()) return ::testing::AssertionFailure() << "state dict size changed";
  for (size_t i = 0; i < now.size(); ++i) {
    auto r = same_tensors(before[i].second, now[i].second, now[i].first);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult unchanged(const Optimizer& o, const std::map<std::string, Tensor>& before) {
  const auto now = o.state_dict();
  if (now.size() != before.size()) return ::testing::AssertionFailure() << "optimizer state size changed";
  for (const auto& [k, t] : before) {
    auto it = now.find(k);
    if (it == now.end()) return ::testing::AssertionFailure() << "optimizer state lost " << k;
    auto r = same_tensors(t, it->second, k);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

// Runs f, which must throw fg::Error whose message contains every one of `needles`.
::testing::AssertionResult throws_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles)
      if (msg.find(n) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << n << "': " << msg;
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than fg::Error: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

TEST(Checkpoint, SaveLoadSaveIsByteIdentical) {
  TempDir dir;
  auto net = make_net(1);
  auto opt = make_adam(*net);
  for (int64_t s = 0; s < 3; ++s) train_step(*net, *opt, s);
  const std::string first = dir.file("a.safetensors"), second = dir.file("b.safetensors");
  save_checkpoint(first, *net, opt.get(), sample_info());

  auto other = make_net(2);  // different weights, so the load has to replace every one
  auto other_opt = make_adam(*other);
  const CheckpointInfo info = load_checkpoint(first, *other, other_opt.get(), "test_net");
  EXPECT_EQ(info.model, "test_net");
  EXPECT_EQ(info.config, sample_info().config);
  EXPECT_EQ(info.step, 3);
  EXPECT_EQ(info.epoch, 1);
  EXPECT_EQ(info.extra, sample_info().extra);
  EXPECT_EQ(info.optimizer, "Adam");
  EXPECT_EQ(other->at<BatchNorm2d>(1)->num_batches_tracked(), 3);
  EXPECT_TRUE(unchanged(*other, snapshot(*net)));  // same state as the saved network
  EXPECT_TRUE(unchanged(*other_opt, snapshot(*opt)));
  EXPECT_EQ(other_opt->state_dict().size(), opt->state_dict().size());

  save_checkpoint(second, *other, other_opt.get(), info);
  const std::string a = read_file(first), b = read_file(second);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "the re-saved checkpoint differs (" << a.size() << " vs " << b.size() << " bytes)";

  const CheckpointInfo only_info = read_checkpoint_info(second);
  EXPECT_EQ(only_info.model, "test_net");
  EXPECT_EQ(only_info.step, 3);
  EXPECT_EQ(only_info.extra, sample_info().extra);
}

TEST(Checkpoint, ResumedTrainingMatchesUninterrupted) {
  TempDir dir;
  const int64_t total = 6, pause = 3;
  std::vector<double> straight;
  {
    auto net = make_net(5);
    auto opt = make_adam(*net);
    for (int64_t s = 0; s < total; ++s) straight.push_back(train_step(*net, *opt, s));
  }
  const std::string path = dir.file("resume.safetensors");
  {
    auto net = make_net(5);
    auto opt = make_adam(*net);
    for (int64_t s = 0; s < pause; ++s) EXPECT_EQ(train_step(*net, *opt, s), straight[size_t(s)]);
    CheckpointInfo info;
    info.model = "test_net";
    info.step = pause;
    save_checkpoint(path, *net, opt.get(), info);
  }
  auto net = make_net(77);  // a fresh process would build the network from another seed, or the same: no matter
  auto opt = make_adam(*net);
  const CheckpointInfo info = load_checkpoint(path, *net, opt.get(), "test_net");
  ASSERT_EQ(info.step, pause);
  for (int64_t s = info.step; s < total; ++s) {
    // Exact equality: the same operations on the same values in the same order (CPU kernels are deterministic).
    EXPECT_EQ(train_step(*net, *opt, s), straight[size_t(s)]) << "step " << s;
  }
}

// The refusals. Each starts from a trained network and optimizer whose state differs from the file's, and checks
// that a refused load leaves both exactly as they were.
class CheckpointRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    auto saved = make_net(1);
    auto saved_opt = make_adam(*saved);
    for (int64_t s = 0; s < 2; ++s) train_step(*saved, *saved_opt, s);
    good_ = dir_.file("good.safetensors");
    save_checkpoint(good_, *saved, saved_opt.get(), sample_info());

    net_ = make_net(9);
    opt_ = make_adam(*net_);
    train_step(*net_, *opt_, 7);
    net_before_ = snapshot(*net_);
    opt_before_ = snapshot(*opt_);
  }

  // load_checkpoint(path) must fail with all of `needles` in its message and change nothing.
  void expect_refused(const std::string& path, const std::vector<std::string>& needles,
                      const std::string& expected_model = "", bool with_optimizer = true) {
    EXPECT_TRUE(throws_error(
        [&] { load_checkpoint(path, *net_, with_optimizer ? opt_.get() : nullptr, expected_model); }, needles));
    EXPECT_TRUE(unchanged(*net_, net_before_));
    EXPECT_TRUE(unchanged(*opt_, opt_before_));
  }

  // The good file with one change made through the plain safetensors API.
  std::string edited(const std::string& name, const std::function<void(SafeTensors&)>& edit) {
    SafeTensors st = load_safetensors(good_);
    edit(st);
    const std::string path = dir_.file(name);
    save_safetensors(path, st);
    return path;
  }

  TempDir dir_;
  std::string good_;
  std::shared_ptr<Sequential> net_;
  std::unique_ptr<Adam> opt_;
  std::vector<std::pair<std::string, Tensor>> net_before_;
  std::map<std::string, Tensor> opt_before_;
};

TEST_F(CheckpointRefusal, TruncatedFiles) {
  const std::string bytes = read_file(good_);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  const std::vector<size_t> cuts = {
      0, 5, 8, 8 + size_t(header) / 2, 8 + size_t(header), bytes.size() / 2, bytes.size() - 1};
  for (size_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes.size()));
    const std::string path = dir_.file("cut_" + std::to_string(cut) + ".safetensors");
    write_file_atomic(path, bytes.substr(0, cut));
    expect_refused(path, {path});
  }
}

TEST_F(CheckpointRefusal, MissingFile) {
  expect_refused(dir_.file("absent.safetensors"), {"absent.safetensors"});
}

TEST_F(CheckpointRefusal, RenamedTensor) {
  // The optimizer's state fits, so it is loaded first and must be put back when the model refuses.
  const std::string path = edited("renamed.safetensors", [](SafeTensors& st) {
    st.tensors["model.0.weigth"] = st.tensors.at("model.0.weight");
    st.tensors.erase("model.0.weight");
  });
  expect_refused(path, {path, "missing key", "0.weight", "unexpected key", "0.weigth"});
}

TEST_F(CheckpointRefusal, WrongShape) {
  const std::string path = edited("shape.safetensors", [](SafeTensors& st) {
    st.tensors["model.4.weight"] = Tensor::zeros({3, 9, 1, 1});
  });
  expect_refused(path, {"4.weight", "(3, 8, 1, 1)", "(3, 9, 1, 1)"});
}

TEST_F(CheckpointRefusal, WrongDtype) {
  const std::string path = edited("dtype.safetensors", [](SafeTensors& st) {
    st.tensors["model.1.running_mean"] = st.tensors.at("model.1.running_mean").to(DType::F64);
  });
  expect_refused(path, {"1.running_mean", "dtype"});
}

TEST_F(CheckpointRefusal, WrongOptimizerState) {
  const std::string path = edited("optim.safetensors", [](SafeTensors& st) {
    st.tensors["optim.0.exp_avg"] = Tensor::zeros({2, 2});
  });
  expect_refused(path, {path, "0.exp_avg"});
  // Loading the weights alone ignores the optimizer's state.
  auto fresh = make_net(3);
  EXPECT_NO_THROW(load_checkpoint(path, *fresh, nullptr));
}

TEST_F(CheckpointRefusal, StrayTensor) {
  const std::string path =
      edited("stray.safetensors", [](SafeTensors& st) { st.tensors["ema.0.weight"] = Tensor::zeros({1}); });
  expect_refused(path, {"ema.0.weight", "model.*"});
}

TEST_F(CheckpointRefusal, WrongModelName) {
  expect_refused(good_, {"'test_net'", "'dynamic_unet'"}, "dynamic_unet");
}

TEST_F(CheckpointRefusal, NotACheckpoint) {
  SafeTensors plain;
  for (const auto& [k, t] : net_->state_dict()) plain.tensors[k] = t;
  const std::string path = dir_.file("plain.safetensors");
  save_safetensors(path, plain);
  expect_refused(path, {path, "not a filmgrad checkpoint", "load_weights"});

  plain.metadata["format"] = "pt";  // what safetensors.torch users often write
  save_safetensors(path, plain);
  expect_refused(path, {path, "not a filmgrad checkpoint", "'pt'"});

  const std::string newer =
      edited("v2.safetensors", [](SafeTensors& st) { st.metadata["format"] = "filmgrad-checkpoint/2"; });
  expect_refused(newer, {"filmgrad-checkpoint/2", "filmgrad-checkpoint/1"});

  const std::string no_step = edited("nostep.safetensors", [](SafeTensors& st) { st.metadata.erase("step"); });
  expect_refused(no_step, {"\"step\""});
  const std::string bad_step = edited("badstep.safetensors", [](SafeTensors& st) { st.metadata["step"] = "7x"; });
  expect_refused(bad_step, {"'7x'"});
}

TEST_F(CheckpointRefusal, OptimizerMismatch) {
  auto sgd = std::make_unique<SGD>(net_->parameters(), SGDOptions{0.1, 0.9, 0.0});
  EXPECT_TRUE(throws_error([&] { load_checkpoint(good_, *net_, sgd.get()); }, {"Adam", "SGD"}));
  EXPECT_TRUE(unchanged(*net_, net_before_));

  const std::string weights_only = dir_.file("weights_only.safetensors");
  save_checkpoint(weights_only, *make_net(4), nullptr, sample_info());
  expect_refused(weights_only, {"no optimizer state"});
  EXPECT_EQ(read_checkpoint_info(weights_only).optimizer, "none");
}

TEST_F(CheckpointRefusal, UnwritablePaths) {
  // Running as root makes permission bits useless for this; a missing folder and a folder in the way fail for
  // everyone.
  const std::string in_missing_dir = dir_.file("no/such/dir/x.safetensors");
  EXPECT_TRUE(throws_error([&] { save_checkpoint(in_missing_dir, *net_, opt_.get(), sample_info()); },
                           {in_missing_dir, "writable"}));
  const std::string a_dir = dir_.file("a_folder");
  fs::create_directories(a_dir);
  EXPECT_TRUE(throws_error([&] { save_checkpoint(a_dir, *net_, opt_.get(), sample_info()); }, {a_dir}));
  EXPECT_TRUE(fs::is_directory(a_dir));
  EXPECT_TRUE(unchanged(*net_, net_before_));
  EXPECT_TRUE(unchanged(*opt_, opt_before_));
  // No temporary files are left beside the target.
  int64_t entries = 0;
  for (const auto& e : fs::directory_iterator(fs::path(good_).parent_path())) {
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
    ++entries;
  }
  EXPECT_EQ(entries, 2);  // good.safetensors and a_folder
}

TEST_F(CheckpointRefusal, BadInfoOnSave) {
  const std::string path = dir_.file("bad_info.safetensors");
  CheckpointInfo no_name = sample_info();
  no_name.model = "";
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path, *net_, opt_.get(), no_name); }, {"model", "empty"}));
  CheckpointInfo reserved = sample_info();
  reserved.extra["step"] = "9";
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path, *net_, opt_.get(), reserved); }, {"'step'", "reserved"}));
  CheckpointInfo negative = sample_info();
  negative.epoch = -1;
  EXPECT_TRUE(throws_error([&] { save_checkpoint(path, *net_, opt_.get(), negative); }, {"negative"}));
  EXPECT_FALSE(fs::exists(path));
}

TEST(Checkpoint, PyTorchReadsTheModelTensors) {
  // What the two-line PyTorch snippet in nn/checkpoint.h does: read the file as plain safetensors and keep the
  // "model." tensors with the prefix removed. The names must be the module's state-dict names, and loading them
  // into a fresh module must reproduce the weights.
  TempDir dir;
  auto net = make_net(1);
  auto opt = make_adam(*net);
  train_step(*net, *opt, 0);
  const std::string path = dir.file("ckpt.safetensors");
  save_checkpoint(path, *net, opt.get(), sample_info());

  const SafeTensors raw = load_safetensors(path);
  std::map<std::string, Tensor> pytorch_view;
  for (const auto& [k, t] : raw.tensors)
    if (k.rfind("model.", 0) == 0) pytorch_view.emplace(k.substr(6), t);
  std::vector<std::string> names;
  for (const auto& [k, t] : net->state_dict()) names.push_back(k);
  ASSERT_EQ(pytorch_view.size(), names.size());
  for (const auto& n : names) EXPECT_TRUE(pytorch_view.count(n)) << n;
  EXPECT_TRUE(pytorch_view.count("1.num_batches_tracked"));
  EXPECT_EQ(pytorch_view.at("1.num_batches_tracked").dtype(), DType::I64);
  EXPECT_TRUE(pytorch_view.count("3.query.weight_orig"));
  EXPECT_EQ(raw.metadata.at("format"), "filmgrad-checkpoint/1");

  auto fresh = make_net(2);
  fresh->load_state_dict(pytorch_view);
  EXPECT_TRUE(unchanged(*fresh, snapshot(*net)));

  // load_weights reads the same weights from the checkpoint and from a plain PyTorch-style file.
  auto from_ckpt = make_net(3);
  load_weights(path, *from_ckpt);
  EXPECT_TRUE(unchanged(*from_ckpt, snapshot(*net)));
  SafeTensors plain;
  plain.tensors = pytorch_view;
  plain.metadata["format"] = "pt";
  const std::string plain_path = dir.file("plain.safetensors");
  save_safetensors(plain_path, plain);
  auto from_plain = make_net(4);
  load_weights(plain_path, *from_plain);
  EXPECT_TRUE(unchanged(*from_plain, snapshot(*net)));

  // A plain file that lacks a tensor: strict refuses, naming the file; non-strict loads the rest.
  plain.tensors.erase("4.bias");
  save_safetensors(plain_path, plain);
  auto partial = make_net(4);
  const auto before = snapshot(*partial);
  EXPECT_TRUE(throws_error([&] { load_weights(plain_path, *partial); }, {plain_path, "4.bias"}));
  EXPECT_TRUE(unchanged(*partial, before));
  const LoadResult r = load_weights(plain_path, *partial, /*strict=*/false);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"4.bias"});
}

}  // namespace
}  // namespace fg::nn
