// The evaluation of evaluate.h: scores per test image, the papers' tables, histograms, examples and the report.
#include "apps/evaluate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <tuple>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/model_options.h"
#include "apps/report.h"
#include "autograd/variable.h"
#include "data/dataset.h"
#include "data/inpaint.h"
#include "data/median.h"
#include "data/metrics.h"
#include "nn/checkpoint.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace fs = std::filesystem;
namespace rp = report;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kMetricsFile = "metrics.jsonl";
constexpr int64_t kFallbackSize = 256;

bool has_split(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / "test.csv", ec) || fs::exists(dir / "train.csv", ec) ||
         fs::exists(dir / "validation.csv", ec);
}

std::string trimmed_name(const fs::path& p) {
  fs::path q = p;
  if (q.filename().empty()) q = q.parent_path();  // "run/" -> "run"
  return q.filename().string();
}

// ---- a small, forgiving JSON reader for metrics.jsonl lines (numbers kept, nested objects flattened) ----

class JsonLine {
 public:
  explicit JsonLine(const std::string& text) : s_(text) {}

  // Every number in the object (true/false as 1/0), nested keys joined with '.'; false when the line is not a
  // JSON object.
  bool parse(std::vector<std::pair<std::string, double>>* out) {
    try {
      skip_ws();
      if (!object("", out)) return false;
      skip_ws();
      return i_ == s_.size();
    } catch (const std::exception&) {
      return false;
    }
  }

 private:
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool string(std::string* out) {
    if (!eat('"')) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        if (s_[i_] == 'u')
          i_ += 4;
        else if (out)
          *out += s_[i_];
      } else if (out) {
        *out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool value(const std::string& key, std::vector<std::pair<std::string, double>>* out) {
    skip_ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') return object(key + ".", out);
    if (c == '"') return string(nullptr);
    if (c == '[') {
      ++i_;
      if (eat(']')) return true;
      do {
        if (!value(key + "[]", nullptr)) return false;
      } while (eat(','));
      return eat(']');
    }
    for (const auto& [word, v] : {std::pair<const char*, double>{"true", 1.0}, {"false", 0.0}, {"null", NAN}}) {
      const size_t n = std::char_traits<char>::length(word);
      if (s_.compare(i_, n, word) == 0) {
        i_ += n;
        if (out && std::isfinite(v)) out->emplace_back(key, v);
        return true;
      }
    }
    // numbers, and the NaN/Infinity that Python's json module writes
    const char* start = s_.c_str() + i_;
    char* end = nullptr;
    const double x = std::strtod(start, &end);
    if (end == start) return false;
    i_ += size_t(end - start);
    if (out) out->emplace_back(key, x);
    return true;
  }
  bool object(const std::string& prefix, std::vector<std::pair<std::string, double>>* out) {
    if (!eat('{')) return false;
    if (eat('}')) return true;
    do {
      std::string key;
      skip_ws();
      if (!string(&key) || !eat(':')) return false;
      if (!value(prefix.empty() ? key : prefix + key, out)) return false;
    } while (eat(','));
    return eat('}');
  }

  const std::string& s_;
  size_t i_ = 0;
};

// Reads RUN/metrics.jsonl into curves (nothing when the file is absent).
void read_training_log(const std::string& run_dir, ModelEvaluation* ev) {
  if (run_dir.empty()) return;
  const fs::path path = fs::path(run_dir) / kMetricsFile;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return;
  std::ifstream in(path);
  std::vector<std::vector<std::pair<std::string, double>>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<std::pair<std::string, double>> fields;
    if (JsonLine(line).parse(&fields)) {
      rows.push_back(std::move(fields));
    } else {
      ++ev->unreadable_log_lines;
    }
  }
  auto has_key = [&](const char* key) {
    return std::any_of(rows.begin(), rows.end(), [&](const auto& r) {
      return std::any_of(r.begin(), r.end(), [&](const auto& f) { return f.first == key; });
    });
  };
  ev->x_key = has_key("step") ? "step" : has_key("epoch") ? "epoch" : "line";
  std::map<std::string, size_t> where;
  for (size_t k = 0; k < rows.size(); ++k) {
    double x = double(k + 1);
    for (const auto& [key, v] : rows[k])
      if (key == ev->x_key) x = v;
    for (const auto& [key, v] : rows[k]) {
      if (key == ev->x_key) continue;
      auto it = where.find(key);
      if (it == where.end()) {
        it = where.emplace(key, ev->training_curves.size()).first;
        ev->training_curves.push_back({key, {}});
      }
      ev->training_curves[it->second].second.emplace_back(x, v);
    }
  }
}

// A copy of a (C, H, W) or (N, C, H, W) tensor as contiguous f32 on the CPU with every value in [0, 1] (NaN stays
// NaN, so a broken model scores NaN rather than a plausible number).
Tensor clamped01(const Tensor& t) {
  Tensor out = t.to(Device::cpu()).to(DType::F32).clone();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i)
    if (p[i] < 0.0f)
      p[i] = 0.0f;
    else if (p[i] > 1.0f)
      p[i] = 1.0f;
  return out;
}

Scores score(const Tensor& x, const Tensor& y) {
  Scores s;
  s.ssim_channels = data::ssim_per_channel(x, y);
  s.psnr_channels = data::psnr_per_channel(x, y);
  s.ssim = std::accumulate(s.ssim_channels.begin(), s.ssim_channels.end(), 0.0) / double(s.ssim_channels.size());
  s.psnr = data::psnr(x, y);
  return s;
}

// (3, H, W): channels 0 and 1 of rgb with `blue` (1, H, W) as channel 2.
Tensor with_blue(const Tensor& rgb, const Tensor& blue) {
  Tensor out = rgb.to(DType::F32).clone();
  out.narrow(0, 2, 1).copy_(blue);
  return out;
}

Tensor abs_difference(const Tensor& a, const Tensor& b, double gain) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  Tensor out = Tensor::empty(x.shape());
  const float* p = x.data<float>();
  const float* q = y.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = float(std::min(1.0, gain * std::fabs(double(p[i]) - double(q[i]))));
  return out;
}

// A NaN delta ranks below every number (a model that produced NaN is among the worst).
bool better(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

}  // namespace

// ---- sources and sizes ----

EvalSource resolve_eval_source(const std::string& path, const std::string& split_override) {
  EvalSource s;
  s.path = path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw UsageError("'" + path + "' does not exist; give a training run folder or a checkpoint");
  if (fs::is_directory(st)) {
    s.run_dir = path;
    s.checkpoint = (fs::path(path) / kModelFile).string();
    if (!fs::is_regular_file(s.checkpoint, ec))
      throw UsageError("the run folder '" + path + "' holds no " + kModelFile +
                       " (the best weights filmgrad train keeps); give a finished run or a checkpoint file");
    s.split_dir = path;
    s.label = trimmed_name(fs::absolute(path, ec).lexically_normal());  // "." names the folder it is
  } else {
    require_readable_file(path, "the checkpoint");
    s.checkpoint = path;
    const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
    if (has_split(parent)) {
      s.split_dir = parent.string();
      // a checkpoint inside a run folder (RUN/checkpoint-*.safetensors) belongs to that run's log too
      if (fs::is_regular_file(parent / kMetricsFile, ec)) s.run_dir = parent.string();
    }
    s.label = fs::path(path).stem().string();
    if (s.label == "model" && !trimmed_name(fs::absolute(parent, ec)).empty())
      s.label = trimmed_name(fs::absolute(parent, ec).lexically_normal());
  }
  if (!split_override.empty()) s.split_dir = split_override;
  if (s.split_dir.empty())
    throw UsageError("no split for '" + path +
                     "': its folder holds no test.csv; pass --split DIR (a folder with train.csv, validation.csv "
                     "and test.csv, as filmgrad train writes them)");
  if (!has_split(s.split_dir))
    throw UsageError("the split folder '" + s.split_dir +
                     "' holds no train.csv, validation.csv, test.csv; pass --split with the folder of a training run");
  return s;
}

int64_t default_eval_size(const EvalSource& source, int64_t size_multiple) {
  int64_t size = 0;
  auto take = [&](const std::string& text) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (end != text.c_str() && *end == '\0' && v > 0) size = v;
  };
  try {
    const nn::CheckpointInfo info = nn::read_checkpoint_info(source.checkpoint);
    for (const char* key : {"size", "image_size"}) {
      auto it = info.extra.find(key);
      if (size == 0 && it != info.extra.end()) take(it->second);
    }
  } catch (const Error&) {
    // the checkpoint is read again (and its problem reported) when the model is loaded
  }
  if (size == 0 && !source.run_dir.empty()) {
    ModelEvaluation log;
    read_training_log(source.run_dir, &log);
    for (const auto& [key, points] : log.training_curves)
      if (key == "size" && !points.empty()) size = int64_t(points.back().second);
  }
  if (size <= 0) size = kFallbackSize;
  return std::max(size_multiple, size / size_multiple * size_multiple);
}

// ---- the evaluation ----

namespace {

int64_t settled_size(const RestorationModel& model, const EvalSource& source, int64_t requested) {
  const int64_t multiple = model.size_multiple();
  const int64_t size = requested > 0 ? requested : default_eval_size(source, multiple);
  // SSIM needs images at least as large as its window (11 x 11)
  const int64_t smallest = (data::ssim_win_size({}) + multiple - 1) / multiple * multiple;
  if (size < smallest)
    throw UsageError("--size " + std::to_string(size) + " is too small to score: SSIM needs at least " +
                     std::to_string(data::ssim_win_size({})) + " pixels a side; use " + std::to_string(smallest) +
                     " or more");
  if (size % multiple != 0) {
    const int64_t down = std::max(multiple, size / multiple * multiple);
    throw UsageError("--size " + std::to_string(size) + " is not a multiple of " + std::to_string(multiple) +
                     " (what " + model.config().model + " needs); use " + std::to_string(down) + " or " +
                     std::to_string(down + multiple));
  }
  return size;
}

}  // namespace

ModelEvaluation evaluate_model(RestorationModel& model, const EvalSource& source,
                               const std::vector<std::string>& test_paths, const EvalOptions& options) {
  FG_CHECK(!test_paths.empty(), "the test split of '" << source.split_dir << "' lists no images");
  ModelEvaluation ev;
  ev.source = source;
  ev.config = model.config();
  ev.seed = options.seed;
  ev.size = settled_size(model, source, options.size);
  const data::Task task = model.task();
  const bool dust = task == data::Task::DUST;
  ev.channels = dust ? std::vector<std::string>{"R", "G", "B"} : std::vector<std::string>{"B"};

  const Device device = parse_device(options.device);
  model.module().eval();
  if (!device.is_cpu()) model.to(device);

  data::DatasetOptions dopt;
  dopt.task = task;
  dopt.size = ev.size;
  dopt.train = false;
  dopt.augment = false;
  dopt.fixed_damage = true;
  dopt.seed = options.seed;
  dopt.cache_mb = 0;  // each test image is read once (the examples are re-read: few)
  const data::RestorationDataset dataset(options.data_root, test_paths, dopt);

  // (N, 3, S, S) in [0, 1] -> the clamped prediction on the CPU, (N, C, S, S).
  auto predict = [&](const Tensor& x) {
    NoGradGuard no_grad;
    return clamped01(model.predict(Variable(x.to(device))).data());
  };
  // Sample k of a batch: the damaged channels scored, and the target.
  auto damaged_part = [&](const Tensor& input) { return dust ? input : input.narrow(0, 2, 1); };

  data::LoaderOptions lopt;
  lopt.batch_size = std::max<int64_t>(1, options.batch_size);
  lopt.workers = std::max(0, options.workers);
  lopt.shuffle = false;
  lopt.seed = options.seed;
  data::DataLoader loader(dataset, lopt);
  loader.start_epoch(0);
  ev.images.resize(size_t(dataset.size()));
  // The clamped prediction and the mask the inpainting baseline fills, from one forward: what the model predicts
  // (its mask head or mask net), or else the change it makes to the image a user gets (the clamped one).
  auto predict_with_mask = [&](const Tensor& x, Tensor* mask) {
    const RestorationModel::PredictionAndMask pm = model.predict_and_mask(x.to(device));
    Tensor prediction = clamped01(pm.prediction);
    *mask = model.predicts_mask() ? pm.mask : RestorationModel::change_mask(x, prediction);
    return prediction;
  };
  while (std::optional<data::Batch> batch = loader.next()) {
    Tensor mask_damaged, mask_clean;
    const Tensor restored = predict_with_mask(batch->input, &mask_damaged);
    const Tensor clean_in = predict_with_mask(batch->clean, &mask_clean);
    // Scoring (nine SSIM maps per dust image) costs about as much as a small model's forward: one image per
    // thread. An exception may not leave an OpenMP region, so the first one is kept and re-thrown.
    const int64_t n = int64_t(batch->indices.size());
    std::string failure;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
      try {
        ImageScores& s = ev.images[size_t(batch->indices[size_t(i)])];
        s.name = batch->names[size_t(i)];
        const Tensor target = batch->target.select(0, i);
        const Tensor damaged = damaged_part(batch->input.select(0, i)).contiguous();
        const Tensor clean = damaged_part(batch->clean.select(0, i)).contiguous();
        s.damaged = score(damaged, target);
        s.restored = score(restored.select(0, i), target);
        s.clean_in = score(clean_in.select(0, i), target);
        // The baselines, in kBaselineNames' order.
        s.baselines[0] = {s.damaged, score(clean, target)};
        s.baselines[1] = {score(data::median_filter3x3(damaged), target), score(data::median_filter3x3(clean), target)};
        s.baselines[2] = {
            score(data::inpaint_diffusion(damaged, data::hole_from_mask(mask_damaged.select(0, i))), target),
            score(data::inpaint_diffusion(clean, data::hole_from_mask(mask_clean.select(0, i))), target)};
      } catch (const std::exception& e) {
#pragma omp critical(fg_eval_failure)
        if (failure.empty()) failure = e.what();
      }
    }
    FG_CHECK(failure.empty(), failure);
  }

  // The K best and K worst by dSSIM, recomputed (the damage is fixed, so the same images come back).
  std::vector<int64_t> order(ev.images.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return better(ev.images[size_t(a)].delta_ssim(), ev.images[size_t(b)].delta_ssim());
  });
  const int64_t k = std::min<int64_t>(std::max<int64_t>(options.examples, 0), int64_t(order.size()));
  std::vector<int64_t> picks(order.begin(), order.begin() + k);
  picks.insert(picks.end(), order.rbegin(), order.rbegin() + k);  // worst first
  for (size_t start = 0; start < picks.size(); start += size_t(lopt.batch_size)) {
    std::vector<data::Sample> samples;
    std::vector<int64_t> indices;
    for (size_t j = start; j < std::min(picks.size(), start + size_t(lopt.batch_size)); ++j) {
      samples.push_back(dataset.get(picks[j], 0));
      indices.push_back(picks[j]);
    }
    const data::Batch batch = data::collate(samples, indices);
    const Tensor pred = predict(batch.input);
    for (size_t j = 0; j < indices.size(); ++j) {
      const int64_t i = int64_t(j);
      Example e;
      e.index = indices[j];
      e.input = clamped01(batch.input.select(0, i));
      e.target = clamped01(batch.clean.select(0, i));
      const Tensor p = pred.select(0, i);
      e.prediction = dust ? p.contiguous() : with_blue(e.input, p);
      e.difference = abs_difference(p, clamped01(batch.target.select(0, i)), kDifferenceGain);
      (start + j < size_t(k) ? ev.best : ev.worst).push_back(std::move(e));
    }
  }
  read_training_log(source.run_dir, &ev);
  return ev;
}

EvalPlan plan_evaluation(const EvalSource& source, const EvalOptions& options) {
  EvalPlan plan;
  plan.source = source;
  plan.model = load_restoration_model(source.checkpoint, &plan.step);
  const data::Split split = data::load_or_create_split(options.data_root, source.split_dir);
  plan.test_paths = split.test;
  if (options.limit > 0 && int64_t(plan.test_paths.size()) > options.limit)
    plan.test_paths.resize(size_t(options.limit));
  plan.size = settled_size(*plan.model, source, options.size);
  return plan;
}

ModelEvaluation run_evaluation(EvalPlan& plan, const EvalOptions& options) {
  FG_ASSERT(plan.model != nullptr, "run_evaluation needs a planned model");
  EvalOptions o = options;
  o.size = plan.size;
  ModelEvaluation ev = evaluate_model(*plan.model, plan.source, plan.test_paths, o);
  ev.step = plan.step;
  return ev;
}

ModelEvaluation evaluate_model(const EvalSource& source, const EvalOptions& options) {
  EvalPlan plan = plan_evaluation(source, options);
  return run_evaluation(plan, options);
}

// ---- statistics and the papers' figures ----

Stat mean_sd(const std::vector<double>& values) {
  Stat s;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) {
      ++s.skipped;
      continue;
    }
    sum += v;
    ++s.n;
  }
  if (s.n == 0) {
    s.mean = s.sd = NAN;
    return s;
  }
  s.mean = sum / double(s.n);
  double sq = 0;
  for (double v : values)
    if (std::isfinite(v)) sq += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(sq / double(s.n));
  return s;
}

const std::vector<PaperFigure>& paper_table(const std::string& task) {
  static const std::vector<PaperFigure> dust = {
      {"MSE Model", "dissertation, Table 5.4", {0.840, 0.070, 0.950, 0.040}},
      {"Model 1", "dissertation, Table 5.4", {0.800, 0.080, 0.770, 0.080}},
      {"Model 2", "dissertation, Table 5.4", {0.880, 0.050, 0.940, 0.040}},
      {"Model 3", "dissertation, Table 5.4", {0.880, 0.050, 0.980, 0.020}},
  };
  static const std::vector<PaperFigure> negative = {
      {"Unet", "cross-channel paper, Table 1", {33.21, 0.9671}},
      {"Proposed model without mask", "cross-channel paper, Table 1", {33.75, 0.9702}},
      {"Proposed model with mask", "cross-channel paper, Table 1", {35.73, 0.9781}},
  };
  return task == "negative" ? negative : dust;
}

const PaperFigure* paper_figure(const ModelConfig& config) {
  const std::vector<PaperFigure>& t = paper_table(config.task);
  if (config.task == "negative") {
    if (config.model == "cross_channel_plain") return &t[0];
    if (config.model == "cross_channel_no_mask") return &t[1];
    if (config.model == "cross_channel") return &t[2];
    return nullptr;
  }
  if (config.loss == "mse") return &t[0];
  if (config.loss == "model1") return &t[1];
  if (config.loss == "model2") return &t[2];
  if (config.loss == "model3") return &t[3];
  return nullptr;
}

// ---- tables ----

namespace {

const char* const kKinds[] = {"damaged", "restored", "clean_in"};

const Scores& scores_of(const ImageScores& s, const std::string& kind) {
  return kind == "damaged" ? s.damaged : kind == "restored" ? s.restored : s.clean_in;
}

// Every metric of one image, in the CSV's column order.
std::vector<std::pair<std::string, double>> image_metrics(const ImageScores& s, const std::vector<std::string>& ch) {
  std::vector<std::pair<std::string, double>> m;
  for (const char* k : kKinds) m.emplace_back(std::string("ssim_") + k, scores_of(s, k).ssim);
  m.emplace_back("delta_ssim", s.delta_ssim());
  for (const char* k : kKinds) m.emplace_back(std::string("psnr_") + k, scores_of(s, k).psnr);
  m.emplace_back("delta_psnr", s.delta_psnr());
  for (size_t c = 0; c < ch.size(); ++c) {
    for (const char* k : kKinds)
      m.emplace_back("ssim_" + std::string(k) + "_" + ch[c], scores_of(s, k).ssim_channels[c]);
    for (const char* k : kKinds)
      m.emplace_back("psnr_" + std::string(k) + "_" + ch[c], scores_of(s, k).psnr_channels[c]);
  }
  return m;
}

std::vector<std::string> metric_names(const std::vector<std::string>& channels) {
  ImageScores dummy;
  for (Scores* s : {&dummy.damaged, &dummy.restored, &dummy.clean_in}) {
    s->ssim_channels.assign(channels.size(), 0.0);
    s->psnr_channels.assign(channels.size(), 0.0);
  }
  std::vector<std::string> names;
  for (const auto& [name, v] : image_metrics(dummy, channels)) names.push_back(name);
  return names;
}

std::vector<double> column(const ModelEvaluation& ev, const std::string& metric) {
  std::vector<double> out;
  for (const ImageScores& s : ev.images)
    for (const auto& [name, v] : image_metrics(s, ev.channels))
      if (name == metric) out.push_back(v);
  return out;
}

std::map<std::string, Stat> summarize(const ModelEvaluation& ev) {
  std::map<std::string, std::vector<double>> cols;
  for (const ImageScores& s : ev.images)
    for (const auto& [name, v] : image_metrics(s, ev.channels)) cols[name].push_back(v);
  std::map<std::string, Stat> out;
  for (const auto& [name, values] : cols) out[name] = mean_sd(values);
  return out;
}

std::string csv_number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.12g", x);
  return buf;
}

std::string pm(const Stat& s, int digits) {
  return rp::fixed(s.mean, digits) + " ± " + rp::fixed(s.sd, digits);
}

void check_one_task(const std::vector<ModelEvaluation>& evals) {
  FG_ASSERT(!evals.empty(), "no evaluations to report");
  for (const ModelEvaluation& e : evals) FG_ASSERT(e.config.task == evals[0].config.task, "one report holds one task");
}

int digits_of(const std::string& metric) {
  return metric.rfind("psnr", 0) == 0 || metric == "delta_psnr" ? 2 : 4;
}

// Every model followed by its baselines: the rows of the CSVs and tables.
std::vector<ModelEvaluation> with_baselines(const std::vector<ModelEvaluation>& evals) {
  std::vector<ModelEvaluation> rows;
  for (const ModelEvaluation& ev : evals) {
    rows.push_back(ev);
    if (ev.method != "network") continue;
    for (int b = 0; b < kBaselines; ++b) rows.push_back(baseline_evaluation(ev, b));
  }
  return rows;
}

// One line per baseline: whether the model beats it on the damaged images' SSIM.
std::string baseline_verdicts(const ModelEvaluation& ev) {
  std::string out;
  for (const BaselineComparison& c : compare_with_baselines(ev))
    out += ev.source.label + (c.beats() ? " beats " : " does not beat ") + c.baseline + ": SSIM " +
           rp::fixed(c.model_ssim.mean, 4) + " vs " + rp::fixed(c.baseline_ssim.mean, 4) + " (difference " +
           rp::fixed(c.difference.mean, 4) + " ± " + rp::fixed(c.difference.sd, 4) + "), better on " +
           std::to_string(c.model_better) + " of " + std::to_string(c.images) + " images\n";
  return out;
}

// The name of a row in the tables: the model's label, or "label: baseline".
std::string row_label(const ModelEvaluation& ev) {
  return ev.method == "network" ? ev.source.label : ev.source.label + ": " + ev.method;
}

}  // namespace

ModelEvaluation baseline_evaluation(const ModelEvaluation& ev, int b) {
  FG_ASSERT(b >= 0 && b < kBaselines, "no baseline " << b);
  ModelEvaluation out;
  out.method = kBaselineNames[b];
  out.source = ev.source;
  out.config = ev.config;
  out.step = ev.step;
  out.size = ev.size;
  out.seed = ev.seed;
  out.channels = ev.channels;
  out.images.reserve(ev.images.size());
  for (const ImageScores& s : ev.images) {
    ImageScores t;
    t.name = s.name;
    t.damaged = s.damaged;
    t.restored = s.baselines[b].restored;
    t.clean_in = s.baselines[b].clean_in;
    out.images.push_back(std::move(t));
  }
  return out;
}

std::vector<BaselineComparison> compare_with_baselines(const ModelEvaluation& ev) {
  std::vector<BaselineComparison> out;
  for (int b = 0; b < kBaselines; ++b) {
    BaselineComparison c;
    c.baseline = kBaselineNames[b];
    std::vector<double> model, base, diff;
    for (const ImageScores& s : ev.images) {
      model.push_back(s.restored.ssim);
      base.push_back(s.baselines[b].restored.ssim);
      diff.push_back(s.restored.ssim - s.baselines[b].restored.ssim);
      if (s.restored.ssim > s.baselines[b].restored.ssim) ++c.model_better;
    }
    c.images = int64_t(ev.images.size());
    c.model_ssim = mean_sd(model);
    c.baseline_ssim = mean_sd(base);
    c.difference = mean_sd(diff);
    out.push_back(c);
  }
  return out;
}

std::string per_image_csv(const std::vector<ModelEvaluation>& evals) {
  check_one_task(evals);
  std::vector<std::string> header = {"model", "method", "image"};
  for (const std::string& n : metric_names(evals[0].channels)) header.push_back(n);
  std::string out = rp::csv_row(header);
  for (const ModelEvaluation& ev : with_baselines(evals))
    for (const ImageScores& s : ev.images) {
      std::vector<std::string> row = {ev.source.label, ev.method, s.name};
      for (const auto& [name, v] : image_metrics(s, ev.channels)) row.push_back(csv_number(v));
      out += rp::csv_row(row);
    }
  return out;
}

std::string summary_csv(const std::vector<ModelEvaluation>& evals) {
  check_one_task(evals);
  const std::vector<std::string> names = metric_names(evals[0].channels);
  std::vector<std::string> header = {"model",      "method", "task", "network", "width",  "loss",
                                     "checkpoint", "step",   "size", "seed",    "images", "skipped_values"};
  for (const std::string& n : names) {
    header.push_back(n + "_mean");
    header.push_back(n + "_sd");
  }
  std::string out = rp::csv_row(header);
  for (const ModelEvaluation& ev : with_baselines(evals)) {
    const std::map<std::string, Stat> st = summarize(ev);
    int64_t skipped = 0;
    for (const auto& [name, s] : st) skipped += s.skipped;
    std::vector<std::string> row = {ev.source.label,
                                    ev.method,
                                    ev.config.task,
                                    ev.config.model,
                                    format_number(ev.config.width),
                                    ev.config.loss,
                                    ev.source.checkpoint,
                                    std::to_string(ev.step),
                                    std::to_string(ev.size),
                                    std::to_string(ev.seed),
                                    std::to_string(ev.images.size()),
                                    std::to_string(skipped)};
    for (const std::string& n : names) {
      row.push_back(csv_number(st.at(n).mean));
      row.push_back(csv_number(st.at(n).sd));
    }
    out += rp::csv_row(row);
  }
  return out;
}

std::string summary_text(const std::vector<ModelEvaluation>& evals) {
  check_one_task(evals);
  const bool dust = evals[0].config.task == "dust";
  const std::vector<std::pair<std::string, std::string>> cols =
      dust ? std::vector<std::pair<std::string, std::string>>{{"ssim_damaged", "SSIM damaged"},
                                                              {"ssim_restored", "SSIM restored"},
                                                              {"ssim_clean_in", "SSIM clean in"},
                                                              {"psnr_damaged", "PSNR damaged"},
                                                              {"psnr_restored", "PSNR restored"}}
           : std::vector<std::pair<std::string, std::string>>{{"psnr_damaged", "PSNR damaged B"},
                                                              {"psnr_restored", "PSNR restored B"},
                                                              {"ssim_damaged", "SSIM damaged B"},
                                                              {"ssim_restored", "SSIM restored B"},
                                                              {"ssim_clean_in", "SSIM clean in"}};
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"model", "images"};
  for (const auto& c : cols) header.push_back(c.second);
  rows.push_back(header);
  for (const ModelEvaluation& ev : with_baselines(evals)) {
    const std::map<std::string, Stat> st = summarize(ev);
    std::vector<std::string> row = {row_label(ev), std::to_string(ev.images.size())};
    for (const auto& c : cols) row.push_back(pm(st.at(c.first), digits_of(c.first)));
    rows.push_back(row);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& r : rows)
    for (size_t j = 0; j < r.size(); ++j) {
      // "±" is two bytes but one column
      const size_t n = r[j].size() - (r[j].find("±") != std::string::npos ? 1 : 0);
      width[j] = std::max(width[j], n);
    }
  std::string out;
  for (const auto& r : rows) {
    for (size_t j = 0; j < r.size(); ++j) {
      const size_t n = r[j].size() - (r[j].find("±") != std::string::npos ? 1 : 0);
      const std::string pad(width[j] - n, ' ');
      out += j == 0 ? r[j] + pad : "  " + pad + r[j];
    }
    out += "\n";
  }
  for (const ModelEvaluation& ev : evals) out += baseline_verdicts(ev);
  return out;
}

// ---- the HTML report ----

namespace {

std::string describe_model(const ModelConfig& c) {
  return c.model + (c.width != 1.0 ? " (width " + format_number(c.width) + ")" : "") + ", loss " + c.loss;
}

std::vector<std::string> histogram_figures(const std::vector<ModelEvaluation>& evals, const ModelEvaluation& ev,
                                           int64_t bins) {
  std::vector<std::string> svgs;
  // the same range for a figure across models, so their histograms compare at a glance
  for (size_t c = 0; c < ev.channels.size(); ++c) {
    std::vector<std::vector<double>> all;
    for (const ModelEvaluation& e : evals)
      for (const char* k : kKinds) all.push_back(column(e, "ssim_" + std::string(k) + "_" + e.channels[c]));
    rp::HistogramPlot h;
    std::tie(h.lo, h.hi) = rp::finite_range(all);
    h.bins = bins;
    h.title = ev.source.label + ": SSIM, channel " + ev.channels[c];
    h.x_label = "SSIM (" + ev.channels[c] + ") against the clean image";
    h.series = {{"damaged input", column(ev, "ssim_damaged_" + ev.channels[c])},
                {"restored", column(ev, "ssim_restored_" + ev.channels[c])},
                {"clean input, predicted", column(ev, "ssim_clean_in_" + ev.channels[c])}};
    svgs.push_back(rp::svg_histogram(h));
  }
  if (ev.channels.size() > 1) {  // the whole-image SSIM too (the dissertation's overall score)
    std::vector<std::vector<double>> all;
    for (const ModelEvaluation& e : evals)
      for (const char* k : kKinds) all.push_back(column(e, std::string("ssim_") + k));
    rp::HistogramPlot h;
    std::tie(h.lo, h.hi) = rp::finite_range(all);
    h.bins = bins;
    h.title = ev.source.label + ": SSIM, whole image";
    h.x_label = "SSIM (mean of R, G, B) against the clean image";
    h.series = {{"damaged input", column(ev, "ssim_damaged")},
                {"restored", column(ev, "ssim_restored")},
                {"clean input, predicted", column(ev, "ssim_clean_in")}};
    svgs.push_back(rp::svg_histogram(h));
  }
  std::vector<std::vector<double>> deltas;
  for (const ModelEvaluation& e : evals) deltas.push_back(column(e, "delta_ssim"));
  rp::HistogramPlot d;
  std::tie(d.lo, d.hi) = rp::finite_range(deltas);
  d.bins = bins;
  d.title = ev.source.label + ": δSSIM";
  d.x_label = "δSSIM = SSIM(prediction, clean) − SSIM(damaged, clean)";
  d.series = {{"δSSIM", column(ev, "delta_ssim")}};
  svgs.push_back(rp::svg_histogram(d));
  return svgs;
}

void examples_section(rp::HtmlReport& page, const ModelEvaluation& ev, const std::string& which,
                      const std::vector<Example>& examples, bool dust) {
  if (examples.empty()) return;
  page.heading(ev.source.label + ": " + which + " " + std::to_string(examples.size()) + " by δSSIM", 4);
  rp::Table t;
  t.header = {"image", "SSIM (damaged, clean)", "SSIM (prediction, clean)",
              "δSSIM", "PSNR (damaged, clean)", "PSNR (prediction, clean)"};
  for (const Example& e : examples) {
    const ImageScores& s = ev.images[size_t(e.index)];
    t.rows.push_back({s.name, rp::fixed(s.damaged.ssim, 4), rp::fixed(s.restored.ssim, 4), rp::fixed(s.delta_ssim(), 4),
                      rp::fixed(s.damaged.psnr, 2), rp::fixed(s.restored.psnr, 2)});
  }
  page.table(t);
  const int64_t side = examples[0].input.size(2);
  const int display = int(side < 160 ? 160 : std::min<int64_t>(side, 256));
  const std::string gain = "×" + format_number(kDifferenceGain);
  for (const Example& e : examples) {
    const ImageScores& s = ev.images[size_t(e.index)];
    const std::string label = s.name + " (δSSIM " + rp::fixed(s.delta_ssim(), 4) + ")";
    page.image_row(
        {{dust ? "input (damaged)" : "input (R, G, damaged B)", rp::png_data_uri(e.input)},
         {dust ? "prediction" : "prediction (R, G, restored B)", rp::png_data_uri(e.prediction)},
         {"target (clean)", rp::png_data_uri(e.target)},
         {(dust ? "|prediction − target| " : "|restored B − clean B| ") + gain, rp::png_data_uri(e.difference)}},
        display, label);
  }
}

void training_section(rp::HtmlReport& page, const ModelEvaluation& ev) {
  if (ev.training_curves.empty() && ev.unreadable_log_lines == 0) return;
  page.heading(ev.source.label + ": training (" + std::string(kMetricsFile) + ")", 3);
  if (ev.unreadable_log_lines > 0)
    page.note(std::to_string(ev.unreadable_log_lines) + " line(s) of " + kMetricsFile +
              " are not JSON objects and were left out.");
  // one plot per kind of quantity, so that scales that do not mix stay apart
  const std::vector<std::pair<std::string, std::string>> groups = {
      {"loss", "loss"}, {"ssim", "SSIM"}, {"psnr", "PSNR (dB)"}, {"mse", "MSE"}, {"lr", "learning rate"}};
  std::vector<std::string> svgs;
  std::vector<bool> used(ev.training_curves.size(), false);
  for (const auto& [word, title] : groups) {
    rp::LinePlot plot;
    plot.title = ev.source.label + ": " + title;
    plot.x_label = ev.x_key;
    plot.y_label = title;
    for (size_t k = 0; k < ev.training_curves.size(); ++k) {
      const auto& [key, points] = ev.training_curves[k];
      std::string lower = key;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      const bool ends_lr = lower.size() > 3 && lower.compare(lower.size() - 3, 3, ".lr") == 0;
      const bool match = word == "lr" ? (lower == "lr" || ends_lr || lower.find("learning_rate") != std::string::npos)
                                      : lower.find(word) != std::string::npos;
      if (used[k] || !match) continue;
      used[k] = true;
      rp::LineSeries line;
      line.label = key;
      for (const auto& [x, y] : points) {
        line.x.push_back(x);
        line.y.push_back(y);
      }
      plot.series.push_back(std::move(line));
    }
    if (!plot.series.empty()) svgs.push_back(rp::svg_line_plot(plot));
  }
  if (svgs.empty()) {
    page.paragraph(std::string(kMetricsFile) + " holds no loss, SSIM, PSNR, MSE or learning-rate fields to plot.");
  } else {
    page.figures(svgs);
  }
}

}  // namespace

std::string eval_report_html(const std::vector<ModelEvaluation>& evals, const EvalOptions& options) {
  check_one_task(evals);
  const bool dust = evals[0].config.task == "dust";
  rp::HtmlReport page(dust ? "filmgrad eval: dust and scratch removal" : "filmgrad eval: negatives (blue channel)");
  std::vector<std::map<std::string, Stat>> stats;
  for (const ModelEvaluation& ev : evals) stats.push_back(summarize(ev));

  page.paragraph("filmgrad " + std::string(kFilmgradVersion) + " evaluated " + std::to_string(evals.size()) +
                 " model(s) on the test split of the images in '" + options.data_root +
                 "': each image resized so its shorter side is the size below, centre-cropped to a square, and "
                 "damaged with fixed synthetic " +
                 (dust ? "dust and scratches" : "blue-layer damage") + " (seed " + std::to_string(evals[0].seed) +
                 "), never augmented.");
  rp::Table models;
  models.header = {"model", "network", "checkpoint", "step", "size", "test images", "split folder"};
  for (const ModelEvaluation& ev : evals)
    models.rows.push_back({ev.source.label, describe_model(ev.config), ev.source.checkpoint, std::to_string(ev.step),
                           std::to_string(ev.size), std::to_string(ev.images.size()), ev.source.split_dir});
  page.table(models);
  bool same_tests = true;
  for (const ModelEvaluation& ev : evals) {
    if (ev.images.size() != evals[0].images.size() || ev.size != evals[0].size) same_tests = false;
    for (size_t i = 0; same_tests && i < ev.images.size(); ++i)
      if (ev.images[i].name != evals[0].images[i].name) same_tests = false;
  }
  if (!same_tests)
    page.note(
        "The models were not evaluated on the same test images (different splits, sizes or --limit); "
        "their rows do not compare image for image.");

  page.heading("Results");
  if (dust) {
    rp::Table t;
    t.caption =
        "SSIM of the predictions against the clean images (mean ± SD over the test images), laid out like "
        "the dissertation's Table 5.4";
    t.header = {"model", "on damaged images: mean", "SD", "on clean images: mean", "SD", "paper's row (same loss)"};
    for (size_t m = 0; m < evals.size(); ++m) {
      const PaperFigure* p = paper_figure(evals[m].config);
      const Stat& a = stats[m].at("ssim_restored");
      const Stat& b = stats[m].at("ssim_clean_in");
      t.rows.push_back({evals[m].source.label, rp::fixed(a.mean, 3), rp::fixed(a.sd, 3), rp::fixed(b.mean, 3),
                        rp::fixed(b.sd, 3), p ? p->row : "—"});
    }
    page.table(t);
  } else {
    rp::Table t;
    t.caption =
        "The restored blue channel against the clean one (mean over the test images), laid out like the "
        "cross-channel paper's Table 1";
    t.header = {"network", "PSNR (dB)", "SSIM", "paper's row"};
    t.rows.push_back({"damaged input (no restoration)", rp::fixed(stats[0].at("psnr_damaged").mean, 2),
                      rp::fixed(stats[0].at("ssim_damaged").mean, 4), "—"});
    for (size_t m = 0; m < evals.size(); ++m) {
      const PaperFigure* p = paper_figure(evals[m].config);
      t.rows.push_back({evals[m].source.label + " (" + evals[m].config.model + ")",
                        rp::fixed(stats[m].at("psnr_restored").mean, 2),
                        rp::fixed(stats[m].at("ssim_restored").mean, 4), p ? p->row : "—"});
    }
    page.table(t);
  }
  {
    rp::Table t;
    const std::vector<PaperFigure>& paper = paper_table(evals[0].config.task);
    t.caption = dust ? "Published, for reference only: the dissertation's Table 5.4 (SSIM on its own test set of "
                       "624 image pairs, Dynamic U-Net on ResNet34 at 256 px). Not computed here."
                     : "Published, for reference only: the cross-channel paper's Table 1 (its own synthetic test "
                       "set from COCO 2017, full-size networks). Not computed here.";
    t.header = dust ? std::vector<std::string>{"paper's model",
                                               "on dustified images: mean",
                                               "SD",
                                               "on clean images: mean",
                                               "SD",
                                               "our model with the same loss"}
                    : std::vector<std::string>{"paper's network", "PSNR (dB)", "SSIM", "our model of that kind"};
    for (const PaperFigure& p : paper) {
      std::string ours;
      for (const ModelEvaluation& ev : evals)
        if (paper_figure(ev.config) == &p) ours += (ours.empty() ? "" : ", ") + ev.source.label;
      std::vector<std::string> row = {p.row};
      for (size_t j = 0; j < p.values.size(); ++j) {
        const int digits = dust ? 3 : (j == 0 ? 2 : 4);
        row.push_back(rp::fixed(p.values[j], digits));
      }
      row.push_back(ours.empty() ? "—" : ours);
      t.rows.push_back(row);
    }
    page.table(t);
    page.note(
        "The published figures above come from the papers, measured on their data with their full-size "
        "networks and training schedules; the numbers in every other table of this report were measured "
        "here, on this test split.");
  }
  {
    rp::Table t;
    t.caption = "Every score (mean ± SD); 'clean in' is the prediction on the undamaged image (it must stay clean)";
    t.header = {"model",         "images",       "SSIM damaged",  "SSIM restored", "δSSIM",
                "SSIM clean in", "PSNR damaged", "PSNR restored", "PSNR clean in"};
    for (size_t m = 0; m < evals.size(); ++m) {
      const auto& s = stats[m];
      t.rows.push_back({evals[m].source.label, std::to_string(evals[m].images.size()), pm(s.at("ssim_damaged"), 4),
                        pm(s.at("ssim_restored"), 4), pm(s.at("delta_ssim"), 4), pm(s.at("ssim_clean_in"), 4),
                        pm(s.at("psnr_damaged"), 2), pm(s.at("psnr_restored"), 2), pm(s.at("psnr_clean_in"), 2)});
    }
    page.table(t);
    int64_t skipped = 0;
    for (const auto& s : stats)
      for (const auto& [name, st] : s) skipped += st.skipped;
    if (skipped > 0)
      page.note(std::to_string(skipped) +
                " score(s) were not finite (PSNR is infinite for an image that is exactly "
                "the target) and are left out of the means and SDs; per_image.csv has them.");
  }
  {
    page.heading("Against classical baselines");
    page.paragraph(
        "Each model beside three restorations that need no training, scored on the same images: identity (the "
        "damaged input, unchanged), median3x3 (a 3x3 median filter of the input) and inpaint (the model's own "
        "predicted damage mask, thresholded at 0.5 and dilated by one pixel, filled by diffusion from the pixels "
        "around it). A model earns its training only where it beats all three.");
    rp::Table t;
    t.caption = "SSIM of each method (mean ± SD); 'clean in' is the method applied to the undamaged image";
    t.header = {"model", "method", "SSIM restored", "SSIM clean in", "PSNR restored", "PSNR clean in"};
    for (const ModelEvaluation& ev : with_baselines(evals)) {
      const std::map<std::string, Stat> st = summarize(ev);
      t.rows.push_back({ev.source.label, ev.method, pm(st.at("ssim_restored"), 4), pm(st.at("ssim_clean_in"), 4),
                        pm(st.at("psnr_restored"), 2), pm(st.at("psnr_clean_in"), 2)});
    }
    page.table(t);
    rp::Table v;
    v.caption = "Does the model beat each baseline? (SSIM on the damaged images; the difference is per image)";
    v.header = {"model", "baseline", "verdict", "SSIM model", "SSIM baseline", "difference", "model better on"};
    for (const ModelEvaluation& ev : evals)
      for (const BaselineComparison& c : compare_with_baselines(ev))
        v.rows.push_back({ev.source.label, c.baseline, c.beats() ? "beats it" : "does not beat it",
                          rp::fixed(c.model_ssim.mean, 4), rp::fixed(c.baseline_ssim.mean, 4), pm(c.difference, 4),
                          std::to_string(c.model_better) + " of " + std::to_string(c.images)});
    page.table(v);
  }
  if (dust) {
    rp::Table t;
    t.caption = "SSIM per channel (mean over the test images)";
    t.header = {"model"};
    for (const char* kind : {"damaged", "restored", "clean in"})
      for (const std::string& c : evals[0].channels) t.header.push_back(std::string(kind) + " " + c);
    for (size_t m = 0; m < evals.size(); ++m) {
      std::vector<std::string> row = {evals[m].source.label};
      for (const char* kind : kKinds)
        for (const std::string& c : evals[m].channels)
          row.push_back(rp::fixed(stats[m].at("ssim_" + std::string(kind) + "_" + c).mean, 4));
      t.rows.push_back(row);
    }
    page.table(t);
  }

  page.heading("Distributions");
  page.paragraph(std::string("Histograms over the test images") +
                 (dust ? " of the SSIM per channel (the dissertation's Figures 5.5, 5.6 and D.1–D.3)"
                       : " of the SSIM of the blue channel") +
                 " and of δSSIM (its Figure 5.7): a positive δSSIM means the prediction is closer to the clean "
                 "image than the damaged input was. Hover over a bar for its range and count.");
  const int64_t bins = std::clamp<int64_t>(int64_t(std::lround(std::sqrt(double(evals[0].images.size())) * 2)), 5, 40);
  for (const ModelEvaluation& ev : evals) {
    page.heading(ev.source.label, 3);
    page.figures(histogram_figures(evals, ev, bins));
  }

  page.heading("Best and worst examples");
  page.paragraph(
      "Each row: the input, the prediction, the clean target and the absolute difference between "
      "prediction and target multiplied by " +
      format_number(kDifferenceGain) +
      " (black: no difference), ranked by δSSIM. The tables follow the dissertation's Table 5.1.");
  for (const ModelEvaluation& ev : evals) {
    page.heading(ev.source.label, 3);
    examples_section(page, ev, "best", ev.best, dust);
    examples_section(page, ev, "worst", ev.worst, dust);
  }

  bool any_log = false;
  for (const ModelEvaluation& ev : evals) any_log = any_log || !ev.training_curves.empty() || ev.unreadable_log_lines;
  if (any_log) {
    page.heading("Training");
    for (const ModelEvaluation& ev : evals) training_section(page, ev);
  }

  page.heading("How the numbers were computed");
  page.paragraph(
      "SSIM and PSNR as scikit-image computes them (structural_similarity with gaussian_weights=True, sigma 1.5, "
      "use_sample_covariance=False, data_range 1; peak_signal_noise_ratio with data_range 1), per channel; the "
      "whole-image SSIM is the mean over the channels, the whole-image PSNR comes from the MSE over all channels. "
      "Predictions are clamped to [0, 1] first, as a restored image file would be. SD is the population standard "
      "deviation (numpy's std). " +
      std::string(dust ? "All three colour channels are scored."
                       : "Only the blue channel is scored: R and G are given to the network clean.") +
      " per_image.csv holds every score of every image; summary.csv the means and SDs.");
  return page.html();
}

void write_eval_outputs(const std::string& out_dir, const std::vector<ModelEvaluation>& evals,
                        const EvalOptions& options) {
  // everything is built in memory first, so a failure while building writes nothing
  const std::string html = eval_report_html(evals, options);
  const std::string per_image = per_image_csv(evals);
  const std::string summary = summary_csv(evals);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  FG_CHECK(!ec && fs::is_directory(out_dir, ec),
           "cannot create the output folder '" << out_dir
                                               << "': " << (ec ? ec.message() : "a file of that name is in the way")
                                               << "; pass --out with a folder you can write");
  require_output_folder((fs::path(out_dir) / "report.html").string());
  write_file_atomic((fs::path(out_dir) / "per_image.csv").string(), per_image);
  write_file_atomic((fs::path(out_dir) / "summary.csv").string(), summary);
  write_file_atomic((fs::path(out_dir) / "report.html").string(), html);
}

}  // namespace fg::apps
