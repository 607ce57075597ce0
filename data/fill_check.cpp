// The neutral-change check of data/fill_check.h.
#include "data/fill_check.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace fg::data {

double neutral_spread(const float* damaged, const float* filled, int64_t plane, const std::vector<int64_t>& pixels) {
  double total = 0.0;
  for (int64_t i : pixels)
    for (int64_t ch = 0; ch < 3; ++ch) total += double(damaged[ch * plane + i]) - double(filled[ch * plane + i]);
  const double v = total > 0.0 ? kNeutralLight : kNeutralDark;
  double weight = 0.0, weighted_spread = 0.0, sum_abs = 0.0;
  for (int64_t i : pixels) {
    double lo = INFINITY, hi = -INFINITY, largest = 0.0;
    for (int64_t ch = 0; ch < 3; ++ch) {
      const double r = double(damaged[ch * plane + i]) - double(filled[ch * plane + i]);
      double den = v - double(filled[ch * plane + i]);
      den += den >= 0.0 ? 1e-3 : -1e-3;  // a fill at the speck's own grey level: the estimate is then unbounded
      const double a = r / den;
      lo = std::min(lo, a);
      hi = std::max(hi, a);
      largest = std::max(largest, std::fabs(r));
      sum_abs += std::fabs(a);
    }
    weight += largest;
    weighted_spread += largest * (hi - lo);
  }
  if (!(weight > 0.0)) return 0.0;
  const double mean_abs = sum_abs / double(3 * pixels.size());
  return weighted_spread / weight / (mean_abs + 1e-3);
}

Tensor neutral_components(const Tensor& damaged, const Tensor& filled, const Tensor& hole, double max_spread) {
  auto is_rgb = [](const Tensor& t) {
    return t.defined() && t.dtype() == DType::F32 && t.device().is_cpu() && t.dim() == 3 && t.size(0) == 3;
  };
  FG_CHECK(is_rgb(damaged) && is_rgb(filled) && damaged.shape() == filled.shape(),
           "neutral_components: the damaged and filled images must be (3, H, W) f32 CPU tensors of one size, got "
               << (damaged.defined() ? shape_str(damaged.shape()) : "undefined") << " and "
               << (filled.defined() ? shape_str(filled.shape()) : "undefined"));
  const int64_t H = damaged.size(1), W = damaged.size(2), plane = H * W;
  FG_CHECK(hole.defined() && hole.dtype() == DType::F32 && hole.device().is_cpu() &&
               ((hole.dim() == 2 && hole.size(0) == H && hole.size(1) == W) ||
                (hole.dim() == 3 && hole.size(0) == 1 && hole.size(1) == H && hole.size(2) == W)),
           "neutral_components: the hole must be an (H, W) or (1, H, W) f32 CPU tensor of the image's size "
               << H << " x " << W << ", got " << (hole.defined() ? shape_str(hole.shape()) : "undefined"));
  FG_CHECK(max_spread >= 0.0, "neutral_components: max_spread must not be negative, got " << max_spread);
  const Tensor d = damaged.contiguous(), f = filled.contiguous(), h = hole.contiguous();
  const float* dp = d.data<float>();
  const float* fp = f.data<float>();
  const float* hp = h.data<float>();

  Tensor out = Tensor::zeros({1, H, W});
  float* o = out.data<float>();
  std::vector<uint8_t> done(static_cast<size_t>(plane));
  for (int64_t i = 0; i < plane; ++i) done[size_t(i)] = !(hp[i] > 0.5f);
  std::vector<int64_t> component, stack;
  for (int64_t start = 0; start < plane; ++start) {
    if (done[size_t(start)]) continue;
    component.clear();
    stack.assign(1, start);
    done[size_t(start)] = 1;
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      component.push_back(i);
      const int64_t y = i / W, x = i % W;
      for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min(y + 1, H - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - 1, 0); xx <= std::min(x + 1, W - 1); ++xx) {
          const int64_t j = yy * W + xx;
          if (done[size_t(j)]) continue;
          done[size_t(j)] = 1;
          stack.push_back(j);
        }
    }
    if (neutral_spread(dp, fp, plane, component) <= max_spread)
      for (int64_t i : component) o[i] = 1.0f;
  }
  return out;
}

}  // namespace fg::data
