// Reading inputs for `filmgrad forward` (input_file.h). Images are decoded by data/image_io, the program's one
// image reader.
#include "apps/input_file.h"

#include <algorithm>
#include <cctype>

#include "data/image_io.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

// A name ending in ".safetensors" (any case) is a tensor file; anything else is taken for an image.
bool is_safetensors_path(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  const size_t slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return false;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == "safetensors";
}

}  // namespace

Tensor read_image_rgb(const std::string& path, std::string* format) {
  data::Image img;
  try {
    img = data::read_image(path);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find("it is not a ") == std::string::npos) throw;  // an image, but a bad one
    throw Error(what + "; forward also takes a .safetensors tensor");
  }
  if (format) *format = img.describe();
  // Grey is repeated into three channels and alpha is dropped; (3, H, W) -> (1, 3, H, W), contiguous.
  return data::to_rgb(img, data::AlphaMode::Drop).unsqueeze(0);
}

InputFile read_input_file(const std::string& path) {
  InputFile in;
  if (!is_safetensors_path(path)) {
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
