// The diffusion inpainting of data/inpaint.h.
#include "data/inpaint.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/error.h"

namespace fg::data {

namespace {

// The mask as a contiguous (H, W) f32 tensor, checked against the expected size (H or W < 0: any).
Tensor mask_plane(const Tensor& mask, int64_t H, int64_t W, const char* op) {
  FG_CHECK(mask.defined() && mask.dtype() == DType::F32 && mask.device().is_cpu() &&
               (mask.dim() == 2 || (mask.dim() == 3 && mask.size(0) == 1)),
           op << ": the mask must be an (H, W) or (1, H, W) f32 CPU tensor, got "
              << (mask.defined() ? shape_str(mask.shape()) + " " + dtype_name(mask.dtype())
                                 : std::string("an undefined tensor")));
  const Tensor m = mask.dim() == 3 ? mask.select(0, 0) : mask;
  FG_CHECK(H < 0 || (m.size(0) == H && m.size(1) == W),
           op << ": the mask is " << m.size(0) << " x " << m.size(1) << " but the image is " << H << " x " << W);
  return m.contiguous();
}

}  // namespace

Tensor inpaint_diffusion(const Tensor& image, const Tensor& mask, const InpaintOptions& options) {
  FG_CHECK(image.defined() && image.dim() == 3 && image.dtype() == DType::F32 && image.device().is_cpu() &&
               image.size(0) >= 1 && image.size(1) >= 1 && image.size(2) >= 1,
           "inpaint_diffusion: expected a non-empty (C, H, W) f32 CPU image, got "
               << (image.defined() ? shape_str(image.shape()) + " " + dtype_name(image.dtype())
                                   : std::string("an undefined tensor")));
  FG_CHECK(options.max_sweeps >= 0 && options.tolerance >= 0,
           "inpaint_diffusion: max_sweeps and tolerance must not be negative");
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  const Tensor m = mask_plane(mask, H, W, "inpaint_diffusion");
  Tensor out = image.contiguous().clone();
  const float* mp = m.data<float>();

  std::vector<int64_t> hole;  // pixel indices y * W + x to fill
  std::vector<uint8_t> known(size_t(H * W));
  for (int64_t i = 0; i < H * W; ++i) {
    known[size_t(i)] = !(mp[i] > 0.5f);
    if (!known[size_t(i)]) hole.push_back(i);
  }
  if (hole.empty() || int64_t(hole.size()) == H * W) return out;

  // 1. Onion peel, in rings: a ring's values are computed from what was known before it, then marked known.
  std::vector<int64_t> pending = hole, ring, rest;
  std::vector<uint8_t> filled = known;
  std::vector<std::vector<double>> values(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    values[size_t(c)].resize(size_t(H * W));
    const float* p = out.data<float>() + c * H * W;
    for (int64_t i = 0; i < H * W; ++i) values[size_t(c)][size_t(i)] = double(p[i]);
  }
  std::vector<double> ring_values, sums(static_cast<size_t>(C));
  while (!pending.empty()) {
    ring.clear();
    rest.clear();
    ring_values.clear();
    for (int64_t i : pending) {
      const int64_t y = i / W, x = i % W;
      int n = 0;
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t yy = std::max<int64_t>(y - 1, 0); yy <= std::min(y + 1, H - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - 1, 0); xx <= std::min(x + 1, W - 1); ++xx) {
          const int64_t j = yy * W + xx;
          if (!filled[size_t(j)]) continue;
          ++n;
          for (int64_t c = 0; c < C; ++c) sums[size_t(c)] += values[size_t(c)][size_t(j)];
        }
      if (n == 0) {
        rest.push_back(i);
        continue;
      }
      ring.push_back(i);
      for (int64_t c = 0; c < C; ++c) ring_values.push_back(sums[size_t(c)] / n);
    }
    FG_ASSERT(!ring.empty(), "inpaint_diffusion: a hole pixel unreachable from the known ones");
    for (size_t k = 0; k < ring.size(); ++k) {
      filled[size_t(ring[k])] = 1;
      for (int64_t c = 0; c < C; ++c) values[size_t(c)][size_t(ring[k])] = ring_values[k * size_t(C) + size_t(c)];
    }
    pending.swap(rest);
  }

  // 2. Gauss-Seidel on the 4-neighbour Laplacian over the hole pixels (known pixels are the boundary values).
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double>& v = values[size_t(c)];
    for (int64_t sweep = 0; sweep < options.max_sweeps; ++sweep) {
      double largest = 0.0;
      for (int64_t i : hole) {
        const int64_t y = i / W, x = i % W;
        double sum = 0.0;
        int n = 0;
        if (y > 0) sum += v[size_t(i - W)], ++n;
        if (y + 1 < H) sum += v[size_t(i + W)], ++n;
        if (x > 0) sum += v[size_t(i - 1)], ++n;
        if (x + 1 < W) sum += v[size_t(i + 1)], ++n;
        if (n == 0) continue;  // a 1 x 1 image (then it is all hole, handled above)
        const double next = sum / n;
        largest = std::max(largest, std::fabs(next - v[size_t(i)]));
        v[size_t(i)] = next;
      }
      if (largest <= options.tolerance) break;
    }
    float* p = out.data<float>() + c * H * W;
    for (int64_t i : hole) p[i] = float(v[size_t(i)]);
  }
  return out;
}

Tensor hole_from_mask(const Tensor& mask, double threshold, int64_t dilate) {
  FG_CHECK(dilate >= 0, "hole_from_mask: the dilation must not be negative, got " << dilate);
  const Tensor m = mask_plane(mask, -1, -1, "hole_from_mask");
  const int64_t H = m.size(0), W = m.size(1);
  const float* mp = m.data<float>();
  Tensor out = Tensor::zeros({1, H, W});
  float* o = out.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      if (!(double(mp[y * W + x]) > threshold)) continue;
      for (int64_t yy = std::max<int64_t>(y - dilate, 0); yy <= std::min(y + dilate, H - 1); ++yy)
        for (int64_t xx = std::max<int64_t>(x - dilate, 0); xx <= std::min(x + dilate, W - 1); ++xx)
          o[yy * W + xx] = 1.0f;
    }
  return out;
}

}  // namespace fg::data
