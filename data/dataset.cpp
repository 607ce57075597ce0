// The datasets of data/dataset.h: the 8:1:1 split and its CSVs, the seed mixer, and RestorationDataset (decode,
// cache, resize, crop, augment, damage). The threaded loader and collate are in data/loader.cpp.
//
// Promises beyond the header: a sample depends only on (options, paths, index, epoch) and the files, never on the
// thread, the cache or the order of requests; the cache never holds more than cache_mb MiB of pixels.
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "data/image_io.h"
#include "data/resize.h"
#include "tensor/error.h"
#include "tensor/safetensors.h"

namespace fg::data {

namespace fs = std::filesystem;

namespace {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, n): 64 bits from two Philox words, rejecting the top sliver that would bias x % n.
uint64_t uniform_below(Generator& gen, uint64_t n) {
  FG_ASSERT(n > 0, "uniform_below needs n > 0");
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: values below it are rejected
  for (;;) {
    const uint64_t first = gen.reserve(2);
    const uint64_t x = (uint64_t(gen.word(first, 0)) << 32) | gen.word(first, 1);
    if (x >= threshold) return x % n;
  }
}

const char* const kSplitFiles[3] = {"train.csv", "validation.csv", "test.csv"};

std::string csv_field(const std::string& s) {
  const bool quote =
      s.find_first_of(",\"\r\n") != std::string::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_text(const std::vector<std::string>& paths) {
  std::string out = "path\n";
  for (const std::string& p : paths) out += csv_field(p) + "\n";
  return out;
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

uint64_t mix_seed(uint64_t seed, uint64_t epoch, uint64_t index, SeedPurpose purpose) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ epoch);
  h = splitmix64(h ^ index);
  return splitmix64(h ^ uint64_t(purpose));
}

std::vector<int64_t> random_permutation(int64_t n, Generator& gen) {
  FG_ASSERT(n >= 0, "random_permutation needs n >= 0");
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(uniform_below(gen, uint64_t(i) + 1))]);
  return p;
}

std::vector<std::string> list_images(const std::string& image_root) {
  std::error_code ec;
  const fs::file_status st = fs::status(image_root, ec);
  FG_CHECK(fs::exists(st), "the image folder '" << image_root << "' does not exist");
  FG_CHECK(fs::is_directory(st), "'" << image_root << "' is not a folder; give the folder that holds the images");
  std::vector<std::string> out;
  const fs::path root(image_root);
  try {
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
      const fs::path& p = it->path();
      if (is_hidden(p)) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      std::error_code fec;
      if (!fs::is_regular_file(p, fec)) continue;  // follows links to files; folders are walked by the iterator
      if (image_format_for_path(p.filename().string()).empty()) continue;
      out.push_back(p.lexically_relative(root).generic_string());
    }
  } catch (const fs::filesystem_error& e) {
    throw fg::Error("cannot list the images under '" + image_root + "': " + e.code().message() + " ('" +
                    e.path1().string() + "')");
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> read_split_csv(const std::string& csv_path) {
  std::string text = read_file(csv_path);
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // a BOM left by a spreadsheet
  // RFC 4180 records: fields separated by ',', records by CRLF or LF, quoted fields may hold both and "" for ".
  std::vector<std::vector<std::string>> records;
  std::vector<int64_t> lines;  // the line each record starts on, for messages
  std::vector<std::string> record;
  std::string field;
  bool quoted = false, field_started = false;
  int64_t line = 1, record_line = 1;
  auto end_record = [&] {
    if (field_started || !record.empty()) {
      record.push_back(field);
      records.push_back(record);
      lines.push_back(record_line);
    }
    record.clear();
    field.clear();
    field_started = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"') {
      FG_CHECK(field.empty(), "split CSV '" << csv_path << "' line " << line
                                            << ": a quote inside an unquoted field; quote the whole field");
      quoted = field_started = true;
    } else if (c == ',') {
      record.push_back(field);
      field.clear();
      field_started = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      record_line = ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  FG_CHECK(!quoted, "split CSV '" << csv_path << "' ends inside a quoted field; close the quote");
  end_record();
  FG_CHECK(!records.empty() && records[0].size() == 1 && records[0][0] == "path",
           "split CSV '" << csv_path << "' must start with the header line \"path\"");
  std::vector<std::string> paths;
  for (size_t r = 1; r < records.size(); ++r) {
    FG_CHECK(records[r].size() == 1, "split CSV '" << csv_path << "' line " << lines[r] << " has " << records[r].size()
                                                   << " fields; each line holds one path (quote paths with commas)");
    FG_CHECK(!records[r][0].empty(), "split CSV '" << csv_path << "' line " << lines[r] << " holds an empty path");
    paths.push_back(records[r][0]);
  }
  return paths;
}

Split load_or_create_split(const std::string& image_root, const std::string& split_dir, uint64_t seed) {
  std::error_code ec;
  const fs::file_status root_st = fs::status(image_root, ec);
  FG_CHECK(fs::exists(root_st), "the image folder '" << image_root << "' does not exist");
  FG_CHECK(fs::is_directory(root_st), "'" << image_root << "' is not a folder; give the folder that holds the images");
  Split split;
  split.root = image_root;
  std::vector<std::string>* lists[3] = {&split.train, &split.validation, &split.test};
  std::string present, missing;
  for (const char* name : kSplitFiles) {
    const bool here = fs::exists(fs::path(split_dir) / name, ec);
    std::string& to = here ? present : missing;
    to += (to.empty() ? "" : ", ") + std::string(name);
  }
  if (!present.empty() && !missing.empty()) {
    throw fg::Error("the split folder '" + split_dir + "' holds " + present + " but not " + missing +
                    "; restore the missing files, or delete the others to make a new split");
  }
  if (missing.empty()) {
    std::map<std::string, std::string> seen;  // path -> the CSV that names it
    for (int k = 0; k < 3; ++k) {
      const std::string csv = (fs::path(split_dir) / kSplitFiles[k]).string();
      *lists[k] = read_split_csv(csv);
      FG_CHECK(!lists[k]->empty(), "split CSV '" << csv << "' lists no images; delete the three CSVs in '" << split_dir
                                                 << "' to make a new split");
      for (const std::string& p : *lists[k]) {
        FG_CHECK(fs::is_regular_file(fs::path(image_root) / p, ec),
                 "split CSV '" << csv << "' names '" << p << "', which is not a file under '" << image_root
                               << "'; restore it, or delete the three CSVs in '" << split_dir
                               << "' to make a new split");
        auto [it, fresh] = seen.emplace(p, kSplitFiles[k]);
        FG_CHECK(fresh, "'" << p << "' is listed in both " << it->second << " and " << kSplitFiles[k] << " in '"
                            << split_dir << "'; an image belongs to one part of the split");
      }
    }
    return split;
  }

  const std::vector<std::string> images = list_images(image_root);
  const int64_t n = int64_t(images.size());
  FG_CHECK(n >= 3, "the image folder '" << image_root << "' holds " << n
                                        << " image(s); a split needs at least 3 (PNG, JPEG, BMP, TGA or TIFF)");
  Generator gen(mix_seed(seed, 0, 0, SeedPurpose::SPLIT));
  const std::vector<int64_t> order = random_permutation(n, gen);
  const int64_t n_val = std::max<int64_t>(1, std::llround(double(n) * 0.1));
  const int64_t n_test = n_val;
  const int64_t n_train = n - n_val - n_test;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::string>& to = i < n_train ? split.train : i < n_train + n_val ? split.validation : split.test;
    to.push_back(images[size_t(order[size_t(i)])]);
  }
  for (std::vector<std::string>* l : lists) std::sort(l->begin(), l->end());
  fs::create_directories(split_dir, ec);
  FG_CHECK(!ec, "cannot create the split folder '" << split_dir << "': " << ec.message());
  for (int k = 0; k < 3; ++k) write_file_atomic((fs::path(split_dir) / kSplitFiles[k]).string(), csv_text(*lists[k]));
  return split;
}

// ---- RestorationDataset ----

struct RestorationDataset::Impl {
  std::unique_ptr<DustSynthesizer> dust;
  // The decode cache: image number -> (3, h, w) pixels after resizing; least recently used at the back.
  mutable std::mutex mutex;
  mutable std::list<int64_t> lru;
  struct Entry {
    Tensor pixels;
    std::list<int64_t>::iterator pos;
  };
  mutable std::unordered_map<int64_t, Entry> cache;
  mutable int64_t bytes = 0;
  int64_t budget = 0;

  // The image as the dataset uses it: RGB (grey repeated, alpha composited over white), short side S. Shared with
  // the cache: callers must not write into it.
  Tensor image(const std::string& root, const std::string& path, int64_t number, int64_t size) const {
    if (budget > 0) {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache.find(number);
      if (it != cache.end()) {
        lru.splice(lru.begin(), lru, it->second.pos);
        return it->second.pixels;
      }
    }
    // Decoded outside the lock, so threads decode in parallel; two threads asking for the same image at once both
    // decode it (the same pixels), and the second keeps the first's copy.
    const Image img = read_image((fs::path(root) / path).string());
    Tensor rgb = to_rgb(img, AlphaMode::Composite, 1.0f);
    if (size > 0) rgb = resize_short_side(rgb, size);
    rgb = rgb.contiguous();
    const int64_t b = int64_t(rgb.nbytes());
    if (budget <= 0 || b > budget) return rgb;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(number);
    if (it != cache.end()) return it->second.pixels;
    while (bytes + b > budget && !lru.empty()) {
      auto victim = cache.find(lru.back());
      bytes -= int64_t(victim->second.pixels.nbytes());
      cache.erase(victim);
      lru.pop_back();
    }
    lru.push_front(number);
    cache.emplace(number, Entry{rgb, lru.begin()});
    bytes += b;
    return rgb;
  }
};

RestorationDataset::RestorationDataset(std::string root, std::vector<std::string> paths, const DatasetOptions& options)
    : root_(std::move(root)), paths_(std::move(paths)), options_(options), impl_(std::make_unique<Impl>()) {
  FG_CHECK(!paths_.empty(), "the dataset under '" << root_ << "' has no images");
  FG_CHECK(options_.size >= 0, "the sample size must be 0 (full size) or positive, got " << options_.size);
  FG_CHECK(options_.load_size == 0 || options_.load_size >= options_.size,
           "the load size (the shorter side images are resized to before cropping) must be 0 or at least the sample "
           "size " << options_.size << ", got " << options_.load_size);
  FG_CHECK(options_.damage_frame_min >= 0 && options_.damage_frame_max >= options_.damage_frame_min &&
               (options_.damage_frame_min > 0) == (options_.damage_frame_max > 0),
           "the damage frame must be 0 (the rendering's own size) or a range of pixel sizes min <= max, both "
           "positive, got "
               << options_.damage_frame_min << " to " << options_.damage_frame_max);
  FG_CHECK(options_.samples_per_image >= 1, "samples per image must be at least 1, got " << options_.samples_per_image);
  FG_CHECK(options_.cache_mb >= 0, "the cache size must be 0 or more MiB, got " << options_.cache_mb);
  FG_CHECK(!(options_.task == Task::NEGATIVE && !options_.overlay_dir.empty()),
           "dust overlays apply to the dust task, not to negatives; drop the overlay folder");
  impl_->budget = options_.cache_mb * (int64_t(1) << 20);
  if (options_.task == Task::DUST) impl_->dust = std::make_unique<DustSynthesizer>(options_.dust, options_.overlay_dir);
}

RestorationDataset::~RestorationDataset() = default;

int64_t RestorationDataset::size() const {
  return int64_t(paths_.size()) * options_.samples_per_image;
}

int64_t RestorationDataset::cache_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->bytes;
}

Sample RestorationDataset::get(int64_t index, int64_t epoch) const {
  FG_CHECK(index >= 0 && index < size(),
           "sample " << index << " is outside the dataset of " << size() << " samples under '" << root_ << "'");
  const int64_t number = image_of(index);
  const std::string& path = paths_[size_t(number)];
  const int64_t k = index % options_.samples_per_image;
  const uint64_t e = options_.fixed_damage ? 0 : uint64_t(epoch);
  Generator gen(mix_seed(options_.seed, e, uint64_t(index), SeedPurpose::SAMPLE));
  const int64_t S = options_.size;
  const int64_t L = S > 0 && options_.load_size > S ? options_.load_size : S;

  const Tensor full = impl_->image(root_, path, number, L);  // its fg::Error names the file
  Sample s;
  s.name = options_.samples_per_image > 1 ? path + "#" + std::to_string(k) : path;
  try {
    Tensor clean;
    if (S > 0) {
      const bool random_box = options_.train || k > 0;
      const CropBox box = random_box ? random_crop_box(full.size(1), full.size(2), S, S, gen)
                                     : center_crop_box(full.size(1), full.size(2), S, S);
      clean = crop(full, box);
    } else {
      clean = full.clone();  // the cached pixels stay untouched whatever the caller does with the sample
    }
    if (options_.augment) {
      const AugmentParams params = draw_augment(options_.augment_options, gen);
      if (!params.is_identity()) clean = apply_augment(clean, params);
    }
    clean = clean.contiguous();
    const int64_t H = clean.size(1), W = clean.size(2);
    if (options_.task == Task::DUST) {
      // The frame the dust is sized for: the rendering the crop came from, unless the options name one.
      double frame = S > 0 ? double(std::min(full.size(1), full.size(2))) : 0.0;
      if (options_.damage_frame_min > 0) {
        const double lo = double(options_.damage_frame_min), hi = double(options_.damage_frame_max);
        frame = lo < hi ? std::exp(uniform(gen, std::log(lo), std::log(hi))) : lo;
      }
      const DustDamage d = impl_->dust->apply(
          clean, mix_seed(options_.seed, e, uint64_t(index), SeedPurpose::DUST_PATTERN), gen, frame);
      s.input = d.damaged.contiguous();
      s.target = clean;
      s.mask = d.mask.contiguous();
    } else {
      Tensor other;
      if (options_.negative.w_patch > 0 && paths_.size() >= 2) {
        int64_t j = int64_t(uniform_below(gen, uint64_t(paths_.size()) - 1));
        if (j >= number) ++j;
        other = impl_->image(root_, paths_[size_t(j)], j, L);
      }
      const NegativeDamage d = damage_negative(clean, other, gen, options_.negative);
      s.input = Tensor::empty({3, H, W});
      s.input.slice(0, 0, 2).copy_(clean.slice(0, 0, 2));
      s.input.slice(0, 2, 3).copy_(d.damaged_blue.reshape({1, H, W}));
      s.target = clean.slice(0, 2, 3).contiguous();
      s.mask = d.mask.contiguous();
    }
    s.clean = clean;
  } catch (const fg::Error& err) {
    const std::string what = err.what();
    if (what.find(path) != std::string::npos) throw;
    throw fg::Error("cannot make a sample of '" + path + "' under '" + root_ + "': " + what);
  }
  return s;
}

}  // namespace fg::data
