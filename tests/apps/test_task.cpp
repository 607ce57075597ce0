// apps/task.h: the model description round-trips through JSON and is checked; predictions come back in image
// space with the right shapes; losses have the terms each task promises; a checkpoint rebuilds the same model.
#include "apps/task.h"

#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>

#include <filesystem>

#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "tests/support/test_util.h"

namespace fg::apps {
namespace {

data::Batch make_batch(int64_t n, int64_t size, int64_t target_channels, uint64_t seed) {
  data::Batch b;
  b.input = test::random_tensor({n, 3, size, size}, seed, DType::F32, 0.0, 1.0);
  b.target = test::random_tensor({n, target_channels, size, size}, seed + 1, DType::F32, 0.0, 1.0);
  Tensor m = test::random_tensor({n, 1, size, size}, seed + 2, DType::F32, 0.0, 1.0);
  b.mask = m;
  return b;
}

TEST(ModelConfig, JsonRoundTripKeepsEveryField) {
  ModelConfig c;
  c.task = "dust";
  c.model = "tiny_unet";
  c.width = 0.3;
  c.loss = "model3";
  c.vgg_weights = "/tmp/with \"quotes\"\\and\nnewline.safetensors";
  c.encoder_weights = "";
  const ModelConfig d = ModelConfig::from_json(c.to_json());
  EXPECT_EQ(d.task, c.task);
  EXPECT_EQ(d.model, c.model);
  EXPECT_EQ(d.width, c.width);  // %.17g round-trips a double exactly
  EXPECT_EQ(d.loss, c.loss);
  EXPECT_EQ(d.vgg_weights, c.vgg_weights);
  // Fields a newer version might add are ignored.
  const ModelConfig e = ModelConfig::from_json(
      "{ \"task\": \"negative\", \"model\": \"cross_channel\", \"loss\": \"cross_channel\", \"width\": 0.25, "
      "\"future\": true }");
  EXPECT_EQ(e.model, "cross_channel");
  EXPECT_EQ(e.width, 0.25);
}

TEST(ModelConfig, BadDescriptionsAreClearErrors) {
  EXPECT_NE(test::error_of([] { ModelConfig::from_json("not json"); }).find("not valid JSON"), std::string::npos);
  EXPECT_NE(test::error_of([] { ModelConfig::from_json("{\"model\":\"tiny_unet\"}"); }).find("\"task\""),
            std::string::npos);
  EXPECT_NE(test::error_of([] { ModelConfig::from_json("{\"task\":\"dust\",\"model\":\"tiny_unet\",\"width\":\"x\"}"); })
                .find("width"),
            std::string::npos);
  ModelConfig c;
  c.task = "dust";
  c.model = "cross_channel";
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("does not do the dust task"), std::string::npos);
  c.task = "negative";
  c.loss = "mse";
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("cross_channel"), std::string::npos);
  c.task = "paint";
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("unknown task"), std::string::npos);
  c = ModelConfig();
  c.loss = "model1";
  c.model = "tiny_unet";
  Generator gen(0);
  EXPECT_NE(test::error_of([&] { RestorationModel m(c, gen); }).find("--vgg-weights"), std::string::npos);
}

TEST(RestorationModel, DustPredictionIsInImageSpaceAndLossesHaveTheirTerms) {
  for (const char* loss : {"mse", "mae", "ssim"}) {
    ModelConfig c;
    c.model = "tiny_unet";
    c.width = 0.25;
    c.loss = loss;
    Generator gen(1);
    RestorationModel m(c, gen);
    EXPECT_EQ(m.size_multiple(), 4);
    EXPECT_EQ(m.out_channels(), 3);
    EXPECT_FALSE(m.has_encoder());
    const data::Batch b = make_batch(2, 16, 3, 5);
    const LossValue v = m.loss(b);
    ASSERT_TRUE(v.total.defined());
    EXPECT_TRUE(std::isfinite(v.total.item()));
    EXPECT_EQ(v.terms.at("total"), v.total.item());
    EXPECT_EQ(v.terms.at(loss), v.total.item());
    if (std::string(loss) == "mse") {
      // tiny_unet works in [0, 1]: the loss is the MSE of its raw output against the target.
      const Variable pred = m.predict(Variable(b.input));
      EXPECT_NEAR(mse_loss(pred, Variable(b.target)).item(), v.total.item(), 1e-6);
    }
  }
}

TEST(RestorationModel, DynamicUNetNormalisesInputAndTarget) {
  ModelConfig c;
  c.model = "dynamic_unet";
  c.width = 0.0625;
  Generator gen(2);
  RestorationModel m(c, gen);
  EXPECT_EQ(m.size_multiple(), 32);
  EXPECT_TRUE(m.has_encoder());
  m.module().eval();
  const data::Batch b = make_batch(1, 32, 3, 9);
  const Tensor pred = m.predict(Variable(b.input)).data();
  ASSERT_EQ(pred.shape(), (Shape{1, 3, 32, 32}));
  // The network's output lies in (-3, 3) in normalised space; de-normalised, channel c is in
  // (mean_c - 3 std_c, mean_c + 3 std_c).
  const double mean[3] = {0.485, 0.456, 0.406}, stddev[3] = {0.229, 0.224, 0.225};
  for (int64_t ch = 0; ch < 3; ++ch) {
    const std::vector<double> v = pred.select(1, ch).to_vector();
    for (double x : v) {
      EXPECT_GT(x, mean[ch] - 3 * stddev[ch]);
      EXPECT_LT(x, mean[ch] + 3 * stddev[ch]);
    }
  }
  // The loss is the MSE in normalised space: MSE(image space) / std^2 per channel, averaged.
  m.module().eval();
  const LossValue v = m.loss(b);
  double expected = 0;
  const std::vector<double> p = pred.to_vector(), t = b.target.to_vector();
  const int64_t plane = 32 * 32;
  for (int64_t i = 0; i < int64_t(p.size()); ++i) {
    const double s = stddev[(i / plane) % 3];
    expected += (p[size_t(i)] - t[size_t(i)]) * (p[size_t(i)] - t[size_t(i)]) / (s * s);
  }
  expected /= double(p.size());
  EXPECT_NEAR(v.total.item(), expected, 1e-5 * expected);
  m.set_encoder_frozen(true);
  EXPECT_LT(m.module().num_parameters(true), m.module().num_parameters());
  m.set_encoder_frozen(false);
  EXPECT_EQ(m.module().num_parameters(true), m.module().num_parameters());
}

TEST(RestorationModel, NegativeTaskLossTermsPerVariant) {
  struct Case {
    const char* model;
    bool bce, cross;
  };
  for (const Case& k : {Case{"cross_channel", true, true}, Case{"cross_channel_no_mask", false, true},
                        Case{"cross_channel_plain", false, false}}) {
    ModelConfig c;
    c.task = "negative";
    c.model = k.model;
    c.loss = "cross_channel";
    c.width = 0.0625;
    Generator gen(3);
    RestorationModel m(c, gen);
    EXPECT_EQ(m.size_multiple(), 16);
    EXPECT_EQ(m.out_channels(), 1);
    const data::Batch b = make_batch(2, 16, 1, 21);
    const LossValue v = m.loss(b);
    EXPECT_EQ(v.terms.count("bce_mask") == 1, k.bce) << k.model;
    EXPECT_EQ(v.terms.count("mse_cross") == 1, k.cross) << k.model;
    double sum = v.terms.at("mse_final");
    if (k.bce) sum += v.terms.at("bce_mask");
    if (k.cross) sum += v.terms.at("mse_cross");
    EXPECT_NEAR(v.terms.at("total"), sum, 1e-6 * std::abs(sum)) << k.model;
    m.module().eval();
    const Tensor mask = m.predict_mask(b.input);
    EXPECT_EQ(mask.shape(), (Shape{2, 1, 16, 16}));
    for (double x : mask.to_vector()) {
      EXPECT_GE(x, 0.0);
      EXPECT_LE(x, 1.0);
    }
  }
}

TEST(RestorationModel, PredictMaskOfDustModelIsTheScaledChange) {
  ModelConfig c;
  c.model = "tiny_unet";
  c.width = 0.25;
  Generator gen(4);
  RestorationModel m(c, gen);
  m.module().eval();
  const data::Batch b = make_batch(1, 8, 3, 33);
  const Tensor mask = m.predict_mask(b.input);
  NoGradGuard no_grad;
  const Tensor pred = m.predict(Variable(b.input)).data();
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 8; ++x) {
      double d = 0;
      for (int64_t ch = 0; ch < 3; ++ch)
        d = std::max(d, std::abs(pred.at({0, ch, y, x}) - b.input.at({0, ch, y, x})));
      EXPECT_NEAR(mask.at({0, 0, y, x}), std::min(1.0, 4 * d), 1e-6);
    }
}

TEST(RestorationModel, CheckpointRebuildsTheSameModel) {
  ModelConfig c;
  c.model = "tiny_unet";
  c.width = 0.25;
  c.loss = "mae";
  Generator gen(5);
  RestorationModel m(c, gen);
  m.module().eval();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("fg_task_" + std::to_string(::getpid()) + ".safetensors")).string();
  nn::CheckpointInfo info;
  info.model = c.model;
  info.config = c.to_json();
  info.step = 17;
  nn::save_checkpoint(path, m.module(), nullptr, info);
  int64_t step = 0;
  const std::unique_ptr<RestorationModel> r = load_restoration_model(path, &step);
  EXPECT_EQ(step, 17);
  EXPECT_EQ(r->config().loss, "mae");
  const Tensor x = test::random_tensor({1, 3, 8, 8}, 44, DType::F32, 0.0, 1.0);
  NoGradGuard no_grad;
  EXPECT_EQ(m.predict(Variable(x)).data().to_vector(), r->predict(Variable(x)).data().to_vector());
  // A checkpoint without a description cannot be rebuilt.
  info.config = "";
  nn::save_checkpoint(path, m.module(), nullptr, info);
  EXPECT_NE(test::error_of([&] { load_restoration_model(path); }).find("without a model description"),
            std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace fg::apps
