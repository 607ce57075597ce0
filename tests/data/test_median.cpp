// The 3x3 median filter (data/median.h): against a brute-force median over a clamped window on random images of
// odd and tiny sizes and non-contiguous views, constant images unchanged, isolated specks removed, edges
// replicated, and the errors a caller can cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "data/median.h"
#include "tests/support/test_util.h"

namespace fg::data {
namespace {

float brute_median(const std::vector<float>& v, int64_t H, int64_t W, int64_t c, int64_t y, int64_t x) {
  std::vector<float> w;
  for (int64_t dy = -1; dy <= 1; ++dy)
    for (int64_t dx = -1; dx <= 1; ++dx) {
      const int64_t yy = std::clamp<int64_t>(y + dy, 0, H - 1), xx = std::clamp<int64_t>(x + dx, 0, W - 1);
      w.push_back(v[size_t((c * H + yy) * W + xx)]);
    }
  std::sort(w.begin(), w.end());
  return w[4];
}

TEST(Median3x3, MatchesBruteForceOnEverySize) {
  // The median is one of the input values, so the comparison is exact.
  for (const Shape& shape : {Shape{1, 1, 1}, Shape{3, 1, 5}, Shape{2, 4, 1}, Shape{3, 7, 9}, Shape{1, 2, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor img = test::random_tensor(shape, 1, DType::F32, 0.0, 1.0);
    const Tensor out = median_filter3x3(img);
    ASSERT_EQ(out.shape(), shape);
    const auto v = img.to_vector_f32(), o = out.to_vector_f32();
    for (int64_t c = 0; c < shape[0]; ++c)
      for (int64_t y = 0; y < shape[1]; ++y)
        for (int64_t x = 0; x < shape[2]; ++x)
          ASSERT_EQ(o[size_t((c * shape[1] + y) * shape[2] + x)], brute_median(v, shape[1], shape[2], c, y, x))
              << c << "," << y << "," << x;
  }
}

TEST(Median3x3, NonContiguousViewIsFilteredAsItsValues) {
  const Tensor big = test::random_tensor({3, 10, 12}, 2, DType::F32, 0.0, 1.0);
  const Tensor view = big.transpose(1, 2);  // (3, 12, 10), strided
  EXPECT_ALL_CLOSE(median_filter3x3(view.contiguous()), median_filter3x3(view), 0.0, 0.0);
}

TEST(Median3x3, RemovesIsolatedSpecksAndKeepsConstants) {
  Tensor img = Tensor::full({3, 8, 8}, 0.25);
  EXPECT_ALL_CLOSE(img, median_filter3x3(img), 0.0, 0.0);
  float* p = img.data<float>();
  p[3 * 8 + 4] = 1.0f;        // a one-pixel speck in channel 0
  p[64 + 0] = 0.0f;           // one in a corner of channel 1 (the replicated border)
  p[128 + 5 * 8 + 5] = 0.9f;  // a two-pixel speck in channel 2
  p[128 + 5 * 8 + 6] = 0.9f;
  EXPECT_ALL_CLOSE(Tensor::full({3, 8, 8}, 0.25), median_filter3x3(img), 0.0, 0.0);
}

TEST(Median3x3, BadImagesAreErrors) {
  EXPECT_NE(test::error_of([] { median_filter3x3(Tensor::zeros({4, 4})); }).find("(C, H, W)"), std::string::npos);
  EXPECT_NE(test::error_of([] {
              median_filter3x3(Tensor::zeros({1, 4, 4}, DType::F64));
            }).find("f32"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { median_filter3x3(Tensor()); }).find("undefined"), std::string::npos);
}

}  // namespace
}  // namespace fg::data
