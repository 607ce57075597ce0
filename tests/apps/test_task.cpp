// apps/task.h: the model description round-trips through JSON and is checked; predictions come back in image
// space with the right shapes; losses have the terms each task promises; a checkpoint rebuilds the same model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/task.h"
#include "autograd/ops.h"
#include "data/damage.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
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
  EXPECT_NE(test::error_of([] {
              ModelConfig::from_json("{\"task\":\"dust\",\"model\":\"tiny_unet\",\"width\":\"x\"}");
            }).find("width"),
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
      for (int64_t ch = 0; ch < 3; ++ch) d = std::max(d, std::abs(pred.at({0, ch, y, x}) - b.input.at({0, ch, y, x})));
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

namespace fg::apps {
namespace {

// A batch of smooth synthetic photographs (sums of a few random low-frequency waves) with procedural dust on them:
// input damaged, target clean, mask the true damage alpha, as the dataset hands them to training.
data::Batch dusty_batch(int64_t n, int64_t size, uint64_t seed) {
  data::DustSynthesizer dust;
  std::vector<data::Sample> samples;
  std::vector<int64_t> indices;
  for (int64_t k = 0; k < n; ++k) {
    Generator gen(seed * 100 + uint64_t(k));
    const Tensor waves = test::random_tensor({3, 4}, seed * 100 + uint64_t(k) + 7, DType::F32, 0.0, 1.0);
    Tensor clean = Tensor::empty({3, size, size});
    const auto w = waves.to_vector();
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x)
          clean.data<float>()[(c * size + y) * size + x] =
              float(0.5 + 0.2 * std::sin(6.0 * w[size_t(4 * c)] * x / size + 6.0 * w[size_t(4 * c + 1)]) +
                    0.2 * std::cos(6.0 * w[size_t(4 * c + 2)] * y / size + 6.0 * w[size_t(4 * c + 3)]));
    const data::DustDamage d = dust.apply(clean, seed + uint64_t(k), gen);
    data::Sample s;
    s.input = d.damaged;
    s.target = clean;
    s.clean = clean;
    s.mask = d.mask;
    samples.push_back(s);
    indices.push_back(k);
  }
  return data::collate(samples, indices);
}

TEST(GatedRestorationModel, LossAddsTheMaskTermAndMaskIsTheSigmoid) {
  ModelConfig c;
  c.model = "dynamic_unet";
  c.width = 0.125;
  c.gated = true;
  EXPECT_TRUE(ModelConfig::from_json(c.to_json()).gated);
  EXPECT_FALSE(ModelConfig::from_json("{\"task\":\"dust\",\"model\":\"dynamic_unet\"}").gated);  // older files
  Generator gen(3);
  RestorationModel m(c, gen);
  EXPECT_TRUE(m.predicts_mask());
  const data::Batch b = dusty_batch(2, 32, 1);
  const LossValue v = m.loss(b);
  ASSERT_EQ(v.terms.count("bce_mask"), 1u);
  ASSERT_EQ(v.terms.count("fill"), 1u);  // the image head's MSE inside the damage
  EXPECT_GT(v.terms.at("fill"), 0.0);
  // The total is an f32 sum of terms of order 1 (the mask's BCE is weighted 3x): a few f32 ulps (1.2e-7 each).
  EXPECT_NEAR(v.terms.at("total"), v.terms.at("mse") + v.terms.at("bce_mask") + v.terms.at("fill"),
              1e-6 * std::max(1.0, v.terms.at("total")));
  data::Batch no_mask = b;
  no_mask.mask = Tensor();
  EXPECT_NE(test::error_of([&] { m.loss(no_mask); }).find("true damage mask"), std::string::npos);

  ModelConfig t = c;
  t.model = "tiny_unet";
  EXPECT_NE(test::error_of([&] { t.validate(); }).find("no gated form"), std::string::npos);
  ModelConfig n;
  n.task = "negative";
  n.model = "cross_channel";
  n.loss = "cross_channel";
  n.width = 0.125;
  n.gated = true;
  Generator g2(4);
  RestorationModel neg(n, g2);
  const data::Batch nb = make_batch(2, 16, 1, 9);
  const LossValue nv = neg.loss(nb);
  EXPECT_EQ(nv.terms.count("bce_mask"), 1u);
  neg.module().eval();
  const Tensor mask = neg.predict_mask(nb.input);
  ASSERT_EQ(mask.shape(), (Shape{2, 1, 16, 16}));
}

TEST(RestorationModel, PredictAndMaskIsPredictAndPredictMask) {
  // One forward for both must give what the two calls give (same ops on the same input: exact up to the
  // threading of the same kernels, hence the 1e-6).
  std::vector<ModelConfig> configs(3);
  configs[0].model = "tiny_unet";
  configs[0].width = 0.25;
  configs[1].model = "dynamic_unet";
  configs[1].width = 0.125;
  configs[1].gated = true;
  configs[2].task = "negative";
  configs[2].model = "cross_channel";
  configs[2].loss = "cross_channel";
  configs[2].width = 0.125;
  for (const ModelConfig& c : configs) {
    SCOPED_TRACE(c.model);
    Generator gen(8);
    RestorationModel m(c, gen);
    m.module().eval();
    const data::Batch b = make_batch(2, 32, m.out_channels(), 40);
    const RestorationModel::PredictionAndMask pm = m.predict_and_mask(b.input);
    NoGradGuard no_grad;
    EXPECT_ALL_CLOSE(m.predict(Variable(b.input)).data(), pm.prediction, 1e-6, 1e-6);
    EXPECT_ALL_CLOSE(m.predict_mask(b.input), pm.mask, 1e-6, 1e-6);
  }
}

// A gated Dynamic U-Net trained for a few steps on dusty images keeps the input wherever it predicts no damage.
// The gate makes out - in = m (image - in) per pixel (models/gate.h); the image head's output lies in
// mean +- 3 std of ImageNet's statistics (sigmoid range (-3, 3) in normalised space), so |image - in| is at most
// max over channels of max(mean + 3 std, 1 - mean + 3 std) = 1 - 0.406 + 3 x 0.225 = 1.269 (blue) for inputs in
// [0, 1]: |out - in| <= 1.27 m, plus the f32 rounding of normalising and de-normalising values of order 1 (a few
// ulps of 4: 2e-6). Where the mask is below 1e-3 the change is then below 1.27e-3 + 2e-6, under half an 8-bit
// level (1 / 510 = 1.96e-3): such pixels come back identical once written as an 8-bit image.
TEST(GatedRestorationModel, TrainedGateLeavesPixelsWithoutPredictedDamageUnchanged) {
  ModelConfig c;
  c.model = "dynamic_unet";
  c.width = 0.125;
  c.gated = true;
  Generator gen(5);
  RestorationModel m(c, gen);
  const data::Batch b = dusty_batch(4, 32, 2);
  // The median mask on undamaged pixels, in eval mode (as restore runs).
  auto clean_median = [&](const Tensor& mask) {
    std::vector<double> v;
    const auto mv = mask.to_vector(), tm = b.mask.to_vector();
    for (size_t i = 0; i < tm.size(); ++i)
      if (tm[i] == 0.0) v.push_back(mv[i]);
    FG_ASSERT(!v.empty(), "the test batch has no undamaged pixel");
    std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  m.module().eval();
  const double median_before = clean_median(m.predict_mask(b.input));
  m.module().train();
  nn::AdamOptions ao;
  ao.lr = 1e-2;
  nn::Adam opt(m.module().parameters(true), ao);
  double first_bce = 0, last_bce = 0;
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    const LossValue v = m.loss(b);
    ASSERT_TRUE(std::isfinite(v.total.item()));
    if (step == 0) first_bce = v.terms.at("bce_mask");
    last_bce = v.terms.at("bce_mask");
    v.total.backward();
    opt.step();
  }
  EXPECT_LT(last_bce, first_bce);  // the mask head learned from the true mask

  m.module().eval();
  const Tensor mask = m.predict_mask(b.input);
  NoGradGuard no_grad;
  const Tensor out = m.predict(Variable(b.input)).data();
  const auto mv = mask.to_vector(), ov = out.to_vector(), iv = b.input.to_vector(), tm = b.mask.to_vector();
  const int64_t plane = 32 * 32;
  int64_t quiet = 0, quiet_and_clean = 0;
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t i = 0; i < plane; ++i) {
      const double mk = mv[size_t(n * plane + i)];
      for (int64_t ch = 0; ch < 3; ++ch) {
        const size_t k = size_t((n * 3 + ch) * plane + i);
        ASSERT_LE(std::fabs(ov[k] - iv[k]), 1.27 * mk + 2e-6) << "pixel " << i << " of image " << n;
        if (mk < 1e-3) {
          ASSERT_LT(std::fabs(ov[k] - iv[k]), 1.0 / 510) << "pixel " << i << " of image " << n;
        }
      }
      if (mk < 1e-3) {
        ++quiet;
        if (tm[size_t(n * plane + i)] == 0.0) ++quiet_and_clean;
      }
    }
  // Forty steps do not take the mask of undamaged pixels below 1e-3 (250 steps took about a third of them there
  // when this test was written), so the loop above may have checked no pixel of that kind: the case of a mask that
  // is ~0 everywhere follows. Printed for the log.
  std::printf("undamaged pixels: median mask %g before training, %g after; %lld of them below 1e-3\n", median_before,
              clean_median(mask), (long long)quiet_and_clean);
  EXPECT_LE(quiet_and_clean, quiet);

  // The trained network with its mask head's bias at -40: the mask is below e^-30 on every pixel (the head's
  // weighted features stay far below 10 here), so every pixel must come back as it went in, to the rounding of
  // the normalisation (2e-6), whatever the trained image head predicts.
  for (const auto& [name, p] : m.module().named_parameters())
    if (name == "mask_head.bias") p.set_data(Tensor::full({1}, -40.0));
  const Tensor quiet_mask = m.predict_mask(b.input);
  for (double v : quiet_mask.to_vector()) ASSERT_LT(v, 1e-13);
  EXPECT_ALL_CLOSE(b.input, m.predict(Variable(b.input)).data(), 2e-6, 0.0);
}

}  // namespace
}  // namespace fg::apps
