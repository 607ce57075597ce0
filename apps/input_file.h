// Reading a network's input for `filmgrad forward`: an image file or a tensor in a safetensors file.
//
// Images: whatever data/image_io.h reads (PNG 8 and 16 bit, JPEG, BMP, TGA, TIFF 8 and 16 bit) becomes
// (1, 3, H, W) f32 in [0, 1] (8-bit values x 1/255, 16-bit values x 1/65535); a grey image is
// repeated into three channels and an alpha channel is dropped.
// Tensors: the tensor named "input", or the file's only tensor; (C, H, W) gains a batch dimension; floating
// dtypes are converted to f32 and used as they are (no scaling, no normalisation).
#pragma once
#include <string>

#include "tensor/tensor.h"

namespace fg::apps {

struct InputFile {
  Tensor tensor;       // (N, C, H, W) f32, contiguous
  bool is_image;       // decoded from an image (values in [0, 1]) rather than read from a tensor file
  std::string format;  // "png 8-bit", "safetensors f32", ...
};

// Throws fg::Error naming the file when it cannot be decoded or holds no usable tensor.
InputFile read_input_file(const std::string& path);

// Decodes an image file to (1, 3, H, W) f32 in [0, 1]. `format` (when not null) receives e.g.
// "png 16-bit, 1 channel" (the format found from the file's content, its depth and its channels).
Tensor read_image_rgb(const std::string& path, std::string* format = nullptr);

// torchvision's ImageNet statistics, used to normalise images for the models that expect it.
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};
// (x - mean[c]) / std[c] for each channel c of an (N, 3, H, W) f32 tensor; returns a new tensor.
Tensor imagenet_normalize(const Tensor& x);

}  // namespace fg::apps
