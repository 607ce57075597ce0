// `filmgrad restore`'s logic, usable from other code: plans which files are written where, then restores images
// of any size with a trained RestorationModel (apps/task.h), tiled (data/tiling.h) so memory is bounded by the
// tile, not the scan.
//
// Promises:
// - Nothing is written before the whole plan is checked: every input exists, no two inputs map to the same output,
//   no output is (or resolves to the same file as) an input, and no output exists unless overwrite is set.
// - An output keeps its input's bit depth (16-bit PNG or TIFF in, 16-bit out) and channel count; alpha is carried
//   over unchanged. Files are written atomically (data/image_io.h), so a failure leaves nothing half-written.
// - The network runs in eval mode without gradients, one tile at a time; the image is decoded once to f32 and the
//   restored pixels are accumulated in one f32 buffer. Dust mode: the image's RGB in, RGB out (grey images are
//   repeated into RGB and written back grey as the mean of the three restored channels). Negative mode: the image's
//   (R, G, B) is the network's (R, G, B_damaged); the output keeps R and G bit for bit and replaces B with the
//   restored blue.
// - Receptive fields and default margins: see default_margin() and docs/restore.md.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/task.h"
#include "data/image_io.h"
#include "data/tiling.h"

namespace fg::apps {

struct RestoreOptions {
  std::string mode;               // "dust" or "negative"; "" takes the model's task (a different one is an error)
  bool write_mask = false;        // also write NAME_mask.png, the predicted damage mask
  int64_t tile = 512;             // the largest tile side in pixels
  int64_t margin = -1;            // pixels discarded at inner tile edges; -1: default_margin() of the model
  int64_t ramp = 32;              // feathering width between tiles
  std::string device = "cpu";     // "cpu", "cuda" or "cuda:N"
  std::string format = "same";    // "same" (the input's format), "png", "tif" or "jpg"
  std::string suffix = "_restored";
  bool overwrite = false;         // replace outputs that exist (inputs are never replaced)
  // Restore at the scale of training: an image whose shorter side exceeds work_size is shrunk to it (area
  // average), restored there, and the result brought back to full size (bilinear) only where the network changed
  // it: out = input + m (up(restored) - input), with m the upsampled damage mask, so pixels the network leaves
  // alone keep their full-resolution detail bit for bit. Dust mode only. 0: always at full size. -1 (the
  // command's default, "auto"): trained_work_size() of the checkpoint, resolved by the caller.
  int64_t work_size = 0;
  // Dust mode, for a model that predicts a damage mask: "network" (the network's own output) or "classical": the
  // pixels its mask marks (data::hole_from_mask(mask, fill_threshold), dilated by 1 px) filled from the pixels
  // around them by `inpaint`, every other pixel kept bit for bit. The network then only finds the
  // damage; docs/training.md ("Finding the damage") says why that restores unseen photographs better, and why
  // 0.7 (fewer false alarms on clean photographs than at 0.5, for a little less of the damage).
  std::string fill = "network";
  double fill_threshold = 0.7;
  // The classical fill: "harmonic" (data::inpaint_diffusion, the fill of `filmgrad eval`'s inpaint row) or
  // "biharmonic" (data::inpaint_biharmonic: carries the gradients around a hole into it, and is solved directly,
  // several times faster on a large scan; on the unseen photographs it scores a little lower, docs/restore.md).
  std::string inpaint = "harmonic";
  // With fill "classical": "neutral" keeps only the filled components whose change is a blend towards white or
  // black alike in every channel, as dust's is (data::neutral_components; the rest are put back as they were),
  // "none" keeps every fill.
  std::string fill_check = "neutral";
  // Average the network over the image and its three mirror images (left-right, up-down, both), each tile: four
  // forwards instead of one. The mask's false alarms and misses that depend on the orientation average out
  // (docs/restore.md gives the measured effect).
  bool flip_average = false;
  int jpeg_quality = 95;
  // models/inference.h, applied by the Restorer once: fold the BatchNorms (same results up to float rounding), and
  // store the weights in f16 (CPU only; a UsageError on another device).
  bool inference_mode = false;
  bool f16_weights = false;
  // Called after each tile with (tiles done, tiles in the image); may be empty.
  std::function<void(int64_t, int64_t)> on_tile;
};

// One image to restore and where its results go.
struct RestoreJob {
  std::string input;        // the image file
  std::string output;       // the restored image
  std::string mask_output;  // NAME_mask.png beside the output, or "" when no mask is asked for
};

// Expands `inputs` (files, or folders searched recursively for files whose extension names an image format;
// hidden files and folders skipped) into jobs. `out` is a folder (created later by restore) where each output is
// written as STEM + suffix + extension, keeping the sub-folders of a searched folder; with exactly one input file
// and an `out` that ends in an image extension and is not an existing folder, `out` is the output file itself.
// Throws UsageError (apps/args.h) for a missing input, a folder without images, two inputs sharing an output, an
// output that is an input, or an existing output without overwrite; fg::Error for an unusable `out`.
std::vector<RestoreJob> plan_restore(const std::vector<std::string>& inputs, const std::string& out,
                                     const RestoreOptions& options);

// The default margin for a model: the radius of its receptive field where that is small enough to cover exactly
// (then tiled and untiled outputs agree up to float rounding), otherwise 32 pixels with feathered seams (the
// Dynamic U-Net's ResNet34 encoder sees about 900 pixels and its self-attention the whole tile; the cross-channel
// sub-networks see several hundred pixels). See docs/restore.md.
int64_t default_margin(const ModelConfig& config);
// The exact receptive-field radius in pixels (how far an output pixel can depend on input pixels), or -1 when the
// network has a global operator (self-attention).
int64_t receptive_radius(const ModelConfig& config);

struct RestoreReport {
  int64_t width = 0, height = 0;
  int64_t tiles = 0;
  double seconds = 0;
  std::string input_description;  // "tiff 16-bit, 3 channels"
  std::string note;               // what changed on the way out ("alpha dropped for JPEG"), or ""
};

class Restorer {
 public:
  // Takes the model (moved to options.device, eval mode). Throws UsageError for options that do not fit the model
  // (a mode other than its task, a tile smaller than its size multiple, margins that leave no tile).
  Restorer(std::unique_ptr<RestorationModel> model, const RestoreOptions& options);
  ~Restorer();

  // The restored image (the input's channels and depth) and, when `mask` is not null, the predicted damage mask
  // (1, H, W) in [0, 1]. `image` is consumed: its pixels are reused or freed as soon as they are not needed, to keep
  // the peak memory of a large scan low. Throws fg::Error when the image cannot be restored in this mode (a grey
  // image in negative mode).
  data::Image restore(data::Image image, Tensor* mask = nullptr, int64_t* tiles = nullptr);

  // Reads job.input, restores it and writes job.output (and job.mask_output). Throws fg::Error naming the file.
  RestoreReport restore_file(const RestoreJob& job);

  // Changes the tiling the constructor set from RestoreOptions (tile, margin with -1 for the default, ramp), with
  // the same checks (UsageError).
  void set_tiling(int64_t tile, int64_t margin, int64_t ramp);

  const data::TileOptions& tile_options() const { return tile_options_; }
  RestorationModel& model() { return *model_; }
  const std::string& mode() const { return mode_; }

 private:
  Tensor run_network(const Tensor& rgb, bool with_mask, int64_t* tiles);
  // run_network at options_.work_size (RestoreOptions::work_size): (3 [+ 1 mask], H, W) at rgb's size.
  Tensor run_at_work_size(const Tensor& rgb, bool with_mask, int64_t* tiles);

  std::unique_ptr<RestorationModel> model_;
  RestoreOptions options_;
  std::string mode_;
  Device device_;
  data::TileOptions tile_options_;
};

// The frame size a checkpoint's network was trained for: its training run's largest damage frame (the dust was
// sized for frames up to that many pixels on the shorter side; TrainOptions::damage_frame_max), or 0 when the run
// recorded none (damage sized for each rendering, or a file written outside `filmgrad train`).
int64_t trained_work_size(const std::string& checkpoint_path);

// The checkpoint a --model argument names: a file as it is, or a run folder's model.safetensors. UsageError when
// neither exists.
std::string resolve_model_path(const std::string& run_or_checkpoint);

}  // namespace fg::apps
