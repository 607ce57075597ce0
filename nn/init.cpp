// Weight initialisation: see nn/init.h. The formulas are torch.nn.init's; only the random stream differs (Philox).
#include "nn/init.h"

#include <cmath>

#include "tensor/error.h"

namespace fg::nn::init {

Fans calculate_fans(const Shape& shape) {
  FG_CHECK(shape.size() >= 2, "init: fan in and fan out need a tensor with at least 2 dims, got shape "
                                  << shape_str(shape));
  int64_t receptive = 1;
  for (size_t d = 2; d < shape.size(); ++d) receptive *= shape[d];
  return {shape[1] * receptive, shape[0] * receptive};
}

double calculate_gain(Nonlinearity nonlinearity, double negative_slope) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Sigmoid:
      return 1.0;
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::Relu:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu:
      return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
  }
  FG_ASSERT(false, "unknown nonlinearity");
}

void uniform_(const Tensor& t, Generator& gen, double lo, double hi) {
  Tensor handle = t;
  fg::uniform_(handle, gen, lo, hi);
}

void normal_(const Tensor& t, Generator& gen, double mean, double stddev) {
  Tensor handle = t;
  fg::normal_(handle, gen, mean, stddev);
}

void constant_(const Tensor& t, double value) {
  Tensor handle = t;
  handle.fill_(value);
}

void zeros_(const Tensor& t) { constant_(t, 0.0); }
void ones_(const Tensor& t) { constant_(t, 1.0); }

double kaiming_std(const Shape& shape, double a, FanMode mode, Nonlinearity nonlinearity) {
  const Fans fans = calculate_fans(shape);
  const int64_t fan = mode == FanMode::FanIn ? fans.fan_in : fans.fan_out;
  FG_CHECK(fan > 0, "kaiming init: fan is 0 for shape " << shape_str(shape) << "; the tensor has an empty dim");
  return calculate_gain(nonlinearity, a) / std::sqrt(double(fan));
}

void kaiming_normal_(const Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nonlinearity) {
  normal_(t, gen, 0.0, kaiming_std(t.shape(), a, mode, nonlinearity));
}

void kaiming_uniform_(const Tensor& t, Generator& gen, double a, FanMode mode, Nonlinearity nonlinearity) {
  const double bound = std::sqrt(3.0) * kaiming_std(t.shape(), a, mode, nonlinearity);
  uniform_(t, gen, -bound, bound);
}

void icnr_(const Tensor& w, Generator& gen, int64_t scale) {
  FG_CHECK(w.dim() >= 2, "icnr: weight must be (n, c_in, kh, kw), got " << shape_str(w.shape()));
  FG_CHECK(scale >= 1, "icnr: scale must be at least 1, got " << scale);
  const int64_t group = scale * scale;
  const int64_t n = w.size(0);
  FG_CHECK(n % group == 0, "icnr: the weight's " << n << " output channels are not a multiple of scale^2 = "
                                                 << group << "; PixelShuffle(" << scale << ") needs that");
  Shape k_shape = w.shape();
  k_shape[0] = n / group;
  Tensor k = Tensor::empty(k_shape, w.dtype());
  kaiming_normal_(k, gen);
  Tensor k_dev = k.to(w.device());
  for (int64_t i = 0; i < n; ++i) w.select(0, i).copy_(k_dev.select(0, i / group));
}

}  // namespace fg::nn::init
