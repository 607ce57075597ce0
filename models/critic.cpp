// The NoGAN critic: see models/critic.h.
#include "models/critic.h"

#include "autograd/ops.h"
#include "nn/init.h"
#include "tensor/error.h"

namespace fg::models {

namespace {

// ceil(size / 2) five times: the body's output size (conv1, maxpool and layers 2-4 each halve, rounding up).
int64_t body_output_size(int64_t size) {
  for (int i = 0; i < 5; ++i) size = (size + 1) / 2;
  return size;
}

// fastai v1's conv_layer(ni, nf, ks=4, stride=1, padding, bias, norm_type=NormType.Spectral, leaky=0.2[,
// use_activ=False][, self_attention=True]): Sequential(conv, [LeakyReLU], [SelfAttention]).
std::shared_ptr<nn::Sequential> conv_block(Generator& gen, int64_t in, int64_t out, int64_t padding, bool bias,
                                           bool activation, bool self_attention) {
  auto conv = std::make_shared<nn::Conv2d>(gen, in, out, 4, 1, padding, 1, bias);
  nn::init::kaiming_normal_(conv->weight().data(), gen);
  if (bias) nn::init::zeros_(conv->bias().data());
  conv->use_spectral_norm(gen);
  auto block = std::make_shared<nn::Sequential>();
  block->push_back(conv);
  if (activation) block->push_back(std::make_shared<nn::LeakyReLU>(0.2));
  if (self_attention) block->push_back(std::make_shared<nn::SelfAttention>(gen, out, /*spectral_norm=*/true));
  return block;
}

}  // namespace

int64_t NoGanCritic::patches(int64_t height, int64_t width) {
  const int64_t ph = body_output_size(height) - 6, pw = body_output_size(width) - 6;
  return (ph > 0 && pw > 0) ? ph * pw : 0;
}

NoGanCritic::NoGanCritic(Generator& gen, double width, double dropout) : Module("NoGanCritic"), width_(width) {
  const int64_t c512 = scaled_channels(512, width, "NoGanCritic");
  const int64_t c1024 = scaled_channels(1024, width, "NoGanCritic");
  const int64_t c2048 = scaled_channels(2048, width, "NoGanCritic");
  const int64_t c4096 = scaled_channels(4096, width, "NoGanCritic");
  FG_CHECK(c1024 >= 8, "NoGanCritic: width " << width << " gives the self-attention " << c1024
                                             << " channels; it needs at least 8 (use a width of at least 1/128)");
  FG_CHECK(dropout >= 0.0 && dropout < 1.0, "NoGanCritic: dropout must be in [0, 1), got " << dropout);

  body_ = register_module("body", std::make_shared<ResNet34>(gen, width, 0));
  head_ = register_module("head", std::make_shared<nn::Sequential>());
  head_->push_back(std::make_shared<nn::Dropout2d>(dropout, gen));
  head_->push_back(conv_block(gen, c512, c1024, 1, true, true, true));
  head_->push_back(std::make_shared<nn::Dropout2d>(dropout, gen));
  head_->push_back(conv_block(gen, c1024, c2048, 1, true, true, false));
  head_->push_back(std::make_shared<nn::Dropout2d>(dropout, gen));
  head_->push_back(conv_block(gen, c2048, c4096, 1, true, true, false));
  head_->push_back(conv_block(gen, c4096, 1, 0, false, false, false));
  head_->push_back(std::make_shared<nn::Flatten>(1));
  FG_ASSERT(body_->stage_channels(3) == c512, "NoGanCritic: body and head disagree on the body's channels");
}

Variable NoGanCritic::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3, "NoGanCritic: expected an RGB batch (N, 3, H, W), got " << x.data().str());
  FG_CHECK(patches(x.size(2), x.size(3)) > 0,
           "NoGanCritic: a " << x.size(2) << " x " << x.size(3) << " input gives a " << body_output_size(x.size(2))
                             << " x " << body_output_size(x.size(3))
                             << " body output, and the head's four 4x4 convs need at least 7 x 7: use images of at "
                                "least 193 x 193 pixels");
  return (*head_)((*body_)(x));
}

}  // namespace fg::models
