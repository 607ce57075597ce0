// Datasets of damaged/clean pairs made from a folder of clean photographs, and the threaded loader that batches
// them. Damage is synthesised on the fly (data/damage.h), so every epoch sees new damage on train images, while
// validation and test images get fixed damage (drawn from their index alone) so scores compare across runs.
//
// The split (SPEC B: 8:1:1, recorded in train.csv, validation.csv, test.csv): every image file under the root
// (recursively; files whose extension image_format_for_path knows; hidden files and folders skipped) is listed
// in sorted order, shuffled with the split seed and cut 8:1:1: validation and test get round(n / 10) images each
// (at least one; n >= 3 is required), train the rest; each part is then sorted. The CSVs have a header line
// "path" and one path per line, relative to the image root, quoted as RFC 4180 when needed. When the CSVs exist
// they are read instead (so a split made once stays fixed): every path in them must exist, no list may be empty,
// and no image may be in two lists.
//
// One sample (Task::DUST, the dissertation): the image is decoded (cached, see cache_mb), resized so its shorter
// side is `size` (data/resize.h, area averaging), cropped to size x size (random crop for training, centre crop
// otherwise), augmented when `augment` is on (data/augment.h), then damaged:
//   input  = the damaged RGB (3, S, S); target = the clean RGB (3, S, S); mask = the damage alpha (1, S, S).
// Task::NEGATIVE (the cross-channel paper): the same crop, no augmentation unless asked, then damage_negative:
//   input  = (R, G, B_damaged) (3, S, S); target = the clean B (1, S, S); mask = M (1, S, S).
// Grey images are repeated into RGB, alpha is composited over white.
//
// Determinism: sample (index, epoch) draws from Generator(mix_seed(seed, epoch, index, SeedPurpose::SAMPLE))
// (epoch taken as 0 when fixed_damage is on), so it does not depend on threads, order of requests or what was
// drawn before. From that one stream, in this order: the crop box (random crops only), the augmentation
// (when on), the damage frame (DUST with damage_frame_min < damage_frame_max only), the other image for NEGATIVE
// PATCH content (drawn when w_patch > 0 and the list has two or more images: another image of the same list,
// uniform, never the sample's own; passed whole, at its resized size, to damage_negative), then the damage. The dust
// pattern seed is mix_seed(seed, epoch, index, SeedPurpose::DUST_PATTERN).
//
// size 0 keeps every image at its own size (no resize, no crop): what `filmgrad synth --size 0` writes. Samples
// then differ in size and batch only with others of the same size (collate checks).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/damage.h"
#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::data {

// What a derived seed is for, so that two streams of the same (seed, epoch, index) never coincide.
enum class SeedPurpose : uint64_t { SAMPLE = 1, DUST_PATTERN = 2, SHUFFLE = 3, SPLIT = 4 };

// The one seed mixer of the data pipeline: splitmix64 (Steele, Lea, Flood 2014; the finaliser of Java's
// SplittableRandom) folded over the four values:
//   h = splitmix64(seed); h = splitmix64(h ^ epoch); h = splitmix64(h ^ index); h = splitmix64(h ^ purpose)
// where splitmix64(x) = z ^ (z >> 31) with z = x + 0x9E3779B97F4A7C15, z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9,
// z = (z ^ (z >> 27)) * 0x94D049BB133111EB. Every per-sample and per-epoch Generator is Generator(mix_seed(...)).
uint64_t mix_seed(uint64_t seed, uint64_t epoch, uint64_t index, SeedPurpose purpose);

// A uniformly random permutation of 0..n-1 (Fisher-Yates from the end, j drawn by rejection so it is unbiased),
// from gen's stream. The split shuffle uses Generator(mix_seed(seed, 0, 0, SPLIT)), the loader's epoch order
// Generator(mix_seed(seed, epoch, 0, SHUFFLE)).
std::vector<int64_t> random_permutation(int64_t n, Generator& gen);

struct Split {
  std::string root;  // the image root the paths are relative to
  std::vector<std::string> train, validation, test;
};

// Lists the images under image_root and reads the split CSVs from split_dir, or creates and writes them
// (atomically) when none of the three exists. A folder with fewer than 3 images, a CSV that names a missing file,
// or only some of the three CSVs present: fg::Error saying what to do.
Split load_or_create_split(const std::string& image_root, const std::string& split_dir, uint64_t seed = 0);
// Every image under the root, sorted (what the split is made from): paths relative to the root with '/'
// separators, sorted bytewise. Symbolic links to files are followed, links to folders are not. A root that does
// not exist or is not a folder throws fg::Error; an empty folder gives an empty list.
std::vector<std::string> list_images(const std::string& image_root);
// Reads one split CSV (header "path", RFC 4180 quoting) as written by load_or_create_split; fg::Error naming the
// file and line for anything else.
std::vector<std::string> read_split_csv(const std::string& csv_path);

enum class Task { DUST, NEGATIVE };
// "dust" / "negative" and back (fg::Error for anything else).
Task parse_task(const std::string& name);
std::string task_name(Task task);

struct DatasetOptions {
  Task task = Task::DUST;
  int64_t size = 64;  // S: samples are S x S (0: each image at its own size, see above)
  // The shorter side images are resized to before the S x S crop: 0 means S (the whole image, shrunk, as fastai
  // and the dissertation train); larger values take crops of a larger rendering (small photo folders, the demo).
  int64_t load_size = 0;
  // DUST: the shorter side, in pixels, of the frame the dust is sized for (DustSynthesizer::apply's
  // frame_short_side). 0 and 0: the rendering the crop is cut from (load_size, or size; with size 0 the image
  // itself), so a crop gets the dust of the whole rendered picture, at its pixel size, never dust shrunk to the
  // crop. min == max > 0: that frame. min < max: drawn per sample, log-uniformly in [min, max] (from the sample's
  // stream, after the augmentation and before the damage), so one network learns the damage of every scale of use
  // in that range.
  int64_t damage_frame_min = 0, damage_frame_max = 0;
  bool train = false;         // random crops (otherwise centre crops)
  bool augment = false;       // data/augment.h with `augment_options`
  bool fixed_damage = false;  // damage and crop drawn from the index alone (validation, test)
  uint64_t seed = 0;
  // Crops taken from each image per epoch (small photo folders, the demo). Without `train`, crop 0 is the centre
  // crop and crops k > 0 are random boxes drawn from the sample's fixed generator, so they differ but never change.
  int64_t samples_per_image = 1;
  AugmentOptions augment_options;
  DustOptions dust;
  std::string overlay_dir;  // DUST: a folder of overlay images instead of the generator
  NegativeDamageOptions negative;
  int64_t cache_mb = 512;  // decoded, resized images kept in memory (0: decode every time); least recently
                           // used images are dropped first; an image larger than the whole budget is not kept
};

struct Sample {
  Tensor input;      // (3, S, S) f32 in [0, 1]
  Tensor target;     // DUST (3, S, S), NEGATIVE (1, S, S)
  Tensor mask;       // (1, S, S) in [0, 1]
  Tensor clean;      // (3, S, S): the clean RGB (for reports; NEGATIVE: with the clean blue)
  std::string name;  // the image's path relative to the root, plus "#k" for crop k when samples_per_image > 1
};

class RestorationDataset {
 public:
  // paths relative to root (a Split's lists). Throws for an empty list or bad options.
  RestorationDataset(std::string root, std::vector<std::string> paths, const DatasetOptions& options);
  ~RestorationDataset();
  int64_t size() const;  // paths * samples_per_image
  // Thread-safe. An image that cannot be read throws fg::Error naming it (every error from a sample names its
  // image). index in [0, size()), otherwise fg::Error.
  Sample get(int64_t index, int64_t epoch) const;
  // The image (its position in paths()) a dataset index stands for; the crop number is index % samples_per_image.
  int64_t image_of(int64_t index) const { return index / options_.samples_per_image; }
  // Bytes of decoded images held by the cache now (at most cache_mb MiB).
  int64_t cache_bytes() const;
  const DatasetOptions& options() const { return options_; }
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  std::string root_;
  std::vector<std::string> paths_;
  DatasetOptions options_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Batch {
  Tensor input, target, mask, clean;  // samples stacked: (B, ...) f32, CPU (pinned when asked) or the device
  std::vector<std::string> names;
  std::vector<int64_t> indices;  // dataset indices
};

struct LoaderOptions {
  int64_t batch_size = 8;
  bool shuffle = false;  // a permutation per epoch drawn from (seed, epoch)
  bool drop_last = false;
  int workers = 2;   // threads assembling batches (0: in the calling thread)
  int prefetch = 2;  // batches ready ahead, per worker
  uint64_t seed = 0;
  // Batches in page-locked host memory (Tensor::empty_pinned: faster copies to the GPU) when CUDA is built and a
  // device is present; ordinary host memory otherwise.
  bool pin_memory = false;
  // Data-parallel training (dist/ddp.h): this process assembles only its part of every batch, part shard_index
  // of shard_count equal contiguous parts (batch_size must divide by shard_count), so the global batches, and
  // their order, are those of one process whatever the number of processes.
  int64_t shard_index = 0, shard_count = 1;
};

// Batches in a fixed order for (seed, epoch); the same batches whatever the number of workers. A worker's error
// (an unreadable image) is re-thrown by next().
// How: batch b of an epoch holds the samples order[b*B .. b*B+B) (order the identity, or the epoch's permutation
// when shuffle is on); worker threads take batch numbers in increasing order, each assembling a whole batch
// (dataset.get for its samples, then collate), and next() hands them out in batch order. At most
// workers * prefetch batches are being assembled or waiting at any time. An error is re-thrown by the next() that
// reaches its batch (the fg::Error of the dataset, naming the image); the following next() goes on with the next
// batch. start_epoch during an epoch abandons it (batches still being assembled are discarded). The dataset must
// outlive the loader. The destructor stops the workers after the batches they are assembling, even mid-epoch.
class DataLoader {
 public:
  DataLoader(const RestorationDataset& dataset, const LoaderOptions& options);
  ~DataLoader();  // stops the workers
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  // Starts an epoch, skipping its first `skip` batches (resuming mid-epoch gives the same batches that follow).
  void start_epoch(int64_t epoch, int64_t skip = 0);
  // The next batch of the epoch, or nullopt at its end (also before any start_epoch).
  std::optional<Batch> next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Stacks samples into a batch (what the loader's workers call). Samples of different shapes throw fg::Error
// naming two of them; an empty list is a programmer error.
Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices, bool pin_memory = false);

}  // namespace fg::data
