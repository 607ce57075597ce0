// data/image_io: every format and depth written and read back (exact for PNG, TIFF, BMP and TGA; a PSNR bound
// for JPEG); files from encoders other than ours (stb_image_write PNGs, TIFFs built byte by byte here: both byte
// orders, min-is-white, separate planes, tiles, associated alpha); grey and alpha through to_rgb; corrupt and
// hostile files (empty, random bytes, truncated at every length, headers claiming 100000x100000) refused with one
// line naming the file; failed writes that leave the folder as it was.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/image_io.h"
#include "tensor/error.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace fs = std::filesystem;
using fg::data::Image;

namespace {

// A fresh, empty folder per test, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("fg_image_io_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::set<std::string> entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.insert(e.path().filename().string());
    return names;
  }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Random sample levels: an image whose every value is k/maxval exactly as the reader computes it (k x 1/maxval in
// f32), so a lossless round trip must give back the same floats bit for bit.
Image random_image(int C, int H, int W, int depth, uint32_t seed) {
  std::mt19937 rng(seed);
  const uint32_t maxval = depth == 16 ? 65535u : 255u;
  const float scale = depth == 16 ? 1.0f / 65535.0f : 1.0f / 255.0f;
  fg::Tensor t = fg::Tensor::empty({C, H, W});
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng() % (maxval + 1)) * scale;
  p[0] = 0.0f;  // both ends of the range are there
  p[t.numel() - 1] = 1.0f;
  return fg::data::make_image(t, depth);
}

// A smooth image (gradients and a disc), the kind JPEG is meant for.
Image smooth_image(int C, int H, int W) {
  fg::Tensor t = fg::Tensor::empty({C, H, W});
  float* p = t.data<float>();
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const bool disc = (x - W / 3) * (x - W / 3) + (y - H / 2) * (y - H / 2) < (W / 5) * (W / 5);
        const float v = c == 0 ? float(x) / float(W - 1) : c == 1 ? float(y) / float(H - 1) : 0.5f * float(x + y) / float(W + H);
        p[(c * H + y) * W + x] = std::round(255.0f * (disc ? 0.9f - 0.3f * float(c) : v)) / 255.0f;
      }
  return fg::data::make_image(t, 8);
}

double psnr(const fg::Tensor& a, const fg::Tensor& b) {
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  double se = 0.0;
  for (size_t i = 0; i < x.size(); ++i) se += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return 10.0 * std::log10(1.0 / (se / double(x.size())));
}

// The fg::Error message of f(), or "<no error>".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fg::Error& e) {
    return e.what();
  }
  return "<no error>";
}

// One line that names the file and says what is wrong.
void expect_one_line_error(const std::string& message, const std::string& path, const std::string& what) {
  EXPECT_NE(message, "<no error>") << path;
  EXPECT_NE(message.find("'" + path + "'"), std::string::npos) << message;
  EXPECT_NE(message.find(what), std::string::npos) << "expected '" << what << "' in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

void expect_same_image(const Image& ref, const Image& got, const std::string& what) {
  EXPECT_EQ(got.channels, ref.channels) << what;
  EXPECT_EQ(got.bit_depth, ref.bit_depth) << what;
  ASSERT_EQ(got.pixels.shape(), ref.pixels.shape()) << what;
  EXPECT_TRUE(got.pixels.is_contiguous()) << what;
  EXPECT_TRUE(fg::test::all_close(ref.pixels, got.pixels, 0.0, 0.0)) << what;
}

// ---- TIFF files built byte by byte, independent of libtiff's writer ------------------------------------------

struct TiffField {
  uint16_t tag;
  uint16_t type;  // 3 SHORT, 4 LONG
  std::vector<uint32_t> values;
};

// A classic TIFF: header, the data chunks (strips or tiles), then one IFD. Chunk offsets and byte counts go into
// `offsets_tag` and `counts_tag`; `samples16` chunks hold 16-bit samples given in host order, written in the
// file's byte order.
std::string build_tiff(bool big_endian, std::vector<TiffField> fields, const std::vector<std::vector<uint16_t>>& chunks,
                       int bits, uint16_t offsets_tag = 273, uint16_t counts_tag = 279) {
  std::string out;
  auto put16 = [&](std::string& s, uint32_t v) {
    if (big_endian) {
      s += char(v >> 8), s += char(v);
    } else {
      s += char(v), s += char(v >> 8);
    }
  };
  auto put32 = [&](std::string& s, uint32_t v) {
    if (big_endian) {
      put16(s, v >> 16), put16(s, v & 0xffff);
    } else {
      put16(s, v & 0xffff), put16(s, v >> 16);
    }
  };
  out += big_endian ? "MM" : "II";
  put16(out, 42);
  put32(out, 0);  // IFD offset, patched below
  std::vector<uint32_t> offsets, counts;
  for (const auto& chunk : chunks) {
    offsets.push_back(uint32_t(out.size()));
    for (uint16_t v : chunk) bits == 16 ? put16(out, v) : void(out += char(v));
    counts.push_back(uint32_t(out.size()) - offsets.back());
    if (out.size() % 2) out += '\0';
  }
  if (offsets_tag) {
    fields.push_back({offsets_tag, 4, offsets});
    fields.push_back({counts_tag, 4, counts});
  }
  std::sort(fields.begin(), fields.end(), [](const TiffField& a, const TiffField& b) { return a.tag < b.tag; });
  const uint32_t ifd = uint32_t(out.size());
  std::string head;
  put32(head, ifd);
  out.replace(4, 4, head);
  std::string dir, extra;
  const uint32_t extra_at = ifd + 2 + uint32_t(fields.size()) * 12 + 4;
  put16(dir, uint32_t(fields.size()));
  for (const TiffField& f : fields) {
    put16(dir, f.tag);
    put16(dir, f.type);
    put32(dir, uint32_t(f.values.size()));
    std::string v;
    for (uint32_t x : f.values) f.type == 3 ? put16(v, x) : put32(v, x);
    if (v.size() <= 4) {
      v.resize(4, '\0');
      dir += v;
    } else {
      put32(dir, extra_at + uint32_t(extra.size()));
      extra += v;
    }
  }
  put32(dir, 0);  // no next IFD
  return out + dir + extra;
}

std::vector<TiffField> tiff_fields(uint32_t w, uint32_t h, int spp, int bits, int photometric, int planar = 1) {
  return {{256, 4, {w}},
          {257, 4, {h}},
          {258, 3, std::vector<uint32_t>(size_t(spp), uint32_t(bits))},
          {259, 3, {1}},
          {262, 3, {uint32_t(photometric)}},
          {277, 3, {uint32_t(spp)}},
          {284, 3, {uint32_t(planar)}}};
}

// ---- a PNG header, to claim any size ------------------------------------------------------------------------

uint32_t crc32_of(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string png_header_claiming(uint32_t w, uint32_t h) {
  const std::string body = "IHDR" + be32(w) + be32(h) + std::string("\x08\x02\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + body + be32(crc32_of(body)) + be32(0) + "IDAT" +
         be32(crc32_of("IDAT"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

TEST(ImageIo, PngAndTiffRoundTripsAreExactAtBothDepths) {
  TempDir dir("lossless");
  for (const char* ext : {"png", "tif", "tiff"})
    for (int depth : {8, 16})
      for (int C : {1, 2, 3, 4})
        for (auto [H, W] : {std::pair<int, int>{23, 37}, {1, 1}, {5, 1}}) {
          const std::string what = std::string(ext) + " " + std::to_string(depth) + "-bit C=" + std::to_string(C) +
                                   " " + std::to_string(H) + "x" + std::to_string(W);
          const std::string path = dir / ("x." + std::string(ext));
          const Image ref = random_image(C, H, W, depth, uint32_t(C * 100 + depth + H));
          fg::data::write_image(path, ref);
          const Image got = fg::data::read_image(path);
          expect_same_image(ref, got, what);
          EXPECT_EQ(got.format, ext[0] == 'p' ? "png" : "tiff") << what;
          const fg::data::ImageInfo info = fg::data::read_image_info(path);
          EXPECT_EQ(info.width, W);
          EXPECT_EQ(info.height, H);
          EXPECT_EQ(info.channels, C);
          EXPECT_EQ(info.bit_depth, depth);
        }
  EXPECT_EQ(dir.entries(), (std::set<std::string>{"x.png", "x.tif", "x.tiff"}));  // no temporary files left
}

TEST(ImageIo, LargeImagesSpanManyPngChunksAndTiffStrips) {
  TempDir dir("large");
  // Random 16-bit samples do not compress: about 4 MiB of IDAT (several 1 MiB chunks) and several TIFF strips.
  const Image ref = random_image(3, 701, 1003, 16, 7);
  for (const char* name : {"big.png", "big.tif"}) {
    fg::data::write_image(dir / name, ref);
    EXPECT_GT(fs::file_size(dir / name), size_t(4) << 20) << name;
    expect_same_image(ref, fg::data::read_image(dir / name), name);
  }
}

TEST(ImageIo, BitDepthIsKeptOrChosen) {
  TempDir dir("depth");
  const Image deep = random_image(3, 9, 11, 16, 3);
  // An 8-bit copy asked for explicitly: every sample rounded to the nearest of 256 levels.
  fg::data::ImageWriteOptions eight;
  eight.bit_depth = 8;
  fg::data::write_image(dir / "x8.png", deep, eight);
  const Image got8 = fg::data::read_image(dir / "x8.png");
  EXPECT_EQ(got8.bit_depth, 8);
  EXPECT_TRUE(fg::test::all_close(deep.pixels, got8.pixels, 0.5 / 255.0 + 1e-6, 0.0));
  // An 8-bit image asked to be written at 16 bits keeps its values exactly (k/255 is a multiple of 1/65535).
  const Image shallow = random_image(1, 9, 11, 8, 4);
  fg::data::ImageWriteOptions sixteen;
  sixteen.bit_depth = 16;
  fg::data::write_image(dir / "x16.tif", shallow, sixteen);
  const Image got16 = fg::data::read_image(dir / "x16.tif");
  EXPECT_EQ(got16.bit_depth, 16);
  EXPECT_TRUE(fg::test::all_close(shallow.pixels, got16.pixels, 1e-7, 0.0));
  // A 16-bit image written where 16 bits cannot go is written at 8 unless 16 is asked for.
  fg::data::write_image(dir / "x.bmp", deep);
  EXPECT_EQ(fg::data::read_image(dir / "x.bmp").bit_depth, 8);
  for (const char* name : {"y.jpg", "y.bmp", "y.tga"})
    expect_one_line_error(error_of([&] { fg::data::write_image(dir / name, deep, sixteen); }), dir / name,
                          "8-bit samples only");
  // Out-of-range values are clamped and NaN becomes 0.
  fg::Tensor odd = fg::Tensor::from_vector({-0.5, 1.5, std::nan(""), 0.5}, {1, 2, 2});
  fg::data::write_image(dir / "odd.png", fg::data::make_image(odd));
  EXPECT_EQ(fg::data::read_image(dir / "odd.png").pixels.to_vector(),
            (std::vector<double>{0.0, 1.0, 0.0, double(128.0f * (1.0f / 255.0f))}));
}

TEST(ImageIo, JpegKeepsASmoothImageCloseAndQualityMatters) {
  TempDir dir("jpeg");
  const Image ref = smooth_image(3, 48, 64);
  fg::data::write_image(dir / "hi.jpg", ref);  // quality 95
  fg::data::ImageWriteOptions low;
  low.jpeg_quality = 30;
  fg::data::write_image(dir / "lo.jpeg", ref, low);
  const Image hi = fg::data::read_image(dir / "hi.jpg"), lo = fg::data::read_image(dir / "lo.jpeg");
  EXPECT_EQ(hi.format, "jpeg");
  EXPECT_EQ(hi.channels, 3);
  EXPECT_EQ(hi.bit_depth, 8);
  const double p_hi = psnr(ref.pixels, hi.pixels), p_lo = psnr(ref.pixels, lo.pixels);
  EXPECT_GT(p_hi, 35.0);
  EXPECT_GT(p_lo, 25.0);
  EXPECT_GT(p_hi, p_lo + 2.0);
  EXPECT_LT(fs::file_size(dir / "lo.jpeg"), fs::file_size(dir / "hi.jpg"));

  // Grey is stored as three equal channels.
  const Image grey = fg::data::make_image(ref.pixels.narrow(0, 1, 1));
  fg::data::write_image(dir / "grey.jpg", grey);
  const Image g = fg::data::read_image(dir / "grey.jpg");
  ASSERT_EQ(g.channels, 3);
  EXPECT_GT(psnr(grey.pixels, g.pixels.narrow(0, 0, 1)), 35.0);
  EXPECT_TRUE(fg::test::all_close(g.pixels.select(0, 0), g.pixels.select(0, 2), 1.5 / 255.0, 0.0));

  // Alpha and odd qualities are refused.
  const Image rgba = random_image(4, 8, 8, 8, 5);
  expect_one_line_error(error_of([&] { fg::data::write_image(dir / "a.jpg", rgba); }), dir / "a.jpg", "no alpha");
  fg::data::ImageWriteOptions bad;
  bad.jpeg_quality = 0;
  expect_one_line_error(error_of([&] { fg::data::write_image(dir / "q.jpg", ref, bad); }), dir / "q.jpg",
                        "quality");
  EXPECT_FALSE(fs::exists(dir / "a.jpg"));
  EXPECT_FALSE(fs::exists(dir / "q.jpg"));
}

TEST(ImageIo, BmpAndTgaRoundTrips) {
  TempDir dir("bmp_tga");
  for (int C : {1, 2, 3, 4}) {
    const Image ref = random_image(C, 13, 17, 8, uint32_t(40 + C));
    fg::data::write_image(dir / "x.tga", ref);
    const Image tga = fg::data::read_image(dir / "x.tga");
    EXPECT_EQ(tga.format, "tga");
    expect_same_image(ref, tga, "tga C=" + std::to_string(C));

    fg::data::write_image(dir / "x.bmp", ref);
    const Image bmp = fg::data::read_image(dir / "x.bmp");
    EXPECT_EQ(bmp.format, "bmp");
    if (C >= 3) {
      expect_same_image(ref, bmp, "bmp C=" + std::to_string(C));
    } else {  // BMP stores grey as RGB (and grey + alpha as RGBA): each colour channel is the grey
      ASSERT_EQ(bmp.channels, C + 2);
      for (int c = 0; c < 3; ++c)
        EXPECT_TRUE(fg::test::all_close(ref.pixels.select(0, 0), bmp.pixels.select(0, c), 0.0, 0.0)) << C;
      if (C == 2) {
        EXPECT_TRUE(fg::test::all_close(ref.pixels.select(0, 1), bmp.pixels.select(0, 3), 0.0, 0.0));
      }
    }
  }
}

TEST(ImageIo, ReadsPngsFromAnotherEncoderAndFindsTheFormatFromTheBytes) {
  TempDir dir("stb");
  const int w = 19, h = 7;
  std::vector<unsigned char> px(size_t(w * h * 2));
  for (size_t i = 0; i < px.size(); ++i) px[i] = (unsigned char)(i * 37 % 256);
  // Named .jpg on purpose: the reader goes by content.
  ASSERT_NE(stbi_write_png((dir / "ga.jpg").c_str(), w, h, 2, px.data(), w * 2), 0);
  const Image img = fg::data::read_image(dir / "ga.jpg");
  EXPECT_EQ(img.format, "png");
  EXPECT_EQ(img.describe(), "png 8-bit, 2 channels");
  ASSERT_EQ(img.pixels.shape(), (fg::Shape{2, h, w}));
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < w * h; ++i)
      ASSERT_EQ(img.pixels.data<float>()[c * w * h + i], float(px[size_t(i * 2 + c)]) * (1.0f / 255.0f));
  // decode_image does the same on bytes in memory.
  const Image mem = fg::data::decode_image(fg::read_file(dir / "ga.jpg"), "in memory");
  expect_same_image(img, mem, "decode_image");
}

TEST(ImageIo, ReadsHandBuiltTiffs) {
  TempDir dir("tiff");
  // 16-bit RGB, big-endian, two strips (3 rows + 2 rows): the byte order and the strip walk.
  {
    const uint32_t w = 4, h = 5;
    std::vector<uint16_t> samples(w * h * 3);
    for (size_t i = 0; i < samples.size(); ++i) samples[i] = uint16_t(0x1234 + i * 2741);
    auto fields = tiff_fields(w, h, 3, 16, 2);
    fields.push_back({278, 4, {3}});
    const std::vector<uint16_t> strip0(samples.begin(), samples.begin() + 3 * w * 3),
        strip1(samples.begin() + 3 * w * 3, samples.end());
    for (bool big : {true, false}) {
      const std::string path = dir / (big ? "be16.tif" : "le16.tif");
      write_bytes(path, build_tiff(big, fields, {strip0, strip1}, 16));
      const Image img = fg::data::read_image(path);
      EXPECT_EQ(img.format, "tiff");
      EXPECT_EQ(img.bit_depth, 16);
      ASSERT_EQ(img.pixels.shape(), (fg::Shape{3, h, w}));
      for (uint32_t c = 0; c < 3; ++c)
        for (uint32_t i = 0; i < w * h; ++i)
          ASSERT_EQ(img.pixels.data<float>()[c * w * h + i], float(samples[i * 3 + c]) * (1.0f / 65535.0f))
              << path << " c=" << c << " i=" << i;
    }
  }
  // 8-bit grey, min-is-white (as some scanners write negatives): 0 is white.
  {
    const std::vector<uint16_t> grey = {0, 255, 100, 7, 30, 200};
    write_bytes(dir / "white.tif", build_tiff(false, tiff_fields(3, 2, 1, 8, 0), {grey}, 8));
    const Image img = fg::data::read_image(dir / "white.tif");
    EXPECT_EQ(img.channels, 1);
    for (size_t i = 0; i < grey.size(); ++i)
      EXPECT_EQ(img.pixels.data<float>()[i], float(255 - grey[i]) * (1.0f / 255.0f)) << i;
  }
  // 16-bit RGBA in separate planes (one strip per plane) with associated alpha.
  {
    const uint32_t w = 3, h = 2;
    auto fields = tiff_fields(w, h, 4, 16, 2, /*planar=*/2);
    fields.push_back({338, 3, {1}});  // ExtraSamples: associated alpha
    std::vector<std::vector<uint16_t>> planes(4);
    for (int c = 0; c < 4; ++c)
      for (uint32_t i = 0; i < w * h; ++i) planes[size_t(c)].push_back(uint16_t(1000 * c + 9 * i));
    write_bytes(dir / "planar.tif", build_tiff(true, fields, planes, 16));
    const Image img = fg::data::read_image(dir / "planar.tif");
    EXPECT_EQ(img.channels, 4);
    EXPECT_TRUE(img.alpha_premultiplied);
    for (int c = 0; c < 4; ++c)
      for (uint32_t i = 0; i < w * h; ++i)
        ASSERT_EQ(img.pixels.data<float>()[uint32_t(c) * w * h + i], float(1000 * c + 9 * i) * (1.0f / 65535.0f));
    // The premultiplied flag survives a TIFF round trip.
    fg::data::write_image(dir / "planar2.tif", img);
    const Image again = fg::data::read_image(dir / "planar2.tif");
    EXPECT_TRUE(again.alpha_premultiplied);
    expect_same_image(img, again, "planar rewritten");
  }
  // 8-bit RGB in 16x16 tiles, an image of 20x18 (partial tiles on the right and at the bottom).
  {
    const uint32_t w = 20, h = 18, t = 16;
    auto value = [](uint32_t x, uint32_t y, uint32_t c) { return uint16_t((x * 11 + y * 5 + c * 80) % 256); };
    std::vector<std::vector<uint16_t>> tiles;
    for (uint32_t ty = 0; ty < h; ty += t)
      for (uint32_t tx = 0; tx < w; tx += t) {
        std::vector<uint16_t> tile;
        for (uint32_t y = 0; y < t; ++y)
          for (uint32_t x = 0; x < t; ++x)
            for (uint32_t c = 0; c < 3; ++c) tile.push_back(tx + x < w && ty + y < h ? value(tx + x, ty + y, c) : 0);
        tiles.push_back(tile);
      }
    auto fields = tiff_fields(w, h, 3, 8, 2);
    fields.push_back({322, 4, {t}});
    fields.push_back({323, 4, {t}});
    write_bytes(dir / "tiled.tif", build_tiff(false, fields, tiles, 8, 324, 325));
    const Image img = fg::data::read_image(dir / "tiled.tif");
    ASSERT_EQ(img.pixels.shape(), (fg::Shape{3, h, w}));
    for (uint32_t c = 0; c < 3; ++c)
      for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x)
          ASSERT_EQ(img.pixels.at({c, y, x}), double(float(value(x, y, c)) * (1.0f / 255.0f))) << x << "," << y;
  }
}

TEST(ImageIo, ToRgbRepeatsGreyAndDropsOrCompositesAlpha) {
  fg::Tensor ga = fg::Tensor::from_vector({0.2, 0.8, 1.0, 0.25}, {2, 1, 2});  // grey (0.2, 0.8), alpha (1, 0.25)
  Image img = fg::data::make_image(ga);
  const fg::Tensor dropped = fg::data::to_rgb(img);
  EXPECT_EQ(dropped.shape(), (fg::Shape{3, 1, 2}));
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(fg::test::all_close(ga.select(0, 0), dropped.select(0, c), 0.0, 0.0));
  // Straight alpha over a background of 0.5: c*a + 0.5*(1-a).
  const fg::Tensor over = fg::data::to_rgb(img, fg::data::AlphaMode::Composite, 0.5f);
  EXPECT_TRUE(fg::test::all_close(fg::Tensor::from_vector({0.2, 0.8 * 0.25 + 0.5 * 0.75}, {1, 2}),
                                  over.select(0, 1), 1e-7, 0.0));
  // Premultiplied: c + 0.5*(1-a).
  img.alpha_premultiplied = true;
  const fg::Tensor pre = fg::data::to_rgb(img, fg::data::AlphaMode::Composite, 0.5f);
  EXPECT_TRUE(fg::test::all_close(fg::Tensor::from_vector({0.2, 0.8 + 0.5 * 0.75}, {1, 2}), pre.select(0, 2), 1e-7,
                                  0.0));
  // RGB comes back as it is; RGBA drops its fourth channel.
  const Image rgb = random_image(3, 4, 5, 8, 1);
  EXPECT_TRUE(fg::data::to_rgb(rgb).shares_storage_with(rgb.pixels));
  const Image rgba = random_image(4, 4, 5, 8, 2);
  EXPECT_TRUE(fg::test::all_close(rgba.pixels.narrow(0, 0, 3), fg::data::to_rgb(rgba), 0.0, 0.0));
}

TEST(ImageIo, PremultipliedAlphaIsDividedBackForFormatsWithStraightAlpha) {
  TempDir dir("premul");
  fg::Tensor t = fg::Tensor::from_vector({0.25, 0.0, 0.5, 0.0}, {2, 1, 2});  // grey 0.25 at alpha 0.5; alpha 0
  Image img = fg::data::make_image(t);
  img.alpha_premultiplied = true;
  fg::data::write_image(dir / "x.png", img);
  const Image got = fg::data::read_image(dir / "x.png");
  EXPECT_FALSE(got.alpha_premultiplied);
  EXPECT_EQ(got.pixels.to_vector(), (std::vector<double>{double(128.0f * (1.0f / 255.0f)), 0.0,
                                                         double(128.0f * (1.0f / 255.0f)), 0.0}));
}

TEST(ImageIo, CorruptAndHostileFilesAreRefusedWithOneLineNamingTheFile) {
  TempDir dir("corrupt");
  const Image ref = random_image(3, 16, 16, 8, 9);
  fg::data::write_image(dir / "good.png", ref);
  const std::string png = fg::read_file(dir / "good.png");
  fg::data::write_image(dir / "good.tif", ref);
  const std::string tif = fg::read_file(dir / "good.tif");
  fg::data::write_image(dir / "good.jpg", ref);
  const std::string jpg = fg::read_file(dir / "good.jpg");

  std::mt19937 rng(1234);
  std::string noise(4096, '\0');
  for (char& c : noise) c = char(rng() & 0xff);
  noise[0] = noise[1] = 'x';  // no signature, and not by chance a TGA header

  struct Case {
    std::string name, bytes, what;
  };
  auto tiff_claiming = [](uint32_t w, uint32_t h) {
    auto fields = tiff_fields(w, h, 3, 8, 2);
    fields.push_back({273, 4, {8}});
    fields.push_back({279, 4, {64}});
    return build_tiff(false, fields, {}, 8, 0);
  };
  auto palette = [] {
    auto fields = tiff_fields(4, 4, 1, 8, 3);
    fields.push_back({320, 3, std::vector<uint32_t>(768, 0)});  // ColorMap
    return build_tiff(false, fields, {std::vector<uint16_t>(16, 0)}, 8);
  };
  auto big_tiff_strip = [] {  // a strip offset far past the end of the file
    auto fields = tiff_fields(64, 64, 1, 8, 1);
    fields.push_back({273, 4, {100000}});
    fields.push_back({279, 4, {4096}});
    return build_tiff(false, fields, {}, 8, 0);
  };
  const std::vector<Case> cases = {
      {"empty.png", "", "the file is empty"},
      {"noise.png", noise, "it is not a PNG, JPEG"},
      {"text.png", "hello, this is text", "it is not a PNG, JPEG"},
      {"trunc_half.png", png.substr(0, png.size() / 2), "corrupt or truncated PNG"},
      {"trunc_header.png", png.substr(0, 20), "not a valid PNG"},
      {"signature_only.png", png.substr(0, 8), "not a valid PNG"},
      {"trunc.jpg", jpg.substr(0, jpg.size() / 3), "JPEG"},
      {"huge.png", png_header_claiming(100000, 100000), "100000x100000"},
      {"wide.png", png_header_claiming(100000, 1), "over the limit of 30000 per side"},
      {"huge.tif", tiff_claiming(100000, 100000), "100000x100000"},
      {"wide.tif", tiff_claiming(29000, 29000), "MiB, over the limit"},
      {"trunc_strip.tif", big_tiff_strip(), "corrupt or truncated TIFF"},
      {"trunc_header.tif", tif.substr(0, 6), "not a valid TIFF"},
      {"trunc_half.tif", tif.substr(0, tif.size() / 2), "TIFF"},
      {"float.tif", build_tiff(false, tiff_fields(4, 4, 1, 32, 1), {std::vector<uint16_t>(64, 0)}, 8), "32-bit"},
      {"palette.tif", palette(), "palette"},
      {"cmyk.tif", build_tiff(false, tiff_fields(2, 2, 4, 8, 5), {std::vector<uint16_t>(16, 0)}, 8), "CMYK"},
      {"five.tif", build_tiff(false, tiff_fields(2, 2, 5, 8, 2), {std::vector<uint16_t>(20, 0)}, 8), "5 samples"},
  };
  for (const Case& c : cases) {
    const std::string path = dir / c.name;
    write_bytes(path, c.bytes);
    expect_one_line_error(error_of([&] { fg::data::read_image(path); }), path, c.what);
    expect_one_line_error(error_of([&] { fg::data::read_image(path); }), path, "cannot decode the image");
  }
  // A JPEG whose Huffman table declares more codes than exist (stb_image 2.27 would write past its tables).
  {
    std::string bad = jpg;
    const size_t dht = bad.find("\xff\xc4");
    ASSERT_NE(dht, std::string::npos);
    for (size_t i = 0; i < 16; ++i) bad[dht + 5 + i] = char(0x40);
    write_bytes(dir / "dht.jpg", bad);
    expect_one_line_error(error_of([&] { fg::data::read_image(dir / "dht.jpg"); }), dir / "dht.jpg",
                          "Huffman table declares 1024 codes");
    // stb_image also takes fill bytes before the start-of-image marker, and junk after it, as a JPEG: the same
    // table must be refused there too (CI's fuzzer found the first form reaching stb_image unchecked).
    const std::string variants[] = {"\xff\xff\xff" + bad.substr(1), "\xff\xd8\x00\x00" + bad.substr(2)};
    for (const std::string& v : variants) {
      write_bytes(dir / "dht_variant.jpg", v);
      expect_one_line_error(error_of([&] { fg::data::read_image(dir / "dht_variant.jpg"); }),
                            dir / "dht_variant.jpg", "Huffman table declares 1024 codes");
    }
    // Those forms of a good file still decode, as JPEGs.
    write_bytes(dir / "fill.jpg", "\xff\xff" + jpg.substr(1));
    EXPECT_EQ(fg::data::read_image_info(dir / "fill.jpg").format, "jpeg");
    EXPECT_EQ(fg::data::read_image(dir / "fill.jpg").pixels.numel(), fg::data::read_image(dir / "good.jpg").pixels.numel());
  }
  // An empty IDAT chunk before the data (legal PNG; stb_image 2.27 would memcpy into a null buffer for it, found by
  // fuzz_image) is read as the same image.
  {
    const size_t idat = png.find("IDAT");
    ASSERT_NE(idat, std::string::npos);
    const std::string empty_idat("\0\0\0\0IDAT\x35\xaf\x06\x1e", 12);  // length 0, type, CRC of "IDAT"
    write_bytes(dir / "empty_idat.png", png.substr(0, idat - 4) + empty_idat + png.substr(idat - 4));
    const fg::data::Image a = fg::data::read_image(dir / "good.png");
    const fg::data::Image b = fg::data::read_image(dir / "empty_idat.png");
    ASSERT_EQ(a.pixels.shape(), b.pixels.shape());
    EXPECT_TRUE(fg::test::all_close(a.pixels, b.pixels, 0.0, 0.0));
  }
  // Formats stb_image could decode but filmgrad does not compile in.
  write_bytes(dir / "x.gif", std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00;", 13));
  expect_one_line_error(error_of([&] { fg::data::read_image(dir / "x.gif"); }), dir / "x.gif",
                        "it is not a PNG, JPEG, BMP, TGA or TIFF file");
  // The header checks come before any decoding, for read_image_info too.
  for (const char* name : {"huge.png", "huge.tif", "empty.png", "noise.png"})
    expect_one_line_error(error_of([&] { fg::data::read_image_info(dir / name); }), dir / name,
                          "cannot decode the image");
  // Limits can be tightened.
  fg::data::ImageLimits tight;
  tight.max_side = 15;
  expect_one_line_error(error_of([&] { fg::data::read_image(dir / "good.png", tight); }), dir / "good.png",
                        "over the limit of 15 per side");
  tight = {};
  tight.max_decoded_bytes = 16 * 16 * 3 - 1;
  expect_one_line_error(error_of([&] { fg::data::read_image(dir / "good.tif", tight); }), dir / "good.tif",
                        "over the limit");
  // A folder, and a file that does not exist.
  fs::create_directories(dir / "folder.png");
  expect_one_line_error(error_of([&] { fg::data::read_image(dir / "folder.png"); }), dir / "folder.png",
                        "it is a folder");
  EXPECT_NE(error_of([&] { fg::data::read_image(dir / "missing.png"); }).find(dir / "missing.png"), std::string::npos);
}

TEST(ImageIo, EveryTruncationAndManyBitFlipsGiveAnImageOrAnError) {
  // Never a crash, a hang or another kind of exception: a truncated or damaged file decodes or throws fg::Error.
  const Image ref = random_image(3, 12, 10, 16, 11);
  for (const char* format : {"png", "tiff", "jpeg", "bmp", "tga"}) {
    fg::data::ImageWriteOptions opt;
    if (std::string(format) != "png" && std::string(format) != "tiff") opt.bit_depth = 8;
    const std::string bytes = fg::data::encode_image(ref, format, opt);
    int errors = 0;
    for (size_t n = 0; n < bytes.size(); ++n) {
      try {
        fg::data::decode_image(bytes.substr(0, n), format);
      } catch (const fg::Error&) {
        ++errors;
      }
    }
    EXPECT_GT(errors, 0) << format;
    std::mt19937 rng(77);
    for (int trial = 0; trial < 300; ++trial) {
      std::string damaged = bytes;
      for (int k = 0; k < 4; ++k) damaged[rng() % damaged.size()] ^= char(1 << (rng() % 8));
      try {
        const Image img = fg::data::decode_image(damaged, format);
        EXPECT_EQ(img.pixels.numel(), int64_t(img.channels) * img.height() * img.width());
      } catch (const fg::Error&) {
      }
    }
  }
}

TEST(ImageIo, FailedWritesNameTheFileAndLeaveTheFolderAsItWas) {
  TempDir dir("unwritable");
  const Image img = random_image(3, 8, 8, 16, 12);
  std::ofstream(dir / "a_file") << "x";
  fs::create_directories(dir / "taken.png");  // a folder where the file should go: the rename fails
  fg::data::write_image(dir / "keep.png", img);
  const std::string kept = fg::read_file(dir / "keep.png");
  const std::set<std::string> before = dir.entries();

  struct Case {
    std::string path, what;
  };
  const std::vector<Case> cases = {
      {dir / "a_file" + "/x.png", "cannot write"},
      {dir / "no_such_folder" + "/x.tif", "cannot write"},
      {dir / "taken.png", "taken.png"},
      {dir / "x.webp", "unknown extension"},
      {dir / "noext", "unknown extension"},
      {dir / "keep.jpg", "8-bit samples only"},  // nothing half-written either
  };
  for (const Case& c : cases) {
    const std::string message = error_of([&] {
      fg::data::ImageWriteOptions o;
      if (c.path.find("keep.jpg") != std::string::npos) o.bit_depth = 16;
      fg::data::write_image(c.path, img, o);
    });
    EXPECT_NE(message, "<no error>") << c.path;
    EXPECT_NE(message.find(c.path), std::string::npos) << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(dir.entries(), before) << c.path << ": something was left behind";
  }
  // A failed overwrite keeps the old file.
  fg::data::ImageWriteOptions bad;
  bad.bit_depth = 12;
  EXPECT_NE(error_of([&] { fg::data::write_image(dir / "keep.png", img, bad); }).find("8 or 16"), std::string::npos);
  EXPECT_EQ(fg::read_file(dir / "keep.png"), kept);
  // A folder without write permission (root writes anywhere, so only checked as another user).
  if (geteuid() != 0) {
    fs::create_directories(dir / "ro");
    ::chmod((dir / "ro").c_str(), 0555);
    const std::string message = error_of([&] { fg::data::write_image(dir / "ro/x.png", img); });
    EXPECT_NE(message.find("cannot write"), std::string::npos) << message;
    EXPECT_TRUE(fs::is_empty(dir / "ro"));
    ::chmod((dir / "ro").c_str(), 0755);
  }
}

TEST(ImageIo, DecodesAndEncodesFromSeveralThreadsAtOnce) {
  // The data loader decodes in parallel: stb_image's failure reason is per thread and libtiff's error handlers are
  // per file, so every thread gets its own pixels and its own messages.
  const Image ref = random_image(3, 31, 29, 16, 21);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"png", fg::data::encode_image(ref, "png")},
      {"tiff", fg::data::encode_image(ref, "tiff")},
      {"bad", std::string("\x89PNG\r\n\x1a\n", 8) + "truncated"},
      {"bad tiff", fg::data::encode_image(ref, "tiff").substr(0, 100)}};
  std::vector<std::string> failures(8);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < failures.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const auto& [name, bytes] = files[(t + size_t(i)) % files.size()];
        const std::string message = error_of([&] {
          const Image got = fg::data::decode_image(bytes, name);
          if (!fg::test::all_close(ref.pixels, got.pixels, 0.0, 0.0)) failures[t] += name + ": wrong pixels; ";
          fg::data::encode_image(got, "png");
        });
        const bool should_fail = name.rfind("bad", 0) == 0;
        if (should_fail != (message != "<no error>") || (should_fail && message.find("'" + name + "'") == std::string::npos))
          failures[t] += name + ": " + message + "; ";
      }
    });
  for (auto& th : threads) th.join();
  for (const std::string& f : failures) EXPECT_EQ(f, "");
}

TEST(ImageIo, MakeImageChecksItsTensor) {
  EXPECT_NE(error_of([] { fg::data::make_image(fg::Tensor::zeros({2, 2})); }).find("(C, H, W)"), std::string::npos);
  EXPECT_NE(error_of([] { fg::data::make_image(fg::Tensor::zeros({5, 2, 2})); }).find("C from 1 to 4"),
            std::string::npos);
  EXPECT_NE(error_of([] { fg::data::make_image(fg::Tensor::zeros({3, 2, 2}, fg::DType::U8)); }).find("floating"),
            std::string::npos);
  EXPECT_NE(error_of([] { fg::data::make_image(fg::Tensor::zeros({3, 2, 2}), 12); }).find("8 or 16"),
            std::string::npos);
  // A non-contiguous f64 view is copied into contiguous f32.
  const fg::Tensor t = fg::Tensor::arange(24, fg::DType::F64).view({2, 3, 4}).transpose(1, 2);
  const Image img = fg::data::make_image(t);
  EXPECT_TRUE(img.pixels.is_contiguous());
  EXPECT_EQ(img.pixels.dtype(), fg::DType::F32);
  EXPECT_EQ(img.channels, 2);
}
