// Image reading and writing (image_io.h). This is the one translation unit that compiles stb_image and
// stb_image_write; STB_*_STATIC keeps their functions private here, so another user of stb cannot clash.
// TIFF goes through libtiff on memory buffers (TIFFClientOpenExt), with per-file error handlers, so libtiff never
// prints to stderr and its message ends up in the one-line fg::Error.
// 16-bit PNG is written here with zlib rather than libpng: stb_image_write only writes 8-bit PNG, libpng reports
// errors by longjmp (which skips C++ destructors), and a PNG writer is short: signature, IHDR, filtered rows
// deflated into IDAT chunks, IEND. The same writer serves 8-bit PNG, so both depths share one code path.
#include "data/image_io.h"

#include <tiffio.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "tensor/error.h"
#include "tensor/safetensors.h"

// Only the formats the spec names are compiled: each stb_image decoder is attack surface, and Debian's stb_image
// 2.27 predates the upstream round of security fixes (2.28), so GIF, PSD, HDR, PIC and PNM are left out.
// stb shifts signed integers past their top bit and shifts negative ones (for example the JPEG writer's bit buffer,
// stbiw__jpg_writeBits), which C++17 leaves undefined but clang and gcc compile to the intended two's-complement
// result. Only that check (UBSan's shift-base) is switched off for stb's functions, so that sanitized and fuzz
// builds (docs/fuzzing.md) still check everything else in them, their memory accesses included.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("shift-base"))), apply_to = function)
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif

// One line naming the file (the `name` in scope at each use) and what is wrong with it.
#define FG_IMAGE_CHECK(cond, msg) FG_CHECK(cond, "cannot decode the image '" << name << "': " << msg)
#define FG_WRITE_CHECK(cond, msg) FG_CHECK(cond, "cannot write the image '" << name << "': " << msg)

namespace fg::data {

namespace {

constexpr const char* kReadable = "PNG, JPEG, BMP, TGA or TIFF";

bool starts_with(const std::string& bytes, const char* magic, size_t n) {
  return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
}

// The format named by the first bytes, or "" (TGA has no signature: stb_image then decides).
// Where a JPEG's start-of-image marker ends, as stb_image finds it (0 when there is none): 0xFF, any number of fill
// bytes 0xFF, then 0xD8. stb_image decodes such a file as a JPEG whatever follows, so filmgrad calls it one too and
// checks it as one (below); a stricter "FF D8 FF" test once let "FF FF D8 ..." reach stb_image unchecked.
size_t jpeg_soi_end(const std::string& b) {
  if (b.empty() || uint8_t(b[0]) != 0xFF) return 0;
  size_t p = 1;
  while (p < b.size() && uint8_t(b[p]) == 0xFF) ++p;
  return p < b.size() && uint8_t(b[p]) == 0xD8 ? p + 1 : 0;
}

std::string sniff_format(const std::string& b) {
  if (starts_with(b, "\x89PNG\r\n\x1a\n", 8)) return "png";
  if (jpeg_soi_end(b) != 0) return "jpeg";
  if (starts_with(b, "II*\0", 4) || starts_with(b, "MM\0*", 4) || starts_with(b, "II+\0", 4) ||
      starts_with(b, "MM\0+", 4))
    return "tiff";
  if (starts_with(b, "BM", 2)) return "bmp";
  return "";
}

// Debian's stb_image 2.27 writes past its Huffman tables when a JPEG's DHT segment declares more than 256 codes
// (fixed upstream in 2.28), so every DHT segment is checked here first. The walk follows stb_image's: segments are
// skipped by their length, entropy-coded data is scanned for markers byte by byte.
void check_jpeg_huffman_tables(const std::string& b, const std::string& name) {
  auto byte = [&](size_t i) { return i < b.size() ? unsigned(uint8_t(b[i])) : 0u; };  // stb_image reads 0 past the end
  size_t p = jpeg_soi_end(b);
  while (p + 1 < b.size()) {
    if (byte(p) != 0xFF) {  // entropy-coded data or padding
      ++p;
      continue;
    }
    const unsigned m = byte(p + 1);
    if (m == 0xFF) {  // fill byte
      ++p;
      continue;
    }
    if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {  // stuffing, TEM, SOI, RSTn: no length
      p += 2;
      continue;
    }
    if (m == 0xD9 || p + 4 > b.size()) return;  // EOI, or truncated (stb_image reports that itself)
    const size_t length = byte(p + 2) << 8 | byte(p + 3);
    if (m == 0xC4) {
      size_t q = p + 4;
      for (long left = long(length) - 2; left > 0 && q < b.size();) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(q + i);
        FG_IMAGE_CHECK(codes <= 256, "corrupt JPEG: a Huffman table declares " << codes << " codes (at most 256)");
        q += 17 + codes;
        left -= long(17 + codes);
      }
    }
    p += 2 + length;
  }
}

// stb_image 2.27 copies the first IDAT chunk into a buffer it has not allocated yet when that chunk is empty
// (memcpy to a null pointer: undefined behaviour, which an optimiser may turn into a wrong null check; found by
// fuzz_image). An empty IDAT adds nothing to the compressed stream, so such chunks are dropped before decoding: the
// same image, read safely. The walk is stb_image's (8-byte signature, then length, type, data, CRC per chunk);
// returns false, leaving `out` alone, when there is nothing to drop.
bool without_empty_png_idat(const std::string& b, std::string& out) {
  auto be32 = [&](size_t at) {
    return uint64_t(uint8_t(b[at])) << 24 | uint64_t(uint8_t(b[at + 1])) << 16 |
           uint64_t(uint8_t(b[at + 2])) << 8 | uint64_t(uint8_t(b[at + 3]));
  };
  std::vector<std::pair<size_t, size_t>> keep;  // [begin, end) byte ranges
  size_t kept_from = 0, p = 8;
  bool dropped = false;
  while (p + 12 <= b.size()) {
    const uint64_t length = be32(p);
    // (Not as the first chunk: there stb_image refuses the file for not starting with IHDR, and still should.)
    const bool empty_idat = p > 8 && length == 0 && b.compare(p + 4, 4, "IDAT") == 0;
    if (empty_idat) {
      keep.emplace_back(kept_from, p);
      kept_from = p + 12;
      dropped = true;
    }
    if (b.compare(p + 4, 4, "IEND") == 0 || length > b.size() - p - 12) break;  // stb_image stops (or fails) there
    p += 12 + size_t(length);
  }
  if (!dropped) return false;
  keep.emplace_back(kept_from, b.size());
  out.clear();
  for (const auto& [from, to] : keep) out.append(b, from, to - from);
  return true;
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  return s;
}

void check_sides(const std::string& name, const std::string& format, int64_t width, int64_t height,
                 const ImageLimits& limits) {
  FG_IMAGE_CHECK(width > 0 && height > 0,
                 "its " << upper(format) << " header gives a size of " << width << "x" << height);
  FG_IMAGE_CHECK(width <= limits.max_side && height <= limits.max_side,
                 "its header claims " << width << "x" << height << " pixels, over the limit of " << limits.max_side
                                      << " per side (refused before decoding)");
}

// Refuses, from the header alone, what would be an outsized or meaningless decode.
void check_header(const std::string& name, const ImageInfo& info, const ImageLimits& limits) {
  check_sides(name, info.format, info.width, info.height, limits);
  FG_IMAGE_CHECK(info.channels >= 1 && info.channels <= 4,
                 "it has " << info.channels << " channels per pixel; filmgrad reads 1 to 4");
  const double bytes = double(info.width) * double(info.height) * info.channels * (info.bit_depth / 8);
  FG_IMAGE_CHECK(bytes <= double(limits.max_decoded_bytes),
                 info.width << "x" << info.height << " pixels x " << info.channels << " channels x " << info.bit_depth
                            << " bits would decode to " << int64_t(bytes / 1048576.0) << " MiB, over the limit of "
                            << limits.max_decoded_bytes / 1048576 << " MiB (refused before decoding)");
}

// ---- stb_image formats ----------------------------------------------------------------------------------------

// stb_image keeps its last failure reason (per thread) across calls, including calls that succeed, so it is
// cleared before each call whose failure is reported: a message never carries a stale reason.
// Some stb_image decoders fail without a reason; then the reason left is the PNG signature test's, which ran
// first and does not apply to another format.
void stb_clear_reason() { stbi__g_failure_reason = nullptr; }
std::string stb_says(const std::string& format) {
  const char* r = stbi_failure_reason();
  if (!r || !*r || (format != "png" && std::strcmp(r, "bad png sig") == 0)) return "";
  return std::string(" (stb_image: ") + r + ")";
}

struct StbFree {
  void operator()(void* p) const { stbi_image_free(p); }
};

ImageInfo probe_stb(const std::string& bytes, const std::string& name, const std::string& sniffed,
                    const ImageLimits& limits) {
  FG_IMAGE_CHECK(bytes.size() <= size_t(INT_MAX), "the file is over 2 GiB, more than stb_image reads");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  if (sniffed == "jpeg") check_jpeg_huffman_tables(bytes, name);
  if (sniffed == "png" && bytes.size() >= 24 && bytes.compare(12, 4, "IHDR") == 0) {
    // stb_image refuses a PNG over 2^30 bytes with a bare "too large"; say what the header claims instead.
    auto be32 = [&](size_t at) {
      return int64_t(uint8_t(bytes[at])) << 24 | int64_t(uint8_t(bytes[at + 1])) << 16 |
             int64_t(uint8_t(bytes[at + 2])) << 8 | int64_t(uint8_t(bytes[at + 3]));
    };
    check_sides(name, sniffed, be32(16), be32(20), limits);
  }
  int w = 0, h = 0, c = 0;
  stb_clear_reason();
  if (!stbi_info_from_memory(data, len, &w, &h, &c)) {
    FG_IMAGE_CHECK(!sniffed.empty(), "it is not a " << kReadable << " file");
    FG_IMAGE_CHECK(false, "not a valid " << upper(sniffed) << " file: corrupt or truncated header" << stb_says(sniffed));
  }
  ImageInfo info;
  info.width = w;
  info.height = h;
  info.channels = c;
  info.bit_depth = stbi_is_16_bit_from_memory(data, len) ? 16 : 8;
  info.format = sniffed.empty() ? "tga" : sniffed;
  return info;
}

template <typename T>
void interleaved_to_planar(const T* src, int64_t plane, int channels, float scale, float* dst) {
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < channels; ++c) dst[c * plane + i] = float(src[i * channels + c]) * scale;
}

Image decode_stb(const std::string& file_bytes, const std::string& name, const ImageInfo& info) {
  std::string cleaned;
  const std::string& bytes =
      info.format == "png" && without_empty_png_idat(file_bytes, cleaned) ? cleaned : file_bytes;
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  const bool sixteen = info.bit_depth == 16;
  int w = 0, h = 0, in_file = 0;
  stb_clear_reason();
  // The channel count is asked for explicitly: with 0, stb_image returns an extra alpha channel for a PNG with a
  // tRNS chunk but reports the count without it.
  std::unique_ptr<void, StbFree> px(
      sixteen ? static_cast<void*>(stbi_load_16_from_memory(data, len, &w, &h, &in_file, info.channels))
              : static_cast<void*>(stbi_load_from_memory(data, len, &w, &h, &in_file, info.channels)));
  FG_IMAGE_CHECK(px != nullptr,
                 "corrupt or truncated " << upper(info.format) << " data" << stb_says(info.format));
  FG_IMAGE_CHECK(w == info.width && h == info.height, "its header says " << info.width << "x" << info.height
                                                                          << " but the data is " << w << "x" << h);
  Image img;
  img.bit_depth = info.bit_depth;
  img.channels = info.channels;
  img.format = info.format;
  img.pixels = Tensor::empty({info.channels, info.height, info.width});
  const int64_t plane = info.height * info.width;
  if (sixteen)
    interleaved_to_planar(static_cast<const uint16_t*>(px.get()), plane, info.channels, 1.0f / 65535.0f,
                          img.pixels.data<float>());
  else
    interleaved_to_planar(static_cast<const stbi_uc*>(px.get()), plane, info.channels, 1.0f / 255.0f,
                          img.pixels.data<float>());
  return img;
}

// ---- TIFF through libtiff, on memory ---------------------------------------------------------------------------

// A file in memory for libtiff: read from (data, size), or written into *out.
struct MemFile {
  const char* data = nullptr;
  uint64_t size = 0;
  std::string* out = nullptr;
  uint64_t pos = 0;
  std::string error;  // libtiff's first error message
  std::string name;   // the file's name, which libtiff also gives as the "module" of some messages

  const char* base() const { return out ? out->data() : data; }
  uint64_t length() const { return out ? out->size() : size; }
};

MemFile& mem(thandle_t h) { return *static_cast<MemFile*>(static_cast<void*>(h)); }

tmsize_t mem_read(thandle_t h, void* buf, tmsize_t n) {
  MemFile& f = mem(h);
  if (n <= 0 || f.pos >= f.length()) return 0;
  const uint64_t k = std::min<uint64_t>(uint64_t(n), f.length() - f.pos);
  std::memcpy(buf, f.base() + f.pos, size_t(k));
  f.pos += k;
  return tmsize_t(k);
}

tmsize_t mem_write(thandle_t h, void* buf, tmsize_t n) {
  MemFile& f = mem(h);
  if (!f.out || n < 0) return -1;
  const uint64_t end = f.pos + uint64_t(n);
  if (end > f.out->size()) f.out->resize(size_t(end));  // a seek past the end leaves zeros in the gap
  std::memcpy(&(*f.out)[size_t(f.pos)], buf, size_t(n));
  f.pos = end;
  return n;
}

toff_t mem_seek(thandle_t h, toff_t off, int whence) {
  MemFile& f = mem(h);
  if (whence == SEEK_SET)
    f.pos = off;
  else if (whence == SEEK_CUR)
    f.pos += off;  // libtiff passes backward moves as wrapped unsigned offsets
  else if (whence == SEEK_END)
    f.pos = f.length() + off;
  else
    return toff_t(-1);
  return f.pos;
}

int mem_close(thandle_t) { return 0; }
toff_t mem_size(thandle_t h) { return mem(h).length(); }

int mem_map(thandle_t h, void** base, toff_t* size) {
  MemFile& f = mem(h);
  if (f.out) return 0;  // only a file being read is mapped
  *base = const_cast<char*>(f.data);
  *size = f.size;
  return 1;
}

void mem_unmap(thandle_t, void*, toff_t) {}

int tiff_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  MemFile& f = *static_cast<MemFile*>(user);
  if (f.error.empty()) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    const bool say_module = module && *module && f.name != module;
    f.error = (say_module ? std::string(module) + ": " : std::string()) + buf;
  }
  return 1;  // handled: libtiff's global handler (stderr) is not called
}

int tiff_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }  // unknown tags and the like

struct TiffClose {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffClose>;

TiffPtr open_tiff(MemFile& f, const char* mode, const std::string& name, int64_t max_alloc) {
  f.name = name;
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error, &f);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning, &f);
  if (max_alloc > 0) TIFFOpenOptionsSetMaxSingleMemAlloc(opts, tmsize_t(max_alloc));
  TIFF* t = TIFFClientOpenExt(name.c_str(), mode, static_cast<thandle_t>(static_cast<void*>(&f)), mem_read, mem_write,
                              mem_seek, mem_close, mem_size, mem_map, mem_unmap, opts);
  TIFFOpenOptionsFree(opts);  // the handle keeps its own copy
  return TiffPtr(t);
}

std::string libtiff_says(const MemFile& f) { return f.error.empty() ? "" : " (libtiff: " + f.error + ")"; }

struct TiffLayout {
  ImageInfo info;
  uint16_t planar = PLANARCONFIG_CONTIG;
  bool min_is_white = false;
  bool premultiplied = false;
};

const char* photometric_name(uint16_t p) {
  switch (p) {
    case PHOTOMETRIC_PALETTE: return "palette (indexed colour)";
    case PHOTOMETRIC_SEPARATED: return "CMYK";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB:
    case PHOTOMETRIC_ICCLAB:
    case PHOTOMETRIC_ITULAB: return "Lab";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_LOGL:
    case PHOTOMETRIC_LOGLUV: return "LogLuv";
    default: return "an unknown photometric";
  }
}

// Reads the first directory's tags and refuses what filmgrad does not decode.
TiffLayout tiff_layout(TIFF* tif, const MemFile& f, const std::string& name) {
  uint32_t w = 0, h = 0;
  FG_IMAGE_CHECK(TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h),
                 "the TIFF has no image width or length" << libtiff_says(f));
  uint16_t spp = 1, bps = 1, sample_format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG,
           compression = COMPRESSION_NONE, photometric = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sample_format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric))
    photometric = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;

  TiffLayout L;
  L.info.format = "tiff";
  L.info.width = w;
  L.info.height = h;
  L.info.channels = spp;
  L.info.bit_depth = bps;
  L.planar = planar;
  FG_IMAGE_CHECK(bps == 8 || bps == 16, "the TIFF has " << bps << "-bit samples; filmgrad reads 8- and 16-bit TIFFs");
  FG_IMAGE_CHECK(sample_format == SAMPLEFORMAT_UINT || sample_format == SAMPLEFORMAT_VOID,
                 "the TIFF has " << (sample_format == SAMPLEFORMAT_IEEEFP ? "floating-point" : "signed or complex")
                                 << " samples; filmgrad reads unsigned 8- and 16-bit TIFFs");
  FG_IMAGE_CHECK(planar == PLANARCONFIG_CONTIG || planar == PLANARCONFIG_SEPARATE,
                 "the TIFF has an unknown planar configuration " << planar);
  switch (photometric) {
    case PHOTOMETRIC_MINISWHITE:
      L.min_is_white = true;
      [[fallthrough]];
    case PHOTOMETRIC_MINISBLACK:
      FG_IMAGE_CHECK(spp == 1 || spp == 2,
                     "the grey TIFF has " << spp << " samples per pixel; filmgrad reads grey or grey + alpha");
      break;
    case PHOTOMETRIC_RGB:
      FG_IMAGE_CHECK(spp == 3 || spp == 4,
                     "the RGB TIFF has " << spp << " samples per pixel; filmgrad reads RGB or RGB + alpha");
      break;
    case PHOTOMETRIC_YCBCR:
      // JPEG-in-TIFF stores YCbCr; libjpeg converts it back to RGB for us.
      FG_IMAGE_CHECK(compression == COMPRESSION_JPEG && spp == 3 && bps == 8 && planar == PLANARCONFIG_CONTIG,
                     "the TIFF is YCbCr without JPEG compression; save it as RGB");
      FG_IMAGE_CHECK(TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB),
                     "cannot convert the TIFF's JPEG YCbCr data to RGB" << libtiff_says(f));
      break;
    default:
      FG_IMAGE_CHECK(false, "the TIFF is " << photometric_name(photometric)
                                           << "; filmgrad reads grey and RGB TIFFs (save it as RGB)");
  }
  FG_IMAGE_CHECK(TIFFIsCODECConfigured(compression),
                 "the TIFF uses compression scheme " << compression << ", which this libtiff cannot decode");
  if (spp == 2 || spp == 4) {
    uint16_t count = 0;
    uint16_t* types = nullptr;
    if (TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &count, &types) && count >= 1 && types)
      L.premultiplied = types[0] == EXTRASAMPLE_ASSOCALPHA;
  }
  return L;
}

// Decodes every strip or tile of the first image into (C, H, W) f32.
void read_tiff_pixels(TIFF* tif, const TiffLayout& L, const MemFile& f, const std::string& name,
                      const ImageLimits& limits, float* out) {
  const int64_t W = L.info.width, H = L.info.height, plane = W * H;
  const int C = L.info.channels;
  const bool sixteen = L.info.bit_depth == 16;
  const int bytes_per_sample = sixteen ? 2 : 1;
  const uint32_t maxval = sixteen ? 65535u : 255u;
  const float scale = sixteen ? 1.0f / 65535.0f : 1.0f / 255.0f;
  const bool separate = L.planar == PLANARCONFIG_SEPARATE && C > 1;
  const int planes = separate ? C : 1;
  const int per_chunk = separate ? 1 : C;  // samples per pixel within one strip or tile

  // Copies a (rows x cols) block that starts at (y0, x0) from a chunk `chunk_w` pixels wide, samples s0.. onward.
  auto put = [&](const void* buf, int64_t y0, int64_t x0, int64_t chunk_w, int64_t rows, int64_t cols, int s0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t x = 0; x < cols; ++x)
        for (int k = 0; k < per_chunk; ++k) {
          const int64_t i = (r * chunk_w + x) * per_chunk + k;
          uint32_t v = sixteen ? static_cast<const uint16_t*>(buf)[i] : static_cast<const uint8_t*>(buf)[i];
          if (L.min_is_white && s0 + k == 0) v = maxval - v;  // the grey sample, not alpha
          out[(s0 + k) * plane + (y0 + r) * W + x0 + x] = float(v) * scale;
        }
  };

  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    FG_IMAGE_CHECK(TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) && TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) && tw > 0 &&
                       th > 0,
                   "the tiled TIFF has no tile size" << libtiff_says(f));
    const tmsize_t tile_bytes = TIFFTileSize(tif);
    const int64_t needed = int64_t(tw) * th * per_chunk * bytes_per_sample;
    FG_IMAGE_CHECK(tile_bytes >= needed && needed <= limits.max_decoded_bytes,
                   "the TIFF's tiles of " << tw << "x" << th << " pixels are invalid or too large"
                                          << libtiff_says(f));
    std::vector<uint16_t> buf(size_t(tile_bytes + 1) / 2);
    for (int s = 0; s < planes; ++s)
      for (int64_t y = 0; y < H; y += th)
        for (int64_t x = 0; x < W; x += tw) {
          const uint32_t tile = TIFFComputeTile(tif, uint32_t(x), uint32_t(y), 0, uint16_t(s));
          FG_IMAGE_CHECK(TIFFReadEncodedTile(tif, tile, buf.data(), tile_bytes) >= 0,
                         "corrupt or truncated TIFF data in tile " << tile << libtiff_says(f));
          put(buf.data(), y, x, tw, std::min<int64_t>(th, H - y), std::min<int64_t>(tw, W - x), s);
        }
    return;
  }
  uint32_t rows_per_strip = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  const int64_t rps = std::min<int64_t>(std::max<uint32_t>(rows_per_strip, 1), H);
  const tmsize_t strip_bytes = TIFFStripSize(tif);
  FG_IMAGE_CHECK(strip_bytes > 0 && strip_bytes <= limits.max_decoded_bytes,
                 "the TIFF's strips are invalid or too large" << libtiff_says(f));
  std::vector<uint16_t> buf(size_t(strip_bytes + 1) / 2);
  for (int s = 0; s < planes; ++s)
    for (int64_t y = 0; y < H; y += rps) {
      const int64_t rows = std::min<int64_t>(rps, H - y);
      const uint32_t strip = TIFFComputeStrip(tif, uint32_t(y), uint16_t(s));
      const tmsize_t got = TIFFReadEncodedStrip(tif, strip, buf.data(), strip_bytes);
      FG_IMAGE_CHECK(got >= rows * W * per_chunk * bytes_per_sample,
                     "corrupt or truncated TIFF data in strip " << strip << libtiff_says(f));
      put(buf.data(), y, 0, W, rows, W, s);
    }
}

// Opens the TIFF and reads its layout; the handle stays open for decoding.
TiffPtr open_tiff_for_reading(MemFile& f, const std::string& bytes, const std::string& name,
                              const ImageLimits& limits) {
  f.data = bytes.data();
  f.size = bytes.size();
  // libtiff's own allocations (strip tables, codec buffers) are capped too: a hostile header cannot make it
  // allocate more than the decoded image could need.
  TiffPtr tif = open_tiff(f, "r", name, std::max<int64_t>(limits.max_decoded_bytes, int64_t(64) << 20));
  FG_IMAGE_CHECK(tif != nullptr, "not a valid TIFF file" << libtiff_says(f));
  return tif;
}

ImageInfo probe(const std::string& bytes, const std::string& name, const ImageLimits& limits) {
  FG_IMAGE_CHECK(!bytes.empty(), "the file is empty");
  const std::string sniffed = sniff_format(bytes);
  ImageInfo info;
  if (sniffed == "tiff") {
    MemFile f;
    TiffPtr tif = open_tiff_for_reading(f, bytes, name, limits);
    info = tiff_layout(tif.get(), f, name).info;
  } else {
    info = probe_stb(bytes, name, sniffed, limits);
  }
  check_header(name, info, limits);
  return info;
}

// ---- writing --------------------------------------------------------------------------------------------------

uint16_t quantize(float v, uint32_t maxval) {
  if (!(v > 0.0f)) return 0;  // also NaN
  if (v >= 1.0f) return uint16_t(maxval);
  return uint16_t(v * float(maxval) + 0.5f);
}

// Interleaved samples (H, W, C) at `maxval`, from planar f32; premultiplied colour is divided by alpha first when
// the target format stores straight alpha.
std::vector<uint16_t> interleave(const Image& img, uint32_t maxval, bool unpremultiply) {
  const int64_t C = img.pixels.size(0), plane = img.height() * img.width();
  const float* p = img.pixels.data<float>();
  std::vector<uint16_t> out(size_t(plane * C));
  const bool divide = unpremultiply && img.alpha_premultiplied && (C == 2 || C == 4);
  for (int64_t i = 0; i < plane; ++i) {
    const float a = divide ? p[(C - 1) * plane + i] : 1.0f;
    for (int64_t c = 0; c < C; ++c) {
      float v = p[c * plane + i];
      if (divide && c < C - 1) v = a > 0.0f ? v / a : 0.0f;
      out[size_t(i * C + c)] = quantize(v, maxval);
    }
  }
  return out;
}

void append_be32(std::string& s, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  s.append(b, 4);
}

void append_png_chunk(std::string& png, const char type[4], const char* data, size_t n) {
  append_be32(png, uint32_t(n));
  const size_t start = png.size();
  png.append(type, 4);
  png.append(data, n);
  append_be32(png, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(png.data() + start), uInt(n + 4))));
}

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : (pb <= pc ? b : c);
}

// The five PNG filters on one row; the one whose output has the smallest sum of |signed bytes| is kept (the
// heuristic the PNG specification suggests).
void filter_png_row(const uint8_t* cur, const uint8_t* prev, size_t n, size_t bpp, std::vector<uint8_t>& best,
                    std::vector<uint8_t>& trial) {
  uint64_t best_cost = UINT64_MAX;
  for (int type = 0; type < 5; ++type) {
    trial[0] = uint8_t(type);
    uint64_t cost = 0;
    for (size_t i = 0; i < n; ++i) {
      const int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      const int pred = type == 0 ? 0 : type == 1 ? a : type == 2 ? b : type == 3 ? (a + b) / 2 : paeth(a, b, c);
      const uint8_t v = uint8_t(cur[i] - pred);
      trial[i + 1] = v;
      cost += uint64_t(std::abs(int(int8_t(v))));
    }
    if (cost < best_cost) {
      best_cost = cost;
      best.swap(trial);
    }
  }
}

std::string encode_png(const std::vector<uint16_t>& samples, int64_t W, int64_t H, int C, int depth,
                       const std::string& name) {
  FG_WRITE_CHECK(W <= INT32_MAX && H <= INT32_MAX, "PNG holds at most 2^31 - 1 pixels per side");
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  append_be32(ihdr, uint32_t(W));
  append_be32(ihdr, uint32_t(H));
  const char colour_type[5] = {0, 0, 4, 2, 6};  // by channel count: grey, grey + alpha, RGB, RGBA
  const char rest[5] = {char(depth), colour_type[C], 0, 0, 0};  // depth, colour, deflate, adaptive filters, no interlace
  ihdr.append(rest, 5);
  append_png_chunk(png, "IHDR", ihdr.data(), ihdr.size());

  z_stream zs{};
  FG_WRITE_CHECK(deflateInit(&zs, Z_DEFAULT_COMPRESSION) == Z_OK, "zlib could not start");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, deflateEnd);
  const size_t bpp = size_t(C) * size_t(depth / 8), row_bytes = size_t(W) * bpp;
  std::vector<uint8_t> cur(row_bytes), prev(row_bytes, 0), best(row_bytes + 1), trial(row_bytes + 1);
  std::string idat;
  std::vector<char> zbuf(1 << 16);
  auto pump = [&](const uint8_t* in, size_t n, int flush) {
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = uInt(n);
    int rc;
    do {
      zs.next_out = reinterpret_cast<Bytef*>(zbuf.data());
      zs.avail_out = uInt(zbuf.size());
      rc = deflate(&zs, flush);
      FG_WRITE_CHECK(rc != Z_STREAM_ERROR, "zlib failed while compressing");
      idat.append(zbuf.data(), zbuf.size() - zs.avail_out);
    } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    if (idat.size() >= (size_t(1) << 20)) {  // IDAT chunks of about 1 MiB (a chunk holds at most 2^31 - 1 bytes)
      append_png_chunk(png, "IDAT", idat.data(), idat.size());
      idat.clear();
    }
  };
  for (int64_t y = 0; y < H; ++y) {
    const uint16_t* row = samples.data() + size_t(y) * size_t(W) * size_t(C);
    for (size_t i = 0; i < size_t(W) * size_t(C); ++i) {
      if (depth == 16) {
        cur[2 * i] = uint8_t(row[i] >> 8);  // PNG is big-endian
        cur[2 * i + 1] = uint8_t(row[i] & 0xff);
      } else {
        cur[i] = uint8_t(row[i]);
      }
    }
    filter_png_row(cur.data(), prev.data(), row_bytes, bpp, best, trial);
    pump(best.data(), best.size(), Z_NO_FLUSH);
    cur.swap(prev);
  }
  pump(nullptr, 0, Z_FINISH);
  if (!idat.empty()) append_png_chunk(png, "IDAT", idat.data(), idat.size());
  append_png_chunk(png, "IEND", "", 0);
  return png;
}

void stb_append(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
}

std::string encode_stb(const std::vector<uint16_t>& samples, int64_t W, int64_t H, int C, const std::string& format,
                       int quality, const std::string& name) {
  FG_WRITE_CHECK(W <= INT_MAX / 4 && H <= INT_MAX / 4, "too large for the " << upper(format) << " writer");
  std::vector<uint8_t> bytes(samples.begin(), samples.end());
  if (format == "bmp" && C == 2) {  // BMP has no grey + alpha: store it as RGBA rather than lose the alpha
    std::vector<uint8_t> rgba(size_t(W * H * 4));
    for (size_t i = 0; i < size_t(W * H); ++i) {
      rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = bytes[2 * i];
      rgba[4 * i + 3] = bytes[2 * i + 1];
    }
    bytes.swap(rgba);
    C = 4;
  }
  std::string out;
  int ok = 0;
  if (format == "jpeg")
    ok = stbi_write_jpg_to_func(stb_append, &out, int(W), int(H), C, bytes.data(), quality);
  else if (format == "bmp")
    ok = stbi_write_bmp_to_func(stb_append, &out, int(W), int(H), C, bytes.data());
  else
    ok = stbi_write_tga_to_func(stb_append, &out, int(W), int(H), C, bytes.data());
  FG_WRITE_CHECK(ok != 0 && !out.empty(), "stb_image_write could not encode it as " << upper(format));
  return out;
}

std::string encode_tiff(std::vector<uint16_t>& samples, int64_t W, int64_t H, int C, int depth, bool premultiplied,
                        const std::string& name) {
  FG_WRITE_CHECK(W <= INT32_MAX && H <= INT32_MAX, "TIFF holds at most 2^31 - 1 pixels per side");
  const int64_t row_bytes = W * C * (depth / 8);
  std::string out;
  MemFile f;
  f.out = &out;
  // Classic TIFF offsets are 32-bit; an image near 4 GiB goes to BigTIFF.
  TiffPtr tif = open_tiff(f, row_bytes * H > (int64_t(3) << 30) ? "w8" : "w", name, 0);
  FG_WRITE_CHECK(tif != nullptr, "libtiff could not start a TIFF" << libtiff_says(f));
  TIFF* t = tif.get();
  bool ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(W)) && TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(H)) &&
            TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, depth) && TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, C) &&
            TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT) &&
            TIFFSetField(t, TIFFTAG_PHOTOMETRIC, C >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK) &&
            TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
            TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
            TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE) &&
            TIFFSetField(t, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL) &&
            // strips of about 1 MiB: large enough for Deflate to do well, small enough to read piecewise
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, uint32_t(std::clamp<int64_t>((1 << 20) / row_bytes, 1, H))) &&
            TIFFSetField(t, TIFFTAG_SOFTWARE, "filmgrad");
  if (ok && (C == 2 || C == 4)) {
    uint16_t extra = premultiplied ? EXTRASAMPLE_ASSOCALPHA : EXTRASAMPLE_UNASSALPHA;
    ok = TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
  }
  FG_WRITE_CHECK(ok, "libtiff refused the TIFF tags" << libtiff_says(f));
  std::vector<uint8_t> row8;
  if (depth == 8) row8.resize(size_t(W * C));
  for (int64_t y = 0; y < H; ++y) {
    uint16_t* row = samples.data() + size_t(y * W * C);
    void* data = row;
    if (depth == 8) {
      std::copy(row, row + W * C, row8.begin());
      data = row8.data();
    }
    // libtiff may modify the row in place (predictor, byte order): it is ours to spoil
    FG_WRITE_CHECK(TIFFWriteScanline(t, data, uint32_t(y), 0) >= 0, "libtiff failed on row " << y << libtiff_says(f));
  }
  FG_WRITE_CHECK(TIFFWriteDirectory(t), "libtiff could not finish the TIFF" << libtiff_says(f));
  tif.reset();
  return out;
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------------------------

std::string Image::describe() const {
  return (format.empty() ? std::string("image") : format) + " " + std::to_string(bit_depth) + "-bit, " + std::to_string(channels) +
         (channels == 1 ? " channel" : " channels");
}

Image make_image(const Tensor& chw, int bit_depth) {
  FG_CHECK(chw.defined() && chw.dim() == 3 && chw.size(0) >= 1 && chw.size(0) <= 4,
           "an image needs a (C, H, W) tensor with C from 1 to 4, got " << (chw.defined() ? chw.str() : "none"));
  FG_CHECK(dtype_is_floating(chw.dtype()), "an image needs a floating-point tensor, got " << chw.str());
  FG_CHECK(bit_depth == 8 || bit_depth == 16, "an image's bit depth is 8 or 16, got " << bit_depth);
  Image img;
  img.pixels = chw.to(Device::cpu()).to(DType::F32).contiguous();
  img.bit_depth = bit_depth;
  img.channels = int(chw.size(0));
  img.format = "";
  return img;
}

ImageInfo read_image_info(const std::string& path, const ImageLimits& limits) {
  const std::string& name = path;
  FG_IMAGE_CHECK(!std::filesystem::is_directory(path), "it is a folder, not a file");
  return probe(read_file(path), path, limits);
}

Image read_image(const std::string& path, const ImageLimits& limits) {
  const std::string& name = path;
  FG_IMAGE_CHECK(!std::filesystem::is_directory(path), "it is a folder, not a file");
  return decode_image(read_file(path), path, limits);
}

Image decode_image(const std::string& bytes, const std::string& name, const ImageLimits& limits) {
  FG_IMAGE_CHECK(!bytes.empty(), "the file is empty");
  if (sniff_format(bytes) != "tiff") return decode_stb(bytes, name, probe(bytes, name, limits));

  MemFile f;
  TiffPtr tif = open_tiff_for_reading(f, bytes, name, limits);
  const TiffLayout L = tiff_layout(tif.get(), f, name);
  check_header(name, L.info, limits);
  Image img;
  img.bit_depth = L.info.bit_depth;
  img.channels = L.info.channels;
  img.format = "tiff";
  img.alpha_premultiplied = L.premultiplied;
  img.pixels = Tensor::empty({L.info.channels, L.info.height, L.info.width});
  read_tiff_pixels(tif.get(), L, f, name, limits, img.pixels.data<float>());
  return img;
}

Tensor to_rgb(const Image& image, AlphaMode alpha, float background) {
  const Tensor& p = image.pixels;
  FG_CHECK(p.defined() && p.dim() == 3 && p.size(0) >= 1 && p.size(0) <= 4 && p.dtype() == DType::F32 &&
               p.device() == Device::cpu(),
           "to_rgb needs an image with (C, H, W) f32 CPU pixels, C from 1 to 4, got "
               << (p.defined() ? p.str() : "none"));
  const int64_t C = p.size(0);
  if (C == 3) return p.contiguous();
  const int64_t plane = p.size(1) * p.size(2);
  const bool grey = C <= 2, has_alpha = C == 2 || C == 4;
  const Tensor src = p.contiguous();
  const float* in = src.data<float>();
  Tensor rgb = Tensor::empty({3, p.size(1), p.size(2)});
  float* out = rgb.data<float>();
  for (int64_t c = 0; c < 3; ++c) {
    const float* colour = in + (grey ? 0 : c) * plane;
    const float* a = in + (C - 1) * plane;
    float* o = out + c * plane;
    if (!has_alpha || alpha == AlphaMode::Drop) {
      std::copy(colour, colour + plane, o);
    } else if (image.alpha_premultiplied) {
      for (int64_t i = 0; i < plane; ++i) o[i] = colour[i] + background * (1.0f - a[i]);
    } else {
      for (int64_t i = 0; i < plane; ++i) o[i] = colour[i] * a[i] + background * (1.0f - a[i]);
    }
  }
  return rgb;
}

std::string image_format_for_path(const std::string& path) {
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  if (ext == "png" || ext == "bmp" || ext == "tga") return ext;
  if (ext == "jpg" || ext == "jpeg") return "jpeg";
  if (ext == "tif" || ext == "tiff") return "tiff";
  return "";
}

std::string encode_image(const Image& image, const std::string& format, const ImageWriteOptions& options,
                         const std::string& name) {
  const Tensor& p = image.pixels;
  FG_WRITE_CHECK(p.defined() && p.dim() == 3 && p.size(0) >= 1 && p.size(0) <= 4 && p.dtype() == DType::F32 &&
                     p.device() == Device::cpu(),
                 "the pixels must be a (C, H, W) f32 CPU tensor with C from 1 to 4, got "
                     << (p.defined() ? p.str() : "none") << " (fg::data::make_image makes one)");
  FG_WRITE_CHECK(p.size(1) > 0 && p.size(2) > 0, "the image is empty: " << p.str());
  FG_WRITE_CHECK(format == "png" || format == "tiff" || format == "jpeg" || format == "bmp" || format == "tga",
                 "unknown image format '" << format << "'; filmgrad writes png, tiff, jpeg, bmp and tga");
  const bool deep = format == "png" || format == "tiff";
  const int depth = options.bit_depth != 0 ? options.bit_depth : (deep && image.bit_depth == 16 ? 16 : 8);
  FG_WRITE_CHECK(depth == 8 || depth == 16, "the bit depth must be 8 or 16, got " << depth);
  FG_WRITE_CHECK(depth == 8 || deep, upper(format) << " holds 8-bit samples only; write 16-bit images as PNG or TIFF");
  const int C = int(p.size(0));
  FG_WRITE_CHECK(format != "jpeg" || C == 1 || C == 3,
                 "JPEG has no alpha channel; drop or composite it first (fg::data::to_rgb)");
  FG_WRITE_CHECK(options.jpeg_quality >= 1 && options.jpeg_quality <= 100,
                 "the JPEG quality must be from 1 to 100, got " << options.jpeg_quality);

  Image img = image;
  img.pixels = p.contiguous();
  std::vector<uint16_t> samples =
      interleave(img, depth == 16 ? 65535u : 255u, /*unpremultiply=*/format != "tiff");
  const int64_t W = p.size(2), H = p.size(1);
  if (format == "png") return encode_png(samples, W, H, C, depth, name);
  if (format == "tiff") return encode_tiff(samples, W, H, C, depth, image.alpha_premultiplied, name);
  return encode_stb(samples, W, H, C, format, options.jpeg_quality, name);
}

void write_image(const std::string& path, const Image& image, const ImageWriteOptions& options) {
  const std::string& name = path;
  const std::string format = image_format_for_path(path);
  FG_WRITE_CHECK(!format.empty(), "unknown extension; use .png, .tif, .tiff, .jpg, .jpeg, .bmp or .tga");
  write_file_atomic(path, encode_image(image, format, options, path));
}

}  // namespace fg::data
