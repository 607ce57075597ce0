// The training job behind `filmgrad train`, usable from other code: a Trainer takes TrainOptions (a folder of
// clean photos, a run folder, the model, the stages) and trains, validating every epoch and checkpointing.
//
// The run folder RUN holds:
//   train.csv, validation.csv, test.csv   the 8:1:1 split (data/dataset.h), made once and then read back
//   last.safetensors    model, optimizer, position (stage, epoch, batch, step), loss-scaler state, best validation
//                       loss, the ModelConfig ("config") and these options ("train_options"): everything --resume
//                       needs. Written every checkpoint_every steps, at each epoch's end and when stopped.
//   best.safetensors    the weights with the lowest validation loss of the current stage (see below)
//   model.safetensors   at the end: the best weights, reloaded; what `filmgrad eval` and `restore` load
//   metrics.jsonl (or metrics.csv)   a line every log_every steps and one per epoch (docs/training.md)
//   samples/epoch_NNN.png             input | prediction | target for a fixed validation batch, every epoch
//
// Promises:
// - Determinism: the same options give the same per-step losses, on every run, whatever the number of loader
//   workers (the loader is deterministic per (seed, epoch, index)), for a fixed number of OpenMP threads.
// - Resume is exact: a run stopped at any step (a signal, --max-steps, a crash after a checkpoint) and resumed
//   from last.safetensors logs the same per-step losses and ends with the same weights as a run never stopped.
//   Everything a step depends on is in the checkpoint or derived from its position: weights, BatchNorm running
//   statistics and spectral-norm vectors (the state dict), the optimizer's moments, the loss scale, the
//   learning rate (from the schedule and the step), the batches (the loader skips what the epoch already used).
// - Best model: validation losses at different image sizes do not compare (fastai's SaveModelCallback tracks
//   each fit_one_cycle call on its own), so the best is tracked per stage; at the end of a stage its best weights
//   are reloaded before the next stage starts, and model.safetensors is the best of the last stage.
// - Errors are fg::Error with one line: a missing data folder, an unwritable run folder, a stage whose batch is
//   larger than the training split, a non-finite loss or gradient in f32 (naming the step and suggesting a
//   lower --lr; last.safetensors is then left as the last good checkpoint).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/presets.h"
#include "apps/task.h"
#include "dist/comm.h"

namespace fg::apps {

struct TrainOptions {
  // --- what is trained (fixed for the life of a run) ---
  std::string data_dir;   // the folder of clean photos
  std::string out_dir;    // RUN
  std::string split_dir;  // where the split CSVs live ("": RUN); copied into RUN when elsewhere
  std::string preset;     // the preset the options started from (for the record)
  ModelConfig model;
  std::vector<TrainStage> stages;
  std::string optimizer = "adamw";  // "adamw" or "adam"
  double weight_decay = 1e-3;
  std::string schedule = "one_cycle";  // "one_cycle" (fastai's, per stage) or "constant"
  bool augment = true;
  int64_t samples_per_image = 1;
  // Images are resized to a shorter side of load_scale x the stage's size before the random crop (1: the whole
  // image shrunk to the size, as the dissertation trains; 2: crops of a twice-larger rendering, finer detail).
  double load_scale = 1.0;
  // The frame dust is sized for (data::DatasetOptions::damage_frame_min/max): 0, 0 the rendering the crop comes
  // from; a range: drawn per sample, log-uniformly.
  int64_t damage_frame_min = 0, damage_frame_max = 0;
  std::string overlay_dir;  // dust overlays from a folder instead of the generator ("": the generator)
  uint64_t seed = 0;
  std::string precision = "f32";  // "f32", or "f16"/"bf16": mixed precision (CUDA), f32 master weights
  // Data-parallel runs (several ranks, docs/distributed.md): BatchNorm's batch statistics over every rank's shard
  // (synchronised) instead of each rank's own, as PyTorch's DDP does by default. No effect on one process.
  bool sync_bn = false;

  // --- how it runs (may change when resuming) ---
  std::string device = "cpu";        // "cpu", "cuda", "cuda:N"
  int workers = 2;                   // loader threads
  int64_t checkpoint_every = 500;    // steps between checkpoints (besides each epoch's end); 0: epoch ends only
  std::string log_format = "jsonl";  // "jsonl" or "csv"
  int64_t log_every = 10;            // steps between metrics lines
  bool progress = true;              // the progress bar / periodic lines on stderr
  int64_t max_steps = 0;             // stop once this many steps are done in all (0: no limit)
  int64_t sample_rows = 8;           // images in each epoch's sample grid

  // One JSON object with every field (what last.safetensors stores under "train_options"), and back. from_json
  // checks every field; a missing one keeps its default (older runs still resume).
  std::string to_json() const;
  static TrainOptions from_json(const std::string& json);
  // fg::Error with one line for anything that cannot work (no stage, a bad number, an unknown optimizer, ...).
  void validate() const;
};

// An error every rank of a data-parallel run reaches together (the same verdict from the same all-reduced
// numbers): a launch with differing options, a non-finite loss. Rank 0 alone reports it and every rank ends in an
// orderly way, where any other error ends the run from the rank that hit it (dist::Communicator::abort).
class AllRanksError : public Error {
 public:
  explicit AllRanksError(const std::string& what) : Error(what) {}
};

// What a run ended with.
struct TrainSummary {
  int64_t steps = 0;         // steps done in all (including those before a resume)
  int64_t epochs = 0;        // epochs completed in all
  bool finished = false;     // every stage is done
  bool interrupted = false;  // stopped by request_stop() (SIGINT/SIGTERM); last.safetensors was saved
  bool max_steps_reached = false;
  double best_val_loss = 0.0;    // of the last stage validated (NaN when none)
  double images_per_second = 0;  // training throughput (all ranks together; steps only, validation excluded)
  std::string model_path;        // RUN/model.safetensors when written
};

// Stop requests: async-signal-safe, checked after every step (the step finishes, last.safetensors is saved).
void request_stop();
bool stop_requested();
// SIGINT and SIGTERM call request_stop(); a second signal ends the process the usual way.
void install_stop_signal_handlers();

// The options stored in RUN/last.safetensors (for --resume). fg::Error when there is none or it is unreadable.
TrainOptions read_run_options(const std::string& out_dir);

// `filmgrad train`'s command line (its options start at argv[2]) read into checked options, all that the command
// does before it trains: it reads (whether folders exist; with --resume, RUN/last.safetensors) but writes nothing.
// A mistake is a UsageError, an unreadable run an fg::Error.
struct TrainCommandLine {
  TrainOptions options;  // out_dir is --out
  bool resume = false;
};
TrainCommandLine parse_train_command_line(int argc, char** argv);

class Trainer {
 public:
  // Checks the options, makes or reads the split, builds the datasets, the model and the optimizer and, with
  // `resume`, loads RUN/last.safetensors (whose stored options must be `options`' training fields). Without
  // `resume` a run folder that already holds last.safetensors is refused, so nothing is overwritten by mistake.
  Trainer(TrainOptions options, bool resume);
  // Data-parallel (docs/distributed.md): this process is rank comm->rank() of comm->size(); every rank builds the
  // same Trainer (the options and the data listing are compared at the start, and a difference is an error on
  // every rank), takes its shard of each global batch and steps identically; rank 0 alone writes the run folder,
  // the logs and stdout. The run folder and the data must be visible to every rank (a shared filesystem). A null
  // comm is the single process. Each stage's batch must divide by the number of ranks.
  Trainer(TrainOptions options, bool resume, dist::Communicator* comm);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // What will happen, several lines: the data, the model, one line per stage (size, batch, epochs, steps, lr,
  // encoder frozen or not, trainable and frozen parameters), the totals, and where a resume starts.
  std::string plan() const;
  // Trains from where the run stands to the end (or to max_steps, or to a stop request). Writes epoch summaries
  // on stdout and progress on stderr (when options.progress).
  TrainSummary run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fg::apps
