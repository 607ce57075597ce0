// The training presets of `filmgrad train --preset NAME`: every default of a training run in one place, so that a
// preset reproduces a paper's schedule and each explicit flag overrides one field. docs/training.md explains each
// value and where it comes from.
//
//   dissertation   SPEC B (seeds/004): Dynamic U-Net on ResNet34, MSE, progressive resizing 64 -> 128 -> 256
//                  with the encoder frozen except its BatchNorms (10 epochs each, batch 32 -> 16 -> 8), then 20
//                  epochs unfrozen at 256; fastai's one-cycle (warm-up 80 % frozen, 50 % unfrozen), AdamW with
//                  decoupled weight decay 1e-3; augmentation on train and validation.
//   cross-channel  SPEC A (seeds/000): the cross-channel network on the blue channel of negatives, Adam at a
//                  constant 1e-4, batch 32, 20 epochs at 256, its combined loss.
//   demo           what `make demo` trains on the CPU in minutes: a narrow Dynamic U-Net (width 0.125) trained
//                  from scratch (nothing frozen) at 64 px, 64 crops per photo per epoch, 8 epochs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/task.h"

namespace fg::apps {

// One stage of training: a one-cycle (or constant) learning-rate schedule over `epochs` epochs at one image size.
struct TrainStage {
  int64_t size = 64;  // crops are size x size
  int64_t batch = 8;
  int64_t epochs = 1;
  bool frozen = false;     // the encoder frozen except its BatchNorms (models without an encoder ignore it)
  double lr = 1e-3;        // the peak learning rate (one-cycle) or the learning rate (constant)
  double pct_start = 0.3;  // one-cycle: the share of the stage's steps spent warming up
};

struct Preset {
  std::string name;
  std::string description;  // one line, for --help and the plan
  ModelConfig model;

  // The stages a preset builds: one per size (frozen while resizing when freeze_while_resizing), each
  // epochs_per_size long at the matching batch size and lr, then, when unfrozen_epochs > 0, one unfrozen stage at
  // the last size and batch with unfrozen_lr.
  std::vector<int64_t> sizes;
  std::vector<int64_t> batches;  // one per size
  int64_t epochs_per_size = 1;
  int64_t unfrozen_epochs = 0;
  bool freeze_while_resizing = false;
  double lr = 1e-3;
  double unfrozen_lr = 1e-4;
  double pct_start_frozen = 0.8;    // fastai fit_one_cycle's pct_start while the encoder is frozen
  double pct_start_unfrozen = 0.5;  // ... and once it is unfrozen (also used when nothing is ever frozen)

  std::string optimizer = "adamw";  // "adamw" (decoupled weight decay) or "adam" (L2 weight decay)
  double weight_decay = 1e-3;
  std::string schedule = "one_cycle";                  // "one_cycle" or "constant"
  bool augment = true;                                 // augment train and validation samples (data/augment.h)
  int64_t samples_per_image = 1;                       // crops per photo per epoch
  double load_scale = 1.0;                             // TrainOptions::load_scale
  int64_t damage_frame_min = 0, damage_frame_max = 0;  // TrainOptions::damage_frame_min/max
};

// The presets, in the order --help lists them.
const std::vector<Preset>& presets();
// The preset of that name; fg::Error listing the names otherwise.
const Preset& find_preset(const std::string& name);
std::string preset_names();  // "dissertation, cross-channel, demo"

// The stages a preset's fields describe (see Preset). Checks them: fg::Error for an empty or mismatched list, a
// size, batch or epoch count below 1, a non-positive learning rate.
std::vector<TrainStage> build_stages(const Preset& preset);

}  // namespace fg::apps
