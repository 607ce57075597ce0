// The evaluation metrics of data/metrics.h: PSNR and SSIM against scikit-image 0.19 (tests/golden/metrics.safetensors,
// written by tools/make_metric_fixtures.py), against a direct 2-D formula written here, and on the cases whose
// answer is known by hand (identical images, symmetry, a PSNR worked out on paper), plus the errors a user can cause.
//
// Tolerances. The contract is agreement with skimage within 1e-4 (kAgreement). Both sides compute in f64 from the
// same values (the fixture images are rounded to f32 when written, so the f32 path sees them exactly) and differ
// only in summation order: the agreement actually reached is ~1e-15 for SSIM and ~1e-13 dB (~4e-15 relative) for
// PSNR. kTight (1e-12; relative for PSNR) is asserted as well, so a change that drifts from skimage by, say, 1e-6
// (a wrong tap, a crop off by one that happens to matter little) fails instead of hiding under the contract's margin.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "data/metrics.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

constexpr double kAgreement = 1e-4;
constexpr double kTight = 1e-12;

const SafeTensors& fixtures() {
  return test::golden("metrics");
}

// The number stored under "key" in a flat JSON object as Python's json.dumps writes it ("key": 1.5); NaN for null.
double json_number(const std::string& json, const std::string& key) {
  const std::string pattern = "\"" + key + "\": ";
  const size_t at = json.find(pattern);
  if (at == std::string::npos) throw Error("metrics fixture metadata lacks '" + key + "': " + json);
  if (json.compare(at + pattern.size(), 4, "null") == 0) return std::numeric_limits<double>::quiet_NaN();
  const char* begin = json.c_str() + at + pattern.size();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin) throw Error("metrics fixture metadata: '" + key + "' is not a number: " + json);
  return v;
}

// The same (C, H, W) values stored W-major: strides (1, C, C*H), nothing contiguous.
Tensor non_contiguous(const Tensor& t) {
  Tensor v = t.permute({2, 1, 0}).contiguous().permute({2, 1, 0});
  EXPECT_FALSE(v.is_contiguous());
  return v;
}

// |got - ref| for metric values, where +inf must meet +inf (PSNR of identical data).
double disagreement(double ref, double got) {
  if (std::isinf(ref) || std::isinf(got)) return ref == got ? 0.0 : std::numeric_limits<double>::infinity();
  return std::fabs(got - ref);
}

struct Agreement {
  double largest = 0.0;
  std::string where;
  void record(double ref, double got, const std::string& what) {
    const double d = disagreement(ref, got);
    EXPECT_LE(d, kAgreement) << what << ": skimage " << ref << ", filmgrad " << got;
    // Relative for PSNR, whose values are tens of dB; SSIM is at most 1, where this is absolute.
    EXPECT_LE(d, kTight * std::max(1.0, std::fabs(ref))) << what << ": skimage " << ref << ", filmgrad " << got;
    if (!(d <= largest)) {
      largest = d;
      where = what;
    }
  }
};

TEST(MetricsFixtures, FileDescribesItself) {
  const SafeTensors& f = fixtures();
  ASSERT_TRUE(f.metadata.count("_format")) << "regenerate with /usr/bin/python3 tools/make_metric_fixtures.py";
  EXPECT_EQ(f.metadata.at("_format"), "filmgrad-golden-metrics-1");
  EXPECT_TRUE(f.metadata.count("_skimage_version"));
  EXPECT_TRUE(f.metadata.count("_scipy_version"));
}

TEST(MetricsFixtures, AgreeWithScikitImage) {
  const SafeTensors& f = fixtures();
  std::set<std::string> compared;
  Agreement ssim_agree, psnr_agree;
  int cases = 0;
  for (const auto& [name, json] : f.metadata) {
    if (name.empty() || name[0] == '_') continue;
    ++cases;
    SCOPED_TRACE(name);
    data::SsimOptions opt;
    opt.data_range = json_number(json, "data_range");
    opt.sigma = json_number(json, "sigma");
    const double win = json_number(json, "win_size");
    opt.win_size = std::isnan(win) ? 0 : int64_t(win);

    const Tensor& x = f.get(name + ".x");
    const Tensor& y = f.get(name + ".y");
    const std::vector<double> ssim_pc = f.get(name + ".ssim_per_channel").to_vector();
    const std::vector<double> psnr_pc = f.get(name + ".psnr_per_channel").to_vector();
    const double ssim_ref = f.get(name + ".ssim").item();
    const double psnr_ref = f.get(name + ".psnr").item();
    for (const char* t : {".x", ".y", ".ssim", ".ssim_per_channel", ".psnr", ".psnr_per_channel"})
      compared.insert(name + t);
    ASSERT_EQ(x.dim(), 3);
    ASSERT_EQ(int64_t(ssim_pc.size()), x.size(0));
    ASSERT_EQ(int64_t(psnr_pc.size()), x.size(0));

    struct Variant {
      const char* label;
      Tensor x, y;
    };
    const Variant variants[] = {{"f64", x, y},
                                {"f64 non-contiguous", non_contiguous(x), non_contiguous(y)},
                                {"f32", x.to(DType::F32), y.to(DType::F32)}};
    for (const Variant& v : variants) {
      const std::string where = name + " (" + v.label + ")";
      ssim_agree.record(ssim_ref, data::ssim(v.x, v.y, opt), where + " ssim");
      const std::vector<double> s = data::ssim_per_channel(v.x, v.y, opt);
      ASSERT_EQ(s.size(), ssim_pc.size());
      for (size_t c = 0; c < s.size(); ++c)
        ssim_agree.record(ssim_pc[c], s[c], where + " ssim channel " + std::to_string(c));
      psnr_agree.record(psnr_ref, data::psnr(v.x, v.y, opt.data_range), where + " psnr");
      const std::vector<double> p = data::psnr_per_channel(v.x, v.y, opt.data_range);
      ASSERT_EQ(p.size(), psnr_pc.size());
      for (size_t c = 0; c < p.size(); ++c)
        psnr_agree.record(psnr_pc[c], p[c], where + " psnr channel " + std::to_string(c));
    }
  }
  EXPECT_GE(cases, 10) << "the fixture file has fewer cases than tools/make_metric_fixtures.py writes";
  for (const auto& [tensor_name, t] : f.tensors)
    EXPECT_TRUE(compared.count(tensor_name)) << "stored tensor '" << tensor_name << "' is never compared";
  std::printf("largest disagreement with scikit-image %s over %d cases: SSIM %.3g at %s; PSNR %.3g dB at %s\n",
              f.metadata.at("_skimage_version").c_str(), cases, ssim_agree.largest, ssim_agree.where.c_str(),
              psnr_agree.largest, psnr_agree.where.c_str());
}

// --- an independent formula: the 2-D window applied directly, reflection done by folding step by step ---------

int64_t fold(int64_t i, int64_t n) {
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
  return i;
}

// x, y: (C, H, W). skimage's per-channel SSIM from its definition, the window applied as one 2-D sum.
std::vector<double> direct_ssim(const Tensor& x, const Tensor& y, double sigma, int64_t win_size) {
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  const int64_t r = int64_t(3.5 * sigma + 0.5);
  const int64_t win = win_size ? win_size : 2 * r + 1, pad = (win - 1) / 2;
  std::vector<double> g;
  double total = 0.0;
  for (int64_t k = -r; k <= r; ++k) total += std::exp(-double(k * k) / (2 * sigma * sigma));
  for (int64_t k = -r; k <= r; ++k) g.push_back(std::exp(-double(k * k) / (2 * sigma * sigma)) / total);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  std::vector<double> out;
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0;
    for (int64_t i = pad; i < H - pad; ++i) {
      for (int64_t j = pad; j < W - pad; ++j) {
        double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
        for (int64_t a = -r; a <= r; ++a) {
          for (int64_t b = -r; b <= r; ++b) {
            const double w = g[size_t(a + r)] * g[size_t(b + r)];
            const double xv = x.at({c, fold(i + a, H), fold(j + b, W)});
            const double yv = y.at({c, fold(i + a, H), fold(j + b, W)});
            mx += w * xv;
            my += w * yv;
            mxx += w * xv * xv;
            myy += w * yv * yv;
            mxy += w * xv * yv;
          }
        }
        const double vx = mxx - mx * mx, vy = myy - my * my, vxy = mxy - mx * my;
        sum += (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
      }
    }
    out.push_back(sum / double((H - 2 * pad) * (W - 2 * pad)));
  }
  return out;
}

TEST(Ssim, MatchesDirectFormula) {
  struct Case {
    Shape shape;
    double sigma;
    int64_t win_size;
  };
  // 3x96x80 runs the filter's OpenMP path (H * W * 11 taps above its threshold); 2x5x6 with win_size 5 reflects a
  // radius-5 window over a 5-pixel side more than once; sigma 0.5 gives radius 2.
  const Case cases[] = {
      {{3, 96, 80}, 1.5, 0}, {{1, 11, 13}, 1.5, 0}, {{2, 5, 6}, 1.5, 5}, {{1, 12, 9}, 0.5, 0}, {{2, 8, 8}, 1.5, 1}};
  uint64_t seed = 100;
  for (const Case& k : cases) {
    SCOPED_TRACE(shape_str(k.shape) + " sigma " + std::to_string(k.sigma) + " win " + std::to_string(k.win_size));
    const Tensor x = test::random_tensor(k.shape, seed++, DType::F64, 0.0, 1.0);
    // y: x plus noise, clipped, so the SSIM is neither 1 nor near 0.
    Tensor y = test::random_tensor(k.shape, seed++, DType::F64, -0.2, 0.2);
    std::vector<double> yv = y.to_vector(), xv = x.to_vector();
    for (size_t i = 0; i < yv.size(); ++i) yv[i] = std::clamp(xv[i] + yv[i], 0.0, 1.0);
    y = Tensor::from_vector(yv, k.shape, DType::F64);
    data::SsimOptions opt;
    opt.sigma = k.sigma;
    opt.win_size = k.win_size;
    const std::vector<double> ref = direct_ssim(x, y, k.sigma, k.win_size);
    const std::vector<double> got = data::ssim_per_channel(x, y, opt);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t c = 0; c < got.size(); ++c) {
      EXPECT_NEAR(got[c], ref[c], 1e-12) << "channel " << c;
      EXPECT_GT(got[c], 0.0);
      EXPECT_LT(got[c], 1.0);
    }
  }
}

TEST(Ssim, WindowFollowsSigma) {
  data::SsimOptions opt;
  EXPECT_EQ(data::ssim_radius(opt), 5);  // int(3.5 * 1.5 + 0.5) = int(5.75)
  EXPECT_EQ(data::ssim_win_size(opt), 11);
  opt.sigma = 0.8;  // int(3.3) = 3
  EXPECT_EQ(data::ssim_radius(opt), 3);
  EXPECT_EQ(data::ssim_win_size(opt), 7);
  opt.win_size = 3;  // skimage's explicit win_size moves the crop, not the filter
  EXPECT_EQ(data::ssim_radius(opt), 3);
  EXPECT_EQ(data::ssim_win_size(opt), 3);
}

// --- identical images, symmetry ----------------------------------------------------------------------------------

TEST(Metrics, IdenticalImagesGiveSsimOneAndPsnrInfinity) {
  const Tensor constant = Tensor::full({2, 12, 11}, 0.25, DType::F64);  // zero variance everywhere: C1, C2 carry it
  for (const Tensor& x : {test::random_tensor({3, 17, 13}, 7, DType::F32, 0.0, 1.0),
                          test::random_tensor({1, 11, 11}, 8, DType::F64, 0.0, 1.0), constant}) {
    SCOPED_TRACE(x.str());
    const Tensor y = x.clone();
    EXPECT_DOUBLE_EQ(data::ssim(x, y), 1.0);
    for (double v : data::ssim_per_channel(x, y)) EXPECT_DOUBLE_EQ(v, 1.0);
    const double p = data::psnr(x, y);
    EXPECT_TRUE(std::isinf(p) && p > 0) << p;
    for (double v : data::psnr_per_channel(x, y)) EXPECT_TRUE(std::isinf(v) && v > 0) << v;
  }
}

TEST(Metrics, Symmetric) {
  const Tensor x = test::random_tensor({3, 23, 37}, 21, DType::F64, 0.0, 1.0);
  const Tensor y = test::random_tensor({3, 23, 37}, 22, DType::F64, 0.0, 1.0);
  EXPECT_NEAR(data::ssim(x, y), data::ssim(y, x), 1e-15);
  const std::vector<double> a = data::ssim_per_channel(x, y), b = data::ssim_per_channel(y, x);
  for (size_t c = 0; c < a.size(); ++c) EXPECT_NEAR(a[c], b[c], 1e-15);
  EXPECT_EQ(data::psnr(x, y), data::psnr(y, x));
  EXPECT_EQ(data::psnr_per_channel(x, y), data::psnr_per_channel(y, x));
  EXPECT_LT(data::ssim(x, y), 0.1);  // independent noise: nothing in common
}

// --- PSNR by hand ------------------------------------------------------------------------------------------------

TEST(Psnr, HandCheckedValues) {
  // Channel 0 differs by 0.1 at every pixel: MSE 0.01, PSNR 10 log10(1 / 0.01) = 20 dB. Channel 1 is identical.
  // Over the whole image MSE = 0.01 / 2 = 0.005: 10 log10(200) = 23.0103 dB.
  Tensor x = Tensor::zeros({2, 3, 4}, DType::F64);
  Tensor y = Tensor::zeros({2, 3, 4}, DType::F64);
  y.select(0, 0).fill_(0.1);
  EXPECT_NEAR(data::psnr(x, y), 23.010299956639813, 1e-12);
  const std::vector<double> pc = data::psnr_per_channel(x, y);
  ASSERT_EQ(pc.size(), 2u);
  EXPECT_NEAR(pc[0], 20.0, 1e-12);
  EXPECT_TRUE(std::isinf(pc[1]) && pc[1] > 0);
  // On a 0..255 scale the same image (differences of 25.5) with data_range 255 scores the same.
  Tensor y255 = Tensor::zeros({2, 3, 4}, DType::F64);
  y255.select(0, 0).fill_(25.5);
  EXPECT_NEAR(data::psnr(x, y255, 255.0), 23.010299956639813, 1e-12);
  // One pixel off by 0.5 among 4: MSE 0.0625, PSNR 10 log10(16) = 12.0412 dB (f32 input).
  const Tensor a = Tensor::from_vector({0.0, 0.25, 0.5, 1.0}, {1, 2, 2}, DType::F32);
  const Tensor b = Tensor::from_vector({0.5, 0.25, 0.5, 1.0}, {1, 2, 2}, DType::F32);
  EXPECT_NEAR(data::psnr(a, b), 12.041199826559248, 1e-12);
}

// --- errors a user can cause -------------------------------------------------------------------------------------

TEST(Metrics, BadInputsThrow) {
  const Tensor ok = test::random_tensor({3, 12, 12}, 1, DType::F32, 0.0, 1.0);
  const Tensor other = test::random_tensor({3, 12, 12}, 2, DType::F32, 0.0, 1.0);
  const Tensor grey2d = test::random_tensor({12, 12}, 3, DType::F32, 0.0, 1.0);
  const Tensor batch = test::random_tensor({1, 3, 12, 12}, 4, DType::F32, 0.0, 1.0);
  const Tensor wider = test::random_tensor({3, 12, 13}, 5, DType::F32, 0.0, 1.0);
  const Tensor fewer_channels = test::random_tensor({1, 12, 12}, 6, DType::F32, 0.0, 1.0);
  const std::vector<Tensor> wrong_dtype = {ok.to(DType::F16), ok.to(DType::U8), ok.to(DType::I32)};
  const Tensor empty = Tensor::zeros({3, 0, 12});

  struct Bad {
    const char* what;
    Tensor x, y;
  };
  std::vector<Bad> bad = {{"(H, W)", grey2d, grey2d},
                          {"(N, C, H, W)", batch, batch},
                          {"different widths", ok, wider},
                          {"different channel counts", ok, fewer_channels},
                          {"f32 against f64", ok, other.to(DType::F64)},
                          {"undefined", Tensor(), ok},
                          {"empty", empty, empty}};
  for (const Tensor& t : wrong_dtype) bad.push_back({dtype_name(t.dtype()), t, t});
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    EXPECT_THROW(data::ssim(b.x, b.y), Error);
    EXPECT_THROW(data::ssim_per_channel(b.x, b.y), Error);
    EXPECT_THROW(data::psnr(b.x, b.y), Error);
    EXPECT_THROW(data::psnr_per_channel(b.x, b.y), Error);
  }

  // Smaller than the 11-pixel window on either side, as skimage refuses; an explicit odd win_size <= the side works.
  const Tensor small = test::random_tensor({1, 7, 7}, 9, DType::F64, 0.0, 1.0);
  const Tensor narrow = test::random_tensor({3, 40, 10}, 10, DType::F64, 0.0, 1.0);
  EXPECT_THROW(data::ssim(small, small), Error);
  EXPECT_THROW(data::ssim(narrow, narrow), Error);
  data::SsimOptions win7;
  win7.win_size = 7;
  EXPECT_DOUBLE_EQ(data::ssim(small, small, win7), 1.0);
  EXPECT_NO_THROW(data::psnr(small, small));  // PSNR has no window

  // Invalid options.
  auto options = [](auto set) {
    data::SsimOptions o;
    set(o);
    return o;
  };
  const std::vector<data::SsimOptions> bad_options = {
      options([](data::SsimOptions& o) { o.data_range = 0.0; }),
      options([](data::SsimOptions& o) { o.data_range = -1.0; }),
      options([](data::SsimOptions& o) { o.data_range = std::numeric_limits<double>::quiet_NaN(); }),
      options([](data::SsimOptions& o) { o.sigma = 0.0; }),
      options([](data::SsimOptions& o) { o.truncate = -1.0; }),
      options([](data::SsimOptions& o) { o.win_size = 4; }),
      options([](data::SsimOptions& o) { o.win_size = -3; }),
      options([](data::SsimOptions& o) { o.k2 = -0.03; })};
  for (const data::SsimOptions& o : bad_options) EXPECT_THROW(data::ssim(ok, other, o), Error);
  EXPECT_THROW(data::psnr(ok, other, 0.0), Error);
  EXPECT_THROW(data::psnr_per_channel(ok, other, -255.0), Error);

  // The message names the problem and the fix.
  try {
    data::ssim(grey2d, grey2d);
    FAIL() << "expected fg::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(C, H, W)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fg
