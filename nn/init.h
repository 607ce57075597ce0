// Weight initialisation, as torch.nn.init defines it, drawing from a fg::Generator (Philox) so that a seed gives
// the same weights on every machine and backend. All functions fill the tensor's elements in place (the tensor
// handle is const: its elements are not) in logical row-major order, whatever its layout.
#pragma once
#include <cstdint>

#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Sigmoid, Tanh, Relu, LeakyRelu };

struct Fans {
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};
// PyTorch's _calculate_fan_in_and_fan_out: for a weight (out, in, *kernel), fan_in = in * prod(kernel) and
// fan_out = out * prod(kernel). Needs at least 2 dims.
Fans calculate_fans(const Shape& shape);
// torch.nn.init.calculate_gain: linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + slope^2)).
double calculate_gain(Nonlinearity nonlinearity, double negative_slope = 0.01);

void uniform_(const Tensor& t, Generator& gen, double lo = 0.0, double hi = 1.0);
void normal_(const Tensor& t, Generator& gen, double mean = 0.0, double stddev = 1.0);
void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);

// He initialisation. std = gain / sqrt(fan) with gain = calculate_gain(nonlinearity, a);
// kaiming_normal_ draws N(0, std^2), kaiming_uniform_ draws U(-sqrt(3) std, sqrt(3) std).
void kaiming_normal_(const Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::FanIn,
                     Nonlinearity nonlinearity = Nonlinearity::LeakyRelu);
void kaiming_uniform_(const Tensor& t, Generator& gen, double a = 0.0, FanMode mode = FanMode::FanIn,
                      Nonlinearity nonlinearity = Nonlinearity::LeakyRelu);
// The standard deviation kaiming_normal_ uses for this shape.
double kaiming_std(const Shape& shape, double a = 0.0, FanMode mode = FanMode::FanIn,
                   Nonlinearity nonlinearity = Nonlinearity::LeakyRelu);

// ICNR (Aitken et al. 2017; fastai v1's icnr) for a conv weight w: (n, c_in, kh, kw) that feeds PixelShuffle(scale).
// Draws K: (n / scale^2, c_in, kh, kw) with kaiming_normal_ (defaults above) and sets w[scale^2 * k + s] = K[k] for
// s in [0, scale^2): the scale^2 output channels that PixelShuffle gathers into one block start identical, so the
// upsampled output starts free of checkerboard artefacts. n must be a multiple of scale^2.
void icnr_(const Tensor& w, Generator& gen, int64_t scale = 2);

}  // namespace fg::nn::init
