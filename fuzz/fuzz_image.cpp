// Fuzz target: image decoding from memory (data/image_io.h: PNG, JPEG, BMP, TGA via stb_image, TIFF via libtiff).
// Limits far below the defaults keep every run small; the header checks must refuse anything over them before
// decoding. A decoded image must be well formed (1..4 channels, sides within the limits, samples in [0, 1]) and,
// being 8 or 16 bit, must survive a PNG and a TIFF round trip sample for sample (image_io.h promises that);
// a refusal of its own re-encoded bytes is a finding too.
#include <cmath>
#include <cstdint>
#include <string>

#include "data/image_io.h"
#include "fuzz/fuzz_util.h"

namespace {

using fg::fuzz::finding;

void check_round_trip(const fg::data::Image& img, const std::string& format) {
  const std::string bytes = fg::data::encode_image(img, format);
  const fg::data::Image back = fg::data::decode_image(bytes, "round trip." + format);
  if (back.channels != img.channels || back.bit_depth != img.bit_depth || back.height() != img.height() ||
      back.width() != img.width())
    finding("the round trip changed the image's layout", img.describe() + " -> " + back.describe());
  const float* a = img.pixels.data<float>();
  const float* b = back.pixels.data<float>();
  for (int64_t i = 0; i < img.pixels.numel(); ++i)
    if (a[i] != b[i]) finding("the round trip changed a sample", format + " sample " + std::to_string(i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fg::data::ImageLimits limits;
  limits.max_side = 2048;
  limits.max_decoded_bytes = int64_t(1) << 24;
  fg::data::Image img;
  bool decoded = false;
  fg::fuzz::refusal_allowed([&] {
    img = fg::data::decode_image(fg::fuzz::as_string(data, size), "fuzz", limits);
    decoded = true;
  });
  if (!decoded) return 0;
  if (img.channels < 1 || img.channels > 4 || img.pixels.dim() != 3 || img.pixels.size(0) != img.channels)
    finding("a decoded image with a bad channel count", img.describe());
  if (img.height() < 1 || img.width() < 1 || img.height() > limits.max_side || img.width() > limits.max_side)
    finding("a decoded image over the size limit", std::to_string(img.width()) + "x" + std::to_string(img.height()));
  if (img.bit_depth != 8 && img.bit_depth != 16) finding("a decoded image of odd depth", img.describe());
  const float* p = img.pixels.data<float>();
  for (int64_t i = 0; i < img.pixels.numel(); ++i)
    if (!(p[i] >= 0.0f && p[i] <= 1.0f)) finding("a decoded sample outside [0, 1]", std::to_string(p[i]));
  // Premultiplied alpha is divided back when written to PNG, which is not exact; large images only cost time.
  if (!img.alpha_premultiplied && img.height() * img.width() <= 64 * 64) {
    check_round_trip(img, "png");
    check_round_trip(img, "tiff");
  }
  return 0;
}
