// `filmgrad synth IN_DIR -o OUT_DIR`: damaged/clean pairs from a folder of clean photographs, through the same
// RestorationDataset (data/dataset.h) that training uses, with fixed damage (validation-style: centre crops, no
// augmentation, damage drawn from (seed, sample index) alone), so a run is reproducible and its pairs are what the
// evaluation of a trained model would see.
//
// Writes, for every sample NAME: OUT_DIR/damaged/NAME.EXT (the network's input: the damaged RGB, or for negatives
// (R, G, B_damaged)), OUT_DIR/clean/NAME.EXT (the clean RGB) and OUT_DIR/mask/NAME.EXT (the damage mask, grey).
// NAME is the image's path under IN_DIR without its extension (subfolders are kept), with "-sK" for crop K when
// --samples-per-image is above 1; two inputs that differ only by extension ("a.jpg", "a.png") become "a_jpg" and
// "a_png".
//
// Promises: every check that can fail before a pixel is written runs first (options, the folders, every input's
// header, every output name); an existing output is never replaced without --overwrite; files are written
// atomically, so an error mid-run (a corrupt image, named) leaves only complete files behind.
// Folders: OUT_DIR may not be IN_DIR, and IN_DIR may not lie inside OUT_DIR's damaged/, clean/ or mask/ (that
// would overwrite inputs). OUT_DIR may be a subfolder of IN_DIR: images under OUT_DIR are then left out of the
// inputs, so a second run never takes the first run's outputs for clean photographs.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "data/dataset.h"
#include "data/image_io.h"

namespace fg::apps {

namespace {

namespace fs = std::filesystem;

std::string help_text() {
  return "usage: filmgrad synth IN_DIR -o OUT_DIR [--task dust|negative] [--size S] [--load-size L] [--count N]\n"
         "                      [--seed S] [--overlays DIR] [--samples-per-image K] [--format png|jpg|tif]\n"
         "                      [--workers W] [--log-every N] [--overwrite]\n"
         "\n"
         "Makes damaged/clean pairs from every image under IN_DIR (PNG, JPEG, BMP, TGA, TIFF; subfolders\n"
         "included, hidden files skipped) and writes OUT_DIR/damaged/NAME.png, OUT_DIR/clean/NAME.png and\n"
         "OUT_DIR/mask/NAME.png. Grey images are repeated into RGB, alpha is composited over white. The damage\n"
         "is fixed by --seed and the image's position in the sorted list, so the same command writes the same\n"
         "files. OUT_DIR may be a subfolder of IN_DIR (its images are then not read as inputs), not IN_DIR.\n"
         "\n"
         "options:\n"
         "  -o, --out DIR          the output folder (created when missing)\n"
         "  --task T               dust: dust and scratches on the RGB image (default); negative: the blue\n"
         "                         layer of an old negative damaged, damaged/ then holds (R, G, B_damaged)\n"
         "  --size S               resize each image so its shorter side is S, then take the centre S x S\n"
         "                         (default 256); 0 keeps every image whole at its own size\n"
         "  --load-size L          resize to a shorter side of L >= S instead and crop S x S from that (with\n"
         "                         --samples-per-image K: the centre crop, then K - 1 fixed random crops):\n"
         "                         cuts a few large photos into many training-sized pieces\n"
         "  --damage-frame N[:M]   size dust for a frame of N px (shorter side), or N to M px drawn per sample\n"
         "                         (default: the rendering each piece is cut from)\n"
         "  --count N              write at most N samples (default: all)\n"
         "  --seed S               the damage seed (default 0)\n"
         "  --overlays DIR         dust: take the dust from the images in DIR instead of the generator\n"
         "  --samples-per-image K  K samples of each image, each with its own damage (default 1)\n"
         "  --format F             png (default; 16-bit when the input is 16-bit), jpg or tif\n"
         "  --workers W            threads preparing samples (default 2; 0: in the main thread). With\n"
         "                         --size 0 each sample being prepared holds about 40 bytes per pixel\n"
         "  --log-every N          a progress line every N samples (default 100; 0: only the summary)\n"
         "  --overwrite            replace outputs that exist (by default an existing output is an error)\n";
}

// True when `inner` is `outer` or lies inside it (both absolute and normalised).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin(), o = outer.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // the empty last element of a path ending in '/'
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

fs::path absolute_normal(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::weakly_canonical(fs::absolute(p), ec);
  if (ec) a = fs::absolute(p).lexically_normal();
  if (!a.has_filename() && a.has_parent_path() && a != a.root_path()) a = a.parent_path();  // "out/" -> "out"
  return a;
}

std::string extension_of(const std::string& format) {
  if (format == "png") return ".png";
  if (format == "jpg" || format == "jpeg") return ".jpg";
  if (format == "tif" || format == "tiff") return ".tif";
  throw UsageError("--format takes png, jpg or tif, got '" + format + "'");
}

std::string strip_extension(const std::string& rel) {
  const size_t dot = rel.find_last_of('.'), slash = rel.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return rel;
  return rel.substr(0, dot);
}

// Output names (without extension) of each input, unique: see the file header.
std::vector<std::string> output_stems(const std::vector<std::string>& inputs) {
  std::map<std::string, int> uses;
  for (const std::string& p : inputs) ++uses[strip_extension(p)];
  std::vector<std::string> stems;
  std::set<std::string> taken;
  for (const std::string& p : inputs) {
    std::string stem = strip_extension(p);
    if (uses[stem] > 1) stem += "_" + p.substr(stem.size() + 1);
    FG_CHECK(taken.insert(stem).second,
             "two inputs under the input folder would both be written as '" << stem << "'; rename one of them");
    stems.push_back(stem);
  }
  return stems;
}

void make_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  FG_CHECK(!ec, "cannot create the output folder '" << dir.string() << "': " << ec.message());
  FG_CHECK(fs::is_directory(dir, ec), "cannot create the output folder '" << dir.string() << "': a file has that name");
  FG_CHECK(::access(dir.c_str(), W_OK) == 0, "the output folder '" << dir.string() << "' is not writable");
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  ArgParser args("synth", {{"-o"},
                           {"--out"},
                           {"--task"},
                           {"--size"},
                           {"--load-size"},
                           {"--damage-frame"},
                           {"--count"},
                           {"--seed"},
                           {"--overlays"},
                           {"--samples-per-image"},
                           {"--format"},
                           {"--workers"},
                           {"--log-every"},
                           {"--overwrite", 0}});
  const std::vector<std::string> positionals = args.parse_with_positionals(argc, argv, 2);
  if (positionals.empty()) throw UsageError("synth needs the input folder: filmgrad synth IN_DIR -o OUT_DIR");
  if (positionals.size() > 1)
    throw UsageError("synth takes one input folder, got '" + positionals[0] + "' and '" + positionals[1] + "'");
  const std::string in_dir = positionals[0];
  if (args.has("-o") && args.has("--out")) throw UsageError("give the output folder once, with -o or --out");
  if (!args.has("-o") && !args.has("--out")) throw UsageError("synth needs the output folder: -o OUT_DIR");
  const std::string out_dir = args.required(args.has("-o") ? "-o" : "--out");

  data::DatasetOptions ds;
  try {
    ds.task = data::parse_task(args.text("--task", "dust"));
  } catch (const fg::Error& e) {
    throw UsageError(std::string("--task: ") + e.what());
  }
  ds.size = args.integer("--size", 256, 0);
  ds.load_size = args.integer("--load-size", 0, 0);
  if (ds.load_size != 0 && (ds.size == 0 || ds.load_size < ds.size))
    throw UsageError("--load-size must be at least --size (and --size must not be 0)");
  if (args.has("--damage-frame"))
    parse_damage_frame(args.text("--damage-frame"), &ds.damage_frame_min, &ds.damage_frame_max);
  const int64_t count_limit = args.integer("--count", -1, 1);
  ds.seed = args.seed("--seed", 0);
  ds.samples_per_image = args.integer("--samples-per-image", 1, 1);
  const std::string ext = extension_of(args.text("--format", "png"));
  const int64_t workers = args.integer("--workers", 2, 0);
  const int64_t log_every = args.integer("--log-every", 100, 0);
  const bool overwrite = args.has("--overwrite");
  if (args.has("--overlays")) {
    if (ds.task != data::Task::DUST) throw UsageError("--overlays applies to --task dust only");
    ds.overlay_dir = args.required("--overlays");
    std::error_code ec;
    if (!fs::is_directory(ds.overlay_dir, ec))
      throw UsageError("the overlay folder '" + ds.overlay_dir + "' does not exist or is not a folder");
  }
  ds.train = false;
  ds.augment = false;
  ds.fixed_damage = true;
  ds.cache_mb = 256;

  std::error_code ec;
  if (!fs::exists(in_dir, ec)) throw UsageError("the input folder '" + in_dir + "' does not exist");
  if (!fs::is_directory(in_dir, ec))
    throw UsageError("'" + in_dir + "' is not a folder; synth reads a folder of images");
  const fs::path in_abs = absolute_normal(in_dir), out_abs = absolute_normal(out_dir);
  if (in_abs == out_abs)
    throw UsageError("-o names the input folder '" + in_dir +
                     "'; write the pairs to another folder (a subfolder is fine)");
  for (const char* sub : {"damaged", "clean", "mask"}) {
    if (is_within(in_abs, out_abs / sub))
      throw UsageError("the input folder '" + in_dir + "' lies inside the output's " + sub +
                       "/ folder, which synth writes into; choose another -o folder");
  }

  // Inputs: every image under IN_DIR except those under OUT_DIR or the overlay folder (when they are subfolders
  // of IN_DIR): outputs and dust textures are not clean photographs.
  std::vector<std::string> images = data::list_images(in_dir);
  std::vector<fs::path> excluded = {out_abs};
  if (!ds.overlay_dir.empty()) excluded.push_back(absolute_normal(ds.overlay_dir));
  for (const fs::path& ex : excluded) {
    if (!is_within(ex, in_abs)) continue;
    const std::string prefix = ex.lexically_relative(in_abs).generic_string() + "/";
    std::vector<std::string> kept;
    for (const std::string& p : images)
      if (p.compare(0, prefix.size(), prefix) != 0) kept.push_back(p);
    images.swap(kept);
  }
  FG_CHECK(!images.empty(), "no images (PNG, JPEG, BMP, TGA or TIFF) in '" << in_dir << "'");
  const int64_t available = int64_t(images.size()) * ds.samples_per_image;
  const int64_t count = count_limit < 0 ? available : std::min(count_limit, available);
  const int64_t images_used = (count + ds.samples_per_image - 1) / ds.samples_per_image;

  // Every header, and every output name, before anything is written. 16-bit inputs give 16-bit PNG/TIFF outputs.
  std::vector<int> depth(size_t(images.size()), 8);
  for (int64_t i = 0; i < images_used; ++i) {
    const data::ImageInfo info = data::read_image_info((fs::path(in_dir) / images[size_t(i)]).string());
    if (info.bit_depth == 16 && ext != ".jpg") depth[size_t(i)] = 16;
  }
  const std::vector<std::string> stems = output_stems(images);
  std::vector<std::string> names;  // per sample, without extension
  std::set<std::string> taken;
  for (int64_t s = 0; s < count; ++s) {
    const int64_t i = s / ds.samples_per_image, k = s % ds.samples_per_image;
    names.push_back(stems[size_t(i)] + (ds.samples_per_image > 1 ? "-s" + std::to_string(k) : ""));
    FG_CHECK(taken.insert(names.back()).second, "two samples would both be written as '"
                                                    << names.back() << ext << "'; rename '" << images[size_t(i)]
                                                    << "' or use --samples-per-image 1");
  }
  const char* kSubs[3] = {"damaged", "clean", "mask"};
  if (!overwrite) {
    for (const std::string& n : names)
      for (const char* sub : kSubs) {
        const fs::path p = out_abs / sub / (n + ext);
        FG_CHECK(!fs::exists(p, ec), "'" << (fs::path(out_dir) / sub / (n + ext)).string()
                                         << "' exists; pass --overwrite to replace the outputs, or choose another "
                                            "-o folder");
      }
  }
  for (const char* sub : kSubs) make_folder(fs::path(out_dir) / sub);

  const data::RestorationDataset dataset(in_dir, images, ds);
  data::LoaderOptions lo;
  lo.batch_size = 1;
  lo.workers = int(workers);
  lo.prefetch = ds.size > 0 ? 2 : 1;  // whole scans: a sample in flight holds about 40 bytes per pixel
  data::DataLoader loader(dataset, lo);
  loader.start_epoch(0);

  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (int64_t s = 0; s < count; ++s) {
    std::optional<data::Batch> batch = loader.next();
    FG_ASSERT(batch.has_value(), "the loader ended before sample " << s);
    const int d = depth[size_t(dataset.image_of(s))];
    const Tensor planes[3] = {batch->input.select(0, 0), batch->clean.select(0, 0), batch->mask.select(0, 0)};
    for (int f = 0; f < 3; ++f) {
      const fs::path p = fs::path(out_dir) / kSubs[f] / (names[size_t(s)] + ext);
      if (names[size_t(s)].find('/') != std::string::npos) make_folder(p.parent_path());  // a subfolder of IN_DIR
      data::write_image(p.string(), data::make_image(planes[f], d));
    }
    if (log_every > 0 && (s + 1) % log_every == 0 && s + 1 < count) {
      std::printf("synth: %s/%s samples (%.1f per second)\n", with_thousands(s + 1).c_str(),
                  with_thousands(count).c_str(), double(s + 1) / std::max(seconds(), 1e-9));
      std::fflush(stdout);
    }
  }
  const std::string size_text = ds.size > 0 ? std::to_string(ds.size) + "x" + std::to_string(ds.size) : "full size";
  std::printf(
      "synth: wrote %s samples (%s, %s, seed %llu) of %s images from '%s' to '%s' (damaged/, clean/, mask/) "
      "in %.1f s\n",
      with_thousands(count).c_str(), data::task_name(ds.task).c_str(), size_text.c_str(),
      static_cast<unsigned long long>(ds.seed), with_thousands(images_used).c_str(), in_dir.c_str(), out_dir.c_str(),
      seconds());
  if (count_limit > available) {
    std::printf("synth: --count %lld asked for more than the %s samples the folder gives\n",
                static_cast<long long>(count_limit), with_thousands(available).c_str());
  }
  return 0;
}

}  // namespace fg::apps
