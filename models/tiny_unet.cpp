// The small U-Net of tiny_unet.h.
#include "models/tiny_unet.h"

#include "autograd/ops.h"
#include "models/inference.h"

namespace fg::models {

TinyUNet::TinyUNet(Generator& gen, int64_t in_channels, int64_t out_channels, int64_t width) : Module("TinyUNet") {
  FG_CHECK(width >= 1, "TinyUNet: width must be at least 1, got " << width);
  const int64_t w = width;
  auto conv = [&](const char* name, int64_t in, int64_t out, int64_t k, int64_t pad, int64_t dil = 1) {
    return register_module(name, std::make_shared<nn::Conv2d>(gen, in, out, k, 1, pad, dil));
  };
  conv1a_ = conv("conv1a", in_channels, w, 3, 1);
  conv1b_ = conv("conv1b", w, w, 3, 1);
  bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(w));
  conv2a_ = conv("conv2a", w, 2 * w, 3, 1);
  conv2b_ = conv("conv2b", 2 * w, 2 * w, 3, 1);
  bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(2 * w));
  mid_ = conv("mid", 2 * w, 4 * w, 3, 2, 2);
  bn3_ = register_module("bn3", std::make_shared<nn::BatchNorm2d>(4 * w));
  up2_ = conv("up2", 4 * w, 8 * w, 1, 0);
  dec2_ = conv("dec2", 4 * w, 2 * w, 3, 1);
  bn4_ = register_module("bn4", std::make_shared<nn::BatchNorm2d>(2 * w));
  up1_ = conv("up1", 2 * w, 4 * w, 1, 0);
  dec1_ = conv("dec1", 2 * w, w, 3, 1);
  head_ = conv("head", w, out_channels, 1, 0);
}

Variable TinyUNet::forward(const Variable& x) {
  FG_CHECK(x.dim() == 4 && x.size(2) % 4 == 0 && x.size(3) % 4 == 0,
           "TinyUNet: input must be (N, C, H, W) with H and W multiples of 4, got " << shape_str(x.shape()));
  const Variable e1 = (*bn1_)(relu((*conv1b_)(relu((*conv1a_)(x)))));
  const Variable e2 = (*bn2_)(relu((*conv2b_)(relu((*conv2a_)(max_pool2d(e1, 2, 2))))));
  const Variable m = (*bn3_)(relu((*mid_)(max_pool2d(e2, 2, 2))));
  const Variable u2 = pixel_shuffle(relu((*up2_)(m)), 2);
  const Variable d2 = (*bn4_)(relu((*dec2_)(concat({u2, e2}, 1))));
  const Variable u1 = pixel_shuffle(relu((*up1_)(d2)), 2);
  const Variable d1 = relu((*dec1_)(concat({u1, e1}, 1)));
  return (*head_)(d1);
}

void TinyUNet::fold_batch_norm() {
  FG_CHECK(!is_training(), "TinyUNet: folding the BatchNorms needs eval mode; call eval()");
  bn1_ = batch_norm_to_affine(*this, "bn1");
  bn2_ = batch_norm_to_affine(*this, "bn2");
  bn3_ = batch_norm_to_affine(*this, "bn3");
  bn4_ = batch_norm_to_affine(*this, "bn4");
}

}  // namespace fg::models
