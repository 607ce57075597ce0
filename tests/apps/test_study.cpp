// The loss-network study (apps/study.h, `filmgrad study`) on a small random VGG16-BN: the mean activations it
// reports match a direct computation (the features run layer by layer here, means summed here), the top-k and
// differing counts follow from them, the visualisation raises the filter's activation and has the sizes the options
// say, the report is self-contained, and user errors are one line with the right status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "apps/input_file.h"
#include "apps/json.h"
#include "apps/study.h"
#include "data/image_io.h"
#include "models/perceptual_loss.h"
#include "models/vgg.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;
using fg::Tensor;
using fg::Variable;
using fg::apps::Json;
using fg::test::run_filmgrad;

constexpr double kWidth = 0.125;  // channels 8, 16, 32, 64, 64 at the five taps

// The direct computation: features[0..42] applied one module at a time, each tap's channel means summed here.
std::vector<std::vector<double>> direct_means(fg::models::VGG16& vgg, const Tensor& x) {
  fg::NoGradGuard no_grad;
  const std::vector<int64_t>& taps = fg::models::PerceptualLoss::tap_indices();
  std::vector<std::vector<double>> out;
  Variable y(x);
  for (int64_t i = 0; i <= taps.back(); ++i) {
    y = (*(*vgg.features())[size_t(i)])(y);
    if (std::find(taps.begin(), taps.end(), i) == taps.end()) continue;
    const Tensor t = y.data().contiguous();
    std::vector<double> means;
    for (int64_t c = 0; c < t.size(1); ++c) {
      double s = 0;
      for (int64_t h = 0; h < t.size(2); ++h)
        for (int64_t w = 0; w < t.size(3); ++w) s += t.at({0, c, h, w});
      means.push_back(s / double(t.size(2) * t.size(3)));
    }
    out.push_back(means);
  }
  return out;
}

// An independent top-k: sort (value desc, index asc) pairs.
std::vector<int64_t> direct_top(const std::vector<double>& v, size_t k) {
  std::vector<std::pair<double, int64_t>> p;
  for (size_t i = 0; i < v.size(); ++i) p.push_back({-v[i], int64_t(i)});
  std::sort(p.begin(), p.end());
  std::vector<int64_t> top;
  for (size_t i = 0; i < std::min(k, p.size()); ++i) top.push_back(p[i].second);
  return top;
}

std::vector<double> numbers(const Json& array) {
  std::vector<double> v;
  for (const Json& x : array.items) v.push_back(std::stod(x.text));
  return v;
}
std::vector<int64_t> integers(const Json& array) {
  std::vector<int64_t> v;
  for (const Json& x : array.items) v.push_back(std::stoll(x.text));
  return v;
}

TEST(Study, TopFiltersAndDifferingCounts) {
  using fg::apps::count_differing;
  using fg::apps::top_filters;
  EXPECT_EQ(top_filters({1, 3, 3, 2}, 2), (std::vector<int64_t>{1, 2}));  // a tie goes to the lower index
  EXPECT_EQ(top_filters({1, 3, 3, 2}, 9), (std::vector<int64_t>{1, 2, 3, 0}));
  EXPECT_EQ(count_differing({1, 2, 3}, {3, 4, 5}), 2);
  EXPECT_EQ(count_differing({1, 2, 3}, {3, 2, 1}), 0);
}

TEST(Study, MeanActivationsMatchADirectComputation) {
  fg::Generator gen(5);
  fg::models::VGG16 vgg(gen, true, kWidth);
  vgg.eval();
  const Tensor x = fg::test::random_normal({1, 3, 40, 36}, 9);
  const auto got = fg::apps::mean_filter_activations(vgg, x);
  const auto want = direct_means(vgg, x);
  ASSERT_EQ(got.size(), 5u);
  const std::vector<size_t> channels = {8, 16, 32, 64, 64};
  for (size_t l = 0; l < 5; ++l) {
    ASSERT_EQ(got[l].size(), channels[l]);
    // The same kernels on the same input; the tolerance covers summation order only (both sum in double).
    for (size_t f = 0; f < got[l].size(); ++f) EXPECT_NEAR(got[l][f], want[l][f], 1e-9 + 1e-9 * std::abs(want[l][f]));
  }
}

TEST(Study, VisualisationRaisesTheActivationAtTheSizesGiven) {
  fg::Generator gen(5);
  fg::models::VGG16 vgg(gen, true, kWidth);
  vgg.eval();
  vgg.freeze();
  fg::apps::VisOptions o;
  o.start_size = 20;
  o.rounds = 3;
  o.scale = 1.3;
  o.steps = 4;
  // A filter that responds at all to the starting noise (a dead ReLU has no gradient to follow).
  int64_t filter = -1;
  {
    Tensor noise = Tensor::empty({1, 3, 20, 20});
    fg::Generator g2(1);
    fg::uniform_(noise, g2, 150.0 / 255.0, 180.0 / 255.0);
    filter =
        fg::apps::top_filters(fg::apps::mean_filter_activations(vgg, fg::apps::imagenet_normalize(noise))[0], 1)[0];
  }
  const fg::apps::FilterVisual v = fg::apps::visualise_filter(vgg, 5, filter, o);
  EXPECT_EQ(v.image.size(0), 3);
  EXPECT_EQ(v.image.size(1), 33);  // 20 -> floor(26) -> floor(33.8): two resizes between three rounds
  EXPECT_EQ(v.image.size(2), 33);
  EXPECT_GT(v.start_activation, 0);
  EXPECT_GT(v.final_activation, v.start_activation);
}

class StudyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fg_cli_study_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fg::Generator gen(5);
    vgg_ = std::make_unique<fg::models::VGG16>(gen, true, kWidth);
    vgg_->eval();
    fg::SafeTensors st;
    for (const auto& [name, t] : vgg_->state_dict()) st.tensors[name] = t.contiguous();
    weights_ = (dir_ / "vgg.safetensors").string();
    fg::save_safetensors(weights_, st);
    clean_ = write("clean.png", fg::test::random_tensor({3, 48, 40}, 1, fg::DType::F32, 0.0, 1.0));
    Tensor damaged = fg::test::random_tensor({3, 48, 40}, 1, fg::DType::F32, 0.0, 1.0).clone();
    float* p = damaged.data<float>();
    for (int64_t i = 0; i < 3 * 48 * 40; i += 7) p[i] = 1.0f;  // specks
    damaged_ = write("damaged.png", damaged);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const Tensor& chw) const {
    const std::string path = (dir_ / name).string();
    fg::data::write_image(path, fg::data::make_image(chw));
    return path;
  }
  std::string read(const fs::path& p) const {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
  std::unique_ptr<fg::models::VGG16> vgg_;
  std::string weights_, clean_, damaged_;
};

TEST_F(StudyCli, ReportsTheDirectlyComputedNumbers) {
  const fs::path out = dir_ / "out";
  const auto r = run_filmgrad("study --clean '" + clean_ + "' --damaged '" + damaged_ + "' --vgg-weights '" + weights_ +
                              "' --vgg-width 0.125 --top 3 -o '" + out.string() +
                              "' --vis-filters 2 --vis-start 24 --vis-upscaling-steps 2 --vis-steps 3");
  ASSERT_EQ(r.status, 0) << r.out;
  const Json j = fg::apps::parse_json(read(out / "study.json"));
  EXPECT_EQ(integers(*j.find("taps")), (std::vector<int64_t>{5, 12, 22, 32, 42}));
  EXPECT_EQ(integers(*j.find("channels")), (std::vector<int64_t>{8, 16, 32, 64, 64}));
  const Json& pair = j.find("pairs")->items.at(0);

  const auto clean = direct_means(*vgg_, fg::apps::imagenet_normalize(fg::apps::read_image_rgb(clean_)));
  const auto damaged = direct_means(*vgg_, fg::apps::imagenet_normalize(fg::apps::read_image_rgb(damaged_)));
  const std::vector<int64_t> differing = integers(*pair.find("differing"));
  ASSERT_EQ(differing.size(), 5u);
  for (size_t l = 0; l < 5; ++l) {
    const Json& layer = pair.find("layers")->items.at(l);
    const std::vector<double> c = numbers(*layer.find("clean")), d = numbers(*layer.find("damaged"));
    ASSERT_EQ(c.size(), clean[l].size());
    // Another process, possibly other OpenMP splits of the convolutions: agreement to f32 rounding.
    for (size_t f = 0; f < c.size(); ++f) {
      EXPECT_NEAR(c[f], clean[l][f], 1e-5 + 1e-5 * std::abs(clean[l][f])) << "layer " << l << " filter " << f;
      EXPECT_NEAR(d[f], damaged[l][f], 1e-5 + 1e-5 * std::abs(damaged[l][f])) << "layer " << l << " filter " << f;
    }
    // The ranking follows from the reported numbers.
    const std::vector<int64_t> tc = direct_top(c, 3), td = direct_top(d, 3);
    EXPECT_EQ(integers(*layer.find("top_clean")), tc);
    EXPECT_EQ(integers(*layer.find("top_damaged")), td);
    const std::set<int64_t> in_damaged(td.begin(), td.end());
    int64_t n = 0;
    for (int64_t f : tc) n += in_damaged.count(f) ? 0 : 1;
    EXPECT_EQ(differing[l], n);
  }
  // With a single pair the mean is that pair.
  EXPECT_EQ(integers(*j.find("mean")->find("differing")), differing);
  EXPECT_NE(r.out.find("layers 1-5:"), std::string::npos);

  // Visualisation: 2 to 4 filters per layer (the top 2 of clean and of damaged), 24 -> 28 px, one grid each.
  const Json& vis = *j.find("visualised");
  ASSERT_EQ(vis.items.size(), 5u);
  for (const Json& layer : vis.items) {
    const size_t n = layer.find("filters")->items.size();
    EXPECT_GE(n, 2u);
    EXPECT_LE(n, 4u);
    for (const Json& f : layer.find("filters")->items) EXPECT_EQ(std::stoll(f.find("size")->text), 28);
    const fg::data::Image grid = fg::data::read_image((out / layer.find("file")->text).string());
    EXPECT_EQ(grid.height(), 28);
    EXPECT_EQ(grid.width(), int64_t(n) * 28 + int64_t(n - 1) * 2);
  }
  const std::string html = read(out / "report.html");
  EXPECT_NE(html.find("Table 5.2"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  const std::string table = read(out / "table.csv");
  EXPECT_EQ(fg::test::count_lines(table), 6);  // header + 5 layers
}

TEST_F(StudyCli, UserErrorsAreOneLine) {
  const fs::path out = dir_ / "out";
  auto r = run_filmgrad("study --clean '" + clean_ + "' --damaged '" + damaged_ + "' -o '" + out.string() + "'");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--vgg-weights"), std::string::npos) << r.out;
  r = run_filmgrad("study --data '" + dir_.string() + "' --vgg-weights random -o '" + out.string() + "'");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("clean/ and damaged/"), std::string::npos) << r.out;
  const std::string small = write("small.png", fg::test::random_tensor({3, 32, 32}, 2, fg::DType::F32, 0.0, 1.0));
  r = run_filmgrad("study --clean '" + clean_ + "' --damaged '" + small +
                   "' --vgg-weights random --vgg-width 0.125 -o '" + out.string() + "' --vis-filters 0");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("differs in size"), std::string::npos) << r.out;
  // Weights of another width do not fit.
  r = run_filmgrad("study --clean '" + clean_ + "' --damaged '" + damaged_ + "' --vgg-weights '" + weights_ +
                   "' --vgg-width 0.25 -o '" + out.string() + "' --vis-filters 0");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;  // checked before any work or output
  EXPECT_FALSE(fs::exists(out / "report.html"));
}

}  // namespace
