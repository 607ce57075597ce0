// The papers' evaluation of trained restoration models on a test split (what `filmgrad eval` runs and reports).
//
// For every test image (fixed damage, centre crop of size S; data/dataset.h) and every model:
//   damaged   the damaged input against the clean target: how much damage there was
//   restored  the prediction on the damaged input against the clean target
//   clean_in  the prediction on the CLEAN image against the clean target ("clean in must stay clean",
//             the dissertation's second column of Table 5.4)
// each as SSIM and PSNR, whole and per channel (data/metrics.h: scikit-image's definitions, data range 1,
// Gaussian window sigma 1.5), and dSSIM = SSIM(restored) - SSIM(damaged), the dissertation's improvement.
// Beside every model, three classical baselines are scored the same way (restored: on the damaged image; clean
// in: on the clean image), as the rows of method identity, median3x3 and inpaint in every table:
//   identity   the input itself (restored = damaged; clean in is perfect by definition)
//   median3x3  data/median.h on the input
//   inpaint    data/inpaint.h: the model's own predicted mask (RestorationModel::predict_mask on that input),
//              thresholded at 0.5 and dilated by 1 pixel (hole_from_mask), filled by diffusion. It separates
//              finding the damage (the model's mask) from restoring what lies under it (the model vs the fill).
//   task dust:      images are RGB; channels R, G, B.
//   task negative:  only the blue channel is scored (the cross-channel paper's Table 1): the damaged blue, the
//                   restored blue B'' and, for clean_in, the prediction from (R, G, B_clean); one channel, B.
// Predictions are clamped to [0, 1] before scoring: that is the image a user gets from `filmgrad restore`.
//
// Promises: models run in eval mode under NoGradGuard, in batches; the numbers depend only on the weights, the
// test list, S and the seed (not on the batch size, the worker count or the device beyond float rounding).
// Reports are written atomically and only after every model was evaluated, so a failure leaves nothing half done.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/task.h"
#include "tensor/device.h"
#include "tensor/tensor.h"

namespace fg::apps {

// One model to evaluate and where its pieces come from.
struct EvalSource {
  std::string path;        // what the user named: a run folder or a checkpoint file
  std::string checkpoint;  // the weights: RUN/model.safetensors, or the file itself
  std::string run_dir;     // the training run folder ("" for a checkpoint outside a run folder)
  std::string split_dir;   // the folder holding train.csv, validation.csv, test.csv
  std::string label;       // the model's name in tables: the run folder's or the file's name
};

// Resolves a command-line argument: a folder is a run (RUN/model.safetensors, RUN's split); a file is a checkpoint
// (its split from its folder when that holds test.csv). split_override, when not empty, replaces the split.
// Throws UsageError for a missing path, a run without model.safetensors, or no split to be found.
EvalSource resolve_eval_source(const std::string& path, const std::string& split_override);

struct EvalOptions {
  std::string data_root;  // the image folder the split's paths are relative to
  int64_t size = 0;       // S; 0: the model's last training size (default_eval_size)
  int64_t limit = 0;      // the first N test images only; 0: all
  int64_t examples = 4;   // K best and K worst examples by dSSIM
  uint64_t seed = 0;      // the test damage (fixed per image) is drawn from this seed
  int64_t batch_size = 8;
  int workers = 2;  // threads decoding and damaging images
  std::string device = "cpu";
};

struct Scores {
  double ssim = 0, psnr = 0;                         // whole image (SSIM: mean of the channels)
  std::vector<double> ssim_channels, psnr_channels;  // one per scored channel
};

// A baseline's scores on one image: on the damaged input and on the clean image.
struct BaselineScores {
  Scores restored, clean_in;
};
inline constexpr const char* kBaselineNames[] = {"identity", "median3x3", "inpaint"};
inline constexpr int kBaselines = 3;

struct ImageScores {
  std::string name;  // the image's path relative to the data root
  Scores damaged, restored, clean_in;
  BaselineScores baselines[kBaselines];  // in kBaselineNames' order
  double delta_ssim() const { return restored.ssim - damaged.ssim; }
  double delta_psnr() const { return restored.psnr - damaged.psnr; }
};

// An image shown in the report: (C, H, W) f32 CPU in [0, 1].
struct Example {
  int64_t index = 0;  // into ModelEvaluation::images
  Tensor input;       // what the model saw (negative: R, G and the damaged B)
  Tensor prediction;  // dust: the restored RGB; negative: R, G and the restored B
  Tensor target;      // the clean RGB
  Tensor difference;  // |prediction - target| x kDifferenceGain, clamped (negative: the blue channel, grey)
};
inline constexpr double kDifferenceGain = 4.0;

struct ModelEvaluation {
  std::string method = "network";  // or a baseline's name (baseline_evaluation)
  EvalSource source;
  ModelConfig config;
  int64_t step = 0;  // the checkpoint's training step
  int64_t size = 0;  // S used
  uint64_t seed = 0;
  std::vector<std::string> channels;  // {"R", "G", "B"} (dust) or {"B"} (negative)
  std::vector<ImageScores> images;    // in test-split order
  std::vector<Example> best, worst;   // by dSSIM: best first, worst first
  // The training run's metrics.jsonl, when there is one: every numeric field (nested objects as "a.b") against
  // x_key ("step", else "epoch", else the line number), for the report's training curves.
  std::string x_key;
  std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>> training_curves;
  int64_t unreadable_log_lines = 0;
};

// The size a checkpoint was last trained at: its metadata "size" (or "image_size"), else the last "size" in
// RUN/metrics.jsonl, else 256; rounded down to a multiple of size_multiple.
int64_t default_eval_size(const EvalSource& source, int64_t size_multiple);

// Everything one evaluation needs, loaded and checked, so that a bad checkpoint, split or size is found before
// any model's evaluation starts.
struct EvalPlan {
  EvalSource source;
  std::unique_ptr<RestorationModel> model;
  int64_t step = 0;                     // the checkpoint's training step
  std::vector<std::string> test_paths;  // the test split, cut to options.limit
  int64_t size = 0;                     // S, settled
};
// Loads the checkpoint (fg::Error naming it when it is not a filmgrad checkpoint or does not build) and the split,
// and settles the size: UsageError when options.size is not a multiple of the model's size_multiple.
EvalPlan plan_evaluation(const EvalSource& source, const EvalOptions& options);
// Runs the test images through the planned model and picks the examples.
ModelEvaluation run_evaluation(EvalPlan& plan, const EvalOptions& options);
// Both steps at once.
ModelEvaluation evaluate_model(const EvalSource& source, const EvalOptions& options);
// With a model already built (tests, other code); source is only recorded; options.size 0 means
// default_eval_size.
ModelEvaluation evaluate_model(RestorationModel& model, const EvalSource& source,
                               const std::vector<std::string>& test_paths, const EvalOptions& options);

// Mean and standard deviation over the finite values (the population SD, as numpy's std()); `skipped` counts
// NaN and infinities (PSNR is +inf for an image left exactly as it was).
struct Stat {
  double mean = 0, sd = 0;
  int64_t n = 0, skipped = 0;
};
Stat mean_sd(const std::vector<double>& values);

// A published figure to show beside ours (never mixed with them).
struct PaperFigure {
  std::string row;     // the paper's row name ("MSE Model", "Proposed model with mask")
  std::string source;  // "dissertation, Table 5.4" / "cross-channel paper, Table 1"
  // dust: SSIM on dusty images (mean, SD) and on clean images (mean, SD); negative: PSNR (dB) and SSIM.
  std::vector<double> values;
};
// The paper's row for this configuration (dust: by loss; negative: by model), or nullptr when it has none.
const PaperFigure* paper_figure(const ModelConfig& config);
// All rows of the paper's table for a task ("dust" or "negative").
const std::vector<PaperFigure>& paper_table(const std::string& task);

// The evaluation of baseline b (an index into kBaselineNames) on the same images: restored and clean_in are the
// baseline's, method its name, no examples.
ModelEvaluation baseline_evaluation(const ModelEvaluation& ev, int b);

// How a model compares with a baseline over the test images, on SSIM of the damaged images.
struct BaselineComparison {
  std::string baseline;
  Stat model_ssim, baseline_ssim;  // SSIM restored of each
  Stat difference;                 // per image: model - baseline
  int64_t model_better = 0, images = 0;
  bool beats() const { return difference.n > 0 && difference.mean > 0; }
};
std::vector<BaselineComparison> compare_with_baselines(const ModelEvaluation& ev);

// Outputs, built from the evaluations of one report (all of the same task). The CSVs have a column "method":
// "network" for a model's own row, a baseline's name for the baseline rows that follow it (model = the model whose
// test images and mask the baseline used).
std::string per_image_csv(const std::vector<ModelEvaluation>& evals);
std::string summary_csv(const std::vector<ModelEvaluation>& evals);
std::string summary_text(const std::vector<ModelEvaluation>& evals);  // the table printed on the terminal
std::string eval_report_html(const std::vector<ModelEvaluation>& evals, const EvalOptions& options);

// Writes report.html, per_image.csv and summary.csv into out_dir (created when missing; each file atomically).
// Throws fg::Error naming the folder when it cannot be created or written.
void write_eval_outputs(const std::string& out_dir, const std::vector<ModelEvaluation>& evals,
                        const EvalOptions& options);

}  // namespace fg::apps
