// The losses of nn/losses.h and models/perceptual_loss.h against PyTorch 1.13, from tests/golden/losses.safetensors
// (written by tools/golden_losses.py: fastai/DeOldify's FeatureLoss on a width-0.125 VGG16-BN built by torchvision's
// make_layers, random BatchNorm statistics, eval mode; pred and target (2, 3, 32, 32); everything in f64).
//
// Tolerances, f64 throughout. The values and gradients pass through 13 convolutions, BatchNorms and ReLUs, then
// SSIM or Gram matrices and sums of up to a few thousand terms; the two sides differ only in summation order (the
// largest difference seen is 3e-15 of the tensor's largest entry). The checks allow |got - ref| <= atol + 1e-11 |ref|
// with atol 1e-11 times the largest |ref| of the tensor: gradient entries near zero are sums of cancelling terms
// whose absolute error scales with the largest entries, not with their own size, and the margin of ~3000 covers
// another BLAS's summation order. A ReLU input within rounding of 0 could flip a gradient; the inputs are random
// normals, where that has probability ~0.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "models/perceptual_loss.h"
#include "nn/losses.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

const SafeTensors& file() {
  return test::golden("losses");
}
const Tensor& stored(const std::string& name) {
  return file().get(name);
}

double max_abs(const Tensor& t) {
  double m = 0.0;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// |got - ref| <= 1e-11 max|ref| + 1e-11 |ref| (see the file comment).
::testing::AssertionResult matches(const Tensor& ref, const Tensor& got) {
  return test::all_close(ref, got.reshape(ref.shape()), 1e-11 * max_abs(ref), 1e-11);
}

// A PerceptualLoss at the golden file's width, in f64, with the file's VGG weights.
std::unique_ptr<models::PerceptualLoss> golden_loss(models::PerceptualVariant variant) {
  const double width = std::stod(file().metadata.at("vgg_width"));
  EXPECT_EQ(width, 0.125);
  Generator gen(1);
  auto loss = std::make_unique<models::PerceptualLoss>(gen, variant, width);
  loss->to(DType::F64);
  // The file stores every tensor as f64; num_batches_tracked goes back to the module's i64.
  std::map<std::string, Tensor> state;
  std::map<std::string, DType> dtypes;
  for (const auto& [name, t] : loss->vgg().state_dict()) dtypes[name] = t.dtype();
  for (const auto& [key, t] : file().tensors) {
    if (key.rfind("vgg.", 0) != 0) continue;
    const std::string name = key.substr(4);
    auto it = dtypes.find(name);
    state[name] = it == dtypes.end() ? t : t.to(it->second);
  }
  loss->vgg().load_state_dict(state);  // strict: every name and shape must be torchvision's
  return loss;
}

void check_variant(const std::string& name) {
  SCOPED_TRACE(name);
  auto loss = golden_loss(models::parse_perceptual_variant(name));
  const Variable pred(stored("pred").clone(), /*requires_grad=*/true);
  const Variable target(stored("target"));
  const models::PerceptualTerms terms = loss->compute(pred, target);
  EXPECT_TRUE(matches(stored(name + ".total"), terms.total.data()));

  // The breakdown, in the file's order: pixel terms, 5 content, 5 style.
  std::vector<double> flat = terms.pixel;
  flat.insert(flat.end(), terms.content.begin(), terms.content.end());
  flat.insert(flat.end(), terms.style.begin(), terms.style.end());
  const Tensor ref_terms = stored(name + ".terms");
  ASSERT_EQ(int64_t(flat.size()), ref_terms.numel());
  EXPECT_TRUE(matches(ref_terms, Tensor::from_vector(flat, {int64_t(flat.size())}, DType::F64)));

  terms.total.backward();
  ASSERT_TRUE(pred.grad().defined());
  EXPECT_TRUE(matches(stored(name + ".gpred"), pred.grad()));
  for (const auto& p : loss->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(GoldenLosses, PerceptualModel1) {
  check_variant("model1");
}
TEST(GoldenLosses, PerceptualModel2) {
  check_variant("model2");
}
TEST(GoldenLosses, PerceptualModel3) {
  check_variant("model3");
}

TEST(GoldenLosses, SsimLoss) {
  for (int64_t window : {5, 11}) {
    const std::string name = "ssim_loss_w" + std::to_string(window);
    SCOPED_TRACE(name);
    const Variable x(stored(name + ".x").clone(), true), y(stored(name + ".y").clone(), true);
    const Variable loss = nn::ssim_loss(x, y, window);
    EXPECT_TRUE(matches(stored(name + ".loss"), loss.data()));
    loss.backward();
    EXPECT_TRUE(matches(stored(name + ".gx"), x.grad()));
    EXPECT_TRUE(matches(stored(name + ".gy"), y.grad()));
  }
}

TEST(GoldenLosses, GramStyleLoss) {
  const Variable fin(stored("gram_style_loss.fin").clone(), true);
  const Variable ftarget(stored("gram_style_loss.ftarget").clone(), true);
  const Variable loss = nn::gram_style_loss(fin, ftarget, 3.5);
  EXPECT_TRUE(matches(stored("gram_style_loss.loss"), loss.data()));
  loss.backward();
  EXPECT_TRUE(matches(stored("gram_style_loss.gfin"), fin.grad()));
  EXPECT_TRUE(matches(stored("gram_style_loss.gftarget"), ftarget.grad()));
}

// Every tensor in the file is used by one of the tests above.
TEST(GoldenLosses, EveryStoredTensorIsCompared) {
  const std::vector<std::string> prefixes = {"vgg.",    "pred",          "target",         "model1.",         "model2.",
                                             "model3.", "ssim_loss_w5.", "ssim_loss_w11.", "gram_style_loss."};
  for (const auto& [key, t] : file().tensors) {
    const bool known =
        std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) { return key.rfind(p, 0) == 0; });
    EXPECT_TRUE(known) << key << " is in the golden file but no test reads it";
  }
  EXPECT_EQ(file().metadata.at("_format"), "filmgrad-golden-losses-1");
}

}  // namespace
}  // namespace fg
