// `filmgrad metrics A B` as a user runs it: an image against itself (PSNR inf, SSIM 1), a known pair matching
// data::psnr / data::ssim computed in this process (the JSON prints round-trip doubles), grey against RGB and
// alpha dropped, images too small for SSIM, and bad input refused with one line and the right exit status.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/image_io.h"
#include "data/metrics.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;
using fg::test::run_filmgrad;

class Metrics : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fg_cli_metrics_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const fg::Tensor& chw) const {
    const std::string p = (dir_ / name).string();
    fg::data::write_image(p, fg::data::make_image(chw));
    return p;
  }
  static fg::Tensor image(int64_t C, int64_t H, int64_t W, uint64_t seed) {
    return fg::test::random_tensor({C, H, W}, seed, fg::DType::F32, 0.0, 1.0);
  }
  // The value after "\"key\": " in a JSON line (a number, or the string "inf").
  static double json_number(const std::string& out, const std::string& key) {
    const std::string k = "\"" + key + "\": ";
    const size_t at = out.find(k);
    if (at == std::string::npos) return std::nan("");
    const std::string rest = out.substr(at + k.size());
    if (rest.rfind("\"inf\"", 0) == 0) return INFINITY;
    return std::strtod(rest.c_str(), nullptr);
  }
  static void expect_one_line_error(const fg::test::CommandResult& r, int status, const std::string& part) {
    EXPECT_EQ(r.status, status) << r.out;
    EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
    EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(part), std::string::npos) << r.out;
  }

  fs::path dir_;
};

TEST_F(Metrics, AnImageAgainstItself) {
  const std::string a = write("a.png", image(3, 24, 20, 1));
  fg::test::CommandResult r = run_filmgrad("metrics " + a + " " + a);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("PSNR: inf dB (R inf, G inf, B inf)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SSIM: 1.000000 (R 1.000000, G 1.000000, B 1.000000)"), std::string::npos) << r.out;
  r = run_filmgrad("metrics " + a + " " + a + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
  EXPECT_TRUE(std::isinf(json_number(r.out, "psnr"))) << r.out;
  EXPECT_EQ(json_number(r.out, "ssim"), 1.0) << r.out;
}

TEST_F(Metrics, AKnownPairMatchesTheLibrary) {
  const fg::Tensor x = image(3, 30, 26, 2);
  fg::Tensor y = x.clone();
  fg::Tensor noise = fg::test::random_tensor({3, 30, 26}, 3, fg::DType::F32, -0.1, 0.1);
  std::vector<float> yv = y.to_vector_f32(), nv = noise.to_vector_f32();
  for (size_t i = 0; i < yv.size(); ++i) yv[i] = std::min(1.0f, std::max(0.0f, yv[i] + nv[i]));
  const std::string a = write("a.png", x), b = write("b.png", fg::Tensor::from_vector_f32(yv, {3, 30, 26}));
  // The reference: the library on the pixels as the files hold them (8-bit levels).
  const fg::Tensor pa = fg::data::read_image(a).pixels, pb = fg::data::read_image(b).pixels;
  const double psnr = fg::data::psnr(pa, pb), ssim = fg::data::ssim(pa, pb);
  const std::vector<double> ssim_c = fg::data::ssim_per_channel(pa, pb);
  ASSERT_TRUE(std::isfinite(psnr));

  const fg::test::CommandResult r = run_filmgrad("metrics " + a + " " + b + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(json_number(r.out, "psnr"), psnr) << r.out;
  EXPECT_EQ(json_number(r.out, "ssim"), ssim) << r.out;
  const size_t at = r.out.find("\"ssim_per_channel\": [");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_EQ(std::strtod(r.out.c_str() + at + 21, nullptr), ssim_c[0]) << r.out;
  EXPECT_NE(r.out.find("\"width\": 26, \"height\": 30"), std::string::npos) << r.out;

  const fg::test::CommandResult text = run_filmgrad("metrics " + a + " " + b);
  ASSERT_EQ(text.status, 0) << text.out;
  char line[64];
  std::snprintf(line, sizeof line, "PSNR: %.4f dB", psnr);
  EXPECT_NE(text.out.find(line), std::string::npos) << text.out;
  std::snprintf(line, sizeof line, "SSIM: %.6f", ssim);
  EXPECT_NE(text.out.find(line), std::string::npos) << text.out;
}

TEST_F(Metrics, GreyAgainstRgbAndAlphaDropped) {
  const fg::Tensor g = image(1, 16, 16, 4);
  const std::string grey = write("g.png", g);
  const std::string rgb = write("rgb.png", g.expand({3, 16, 16}).contiguous());
  fg::test::CommandResult r = run_filmgrad("metrics " + grey + " " + rgb);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("PSNR: inf dB (R inf, G inf, B inf)"), std::string::npos) << r.out;

  // RGBA with a random alpha against its colour: alpha is dropped, not composited.
  const fg::Tensor c = image(3, 16, 16, 5);
  fg::Tensor rgba = fg::Tensor::empty({4, 16, 16});
  rgba.slice(0, 0, 3).copy_(c);
  rgba.slice(0, 3, 4).copy_(image(1, 16, 16, 6));
  r = run_filmgrad("metrics " + write("rgba.png", rgba) + " " + write("c.png", c));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("PSNR: inf dB"), std::string::npos) << r.out;

  // Grey against grey: one channel.
  r = run_filmgrad("metrics " + grey + " " + write("g2.png", image(1, 16, 16, 7)));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("(grey "), std::string::npos) << r.out;
}

TEST_F(Metrics, TinyImagesGetPsnrOnly) {
  const std::string a = write("a.png", image(3, 8, 9, 8)), b = write("b.png", image(3, 8, 9, 9));
  fg::test::CommandResult r = run_filmgrad("metrics " + a + " " + b);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("SSIM: n/a"), std::string::npos) << r.out;
  r = run_filmgrad("metrics " + a + " " + b + " --json");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("\"ssim\": null"), std::string::npos) << r.out;
}

TEST_F(Metrics, BadInputIsOneLine) {
  const std::string a = write("a.png", image(3, 16, 16, 10)), small = write("s.png", image(3, 16, 15, 11));
  expect_one_line_error(run_filmgrad("metrics " + a + " " + small), 1, "differ in size");
  expect_one_line_error(run_filmgrad("metrics " + a), 2, "two images");
  expect_one_line_error(run_filmgrad("metrics " + a + " " + a + " " + a), 2, "two images");
  expect_one_line_error(run_filmgrad("metrics " + a + " " + (dir_ / "nope.png").string()), 2, "does not exist");
  expect_one_line_error(run_filmgrad("metrics " + a + " " + a + " --ssim-window 7"), 2, "--ssim-window");
  std::ofstream(dir_ / "bad.png") << "garbage";
  expect_one_line_error(run_filmgrad("metrics " + a + " " + (dir_ / "bad.png").string()), 1, "bad.png");
  expect_one_line_error(run_filmgrad("metrics " + a + " " + dir_.string()), 2, "folder");
  EXPECT_EQ(run_filmgrad("metrics --help").status, 0);
}

}  // namespace
