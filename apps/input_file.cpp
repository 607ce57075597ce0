// Reading inputs for `filmgrad forward` (input_file.h). This is the one translation unit that compiles
// stb_image; STB_IMAGE_STATIC keeps its functions private here, so another stb user elsewhere cannot clash.
#include "apps/input_file.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <memory>

#include "tensor/safetensors.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb/stb_image.h>

namespace fg::apps {

namespace {

std::string lower_extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext;
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

}  // namespace

Tensor read_image_rgb(const std::string& path, std::string* format) {
  const std::string bytes = read_file(path);
  FG_CHECK(!bytes.empty(), "the image '" << path << "' is empty");
  FG_CHECK(bytes.size() <= size_t(INT_MAX), "the image '" << path << "' is too large to decode (over 2 GB)");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  const bool sixteen = stbi_is_16_bit_from_memory(data, len) != 0;
  int w = 0, h = 0, channels_in_file = 0;
  // Ask stb for three channels: it repeats grey into RGB and drops alpha.
  std::unique_ptr<void, StbFree> pixels(
      sixteen ? static_cast<void*>(stbi_load_16_from_memory(data, len, &w, &h, &channels_in_file, 3))
              : static_cast<void*>(stbi_load_from_memory(data, len, &w, &h, &channels_in_file, 3)));
  FG_CHECK(pixels != nullptr, "cannot decode the image '"
                                  << path << "': " << stbi_failure_reason()
                                  << " (supported: PNG, JPEG, BMP, TGA, PSD, GIF, HDR, PNM; or a .safetensors tensor)");
  const int64_t H = h, W = w, plane = H * W;
  Tensor t = Tensor::empty({1, 3, H, W});
  float* out = t.data<float>();
  const float scale = sixteen ? 1.0f / 65535.0f : 1.0f / 255.0f;
  for (int64_t i = 0; i < plane; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      const float v = sixteen ? float(static_cast<const uint16_t*>(pixels.get())[i * 3 + c])
                              : float(static_cast<const stbi_uc*>(pixels.get())[i * 3 + c]);
      out[c * plane + i] = v * scale;
    }
  if (format) {
    std::string ext = lower_extension(path);
    *format = (ext.empty() ? std::string("image") : ext) + (sixteen ? " 16-bit" : " 8-bit") + ", " +
              std::to_string(channels_in_file) + (channels_in_file == 1 ? " channel" : " channels");
  }
  return t;
}

InputFile read_input_file(const std::string& path) {
  InputFile in;
  if (lower_extension(path) != "safetensors") {
    in.tensor = read_image_rgb(path, &in.format);
    in.is_image = true;
    return in;
  }
  const SafeTensors st = load_safetensors(path);
  Tensor t;
  if (st.has("input")) {
    t = st.get("input");
  } else {
    FG_CHECK(st.tensors.size() == 1, "'" << path << "' holds " << st.tensors.size()
                                         << " tensors and none is named 'input'; name the network input 'input'");
    t = st.tensors.begin()->second;
  }
  FG_CHECK(dtype_is_floating(t.dtype()), "the input tensor in '"
                                             << path << "' is " << dtype_name(t.dtype())
                                             << "; it must be floating point (f32, f64, f16, bf16)");
  if (t.dim() == 3) t = t.unsqueeze(0);
  FG_CHECK(t.dim() == 4, "the input tensor in '" << path << "' has shape " << shape_str(t.shape())
                                                 << "; it must be (N, C, H, W) or (C, H, W)");
  FG_CHECK(t.numel() > 0, "the input tensor in '" << path << "' is empty: " << shape_str(t.shape()));
  in.format = std::string("safetensors ") + dtype_name(t.dtype());
  in.tensor = t.to(DType::F32).contiguous();
  in.is_image = false;
  return in;
}

Tensor imagenet_normalize(const Tensor& x) {
  FG_CHECK(x.dim() == 4 && x.size(1) == 3 && x.dtype() == DType::F32,
           "ImageNet normalisation needs an (N, 3, H, W) f32 tensor, got " << x.str());
  Tensor y = x.contiguous().clone();
  float* p = y.data<float>();
  const int64_t plane = y.size(2) * y.size(3);
  for (int64_t n = 0; n < y.size(0); ++n)
    for (int64_t c = 0; c < 3; ++c) {
      float* q = p + (n * 3 + c) * plane;
      for (int64_t i = 0; i < plane; ++i) q[i] = (q[i] - kImageNetMean[c]) / kImageNetStd[c];
    }
  return y;
}

}  // namespace fg::apps
