// The training job of train.h: options and their JSON form, stop signals, the metrics log, and the Trainer.
#include "apps/train.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/json.h"
#include "apps/progress.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/metrics.h"
#include "dist/ddp.h"
#include "nn/checkpoint.h"
#include "nn/loss_scale.h"
#include "nn/mixed_precision.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/safetensors.h"
#ifdef FG_WITH_CUDA
#endif

namespace fg::apps {

namespace fs = std::filesystem;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Typed reads of an options object; a missing field keeps the caller's value.
struct FieldReader {
  const Json& object;
  std::string where;

  const Json* get(const std::string& key, Json::Kind kind) const {
    const Json* v = object.find(key);
    if (v == nullptr) return nullptr;
    FG_CHECK(v->kind == kind, where << ": the field \"" << key << "\" has the wrong type");
    return v;
  }
  void text(const std::string& key, std::string& out) const {
    if (const Json* v = get(key, Json::STRING)) out = v->text;
  }
  void boolean(const std::string& key, bool& out) const {
    if (const Json* v = get(key, Json::BOOL)) out = v->boolean;
  }
  void number(const std::string& key, double& out) const {
    if (const Json* v = get(key, Json::NUMBER)) {
      char* end = nullptr;
      out = std::strtod(v->text.c_str(), &end);
      FG_CHECK(*end == '\0', where << ": the field \"" << key << "\" is not a number");
    }
  }
  template <typename Int>
  void integer(const std::string& key, Int& out) const {
    if (const Json* v = get(key, Json::NUMBER)) {
      char* end = nullptr;
      errno = 0;
      const bool negative = !v->text.empty() && v->text[0] == '-';
      if (negative) {
        const long long n = std::strtoll(v->text.c_str(), &end, 10);
        out = Int(n);
      } else {
        const unsigned long long n = std::strtoull(v->text.c_str(), &end, 10);
        out = Int(n);
      }
      FG_CHECK(*end == '\0' && errno == 0, where << ": the field \"" << key << "\" is not an integer");
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint metadata: exact text for numbers, and reading it back.

std::string exact(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

const std::string& extra_field(const nn::CheckpointInfo& info, const std::string& key, const std::string& path) {
  const auto it = info.extra.find(key);
  FG_CHECK(it != info.extra.end(),
           "'" << path << "' has no \"" << key << "\": it was not written by filmgrad train, so it cannot be resumed");
  return it->second;
}

int64_t extra_int(const nn::CheckpointInfo& info, const std::string& key, const std::string& path) {
  const std::string& s = extra_field(info, key, path);
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(s.c_str(), &end, 10);
  FG_CHECK(!s.empty() && *end == '\0' && errno == 0 && n >= 0,
           "'" << path << "': \"" << key << "\" is not a non-negative integer: '" << s << "'");
  return int64_t(n);
}

double extra_double(const nn::CheckpointInfo& info, const std::string& key, const std::string& path) {
  const std::string& s = extra_field(info, key, path);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  FG_CHECK(!s.empty() && *end == '\0', "'" << path << "': \"" << key << "\" is not a number: '" << s << "'");
  return x;
}

// ---------------------------------------------------------------------------------------------------------------
// Stop requests (signal handlers may only touch a sig_atomic_t).

volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void on_stop_signal(int) {
  g_stop_requested = 1;
}

// ---------------------------------------------------------------------------------------------------------------
// The metrics log: JSON lines or CSV, one line per log_every steps and one per epoch.

struct StepRecord {
  int64_t step = 0, epoch = 0, stage = 0, size = 0;
  double lr = 0, momentum = 0, images_per_s = 0, loss_scale = 1;
  std::map<std::string, double> terms;  // includes "total"
};

struct EpochRecord {
  int64_t step = 0, epoch = 0, stage = 0, size = 0;
  double train_loss = kNaN, val_loss = kNaN, val_mse = kNaN, val_ssim = kNaN, seconds = 0;
  double input_mse = kNaN, input_ssim = kNaN;
  bool best = false;
};

constexpr const char* kCsvHeader =
    "kind,step,epoch,stage,size,lr,momentum,loss,terms,images_per_s,loss_scale,train_loss,val_loss,val_mse,"
    "val_ssim,input_mse,input_ssim,best,time_s";

std::string csv_number(double x) {
  return std::isfinite(x) ? json_number(x) : "";
}

class MetricsLog {
 public:
  // resume: keep the lines of steps up to `keep_until_step` (later ones are redone); otherwise start afresh.
  MetricsLog(std::string path, bool csv, bool resume, int64_t keep_until_step) : path_(std::move(path)), csv_(csv) {
    std::string kept;
    std::error_code ec;
    if (resume && fs::exists(path_, ec)) {
      std::istringstream in(read_file(path_));
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        const int64_t step = line_step(line);
        if (step < 0 || step <= keep_until_step) kept += line + "\n";
      }
    }
    if (csv_ && kept.empty()) kept = std::string(kCsvHeader) + "\n";
    write_file_atomic(path_, kept);
    file_ = std::fopen(path_.c_str(), "ab");
    FG_CHECK(file_ != nullptr, "cannot append to the metrics log '" << path_ << "': " << std::strerror(errno));
  }
  ~MetricsLog() {
    if (file_) std::fclose(file_);
  }
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  const std::string& path() const { return path_; }

  void step(const StepRecord& r) {
    const double total = r.terms.count("total") ? r.terms.at("total") : kNaN;
    if (csv_) {
      std::string terms;
      for (const auto& t : r.terms)
        if (t.first != "total") terms += (terms.empty() ? "" : ";") + t.first + "=" + json_number(t.second);
      write("step," + std::to_string(r.step) + "," + std::to_string(r.epoch) + "," + std::to_string(r.stage) + "," +
            std::to_string(r.size) + "," + csv_number(r.lr) + "," + csv_number(r.momentum) + "," + csv_number(total) +
            "," + terms + "," + csv_number(r.images_per_s) + "," + csv_number(r.loss_scale) + ",,,,,,,,");
      return;
    }
    std::string terms;
    for (const auto& t : r.terms)
      if (t.first != "total") terms += (terms.empty() ? "" : ",") + json_quote(t.first) + ":" + json_number(t.second);
    write("{\"kind\":\"step\",\"step\":" + std::to_string(r.step) + ",\"epoch\":" + std::to_string(r.epoch) +
          ",\"stage\":" + std::to_string(r.stage) + ",\"size\":" + std::to_string(r.size) +
          ",\"lr\":" + json_number(r.lr) + ",\"momentum\":" + json_number(r.momentum) +
          ",\"loss\":" + json_number(total) + ",\"terms\":{" + terms +
          "},\"images_per_s\":" + json_number(r.images_per_s) + ",\"loss_scale\":" + json_number(r.loss_scale) + "}");
  }

  void epoch(const EpochRecord& r) {
    if (csv_) {
      write("epoch," + std::to_string(r.step) + "," + std::to_string(r.epoch) + "," + std::to_string(r.stage) + "," +
            std::to_string(r.size) + ",,,,,,," + csv_number(r.train_loss) + "," + csv_number(r.val_loss) + "," +
            csv_number(r.val_mse) + "," + csv_number(r.val_ssim) + "," + csv_number(r.input_mse) + "," +
            csv_number(r.input_ssim) + "," + (r.best ? "1" : "0") + "," + csv_number(r.seconds));
      return;
    }
    write("{\"kind\":\"epoch\",\"step\":" + std::to_string(r.step) + ",\"epoch\":" + std::to_string(r.epoch) +
          ",\"stage\":" + std::to_string(r.stage) + ",\"size\":" + std::to_string(r.size) +
          ",\"train_loss\":" + json_number(r.train_loss) + ",\"val_loss\":" + json_number(r.val_loss) +
          ",\"val_mse\":" + json_number(r.val_mse) + ",\"val_ssim\":" + json_number(r.val_ssim) +
          ",\"input_mse\":" + json_number(r.input_mse) + ",\"input_ssim\":" + json_number(r.input_ssim) +
          ",\"best\":" + (r.best ? "true" : "false") + ",\"time_s\":" + json_number(r.seconds) + "}");
  }

 private:
  // The step a line records, or -1 for the CSV header.
  int64_t line_step(const std::string& line) const {
    size_t pos;
    if (csv_) {
      if (line.rfind("kind,", 0) == 0) return -1;
      pos = line.find(',');
      if (pos == std::string::npos) return -1;
      ++pos;
    } else {
      pos = line.find("\"step\":");
      if (pos == std::string::npos) return -1;
      pos += 7;
    }
    return std::strtoll(line.c_str() + pos, nullptr, 10);
  }

  void write(const std::string& line) {
    // Flushed line by line, so the log can be followed while training runs and survives a crash.
    FG_CHECK(std::fputs((line + "\n").c_str(), file_) >= 0 && std::fflush(file_) == 0,
             "cannot write the metrics log '" << path_ << "': " << std::strerror(errno));
  }

  std::string path_;
  bool csv_;
  std::FILE* file_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------

bool one_of(const std::string& s, std::initializer_list<const char*> list) {
  for (const char* x : list)
    if (s == x) return true;
  return false;
}

DType compute_dtype(const std::string& precision) {
  if (precision == "f16") return DType::F16;
  if (precision == "bf16") return DType::BF16;
  return DType::F32;
}

// In-place clamp of an f32 CPU tensor into [0, 1] (NaN becomes 0, as image writers treat it).
Tensor clamped01(const Tensor& t) {
  Tensor out = t.to(Device::cpu()).to(DType::F32).clone();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = std::isnan(p[i]) ? 0.0f : std::min(1.0f, std::max(0.0f, p[i]));
  return out;
}

// Mean of (a - b)^2 over all elements of two same-shaped f32 CPU tensors.
double mean_squared_error(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const float* p = a.data<float>();
  const float* q = b.data<float>();
  double se = 0;
  for (int64_t k = 0; k < a.numel(); ++k) {
    const double d = double(p[k]) - double(q[k]);
    se += d * d;
  }
  return se / double(a.numel());
}

std::string fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// TrainOptions

std::string TrainOptions::to_json() const {
  std::string stages_json = "[";
  for (size_t i = 0; i < stages.size(); ++i) {
    const TrainStage& s = stages[i];
    stages_json += std::string(i ? "," : "") + "{\"size\":" + std::to_string(s.size) +
                   ",\"batch\":" + std::to_string(s.batch) + ",\"epochs\":" + std::to_string(s.epochs) +
                   ",\"frozen\":" + (s.frozen ? "true" : "false") + ",\"lr\":" + json_number(s.lr) +
                   ",\"pct_start\":" + json_number(s.pct_start) + "}";
  }
  stages_json += "]";
  return "{\"data_dir\":" + json_quote(data_dir) + ",\"out_dir\":" + json_quote(out_dir) +
         ",\"split_dir\":" + json_quote(split_dir) + ",\"preset\":" + json_quote(preset) +
         ",\"model\":" + model.to_json() + ",\"stages\":" + stages_json + ",\"optimizer\":" + json_quote(optimizer) +
         ",\"weight_decay\":" + json_number(weight_decay) + ",\"schedule\":" + json_quote(schedule) +
         ",\"augment\":" + (augment ? "true" : "false") +
         ",\"samples_per_image\":" + std::to_string(samples_per_image) + ",\"load_scale\":" + json_number(load_scale) + ",\"damage_frame_min\":" + std::to_string(damage_frame_min) +
         ",\"damage_frame_max\":" + std::to_string(damage_frame_max) + ",\"overlay_dir\":" + json_quote(overlay_dir) +
         ",\"seed\":" + std::to_string(seed) + ",\"precision\":" + json_quote(precision) +
         ",\"sync_bn\":" + (sync_bn ? "true" : "false") + ",\"device\":" + json_quote(device) +
         ",\"workers\":" + std::to_string(workers) + ",\"checkpoint_every\":" + std::to_string(checkpoint_every) +
         ",\"log_format\":" + json_quote(log_format) + ",\"log_every\":" + std::to_string(log_every) +
         ",\"progress\":" + (progress ? "true" : "false") + ",\"max_steps\":" + std::to_string(max_steps) +
         ",\"sample_rows\":" + std::to_string(sample_rows) + "}";
}

TrainOptions TrainOptions::from_json(const std::string& json) {
  const Json root = parse_json(json);
  FG_CHECK(root.kind == Json::OBJECT, "the training options must be a JSON object");
  const FieldReader r{root, "the training options"};
  TrainOptions o;
  r.text("data_dir", o.data_dir);
  r.text("out_dir", o.out_dir);
  r.text("split_dir", o.split_dir);
  r.text("preset", o.preset);
  if (const Json* m = r.get("model", Json::OBJECT)) o.model = ModelConfig::from_json(json_serialize(*m));
  if (const Json* st = r.get("stages", Json::ARRAY)) {
    for (const Json& item : st->items) {
      FG_CHECK(item.kind == Json::OBJECT, "the training options: every stage must be an object");
      const FieldReader sr{item, "a training stage"};
      TrainStage s;
      sr.integer("size", s.size);
      sr.integer("batch", s.batch);
      sr.integer("epochs", s.epochs);
      sr.boolean("frozen", s.frozen);
      sr.number("lr", s.lr);
      sr.number("pct_start", s.pct_start);
      o.stages.push_back(s);
    }
  }
  r.text("optimizer", o.optimizer);
  r.number("weight_decay", o.weight_decay);
  r.text("schedule", o.schedule);
  r.boolean("augment", o.augment);
  r.integer("samples_per_image", o.samples_per_image);
  r.number("load_scale", o.load_scale);
  r.integer("damage_frame_min", o.damage_frame_min);  // absent in runs started before it: 0, the rendering
  r.integer("damage_frame_max", o.damage_frame_max);
  r.text("overlay_dir", o.overlay_dir);
  r.integer("seed", o.seed);
  r.text("precision", o.precision);
  r.boolean("sync_bn", o.sync_bn);  // absent in runs started before it: per-rank statistics
  r.text("device", o.device);
  r.integer("workers", o.workers);
  r.integer("checkpoint_every", o.checkpoint_every);
  r.text("log_format", o.log_format);
  r.integer("log_every", o.log_every);
  r.boolean("progress", o.progress);
  r.integer("max_steps", o.max_steps);
  r.integer("sample_rows", o.sample_rows);
  return o;
}

void TrainOptions::validate() const {
  FG_CHECK(!data_dir.empty(), "training needs a folder of photos (--data DIR)");
  FG_CHECK(!out_dir.empty(), "training needs a run folder (--out RUN)");
  model.validate();
  FG_CHECK(!stages.empty(), "training needs at least one stage");
  for (size_t i = 0; i < stages.size(); ++i) {
    const TrainStage& s = stages[i];
    FG_CHECK(s.size >= 1 && s.batch >= 1 && s.epochs >= 1,
             "stage " << i + 1 << ": size, batch and epochs must all be at least 1 (got " << s.size << ", " << s.batch
                      << ", " << s.epochs << ")");
    FG_CHECK(std::isfinite(s.lr) && s.lr > 0,
             "stage " << i + 1 << ": the learning rate must be positive, got " << s.lr);
    FG_CHECK(s.pct_start > 0 && s.pct_start < 1, "stage " << i + 1
                                                          << ": the one-cycle warm-up share must be in "
                                                             "(0, 1), got "
                                                          << s.pct_start);
  }
  FG_CHECK(one_of(optimizer, {"adam", "adamw"}), "unknown optimizer '" << optimizer << "'; use adam or adamw");
  FG_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, "the weight decay must be >= 0, got " << weight_decay);
  FG_CHECK(one_of(schedule, {"one_cycle", "constant"}),
           "unknown schedule '" << schedule << "'; use one_cycle or constant");
  FG_CHECK(samples_per_image >= 1, "samples per image must be at least 1, got " << samples_per_image);
  FG_CHECK(std::isfinite(load_scale) && load_scale >= 1 && load_scale <= 16,
           "the load scale must be between 1 and 16, got " << load_scale);
  FG_CHECK(damage_frame_min >= 0 && damage_frame_max >= damage_frame_min &&
               (damage_frame_min > 0) == (damage_frame_max > 0),
           "the damage frame must be 0 or a range of positive pixel sizes min <= max, got " << damage_frame_min
                                                                                           << " to " << damage_frame_max);
  FG_CHECK(one_of(precision, {"f32", "f16", "bf16"}), "unknown precision '" << precision << "'; use f32, f16 or bf16");
  FG_CHECK(workers >= 0, "the number of loader workers cannot be negative");
  FG_CHECK(checkpoint_every >= 0, "--checkpoint-every cannot be negative");
  FG_CHECK(one_of(log_format, {"jsonl", "csv"}), "unknown log format '" << log_format << "'; use jsonl or csv");
  FG_CHECK(log_every >= 1, "--log-every must be at least 1 step");
  FG_CHECK(max_steps >= 0, "--max-steps cannot be negative");
  FG_CHECK(sample_rows >= 1, "the sample grid needs at least one row");
  const Device d = parse_device(device);
  FG_CHECK(precision == "f32" || d.is_cuda(),
           "--precision " << precision << " is mixed precision, which needs --device cuda (the CPU computes in f32)");
}

// ---------------------------------------------------------------------------------------------------------------
// Stop requests

void request_stop() {
  g_stop_requested = 1;
}
bool stop_requested() {
  return g_stop_requested != 0;
}

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESETHAND: a second Ctrl-C ends the process at once. SA_RESTART: interrupted reads and writes go on.
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// ---------------------------------------------------------------------------------------------------------------
// The Trainer

namespace {

// The fields of TrainOptions a resumed run must share with the stored ones (the others say how it runs).
std::string training_fields(TrainOptions o) {
  o.data_dir.clear();
  o.out_dir.clear();
  o.device.clear();
  o.workers = 0;
  o.checkpoint_every = 0;
  o.log_every = 1;
  o.progress = false;
  o.max_steps = 0;
  return o.to_json();
}

// FNV-1a: a fingerprint for comparing what ranks were started with, not a security measure.
uint64_t fingerprint(const std::string& text, uint64_t h = 1469598103934665603ull) {
  for (const unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Every file under the data folder with its size, sorted: what the split and the samples are made from.
std::string data_listing(const std::string& dir) {
  std::vector<std::string> entries;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    entries.push_back(fs::relative(it->path(), dir, ec).string() + " " + std::to_string(it->file_size(ec)));
  }
  std::sort(entries.begin(), entries.end());
  std::string out;
  for (const std::string& e : entries) out += e + "\n";
  return out;
}

std::string last_path(const std::string& out_dir) {
  return (fs::path(out_dir) / "last.safetensors").string();
}

}  // namespace

TrainOptions read_run_options(const std::string& out_dir) {
  const std::string path = last_path(out_dir);
  std::error_code ec;
  FG_CHECK(fs::exists(path, ec), "nothing to resume: '" << path << "' does not exist (start the run without --resume)");
  const nn::CheckpointInfo info = nn::read_checkpoint_info(path);
  const auto it = info.extra.find("train_options");
  FG_CHECK(it != info.extra.end(),
           "'" << path << "' has no training options: it was not written by filmgrad train, so it cannot be resumed");
  try {
    TrainOptions o = TrainOptions::from_json(it->second);
    o.out_dir = out_dir;
    return o;
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  }
}

struct Trainer::Impl {
  TrainOptions opt;
  bool resume = false;
  // Data-parallel: null (one process) or this rank's communicator; rank 0 is the writer.
  dist::Communicator* comm = nullptr;
  int rank = 0, world = 1;
  std::unique_ptr<dist::GradientReducer> reducer;
  data::Split split;
  std::string split_dir;
  std::unique_ptr<RestorationModel> model;
  Device device;
  DType compute = DType::F32;
  std::unique_ptr<nn::MixedPrecision> mp;
  std::unique_ptr<nn::Optimizer> optimizer;
  nn::LossScaler scaler;
  std::vector<int64_t> steps_per_epoch;                   // per stage
  std::vector<std::pair<int64_t, int64_t>> param_counts;  // per stage: trainable, frozen

  // Where the run stands: the next step to take is batch `batch_in_epoch` of epoch `epoch_in_stage` of `stage`.
  int64_t step = 0, stage = 0, epoch_in_stage = 0, batch_in_epoch = 0;
  double best_val = kInf;  // of the current stage
  int64_t best_epoch = 0;  // the global epoch number (1-based) of best_val; 0: none yet in this stage
  double epoch_loss_sum = 0;
  int64_t epoch_loss_count = 0;
  int64_t last_saved_step = -1;

  // The current stage's data.
  int64_t data_stage = -1;
  std::unique_ptr<data::RestorationDataset> train_set, val_set;
  std::unique_ptr<data::DataLoader> train_loader, val_loader;
  data::Batch grid_batch;
  std::unique_ptr<nn::Schedule> schedule;

  std::unique_ptr<MetricsLog> log;

  static nn::LossScalerOptions scaler_options(const TrainOptions& o) {
    nn::LossScalerOptions so;
    so.enabled = o.precision != "f32";
    return so;
  }

  Impl(TrainOptions options, bool resume_run, dist::Communicator* c)
      : opt(std::move(options)), resume(resume_run), comm(c), scaler(scaler_options(opt)) {
    if (comm) {
      rank = comm->rank();
      world = comm->size();
    }
  }
  bool writer() const { return rank == 0; }

  // The gradient averaging over the parameters trained in this stage (freezing changes them).
  void make_reducer() {
    reducer.reset();
    if (!comm) return;
    std::vector<Variable> trainable;
    for (const Variable& p : model->module().parameters())
      if (p.requires_grad()) trainable.push_back(p);
    reducer = std::make_unique<dist::GradientReducer>(*comm, trainable);
  }

  // Refuses ranks started differently: the training fields, the data folder's listing, resume or not, and the
  // number of ranks each believes in. Every rank reaches the same verdict, so every rank throws the same error.
  void check_same_launch() {
    if (!comm) return;
    const uint64_t mine = fingerprint(training_fields(opt) + "\n" + (resume ? "resume" : "new") + "\n" +
                                      std::to_string(world) + "\n" + data_listing(opt.data_dir));
    const std::vector<uint64_t> all = comm->all_gather(mine, "the comparison of the ranks' options");
    std::string differ;
    for (size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
    if (!differ.empty())
      throw AllRanksError("rank" + std::string(differ.find(',') == std::string::npos ? " " : "s ") + differ +
                          " started with other options or other data than rank 0 (every rank must get the same "
                          "command line and see the same data folder); nothing was trained");
  }

  std::string path(const std::string& name) const { return (fs::path(opt.out_dir) / name).string(); }
  int64_t n_stages() const { return int64_t(opt.stages.size()); }
  const TrainStage& cur() const { return opt.stages[size_t(stage)]; }
  int64_t epochs_before(int64_t s) const {
    int64_t n = 0;
    for (int64_t i = 0; i < s && i < n_stages(); ++i) n += opt.stages[size_t(i)].epochs;
    return n;
  }
  int64_t total_epochs() const { return epochs_before(n_stages()); }
  int64_t total_steps() const {
    int64_t n = 0;
    for (int64_t i = 0; i < n_stages(); ++i) n += opt.stages[size_t(i)].epochs * steps_per_epoch[size_t(i)];
    return n;
  }
  int64_t completed_epochs() const {
    return stage >= n_stages() ? total_epochs() : epochs_before(stage) + epoch_in_stage;
  }
  bool finished() const { return stage >= n_stages(); }

  std::vector<Variable> optimized_params() const { return mp ? mp->master_params() : model->module().parameters(); }

  void make_optimizer() {
    const TrainStage& s = opt.stages[size_t(std::min(stage, n_stages() - 1))];
    if (opt.optimizer == "adamw") {
      nn::AdamWOptions o;
      o.lr = s.lr;
      o.weight_decay = opt.weight_decay;
      optimizer = std::make_unique<nn::AdamW>(optimized_params(), o);
    } else {
      nn::AdamOptions o;
      o.lr = s.lr;
      o.weight_decay = opt.weight_decay;
      optimizer = std::make_unique<nn::Adam>(optimized_params(), o);
    }
  }

  // Sets the encoder's freezing for `stage` and starts a fresh optimizer where fastai would: at the start and
  // whenever freezing changes (fastai's freeze()/unfreeze() create a new optimizer).
  void enter_stage(bool first) {
    if (finished()) return;
    model->set_encoder_frozen(cur().frozen);
    const bool refreeze = !first && model->has_encoder() && cur().frozen != opt.stages[size_t(stage - 1)].frozen;
    if (first || refreeze || !optimizer) make_optimizer();
    make_reducer();
    best_val = kInf;
    best_epoch = 0;
  }

  // Runs fn with the module in f32 holding the master weights exactly (what checkpoints store), then returns the
  // module to its compute dtype. Without mixed precision the module already is that.
  template <typename Fn>
  void with_f32_module(Fn fn) {
    if (!mp) {
      fn();
      return;
    }
    model->module().to(DType::F32);
    mp->copy_masters_to_model();
    try {
      fn();
    } catch (...) {
      model->module().to(compute);
      throw;
    }
    model->module().to(compute);
  }

  // Loads weights (not the optimizer) from a checkpoint this run wrote into the model and the masters.
  void load_weights(const std::string& file) {
    if (!mp) {
      nn::load_checkpoint(file, model->module(), nullptr, opt.model.model);
      return;
    }
    model->module().to(DType::F32);
    nn::load_checkpoint(file, model->module(), nullptr, opt.model.model);
    mp->copy_model_to_masters();
    model->module().to(compute);
  }

  nn::CheckpointInfo base_info() const {
    nn::CheckpointInfo info;
    info.model = opt.model.model;
    info.config = opt.model.to_json();
    info.step = step;
    info.epoch = completed_epochs();
    info.extra["filmgrad_version"] = kFilmgradVersion;
    // The largest frame the dust was sized for: `filmgrad restore` works on larger images at this size
    // (apps/restore.h, trained_work_size).
    info.extra["damage_frame_max"] = std::to_string(opt.damage_frame_max);
    return info;
  }

  void save_last() {
    last_saved_step = step;
    if (!writer()) return;
    nn::CheckpointInfo info = base_info();
    info.extra["train_options"] = opt.to_json();
    info.extra["train_stage"] = std::to_string(stage);
    info.extra["train_epoch_in_stage"] = std::to_string(epoch_in_stage);
    info.extra["train_batch_in_epoch"] = std::to_string(batch_in_epoch);
    info.extra["train_best_val_loss"] = exact(best_val);
    info.extra["train_best_epoch"] = std::to_string(best_epoch);
    info.extra["train_epoch_loss_sum"] = exact(epoch_loss_sum);
    info.extra["train_epoch_loss_count"] = std::to_string(epoch_loss_count);
    for (const auto& [k, v] : scaler.state()) info.extra["loss_scale_" + k] = v;
    with_f32_module([&] { nn::save_checkpoint(path("last.safetensors"), model->module(), optimizer.get(), info); });
    last_saved_step = step;
  }

  void save_weights(const std::string& name, const std::map<std::string, std::string>& extra) {
    if (!writer()) return;
    nn::CheckpointInfo info = base_info();
    for (const auto& [k, v] : extra) info.extra[k] = v;
    with_f32_module([&] { nn::save_checkpoint(path(name), model->module(), nullptr, info); });
  }

  void restore_position(const nn::CheckpointInfo& info, const std::string& file) {
    step = info.step;
    stage = extra_int(info, "train_stage", file);
    epoch_in_stage = extra_int(info, "train_epoch_in_stage", file);
    batch_in_epoch = extra_int(info, "train_batch_in_epoch", file);
    FG_CHECK(stage <= n_stages() && (stage == n_stages() || (epoch_in_stage < opt.stages[size_t(stage)].epochs &&
                                                             batch_in_epoch < steps_per_epoch[size_t(stage)])),
             "'" << file << "' is at a position (stage " << stage + 1 << ", epoch " << epoch_in_stage + 1 << ", batch "
                 << batch_in_epoch << ") outside its own plan; the data folder may have changed since the run started");
    best_val = extra_double(info, "train_best_val_loss", file);
    best_epoch = extra_int(info, "train_best_epoch", file);
    epoch_loss_sum = extra_double(info, "train_epoch_loss_sum", file);
    epoch_loss_count = extra_int(info, "train_epoch_loss_count", file);
    std::map<std::string, std::string> scale_state;
    for (const char* k : {"scale", "growth_tracker", "skipped"})
      scale_state[k] = extra_field(info, std::string("loss_scale_") + k, file);
    scaler.load_state(scale_state);
    last_saved_step = step;
  }

  void setup() {
    opt.validate();
    std::error_code ec;
    FG_CHECK(fs::is_directory(opt.data_dir, ec),
             "the data folder '" << opt.data_dir << "' does not exist or is not a folder");
    if (!opt.overlay_dir.empty())
      FG_CHECK(fs::is_directory(opt.overlay_dir, ec), "the overlay folder '" << opt.overlay_dir << "' does not exist");
    for (size_t i = 0; i < opt.stages.size(); ++i)
      if (opt.stages[i].batch % world != 0)
        throw AllRanksError("stage " + std::to_string(i + 1) + ": the batch of " + std::to_string(opt.stages[i].batch) +
                            " does not split evenly over " + std::to_string(world) +
                            " ranks; use a batch that is a multiple of " + std::to_string(world));
    check_same_launch();

    // The run folder (rank 0 makes it; the others wait, then read what it holds).
    if (writer()) {
      fs::create_directories(fs::path(opt.out_dir) / "samples", ec);
      FG_CHECK(!ec, "cannot create the run folder '" << opt.out_dir << "': " << ec.message());
      FG_CHECK(::access(opt.out_dir.c_str(), W_OK) == 0,
               "cannot write in the run folder '" << opt.out_dir << "': " << std::strerror(errno));
    }
    const std::string last = path("last.safetensors");
    if (resume) {
      FG_CHECK(fs::exists(last), "nothing to resume: '" << last << "' does not exist");
    } else {
      FG_CHECK(!fs::exists(last), "'" << opt.out_dir
                                      << "' already holds a training run (last.safetensors): continue it with "
                                         "--resume, or choose another --out");
    }

    // Device and precision.
    device = usable_device(opt.device);
    compute = compute_dtype(opt.precision);

    // The split: made once, then read back, so the test images stay unseen across resumes and evaluations.
    split_dir = opt.split_dir.empty() ? opt.out_dir : opt.split_dir;
    if (writer()) {
      split = data::load_or_create_split(opt.data_dir, split_dir, opt.seed);
      if (fs::absolute(split_dir).lexically_normal() != fs::absolute(opt.out_dir).lexically_normal())
        for (const char* f : {"train.csv", "validation.csv", "test.csv"})
          write_file_atomic(path(f), read_file((fs::path(split_dir) / f).string()));
    }
    if (comm) {
      comm->barrier("waiting for rank 0 to prepare the run folder");
      if (!writer()) {
        FG_CHECK(fs::exists(fs::path(split_dir) / "train.csv", ec),
                 "rank " << rank << " does not see '" << split_dir
                         << "/train.csv' that rank 0 wrote: the run folder must be on a filesystem every rank shares");
        split = data::load_or_create_split(opt.data_dir, split_dir, opt.seed);
      }
    }

    // The model, from the seed (and the encoder weights). A resumed run loads every weight from its checkpoint
    // below, so it does not need the encoder weights file any more (it may have moved since).
    Generator gen(opt.seed);
    ModelConfig build = opt.model;
    if (resume) build.encoder_weights.clear();
    model = std::make_unique<RestorationModel>(build, gen);
    const int64_t n_train = int64_t(split.train.size()) * opt.samples_per_image;
    for (size_t i = 0; i < opt.stages.size(); ++i) {
      const TrainStage& s = opt.stages[i];
      FG_CHECK(s.size % model->size_multiple() == 0, "stage " << i + 1 << ": " << opt.model.model
                                                              << " needs image sizes that are multiples of "
                                                              << model->size_multiple() << ", got " << s.size);
      const int64_t spe = n_train / s.batch;
      FG_CHECK(spe >= 1, "stage " << i + 1 << ": the training split has " << n_train
                                  << " samples (images x samples per image), fewer than the batch size " << s.batch
                                  << "; use a smaller batch or more --samples-per-image");
      steps_per_epoch.push_back(spe);
      model->set_encoder_frozen(s.frozen);
      const int64_t trainable = model->module().num_parameters(true);
      param_counts.emplace_back(trainable, model->module().num_parameters() - trainable);
    }
    model->to(device);
    if (comm) {
      // Every rank drew the same weights from the seed; rank 0's are broadcast anyway, so no rank can start
      // elsewhere (an encoder file that differs between machines, say).
      dist::broadcast_module_state(*comm, model->module());
      if (opt.sync_bn) dist::enable_sync_batch_norm(*comm, model->module());
    }
    if (compute != DType::F32) mp = std::make_unique<nn::MixedPrecision>(model->module().parameters(), DType::F32);

    if (resume) {
      const nn::CheckpointInfo info = nn::read_checkpoint_info(last);
      // Compared as read back, so a checkpoint written before a field existed (gated) still resumes.
      FG_CHECK(ModelConfig::from_json(info.config).to_json() == opt.model.to_json(),
               "'" << last << "' holds another model (" << info.config << "); resume it with its own options");
      const auto stored = info.extra.find("train_options");
      FG_CHECK(stored != info.extra.end(), "'" << last << "' has no training options; it cannot be resumed");
      FG_CHECK(training_fields(TrainOptions::from_json(stored->second)) == training_fields(opt),
               "the training options differ from those '" << last
                                                          << "' was started with; resume with --out and --resume only");
      restore_position(info, last);
      const int64_t saved_best_epoch = best_epoch;
      const double saved_best = best_val;
      enter_stage(/*first=*/true);  // the stage's freezing and an optimizer the checkpoint's state fits
      best_epoch = saved_best_epoch;
      best_val = saved_best;
      nn::load_checkpoint(last, model->module(), optimizer.get(), opt.model.model);
      if (mp) mp->copy_model_to_masters();
    } else {
      enter_stage(/*first=*/true);
    }
    if (mp) model->module().to(compute);
    if (writer())
      log = std::make_unique<MetricsLog>(path(opt.log_format == "csv" ? "metrics.csv" : "metrics.jsonl"),
                                         opt.log_format == "csv", resume, step);
  }

  // Datasets, loaders, the grid batch and the schedule of the current stage.
  void prepare_stage_data() {
    if (data_stage == stage) return;
    train_loader.reset();
    val_loader.reset();
    const TrainStage& s = cur();
    data::DatasetOptions d;
    d.task = model->task();
    d.size = s.size;
    d.seed = opt.seed;
    d.samples_per_image = opt.samples_per_image;
    d.load_size = opt.load_scale > 1 ? int64_t(std::llround(double(s.size) * opt.load_scale)) : 0;
    d.damage_frame_min = opt.damage_frame_min;
    d.damage_frame_max = opt.damage_frame_max;
    d.overlay_dir = opt.overlay_dir;
    d.augment = opt.augment;
    d.train = true;
    train_set = std::make_unique<data::RestorationDataset>(split.root, split.train, d);
    // Validation: augmented too (SPEC B), but with centre crops and damage drawn from the index alone, so every
    // epoch scores the same samples.
    d.train = false;
    d.fixed_damage = true;
    val_set = std::make_unique<data::RestorationDataset>(split.root, split.validation, d);

    data::LoaderOptions lo;
    lo.batch_size = s.batch;
    lo.shuffle = true;
    lo.drop_last = true;  // fastai drops the last partial training batch (BatchNorm dislikes tiny batches)
    lo.workers = opt.workers;
    lo.seed = opt.seed;
    lo.pin_memory = device.is_cuda();
    lo.shard_index = rank;
    lo.shard_count = world;
    train_loader = std::make_unique<data::DataLoader>(*train_set, lo);
    lo.shard_index = 0;
    lo.shard_count = 1;
    FG_ASSERT(train_loader->batches_per_epoch() == steps_per_epoch[size_t(stage)],
              "the loader's batches per epoch differ from the plan");
    lo.shuffle = false;
    lo.drop_last = false;
    val_loader = std::make_unique<data::DataLoader>(*val_set, lo);

    std::vector<data::Sample> samples;
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < std::min(opt.sample_rows, val_set->size()); ++i) {
      samples.push_back(val_set->get(i, 0));
      indices.push_back(i);
    }
    grid_batch = data::collate(samples, indices);

    const int64_t total = s.epochs * steps_per_epoch[size_t(stage)];
    if (opt.schedule == "one_cycle") {
      nn::OneCycleOptions oc;
      oc.lr_max = s.lr;
      oc.total_steps = total;
      oc.pct_start = s.pct_start;
      schedule = std::make_unique<nn::OneCycleSchedule>(oc);
    } else {
      schedule = std::make_unique<nn::ConstantSchedule>(s.lr);
    }
    data_stage = stage;
  }

  data::Batch on_device(const data::Batch& b) const {
    data::Batch out = b;
    auto move = [&](Tensor& t) {
      if (t.defined()) t = t.to(device).to(compute);
    };
    move(out.input);
    move(out.target);
    move(out.mask);
    return out;
  }

  [[noreturn]] void non_finite(const char* what, double value) const {
    std::ostringstream os;
    os << "the " << what << " is not finite (" << value << ") at step " << step + 1 << " (stage " << stage + 1
       << ", epoch " << completed_epochs() + 1 << "): the learning rate is too high for this model and data; start "
       << "again with a lower --lr (this stage's peak is " << cur().lr << "); ";
    if (last_saved_step >= 0)
      os << "'" << path("last.safetensors") << "' keeps the last good checkpoint (step " << last_saved_step << ")";
    else
      os << "no checkpoint was written yet";
    // Distributed, the loss and the gradients tested are the all-reduced ones: every rank stops here together.
    if (comm) throw AllRanksError(os.str());
    throw Error(os.str());
  }

  // Distributed: the loss terms averaged over the ranks (each rank's are the mean over its equal shard, so this
  // is the global batch's mean), and whether any rank was asked to stop, in one all-reduce.
  bool any_rank_stopping = false;
  std::map<std::string, double> average_over_ranks(std::map<std::string, double> terms) {
    if (!comm) return terms;
    std::vector<double> v;
    for (const auto& t : terms) v.push_back(t.second);
    v.push_back(stop_requested() ? 1.0 : 0.0);
    comm->all_reduce_sum(v.data(), int64_t(v.size()), "the all-reduce of the loss");
    size_t i = 0;
    for (auto& t : terms) t.second = v[i++] / double(world);
    any_rank_stopping = v.back() > 0;
    return terms;
  }

  // One optimizer step on one batch (distributed: this rank's shard of it); returns the loss terms.
  std::map<std::string, double> train_step(const data::Batch& batch) {
    const int64_t step_in_stage = epoch_in_stage * steps_per_epoch[size_t(stage)] + batch_in_epoch;
    schedule->apply(*optimizer, step_in_stage);
    nn::Module& net = model->module();
    net.train();
    // Per-rank BatchNorm keeps rank 0's running statistics everywhere, as PyTorch's DDP does (broadcast_buffers),
    // so validation and checkpoints do not depend on which rank they come from.
    if (comm && world > 1 && !opt.sync_bn) dist::broadcast_module_state(*comm, net, false, true);
    const LossValue lv = model->loss(on_device(batch));
    if (reducer) {
      // The non-finite checks wait for the averaged loss, so that every rank takes the same decision.
      if (!mp) {
        lv.total.backward();
      } else {
        scaler.scale_loss(lv.total).backward();
      }
      reducer->finish();
      const std::map<std::string, double> terms = average_over_ranks(lv.terms);
      const double total = terms.at("total");
      if (!mp) {
        if (!std::isfinite(total)) non_finite("loss", total);
        if (!scaler.unscale(net.parameters())) non_finite("gradient", kNaN);
        optimizer->step();
        optimizer->zero_grad();
      } else {
        mp->step(*optimizer, scaler);
        if (scaler.scale() < std::ldexp(1.0, -24)) non_finite("loss", total);
      }
      return terms;
    }
    const double total = lv.terms.at("total");
    if (!mp) {
      if (!std::isfinite(total)) non_finite("loss", total);
      lv.total.backward();
      // Checked before the update, so a checkpoint never holds weights a non-finite gradient destroyed.
      if (!scaler.unscale(net.parameters())) non_finite("gradient", kNaN);
      optimizer->step();
      optimizer->zero_grad();
    } else {
      scaler.scale_loss(lv.total).backward();
      mp->step(*optimizer, scaler);
      // Backing off below 2^-24 means the loss itself stays non-finite: no scale helps any more.
      if (scaler.scale() < std::ldexp(1.0, -24)) non_finite("loss", total);
    }
    return lv.terms;
  }

  struct Validation {
    double loss = kNaN, mse = kNaN, ssim = kNaN;
    double input_mse = kNaN, input_ssim = kNaN;  // the damaged input scored the same way: what doing nothing gets
  };

  Validation validate() {
    NoGradGuard no_grad;
    nn::Module& net = model->module();
    net.eval();
    double loss_sum = 0, mse_sum = 0, ssim_sum = 0, input_mse_sum = 0, input_ssim_sum = 0;
    int64_t n = 0;
    const bool with_ssim = cur().size >= data::ssim_win_size({});
    val_loader->start_epoch(0);
    while (std::optional<data::Batch> b = val_loader->next()) {
      const data::Batch db = on_device(*b);
      const int64_t B = b->input.size(0);
      loss_sum += model->loss(db).terms.at("total") * double(B);
      const Tensor pred = clamped01(model->predict(Variable(db.input)).data());
      const Tensor target = b->target.contiguous();
      // The damaged part of the input, shaped like the target (negatives: the blue channel).
      const Tensor damaged = target.size(1) == 1 ? b->input.slice(1, 2, 3).contiguous() : b->input.contiguous();
      for (int64_t i = 0; i < B; ++i) {
        const Tensor t = target.select(0, i);
        mse_sum += mean_squared_error(pred.select(0, i), t);
        input_mse_sum += mean_squared_error(damaged.select(0, i), t);
        if (with_ssim) {
          ssim_sum += data::ssim(pred.select(0, i), t);
          input_ssim_sum += data::ssim(damaged.select(0, i), t);
        }
      }
      n += B;
    }
    net.train();
    Validation v;
    if (n > 0) {
      v.loss = loss_sum / double(n);
      v.mse = mse_sum / double(n);
      v.input_mse = input_mse_sum / double(n);
      if (with_ssim) {
        v.ssim = ssim_sum / double(n);
        v.input_ssim = input_ssim_sum / double(n);
      }
    }
    return v;
  }

  // Rows of input | prediction | target for the fixed validation batch (negatives: RGB with the blue replaced).
  void write_grid(int64_t epoch_number) {
    NoGradGuard no_grad;
    nn::Module& net = model->module();
    net.eval();
    const data::Batch db = on_device(grid_batch);
    const Tensor pred = clamped01(model->predict(Variable(db.input)).data());
    net.train();
    const int64_t n = grid_batch.input.size(0), S = grid_batch.input.size(2), gap = 2;
    Tensor canvas = Tensor::ones({3, n * S + (n - 1) * gap, 3 * S + 2 * gap});
    const bool negative = model->task() == data::Task::NEGATIVE;
    for (int64_t i = 0; i < n; ++i) {
      Tensor shown_pred;
      if (negative) {
        shown_pred = grid_batch.clean.select(0, i).clone();
        shown_pred.slice(0, 2, 3).copy_(pred.select(0, i));
      } else {
        shown_pred = pred.select(0, i);
      }
      const Tensor target = negative ? grid_batch.clean.select(0, i) : grid_batch.target.select(0, i);
      const Tensor cells[3] = {grid_batch.input.select(0, i), shown_pred, target};
      for (int c = 0; c < 3; ++c)
        canvas.slice(1, i * (S + gap), i * (S + gap) + S).slice(2, c * (S + gap), c * (S + gap) + S).copy_(cells[c]);
    }
    char name[64];
    std::snprintf(name, sizeof name, "epoch_%03lld.png", static_cast<long long>(epoch_number));
    data::write_image((fs::path(opt.out_dir) / "samples" / name).string(), data::make_image(canvas));
  }

  std::string position_text() const {
    if (finished()) return "finished";
    return "stage " + std::to_string(stage + 1) + "/" + std::to_string(n_stages()) + " epoch " +
           std::to_string(epoch_in_stage + 1) + "/" + std::to_string(cur().epochs);
  }

  // The end of an epoch: validation, the grid, the best weights, the log; then the position moves on (into the
  // next stage when this one is done) and last.safetensors is saved.
  void end_epoch(Progress& progress, double seconds) {
    Validation v;
    if (writer()) v = validate();
    if (comm) {
      // Rank 0 validates alone; the others take its numbers, so every rank agrees on the best epoch.
      double numbers[5] = {v.loss, v.mse, v.ssim, v.input_mse, v.input_ssim};
      comm->broadcast_bytes(numbers, int64_t(sizeof numbers), 0, "the broadcast of rank 0's validation");
      v = Validation{numbers[0], numbers[1], numbers[2], numbers[3], numbers[4]};
    }
    const int64_t epoch_number = completed_epochs() + 1;
    const bool improved = v.loss < best_val;
    if (improved) {
      best_val = v.loss;
      best_epoch = epoch_number;
      save_weights("best.safetensors", {{"val_loss", exact(v.loss)},
                                        {"val_mse", exact(v.mse)},
                                        {"val_ssim", exact(v.ssim)},
                                        {"train_stage", std::to_string(stage)}});
    }
    if (writer()) write_grid(epoch_number);
    EpochRecord r;
    r.step = step;
    r.epoch = epoch_number;
    r.stage = stage + 1;
    r.size = cur().size;
    r.train_loss = epoch_loss_count > 0 ? epoch_loss_sum / double(epoch_loss_count) : kNaN;
    r.val_loss = v.loss;
    r.val_mse = v.mse;
    r.val_ssim = v.ssim;
    r.input_mse = v.input_mse;
    r.input_ssim = v.input_ssim;
    r.best = improved;
    r.seconds = seconds;
    if (log) log->epoch(r);
    if (writer())
      progress.print(stdout, "epoch " + std::to_string(epoch_number) + "/" + std::to_string(total_epochs()) +
                                 " (stage " + std::to_string(stage + 1) + ", " + std::to_string(cur().size) +
                                 " px): train loss " + fmt("%.5g", r.train_loss) + ", validation loss " +
                                 fmt("%.5g", v.loss) + ", MSE " + fmt("%.5g", v.mse) + " (input " +
                                 fmt("%.5g", v.input_mse) + "), SSIM " + fmt("%.4f", v.ssim) + " (input " +
                                 fmt("%.4f", v.input_ssim) + "), " + fmt("%.1f", seconds) + " s" +
                                 (improved ? " (best of the stage)" : ""));
    epoch_loss_sum = 0;
    epoch_loss_count = 0;
    batch_in_epoch = 0;
    if (++epoch_in_stage == cur().epochs) {
      if (best_epoch > 0 && best_epoch != epoch_number) {
        if (comm) comm->barrier("waiting for rank 0 to write best.safetensors");
        load_weights(path("best.safetensors"));
        if (writer())
          progress.print(stdout, "stage " + std::to_string(stage + 1) + " done: reloaded its best weights (epoch " +
                                     std::to_string(best_epoch) + ", validation loss " + fmt("%.5g", best_val) + ")");
      }
      ++stage;
      epoch_in_stage = 0;
      enter_stage(/*first=*/false);
    }
    save_last();
  }

  // model.safetensors: the current stage's best weights, or the current ones when it has none yet.
  std::string finalize() {
    std::map<std::string, std::string> extra;
    if (best_epoch > 0) {
      if (comm) comm->barrier("waiting for rank 0 to write best.safetensors");
      load_weights(path("best.safetensors"));
      extra["val_loss"] = exact(best_val);
      extra["best_epoch"] = std::to_string(best_epoch);
    }
    save_weights("model.safetensors", extra);
    return path("model.safetensors");
  }

  // Whether any rank was asked to stop (one small all-reduce when distributed).
  bool agreed_stop() {
    if (!comm) return stop_requested();
    double flag = stop_requested() ? 1.0 : 0.0;
    comm->all_reduce_sum(&flag, 1, "the all-reduce of the stop requests");
    return flag > 0;
  }

  TrainSummary run() {
    using clock = std::chrono::steady_clock;
    TrainSummary summary;
    Progress progress(Progress::detect(opt.progress && writer()));
    double train_seconds = 0;
    int64_t train_images = 0;
    const auto finish = [&](TrainSummary& s) {
      s.steps = step;
      s.epochs = completed_epochs();
      s.best_val_loss = best_epoch > 0 ? best_val : kNaN;
      s.images_per_second = train_seconds > 0 ? double(train_images) / train_seconds : 0.0;
    };

    if (opt.max_steps > 0 && step >= opt.max_steps && !finished()) {
      summary.max_steps_reached = true;
      summary.model_path = finalize();
      finish(summary);
      return summary;
    }
    while (!finished()) {
      prepare_stage_data();
      const TrainStage& s = cur();
      const int64_t spe = steps_per_epoch[size_t(stage)];
      const auto epoch_start = clock::now();
      double epoch_step_seconds = 0;
      int64_t epoch_steps = 0;
      double interval_seconds = 0;
      int64_t interval_images = 0;
      train_loader->start_epoch(completed_epochs(), batch_in_epoch);
      while (batch_in_epoch < spe) {
        // A step's time includes waiting for its batch (a slow loader is part of the throughput), but not the
        // validation and checkpoints between steps.
        const auto t0 = clock::now();
        std::optional<data::Batch> batch = train_loader->next();
        FG_ASSERT(batch.has_value(), "the loader ended an epoch early");
        const std::map<std::string, double> terms = train_step(*batch);
        const double dt = std::chrono::duration<double>(clock::now() - t0).count();
        interval_seconds += dt;
        const int64_t B = batch->input.size(0) * world;  // the global batch
        train_seconds += dt;
        train_images += B;
        epoch_step_seconds += dt;
        ++epoch_steps;
        interval_images += B;
        ++step;
        ++batch_in_epoch;
        epoch_loss_sum += terms.at("total");
        ++epoch_loss_count;

        const double rate = epoch_step_seconds > 0 ? double(epoch_steps * B) / epoch_step_seconds : 0.0;
        const int64_t left_in_stage = (s.epochs - epoch_in_stage) * spe - batch_in_epoch;
        progress.update(position_text(), batch_in_epoch, spe, terms.at("total"), rate,
                        epoch_steps > 0 ? double(left_in_stage) * epoch_step_seconds / double(epoch_steps) : -1.0);
        if (step % opt.log_every == 0) {
          StepRecord r;
          r.step = step;
          r.epoch = completed_epochs() + 1;
          r.stage = stage + 1;
          r.size = s.size;
          r.lr = optimizer->lr();
          r.momentum = optimizer->momentum();
          r.images_per_s = interval_seconds > 0 ? double(interval_images) / interval_seconds : 0.0;
          r.loss_scale = scaler.scale();
          r.terms = terms;
          if (log) log->step(r);
          interval_seconds = 0;
          interval_images = 0;
        }
        const bool epoch_done = batch_in_epoch == spe;
        const bool at_max = opt.max_steps > 0 && step >= opt.max_steps;
        if (epoch_done) break;
        // Distributed, the step's all-reduce told every rank whether any was asked to stop.
        const bool stopping = comm ? any_rank_stopping : stop_requested();
        if ((opt.checkpoint_every > 0 && step % opt.checkpoint_every == 0) || stopping || at_max) save_last();
        if (stopping) {
          progress.clear();
          summary.interrupted = true;
          finish(summary);
          return summary;
        }
        if (at_max) {
          progress.clear();
          summary.max_steps_reached = true;
          summary.model_path = finalize();
          finish(summary);
          return summary;
        }
      }
      end_epoch(progress, std::chrono::duration<double>(clock::now() - epoch_start).count());
      if (agreed_stop()) {
        progress.clear();
        summary.interrupted = true;
        finish(summary);
        return summary;
      }
      if (opt.max_steps > 0 && step >= opt.max_steps && !finished()) {
        progress.clear();
        summary.max_steps_reached = true;
        summary.model_path = finalize();
        finish(summary);
        return summary;
      }
    }
    progress.clear();
    summary.finished = true;
    summary.model_path = finalize();
    finish(summary);
    return summary;
  }

  std::string plan() const {
    std::ostringstream os;
    const nn::Module& net = model->module();
    os << "data: " << opt.data_dir << ": " << split.train.size() + split.validation.size() + split.test.size()
       << " images (train " << split.train.size() << ", validation " << split.validation.size() << ", test "
       << split.test.size() << "); split in " << split_dir << "/{train,validation,test}.csv\n";
    os << "model: " << opt.model.model << " (width " << fmt("%g", opt.model.width)
       << (opt.model.gated ? ", gated: the input kept where no damage is predicted" : "") << "), task "
       << opt.model.task
       << ", loss " << opt.model.loss << ", " << with_thousands(net.num_parameters()) << " parameters, "
       << (opt.model.encoder_weights.empty() ? "weights from seed " + std::to_string(opt.seed)
                                             : "encoder from " + opt.model.encoder_weights)
       << "\n";
    os << "training: " << (opt.optimizer == "adamw" ? "AdamW" : "Adam") << " (weight decay "
       << fmt("%g", opt.weight_decay) << "), " << (opt.schedule == "one_cycle" ? "one-cycle per stage" : "constant lr")
       << ", " << opt.precision << " on " << device.str() << ", augmentation " << (opt.augment ? "on" : "off") << ", "
       << opt.samples_per_image << " crop" << (opt.samples_per_image == 1 ? "" : "s") << " per image, seed " << opt.seed
       << (opt.preset.empty() ? "" : ", preset " + opt.preset) << "\n";
    char line[256];
    std::snprintf(line, sizeof line, "%5s %5s %5s %6s %11s %7s %8s %7s %8s  %s\n", "stage", "size", "batch", "epochs",
                  "steps/epoch", "steps", "lr", "warm-up", "encoder", "parameters trainable / frozen");
    os << line;
    for (int64_t i = 0; i < n_stages(); ++i) {
      const TrainStage& s = opt.stages[size_t(i)];
      const std::string warm = opt.schedule == "one_cycle" ? fmt("%.0f%%", 100 * s.pct_start) : "-";
      const std::string enc = model->has_encoder() ? (s.frozen ? "frozen" : "trained") : "-";
      std::snprintf(line, sizeof line, "%5lld %5lld %5lld %6lld %11lld %7lld %8g %7s %8s  %s / %s\n",
                    static_cast<long long>(i + 1), static_cast<long long>(s.size), static_cast<long long>(s.batch),
                    static_cast<long long>(s.epochs), static_cast<long long>(steps_per_epoch[size_t(i)]),
                    static_cast<long long>(s.epochs * steps_per_epoch[size_t(i)]), s.lr, warm.c_str(), enc.c_str(),
                    with_thousands(param_counts[size_t(i)].first).c_str(),
                    with_thousands(param_counts[size_t(i)].second).c_str());
      os << line;
    }
    os << "total: " << total_epochs() << " epochs, " << with_thousands(total_steps()) << " steps";
    if (opt.max_steps > 0) os << " (stopping after step " << opt.max_steps << ")";
    os << "; checkpoints in " << path("last.safetensors") << " "
       << (opt.checkpoint_every > 0 ? "every " + std::to_string(opt.checkpoint_every) + " steps and " : "")
       << "at each epoch's end; metrics in " << log->path();
    if (resume) {
      os << "\nresuming at step " << step << " of " << total_steps() << " ("
         << (finished() ? std::string("every stage is done")
                        : position_text() + ", batch " + std::to_string(batch_in_epoch + 1))
         << ")";
    }
    return os.str();
  }
};

Trainer::Trainer(TrainOptions options, bool resume) : Trainer(std::move(options), resume, nullptr) {}

Trainer::Trainer(TrainOptions options, bool resume, dist::Communicator* comm)
    : impl_(std::make_unique<Impl>(std::move(options), resume, comm)) {
  impl_->setup();
}

Trainer::~Trainer() = default;

std::string Trainer::plan() const {
  return impl_->plan();
}

TrainSummary Trainer::run() {
  return impl_->run();
}

}  // namespace fg::apps
