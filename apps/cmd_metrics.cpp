// `filmgrad metrics A B [--json]`: PSNR and SSIM of image A against image B, whole-image and per channel, as
// scikit-image computes them (data/metrics.h: data range 1, Gaussian SSIM with sigma 1.5), so the numbers can be
// checked against a Python session.
//
// Pixels are read as f32 in [0, 1] whatever the depth (8-bit / 255, 16-bit / 65535), so an 8-bit and a 16-bit
// file of the same picture compare as such. Alpha is dropped (the stored colour is compared). Two grey images are
// compared as one channel; grey against RGB repeats the grey into R, G and B first. The images must have the same
// width and height. Images smaller than the SSIM window (11 x 11) get PSNR only ("n/a", or null in JSON).
// Identical images have infinite PSNR: printed "inf", written in JSON as the string "inf" (JSON has no infinity;
// Python's float("inf") reads it).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "data/image_io.h"
#include "data/metrics.h"

namespace fg::apps {

namespace {

std::string help_text() {
  return "usage: filmgrad metrics A B [--json]\n"
         "\n"
         "Prints the PSNR (dB) and SSIM of image A against image B, over the whole image and per channel, as\n"
         "scikit-image's peak_signal_noise_ratio and structural_similarity compute them (data range 1 with\n"
         "pixels scaled to [0, 1], Gaussian weights sigma 1.5, population statistics). Images are PNG, JPEG,\n"
         "BMP, TGA or TIFF, 8 or 16 bit, of the same size; alpha is dropped; grey against RGB compares the grey\n"
         "repeated into R, G and B. Identical images give PSNR inf and SSIM 1.\n"
         "\n"
         "options:\n"
         "  --json    one JSON object instead of text: a, b, width, height, channels, psnr, psnr_per_channel,\n"
         "            ssim, ssim_per_channel (numbers; \"inf\" for infinite PSNR; null SSIM when the images are\n"
         "            smaller than 11 x 11)\n";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double; "inf" (quoted in JSON) for infinity.
std::string number(double v, bool json) {
  if (std::isinf(v)) return json ? (v > 0 ? "\"inf\"" : "\"-inf\"") : (v > 0 ? "inf" : "-inf");
  if (std::isnan(v)) return json ? "null" : "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return number(v, false);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// The colour channels of an image: alpha dropped, nothing else changed.
Tensor colour_of(const data::Image& img) {
  return img.has_alpha() ? img.pixels.slice(0, 0, img.channels - 1) : img.pixels;
}

std::string list_text(const std::vector<std::string>& names, const std::vector<double>& values, int digits) {
  std::string out;
  for (size_t c = 0; c < values.size(); ++c) out += (c ? ", " : "") + names[c] + " " + fixed(values[c], digits);
  return out;
}

std::string list_json(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t c = 0; c < values.size(); ++c) out += (c ? ", " : "") + number(values[c], true);
  return out + "]";
}

}  // namespace

int cmd_metrics(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  ArgParser args("metrics", {{"--json", 0}});
  const std::vector<std::string> files = args.parse_with_positionals(argc, argv, 2);
  if (files.size() != 2)
    throw UsageError("metrics compares two images: filmgrad metrics A B (got " + std::to_string(files.size()) +
                     " file name" + (files.size() == 1 ? "" : "s") + ")");
  const bool json = args.has("--json");
  require_readable_file(files[0], "the image");
  require_readable_file(files[1], "the image");
  const data::Image a = data::read_image(files[0]), b = data::read_image(files[1]);
  FG_CHECK(a.width() == b.width() && a.height() == b.height(),
           "the images differ in size: '" << files[0] << "' is " << a.width() << "x" << a.height() << ", '" << files[1]
                                          << "' is " << b.width() << "x" << b.height()
                                          << "; metrics compares images of the same size");
  Tensor x = colour_of(a), y = colour_of(b);
  if (x.size(0) != y.size(0)) {
    x = data::to_rgb(a, data::AlphaMode::Drop);
    y = data::to_rgb(b, data::AlphaMode::Drop);
  }
  const int64_t C = x.size(0), H = x.size(1), W = x.size(2);
  const std::vector<std::string> names =
      C == 1 ? std::vector<std::string>{"grey"} : std::vector<std::string>{"R", "G", "B"};
  const double psnr = data::psnr(x, y);
  const std::vector<double> psnr_c = data::psnr_per_channel(x, y);
  const data::SsimOptions so;
  const int64_t win = data::ssim_win_size(so);
  const bool has_ssim = H >= win && W >= win;
  std::vector<double> ssim_c;
  double ssim = 0.0;
  if (has_ssim) {
    ssim_c = data::ssim_per_channel(x, y, so);
    ssim = data::ssim(x, y, so);
  }

  if (json) {
    std::string channels = "[";
    for (size_t c = 0; c < names.size(); ++c) channels += (c ? ", " : "") + json_string(names[c]);
    channels += "]";
    std::printf(
        "{\"a\": %s, \"b\": %s, \"width\": %lld, \"height\": %lld, \"channels\": %s, \"psnr\": %s, "
        "\"psnr_per_channel\": %s, \"ssim\": %s, \"ssim_per_channel\": %s}\n",
        json_string(files[0]).c_str(), json_string(files[1]).c_str(), static_cast<long long>(W),
        static_cast<long long>(H), channels.c_str(), number(psnr, true).c_str(), list_json(psnr_c).c_str(),
        has_ssim ? number(ssim, true).c_str() : "null", has_ssim ? list_json(ssim_c).c_str() : "null");
    return 0;
  }
  std::printf("A: %s (%s, %lldx%lld)\n", files[0].c_str(), a.describe().c_str(), static_cast<long long>(W),
              static_cast<long long>(H));
  std::printf("B: %s (%s, %lldx%lld)\n", files[1].c_str(), b.describe().c_str(), static_cast<long long>(W),
              static_cast<long long>(H));
  std::printf("PSNR: %s dB (%s)\n", fixed(psnr, 4).c_str(), list_text(names, psnr_c, 4).c_str());
  if (has_ssim) {
    std::printf("SSIM: %s (%s)\n", fixed(ssim, 6).c_str(), list_text(names, ssim_c, 6).c_str());
  } else {
    std::printf("SSIM: n/a (the images are smaller than the %lldx%lld SSIM window)\n", static_cast<long long>(win),
                static_cast<long long>(win));
  }
  return 0;
}

}  // namespace fg::apps
