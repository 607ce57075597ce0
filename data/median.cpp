// The 3x3 median filter of data/median.h.
#include "data/median.h"

#include <algorithm>
#include <array>

#include "tensor/error.h"

namespace fg::data {

Tensor median_filter3x3(const Tensor& image) {
  FG_CHECK(image.defined() && image.dim() == 3 && image.dtype() == DType::F32 && image.device().is_cpu() &&
               image.size(0) >= 1 && image.size(1) >= 1 && image.size(2) >= 1,
           "median_filter3x3: expected a non-empty (C, H, W) f32 CPU image, got "
               << (image.defined()
                       ? shape_str(image.shape()) + " " + dtype_name(image.dtype()) + " on " + image.device().str()
                       : std::string("an undefined tensor")));
  const Tensor in = image.contiguous();
  const int64_t C = in.size(0), H = in.size(1), W = in.size(2);
  Tensor out = Tensor::empty({C, H, W});
  const float* src = in.data<float>();
  float* dst = out.data<float>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y) {
      const float* plane = src + c * H * W;
      const int64_t rows[3] = {std::max<int64_t>(y - 1, 0), y, std::min<int64_t>(y + 1, H - 1)};
      for (int64_t x = 0; x < W; ++x) {
        const int64_t cols[3] = {std::max<int64_t>(x - 1, 0), x, std::min<int64_t>(x + 1, W - 1)};
        std::array<float, 9> v;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) v[size_t(3 * i + j)] = plane[rows[i] * W + cols[j]];
        std::nth_element(v.begin(), v.begin() + 4, v.end());
        dst[(c * H + y) * W + x] = v[4];
      }
    }
  return out;
}

}  // namespace fg::data
