// Image files in and out: the one image reader and writer of the program.
//
// Reading. The format is found from the file's first bytes, never from its name:
//   PNG (8 and 16 bit), JPEG (baseline and progressive), BMP, TGA via stb_image (its other formats are not compiled:
//   less to attack);
//   TIFF via libtiff: 8 or 16 bit unsigned samples, grey (min-is-black or min-is-white), grey + alpha, RGB, RGBA,
//   strips or tiles, contiguous or separate planes, any compression libtiff decodes (none, LZW, Deflate,
//   PackBits, JPEG), little- or big-endian, BigTIFF. Only the first image of a multi-page TIFF is read; the
//   Orientation tag is ignored (rows come in file order). Palette, CMYK, Lab, float and signed TIFFs are refused.
// Every file is checked from its header before anything is decoded: the size (at most ImageLimits::max_side
// per side), the decoded size (width x height x channels x bytes per sample at most max_decoded_bytes) and the
// channel count (1 to 4), so a corrupt or hostile file is refused with one line, "cannot decode the image
// 'PATH': what is wrong", never with a crash, and before any allocation the limits do not allow (the f32 tensor is
// at most 4x max_decoded_bytes). JPEG Huffman tables are checked before stb_image sees them (Debian's stb_image
// 2.27 overruns its tables on a malformed one).
// Pixels become (C, H, W) f32 in [0, 1]: sample x (1/255) for 8-bit files, sample x (1/65535) for 16-bit ones.
//
// Writing. The format comes from the extension: .png (8 or 16 bit, zlib, written here), .tif/.tiff (8 or 16 bit,
// Deflate with the horizontal predictor, libtiff), .jpg/.jpeg (8 bit, quality 1 to 100), .bmp and .tga (8 bit),
// via stb_image_write. Values are clamped to [0, 1] (NaN becomes 0) and rounded to the nearest level, so an
// image read from a PNG or TIFF and written back as PNG or TIFF keeps its depth and every sample exactly.
// Every file is encoded in memory and written atomically (fg::write_file_atomic: a temporary file beside the
// target, then a rename), so a failed write leaves no partial file and no temporary file behind.
//
// All functions are safe to call from several threads at once (the data loader decodes in parallel).
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace fg::data {

struct Image {
  Tensor pixels;       // (C, H, W) f32 in [0, 1], CPU, contiguous
  int bit_depth = 8;   // 8 or 16: the file's sample depth when read; the depth a PNG or TIFF is written at
  int channels = 0;    // C: 1 grey, 2 grey + alpha, 3 RGB, 4 RGB + alpha
  std::string format;  // what the file was: "png", "jpeg", "bmp", "tga" or "tiff"
  // The colour channels are already multiplied by alpha (TIFF "associated alpha"); PNG, TGA and BMP alpha is
  // straight. Written to a format with straight alpha, such an image is divided back first.
  bool alpha_premultiplied = false;

  int64_t height() const { return pixels.size(1); }
  int64_t width() const { return pixels.size(2); }
  bool has_alpha() const { return channels == 2 || channels == 4; }
  std::string describe() const;  // "png 16-bit, 3 channels"
};

// An Image of a (C, H, W) tensor (C in 1..4, any floating dtype, any layout; copied to contiguous f32).
Image make_image(const Tensor& chw, int bit_depth = 8);

// What is refused before decoding. The defaults admit a 16-bit RGB scan of up to 357 megapixels (a 6x9 cm negative
// at 5,400 dpi is 244); raise them for larger scans. The f32 tensor is 2x (16-bit) or 4x (8-bit) the decoded size.
// stb_image itself stops at 2^31 - 1 decoded bytes, so raising max_decoded_bytes helps only TIFF.
struct ImageLimits {
  int64_t max_side = 30000;                      // pixels, per side
  int64_t max_decoded_bytes = int64_t(1) << 31;  // width x height x channels x bytes per sample
};

struct ImageInfo {
  int64_t width = 0, height = 0;
  int channels = 0;   // 1..4, as read_image would return them
  int bit_depth = 8;  // 8 or 16
  std::string format;
};

// The header only: size, channels, depth, format. Reads the file but decodes no pixels; throws as read_image does
// for a file that is not an image filmgrad reads or that breaks the limits.
ImageInfo read_image_info(const std::string& path, const ImageLimits& limits = {});

// Throws fg::Error naming the file: missing, empty, not an image, corrupt or truncated, over the limits.
Image read_image(const std::string& path, const ImageLimits& limits = {});
// The same on bytes already in memory; `name` is the file name used in messages.
Image decode_image(const std::string& bytes, const std::string& name, const ImageLimits& limits = {});

// How to_rgb treats an alpha channel.
enum class AlphaMode {
  Drop,       // keep the colour as stored, discard alpha (what `filmgrad forward` does)
  Composite,  // blend over a uniform background: c*a + bg*(1-a) (straight alpha) or c + bg*(1-a) (premultiplied)
};

// (3, H, W) f32: grey is repeated into R, G and B; alpha is dropped or composited over `background` (in [0, 1]).
// An RGB image comes back as its own pixels (no copy).
Tensor to_rgb(const Image& image, AlphaMode alpha = AlphaMode::Drop, float background = 1.0f);

struct ImageWriteOptions {
  // 0: the image's own bit_depth where the format holds it (PNG, TIFF), 8 otherwise. 8 or 16 asks for that depth;
  // 16 is refused for JPEG, BMP and TGA.
  int bit_depth = 0;
  int jpeg_quality = 95;  // 1..100
};

// Writes `image` in the format its extension names. JPEG takes 1 or 3 channels (call to_rgb first to drop or
// composite alpha); a grey JPEG is stored, and read back, as three equal channels; BMP stores grey as RGB and
// grey + alpha as RGBA.
// Throws fg::Error naming the file (unknown extension, a depth or channel count the format cannot hold, a folder
// that does not exist or cannot be written); the target is then left as it was.
void write_image(const std::string& path, const Image& image, const ImageWriteOptions& options = {});
// The file's bytes without writing them. `format` is "png", "jpeg", "tiff", "bmp" or "tga"; `name` is used in
// messages.
std::string encode_image(const Image& image, const std::string& format, const ImageWriteOptions& options = {},
                         const std::string& name = "<memory>");
// "png", "jpeg", "tiff", "bmp", "tga" for a path's extension (any case), or "" when it names none of them.
std::string image_format_for_path(const std::string& path);

}  // namespace fg::data
