// The loss-network study of `filmgrad study` (SPEC B, Evaluation; the dissertation's section 5.2.2 and Table 5.2):
// what the perceptual loss's VGG16-BN sees of damage.
//
// Activations: for each clean/damaged pair, the mean activation of every filter (channel) at each of the five taps
// of models/perceptual_loss.h (features[5, 12, 22, 32, 42], the ReLUs before each max-pool), i.e. the mean over
// H and W of the tap's output for the ImageNet-normalised image. Per layer, the top k filters (k = 9 in the
// dissertation) are the k largest means, ties to the lower index; "differing" is how many of the clean image's
// top k are not among the damaged image's top k (0..k). The same is computed for the means over all pairs.
//
// Filter visualisation by activation maximisation (the dissertation's procedure, after Graetz's FilterVisualizer
// for fastai): start from a start_size x start_size image of uniform noise in [150, 180] / 255 (ImageNet-
// normalised), then `rounds` times: `steps` Adam steps (lr, weight decay 1e-6, a fresh optimiser each round) on
// loss = -mean(tap[filter]), then, except after the last round, resize the image by `scale` (bilinear, size =
// floor(size * scale)). The dissertation's setting is start 56, 12 rounds of 40 steps, x1.2, lr 0.1 (the last round
// at 416 px). The source also blurs after each resize; filmgrad does not (a choice: the image is only resized).
// The result is shown denormalised and clamped to [0, 1].
//
// Works with any VGG16-BN (models/vgg.h) of any width: the caller loads the weights.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/vgg.h"

namespace fg::apps {

struct VisOptions {
  int64_t filters = 9;      // per layer: the top `filters` of the clean and of the damaged mean (union); 0: none
  int64_t start_size = 56;  // pixels
  int64_t rounds = 12;      // optimisation rounds; a resize by `scale` between each two
  double scale = 1.2;
  int64_t steps = 40;  // Adam steps per round
  double lr = 0.1;
  uint64_t seed = 0;  // the starting noise
};

struct StudyOptions {
  int64_t top = 9;  // k of "top k"
  VisOptions vis;
};

struct StudyPair {
  std::string name;
  std::string clean_path, damaged_path;
};

// Per layer (5), per filter: mean activations, and the layer's top-k filters and differing count.
struct PairActivations {
  std::string name;
  std::vector<std::vector<double>> clean, damaged;
  std::vector<std::vector<int64_t>> top_clean, top_damaged;
  std::vector<int64_t> differing;
};

struct FilterVisual {
  int64_t filter = 0;
  bool in_clean_top = false, in_damaged_top = false;
  double start_activation = 0, final_activation = 0;  // mean of the tap's filter map, before and after
  Tensor image;                                       // (3, H, W) in [0, 1]
};

struct StudyResult {
  std::vector<int64_t> taps;      // {5, 12, 22, 32, 42}
  std::vector<int64_t> channels;  // per tap
  std::vector<PairActivations> pairs;
  PairActivations mean;                        // from the activations averaged over the pairs
  std::vector<std::vector<FilterVisual>> vis;  // per layer (empty when vis.filters == 0)
};

// Mean activation per filter at each tap for x: (1, 3, H, W), ImageNet-normalised; [tap][filter].
std::vector<std::vector<double>> mean_filter_activations(models::VGG16& vgg, const Tensor& x);
// The k largest values' indices, largest first, ties to the lower index (k is capped at the size).
std::vector<int64_t> top_filters(const std::vector<double>& values, int64_t k);
// How many of `a` are not in `b`.
int64_t count_differing(const std::vector<int64_t>& a, const std::vector<int64_t>& b);
// Fills top_clean, top_damaged and differing from clean and damaged.
void rank_filters(PairActivations* p, int64_t top);

// Activation maximisation of one filter at features[tap]; the VGG must be in eval mode and frozen.
FilterVisual visualise_filter(models::VGG16& vgg, int64_t tap, int64_t filter, const VisOptions& options);

// Reads each pair (same size, at least 16 x 16), computes everything; `progress` gets one line per piece of work.
StudyResult run_study(models::VGG16& vgg, const std::vector<StudyPair>& pairs, const StudyOptions& options,
                      const std::function<void(const std::string&)>& progress);

// Writes into out_dir (which must exist): study.json, table.csv, activations.csv, vis_layer<i>_f<tap>.png (one grid
// per layer) and report.html (self-contained). `settings` is shown in the report (the command line).
void write_study(const StudyResult& result, const StudyOptions& options, const std::string& settings,
                 const std::string& out_dir);

}  // namespace fg::apps
