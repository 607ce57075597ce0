// The layers networks are built from. Each is a Module with PyTorch's parameter and buffer names and PyTorch's
// default initialisation (noted where fastai's differs), drawn from a fg::Generator passed to the constructor so
// that a seed fixes every weight. Forwards call the differentiable ops in autograd/ops.h.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "nn/module.h"
#include "nn/spectral_norm.h"
#include "tensor/philox.h"

namespace fg::nn {

// A layer with a "weight" (and optional "bias") that can be spectrally normalised like
// torch.nn.utils.spectral_norm(layer).
class WeightLayer : public Module {
 public:
  using Module::Module;
  // The trained weight tensor: "weight", or "weight_orig" once spectral norm is on.
  Variable weight() const;
  Variable bias() const { return bias_; }  // undefined when the layer has no bias
  // The weight the forward uses: weight(), or weight_orig / sigma under spectral norm, which runs its power
  // iteration first when this module is training.
  Variable effective_weight();
  // Turns spectral normalisation on (see nn/spectral_norm.h): "weight" becomes "weight_orig", "weight_u",
  // "weight_v". u and v are drawn from gen.
  void use_spectral_norm(Generator& gen, int64_t power_iterations = 1, double eps = 1e-12);
  const SpectralNorm* spectral_norm() const { return spectral_norm_.get(); }
  // Inference with weights stored in f16 (models/inference.h): converts "weight" and "bias" to f16 in place and
  // returns the bytes saved. Layers under spectral norm keep f32 (their weight is divided by sigma every forward,
  // and they are a small share of any network here); they return 0. Throws fg::Error, changing nothing, when a
  // value is beyond f16's range (65504). The forward then casts them back to the input's dtype, one layer at a time.
  int64_t store_f16();
  // Whether store_f16() would succeed: every value of the weight and bias within f16's range (or spectral norm on).
  bool fits_f16() const;
  // What the forward uses, in `dtype` (the input's): effective_weight() and bias() as stored, or cast from f16.
  Variable weight_as(DType dtype);
  Variable bias_as(DType dtype) const;

 protected:
  Variable weight_;
  Variable bias_;
  std::unique_ptr<SpectralNorm> spectral_norm_;
};

// Conv2d(in, out, kernel, stride, padding, dilation, bias): weight (out, in, k, k), bias (out). PyTorch's default
// init: weight kaiming_uniform_(a = sqrt(5)), i.e. U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in)).
class Conv2d : public WeightLayer {
 public:
  Conv2d(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, bool bias = true);
  Variable forward(const Variable& x) override;  // x: (N, in, H, W) -> (N, out, OH, OW)
  std::string extra_repr() const override;
  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }
  int64_t kernel_size() const { return kernel_size_; }
  const Conv2dParams& params() const { return params_; }
  // Folds an eval-mode BatchNorm2d that reads this convolution's output into its weight and bias (adding a bias
  // when there is none): w' = w s, b' = (b - mean) s + beta per output channel, s = gamma / sqrt(var + eps),
  // computed in f64 and stored in the weight's dtype. This conv then computes bn(conv(x)); the BatchNorm is the
  // caller's to remove. Throws fg::Error for a channel-count mismatch or a spectrally normalised weight.
  void fold_batch_norm(const class BatchNorm2d& bn);

 private:
  int64_t in_channels_, out_channels_, kernel_size_;
  Conv2dParams params_;
};

// Conv1d: weight (out, in, k), bias (out); the same default init as Conv2d.
class Conv1d : public WeightLayer {
 public:
  Conv1d(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, bool bias = true);
  Variable forward(const Variable& x) override;  // x: (N, in, L) -> (N, out, OL)
  std::string extra_repr() const override;

 private:
  int64_t in_channels_, out_channels_, kernel_size_, stride_, padding_, dilation_;
};

// Linear: weight (out, in), bias (out); the same default init as Conv2d.
class Linear : public WeightLayer {
 public:
  Linear(Generator& gen, int64_t in_features, int64_t out_features, bool bias = true);
  Variable forward(const Variable& x) override;  // x: (..., in) -> (..., out)
  std::string extra_repr() const override;

 private:
  int64_t in_features_, out_features_;
};

// BatchNorm2d: weight (ones) and bias (zeros) when affine; buffers running_mean (zeros), running_var (ones) and
// num_batches_tracked (i64, shape (), incremented by every training forward). Training normalises with the batch
// statistics and updates the running ones (momentum, unbiased variance); eval uses the running statistics.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Variable forward(const Variable& x) override;  // x: (N, C, H, W)
  std::string extra_repr() const override;
  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  // The eval-mode normalisation as y = x * scale + shift per channel: scale = gamma / sqrt(running_var + eps),
  // shift = beta - running_mean * scale. Both (C), f64, on the CPU.
  std::pair<Tensor, Tensor> eval_scale_shift() const;
  Variable weight() const { return weight_; }
  Variable bias() const { return bias_; }
  Tensor running_mean() const { return running_mean_.data(); }
  Tensor running_var() const { return running_var_.data(); }
  int64_t num_batches_tracked() const;
  // Synchronised statistics (dist/ddp.h): with a function set, training normalises with the statistics of the
  // batch across every process, which the function sums (autograd/ops.h, sync_batch_norm). Empty: this batch's.
  void set_stats_all_reduce(std::function<void(std::vector<double>&)> all_reduce_sum) {
    stats_all_reduce_ = std::move(all_reduce_sum);
  }

 private:
  int64_t num_features_;
  double eps_, momentum_;
  bool affine_;
  std::function<void(std::vector<double>&)> stats_all_reduce_;
  Variable weight_, bias_;
  Variable running_mean_, running_var_, num_batches_tracked_;
};

// An eval-mode BatchNorm2d with its statistics and affine pre-combined: y = x * scale + shift per channel, buffers
// "scale" and "shift" (C). What models/inference.h puts in the place of a BatchNorm that no convolution precedes
// directly (one that reads a ReLU's output), where it cannot be folded into a weight. Never trained.
class ChannelAffine : public Module {
 public:
  explicit ChannelAffine(const BatchNorm2d& bn);  // in bn's dtype and on its device
  Variable forward(const Variable& x) override;   // x: (N, C, H, W)
  std::string extra_repr() const override;
  Tensor scale() const { return scale_.data(); }
  Tensor shift() const { return shift_.data(); }

 private:
  int64_t num_features_;
  Variable scale_, shift_;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Variable forward(const Variable& x) override { return x; }
};

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Variable forward(const Variable& x) override { return relu(x); }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : Module("LeakyReLU"), negative_slope_(negative_slope) {}
  Variable forward(const Variable& x) override { return leaky_relu(x, negative_slope_); }
  std::string extra_repr() const override;

 private:
  double negative_slope_;
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Variable forward(const Variable& x) override { return sigmoid(x); }
};

class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Variable forward(const Variable& x) override { return tanh(x); }
};

// fastai's SigmoidRange: sigmoid(x) * (hi - lo) + lo.
class SigmoidRange : public Module {
 public:
  SigmoidRange(double lo, double hi);
  Variable forward(const Variable& x) override { return sigmoid_range(x, lo_, hi_); }
  std::string extra_repr() const override;

 private:
  double lo_, hi_;
};

// stride 0 means stride = kernel_size (PyTorch's default).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0);
  Variable forward(const Variable& x) override { return max_pool2d(x, kernel_, stride_, padding_); }
  std::string extra_repr() const override;

 private:
  int64_t kernel_, stride_, padding_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true);
  Variable forward(const Variable& x) override;
  std::string extra_repr() const override;

 private:
  int64_t kernel_, stride_, padding_;
  bool count_include_pad_;
};

// Padding order (left, right, top, bottom), as PyTorch's padding tuple.
class ReplicationPad2d : public Module {
 public:
  ReplicationPad2d(int64_t left, int64_t right, int64_t top, int64_t bottom);
  explicit ReplicationPad2d(int64_t all) : ReplicationPad2d(all, all, all, all) {}
  Variable forward(const Variable& x) override { return replication_pad2d(x, left_, right_, top_, bottom_); }
  std::string extra_repr() const override;

 private:
  int64_t left_, right_, top_, bottom_;
};

class ZeroPad2d : public Module {
 public:
  ZeroPad2d(int64_t left, int64_t right, int64_t top, int64_t bottom);
  explicit ZeroPad2d(int64_t all) : ZeroPad2d(all, all, all, all) {}
  Variable forward(const Variable& x) override { return zero_pad2d(x, left_, right_, top_, bottom_); }
  std::string extra_repr() const override;

 private:
  int64_t left_, right_, top_, bottom_;
};

class PixelShuffle : public Module {
 public:
  explicit PixelShuffle(int64_t upscale_factor);
  Variable forward(const Variable& x) override { return pixel_shuffle(x, factor_); }
  std::string extra_repr() const override;

 private:
  int64_t factor_;
};

// nn.Upsample(mode='nearest') with an integer scale factor (out = in * scale) or a fixed output size.
class UpsampleNearest : public Module {
 public:
  explicit UpsampleNearest(int64_t scale_factor);
  static std::shared_ptr<UpsampleNearest> with_size(int64_t out_h, int64_t out_w);
  Variable forward(const Variable& x) override;  // x: (N, C, H, W)
  std::string extra_repr() const override;

 private:
  UpsampleNearest(int64_t scale, int64_t out_h, int64_t out_w);
  int64_t scale_, out_h_, out_w_;  // scale_ 0: fixed size
};

// Dropout and Dropout2d own a Generator (so their masks are reproducible and independent of other layers). Build
// them with an explicit seed, or with a seed drawn from a parent generator (as a model's constructor does).
class Dropout : public Module {
 public:
  Dropout(double p, uint64_t seed);
  Dropout(double p, Generator& seed_source);
  Variable forward(const Variable& x) override { return dropout(x, p_, is_training(), gen_); }
  std::string extra_repr() const override;
  Generator& generator() { return gen_; }

 private:
  double p_;
  Generator gen_;
};

class Dropout2d : public Module {
 public:
  Dropout2d(double p, uint64_t seed);
  Dropout2d(double p, Generator& seed_source);
  Variable forward(const Variable& x) override { return dropout2d(x, p_, is_training(), gen_); }
  std::string extra_repr() const override;
  Generator& generator() { return gen_; }

 private:
  double p_;
  Generator gen_;
};

// Draws a 64-bit seed from gen (for child generators).
uint64_t derive_seed(Generator& gen);

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : Module("Flatten"), start_dim_(start_dim), end_dim_(end_dim) {}
  Variable forward(const Variable& x) override { return flatten(x, start_dim_, end_dim_); }
  std::string extra_repr() const override;

 private:
  int64_t start_dim_, end_dim_;
};

// Children named "0", "1", ... in order, as nn.Sequential names them; forward chains them.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return named_children().size(); }
  std::shared_ptr<Module> operator[](size_t i) const;
  // The i-th child as a concrete type; throws fg::Error when it is something else.
  template <typename M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    FG_CHECK(m != nullptr, "Sequential: child " << i << " is a " << (*this)[i]->type_name()
                                                << ", not the requested type");
    return m;
  }
  Variable forward(const Variable& x) override;
};

// fastai v1's SelfAttention (SAGAN): children query, key (Conv1d C -> C/8, kernel 1, no bias) and value (Conv1d
// C -> C), a parameter gamma (1) starting at 0. Convolution weights use kaiming_normal_ (fastai's conv1d) and,
// with spectral_norm (fastai's default), are spectrally normalised: query.weight_orig, query.weight_u,
// query.weight_v, ... One power iteration per training forward; none in eval.
class SelfAttention : public Module {
 public:
  SelfAttention(Generator& gen, int64_t channels, bool spectral_norm = true);
  Variable forward(const Variable& x) override;  // x: (B, C, H, W) -> (B, C, H, W)
  std::shared_ptr<Conv1d> query() const { return query_; }
  std::shared_ptr<Conv1d> key() const { return key_; }
  std::shared_ptr<Conv1d> value() const { return value_; }
  Variable gamma() const { return gamma_; }

 private:
  int64_t channels_;
  Variable gamma_;
  std::shared_ptr<Conv1d> query_, key_, value_;
};

}  // namespace fg::nn
