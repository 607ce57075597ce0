// Peak memory of restoring an image held in memory through the C API (include/filmgrad/filmgrad.h), as an
// embedding program does it, with the full-width Dynamic U-Net (random weights, saved as `filmgrad train` saves
// them): 256x256, 1024x1024 and 6000x4000 (24 MP) 16-bit RGB images, each as trained (mode 0), in the inference mode
// (mode 1: BatchNorms folded, models/inference.h) and with f16 weights as well (mode 2).
//
// Each restore runs in a child process (this program started again with --child), so that the figure is one
// restore's alone: the child sets the CPU block cache to 256 MiB (what embed_c and `filmgrad restore` use), loads the
// model, makes the image in memory (smooth gradients and noise), restores it into a second buffer of the same type,
// and reports its own peak resident set (VmHWM) after loading, then (the peak reset) during the restore. The
// caller's two 16-bit buffers are part of the restore's peak, as in a real embedding program (6 bytes per pixel
// each way). `max_tiles` > 0 cancels the restore (through the progress callback) after that many tiles: the 24 MP
// rows stop after 6 of their 150 tiles, since a whole one takes about half an hour on 2 cores per mode. Every
// whole-image buffer exists before the first tile and every inner tile has the same 512x512 shape, so the peak of
// the first tiles is the restore's but for the last step (writing the result into the caller's buffer, which
// exists already).
//
// Counters (MiB): load_peak_mb (loading the model), loaded_rss_mb (resident once loaded), restore_peak_mb (the model
// held, the buffers, the restore), buffers_mb (the caller's input and output); seconds, tiles.
//
// BM_TilePeak: one 512x512 tile's forward (the restore's network call, no grad) in a child with the block cache off:
// tile_peak_mb is the peak resident set during the forward minus the resident set before it (the model, the input),
// largest_activation_mb the largest output of any layer (from nn::ActivationRecorder, a second forward), and factor
// their ratio.
//
// BM_F16WeightsError: a 1024x1024 image restored (f32 samples out) in the inference mode with f32 weights and with
// f16 weights: max_abs_error, psnr_db and ssim of the f16 result against the f32 one; fold_max_abs_error compares
// the inference mode's f32 result with the model as trained. The network's head is scaled as the C API test does it
// (tests/embed/test_c_api.cpp), so that a random network's output lies inside (0, 1), not clamped at its ends.
//
// JSON: --benchmark_out=FILE --benchmark_out_format=json.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/task.h"
#include "autograd/variable.h"
#include "data/metrics.h"
#include "filmgrad/filmgrad.h"
#include "models/inference.h"
#include "nn/checkpoint.h"
#include "nn/recorder.h"
#include "tensor/host_cache.h"
#include "tensor/philox.h"

namespace {

namespace fs = std::filesystem;

const fs::path kWorkDir = fs::temp_directory_path() / ("fg_bench_embed_" + std::to_string(getpid()));

// A field of /proc/self/status in KiB ("VmHWM": the peak resident set so far, "VmRSS": the resident set now), or -1.
long status_kb(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  return -1;
}
long peak_rss_kb() {
  return status_kb("VmHWM");
}

struct TileCount {
  int64_t total = 0, done = 0, stop_after = 0;  // stop_after 0: never
};

int count_tiles(int64_t done, int64_t total, void* user) {
  auto* t = static_cast<TileCount*>(user);
  t->total = total;
  t->done = done;
  return t->stop_after > 0 && done >= t->stop_after ? 1 : 0;
}

fg_load_options load_options(int mode) {
  fg_load_options o;
  fg_load_options_init(&o);
  o.inference_mode = mode >= 1 ? 1 : 0;
  o.f16_weights = mode >= 2 ? 1 : 0;
  return o;
}

// The child: --child MODEL WIDTH HEIGHT TILE MODE MAX_TILES. Prints "load_peak_kb loaded_rss_kb restore_peak_kb
// tiles seconds" on success (tiles: those restored).
int child_main(int argc, char** argv) {
  if (argc != 8) return 2;
  const int64_t W = std::atoll(argv[3]), H = std::atoll(argv[4]);
  auto check = [](fg_status s, const char* what) {
    if (s == FG_OK) return;
    std::fprintf(stderr, "%s: %s\n", what, fg_last_error());
    std::exit(1);
  };
  check(fg_set_cpu_cache_limit(256), "fg_set_cpu_cache_limit");
  fg_model* model = nullptr;
  const fg_load_options lo = load_options(std::atoi(argv[6]));
  check(fg_model_load(argv[2], &lo, &model), "fg_model_load");
  const long after_load = peak_rss_kb(), held = status_kb("VmRSS");
  // Loading parses the checkpoint beside the freshly built network, which can peak above a small restore: the
  // peak is reset here (Linux: clear_refs 5), so that the restore's own peak is seen apart from it.
  std::ofstream("/proc/self/clear_refs") << "5";

  std::vector<uint16_t> in(size_t(W * H * 3)), out(size_t(W * H * 3));
  fg::Generator gen(11);
  fg::Tensor noise = fg::Tensor::empty({4096});
  fg::uniform_(noise, gen, -0.015, 0.015);
  const float* n = noise.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const double u = double(x) / double(W), v = double(y) / double(H);
        const double base =
            0.2 + 0.5 * (0.6 * u + 0.4 * v) + 0.1 * std::sin(9.0 * u + 2.0 * double(c)) * std::cos(7.0 * v);
        const double s = std::clamp(base + n[((y * W + x) * 3 + c) & 4095], 0.0, 1.0);
        in[size_t((y * W + x) * 3 + c)] = uint16_t(std::lround(s * 65535.0));
      }
  fg_image a{in.data(), W, H, 3, FG_U16, 0}, b{out.data(), W, H, 3, FG_U16, 0};
  fg_restore_options o;
  fg_restore_options_init(&o);
  o.tile = std::atoll(argv[5]);
  TileCount tiles;
  tiles.stop_after = std::atoll(argv[7]);
  o.progress = count_tiles;
  o.user_data = &tiles;
  const auto start = std::chrono::steady_clock::now();
  const fg_status status = fg_restore(model, &a, &b, nullptr, &o);
  if (!(status == FG_OK || (status == FG_ERROR_CANCELLED && tiles.stop_after > 0))) check(status, "fg_restore");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fg_model_free(model);
  std::printf("%ld %ld %ld %lld %.3f\n", after_load, held, peak_rss_kb(), static_cast<long long>(tiles.done), seconds);
  return 0;
}

// The child: --tile-child MODEL TILE MODE. Prints "tile_peak_kb largest_activation_bytes".
int tile_child_main(int argc, char** argv) {
  if (argc != 5) return 2;
  const int64_t T = std::atoll(argv[3]);
  const int mode = std::atoi(argv[4]);
  try {
    fg::set_host_cache_limit(0);  // freed blocks go back to the system: the peak is what is alive
    std::unique_ptr<fg::apps::RestorationModel> model = fg::apps::load_restoration_model(argv[2]);
    model->module().eval();
    if (mode >= 1) {
      fg::models::InferenceOptions io;
      io.f16_weights = mode >= 2;
      fg::models::prepare_for_inference(model->module(), io);
    }
    fg::Generator gen(13);
    fg::Tensor x = fg::Tensor::empty({1, 3, T, T});
    fg::uniform_(x, gen, 0.0, 1.0);
    // Freed heap pages handed back (as the Restorer does after loading): otherwise the forward could reuse them
    // without the resident set growing, and its peak would read low.
    fg::release_host_cache();
    malloc_trim(0);
    const long before = status_kb("VmRSS");
    std::ofstream("/proc/self/clear_refs") << "5";
    {
      fg::NoGradGuard no_grad;
      const fg::Tensor y = model->predict(fg::Variable(x)).data();
    }
    const long peak = peak_rss_kb();
    int64_t largest = 0;
    {
      fg::NoGradGuard no_grad;
      fg::nn::ActivationRecorder recorder(model->module());
      model->predict(fg::Variable(x));
      for (const auto& r : recorder.records())
        largest = std::max<int64_t>(largest, fg::shape_numel(r.output_shape) * 4);
    }
    std::printf("%ld %lld\n", peak - before, static_cast<long long>(largest));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}

void make_checkpoint(const std::string& path) {
  fg::apps::ModelConfig config;  // dust, dynamic_unet, width 1.0
  fg::Generator gen(12);
  fg::apps::RestorationModel model(config, gen, /*build_loss=*/false);
  // As tests/embed/test_c_api.cpp: a smaller head keeps the random network's output inside (0, 1).
  for (auto& [name, p] : model.module().named_parameters()) {
    if (name == "head.weight") {
      fg::Tensor w = p.data();
      for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 0.05f;
    }
  }
  fg::nn::CheckpointInfo info;
  info.model = config.model;
  info.config = config.to_json();
  fg::nn::save_checkpoint(path, model.module(), nullptr, info);
}

std::string self_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : self.string();
}

// The checkpoint all cases share, written once by a child that exits (so that this process stays small). "" on
// failure.
std::string shared_checkpoint() {
  fs::create_directories(kWorkDir);
  const std::string checkpoint = (kWorkDir / "dynamic_unet.safetensors").string();
  if (fs::exists(checkpoint)) return checkpoint;
  const pid_t maker = fork();
  if (maker == 0) {
    try {
      make_checkpoint(checkpoint);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  ::waitpid(maker, &status, 0);
  if (maker < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return "";
  return checkpoint;
}

// Runs this program with `arguments` once per iteration; false (and the state skipped) when it fails.
bool run_child(benchmark::State& state, const std::string& arguments, std::string& output) {
  const std::string command = self_path() + " " + arguments + " 2>&1";
  int status = -1;
  for (auto _ : state) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) break;
    char buffer[512];
    output.clear();
    while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
    status = ::pclose(pipe);
  }
  if (status != 0) state.SkipWithError(("the child failed: " + output).c_str());
  return status == 0;
}

const char* mode_name(int64_t mode) {
  return mode == 0 ? "as trained" : mode == 1 ? "inference mode (BatchNorms folded)" : "inference mode, f16 weights";
}

std::string threads_label() {
  return std::string(", OMP threads ") + (std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "all");
}

void BM_EmbedPeakRSS_DynamicUNet(benchmark::State& state) {
  const int64_t W = state.range(0), H = state.range(1), mode = state.range(2), max_tiles = state.range(3);
  const int64_t tile = 512;
  const std::string checkpoint = shared_checkpoint();
  if (checkpoint.empty()) {
    state.SkipWithError("could not write the checkpoint");
    return;
  }
  std::string output;
  if (!run_child(state,
                 "--child " + checkpoint + " " + std::to_string(W) + " " + std::to_string(H) + " " +
                     std::to_string(tile) + " " + std::to_string(mode) + " " + std::to_string(max_tiles),
                 output))
    return;
  long load_peak = 0, held = 0, restore_peak = 0;
  long long tiles = 0;
  double seconds = 0;
  if (std::sscanf(output.c_str(), "%ld %ld %ld %lld %lf", &load_peak, &held, &restore_peak, &tiles, &seconds) != 5) {
    state.SkipWithError(("unexpected output from the child: " + output).c_str());
    return;
  }
  state.SetIterationTime(seconds);
  state.counters["load_peak_mb"] = double(load_peak) / 1024.0;
  state.counters["loaded_rss_mb"] = double(held) / 1024.0;
  state.counters["restore_peak_mb"] = double(restore_peak) / 1024.0;
  state.counters["buffers_mb"] = double(2 * W * H * 3 * 2) / (1024.0 * 1024.0);
  state.counters["seconds"] = seconds;
  state.counters["tiles"] = double(tiles);
  state.SetLabel(std::to_string(W) + "x" + std::to_string(H) + " 16-bit RGB in memory, dynamic_unet width 1.0, " +
                 mode_name(mode) + ", tile " + std::to_string(tile) + ", cache 256 MiB" +
                 (max_tiles > 0 ? ", stopped after " + std::to_string(max_tiles) + " tiles" : std::string()) +
                 threads_label());
}
BENCHMARK(BM_EmbedPeakRSS_DynamicUNet)
    ->ArgNames({"w", "h", "mode", "max_tiles"})
    ->ArgsProduct({{256}, {256}, {0, 1, 2}, {0}})
    ->ArgsProduct({{1024}, {1024}, {0, 1, 2}, {0}})
    ->ArgsProduct({{6000}, {4000}, {0, 1, 2}, {6}})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

void BM_TilePeak_DynamicUNet(benchmark::State& state) {
  const int64_t tile = state.range(0), mode = state.range(1);
  const std::string checkpoint = shared_checkpoint();
  if (checkpoint.empty()) {
    state.SkipWithError("could not write the checkpoint");
    return;
  }
  std::string output;
  if (!run_child(state, "--tile-child " + checkpoint + " " + std::to_string(tile) + " " + std::to_string(mode), output))
    return;
  long peak_kb = 0;
  long long largest = 0;
  if (std::sscanf(output.c_str(), "%ld %lld", &peak_kb, &largest) != 2 || largest <= 0) {
    state.SkipWithError(("unexpected output from the child: " + output).c_str());
    return;
  }
  const double peak_mb = double(peak_kb) / 1024.0, largest_mb = double(largest) / (1024.0 * 1024.0);
  state.counters["tile_peak_mb"] = peak_mb;
  state.counters["largest_activation_mb"] = largest_mb;
  state.counters["factor"] = peak_mb / largest_mb;
  state.SetLabel(std::to_string(tile) + "x" + std::to_string(tile) + " tile, dynamic_unet width 1.0, " +
                 mode_name(mode) + ", cache off" + threads_label());
}
BENCHMARK(BM_TilePeak_DynamicUNet)
    ->ArgNames({"tile", "mode"})
    ->ArgsProduct({{512}, {0, 1, 2}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

// One restore of `in` through the C API with the model loaded in `mode`; the f32 samples of the result.
std::vector<float> restore_f32(const std::string& checkpoint, int mode, const std::vector<float>& in, int64_t W,
                               int64_t H) {
  const fg_load_options lo = load_options(mode);
  fg_model* model = nullptr;
  if (fg_model_load(checkpoint.c_str(), &lo, &model) != FG_OK) throw std::runtime_error(fg_last_error());
  std::vector<float> out(in.size());
  fg_image a{const_cast<float*>(in.data()), W, H, 3, FG_F32, 0}, b{out.data(), W, H, 3, FG_F32, 0};
  const fg_status s = fg_restore(model, &a, &b, nullptr, nullptr);
  fg_model_free(model);
  if (s != FG_OK) throw std::runtime_error(fg_last_error());
  return out;
}

fg::Tensor planar(const std::vector<float>& v, int64_t W, int64_t H) {
  fg::Tensor t = fg::Tensor::empty({3, H, W});
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) t.data<float>()[(c * H + y) * W + x] = v[size_t((y * W + x) * 3 + c)];
  return t;
}

void BM_F16WeightsError_DynamicUNet(benchmark::State& state) {
  const int64_t W = state.range(0), H = state.range(0);
  const std::string checkpoint = shared_checkpoint();
  if (checkpoint.empty()) {
    state.SkipWithError("could not write the checkpoint");
    return;
  }
  fg_set_cpu_cache_limit(256);
  fg::Generator gen(14);
  fg::Tensor noise = fg::Tensor::empty({W * H * 3});
  fg::uniform_(noise, gen, -0.02, 0.02);
  std::vector<float> in(size_t(W * H * 3));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const size_t i = size_t((y * W + x) * 3 + c);
        const double u = double(x) / double(W), v = double(y) / double(H);
        in[i] = float(std::clamp(0.2 + 0.5 * (0.6 * u + 0.4 * v) + 0.1 * std::sin(9.0 * u + 2.0 * double(c)) +
                                     double(noise.data<float>()[i]),
                                 0.0, 1.0));
      }
  std::vector<float> plain, folded, half;
  for (auto _ : state) {
    try {
      plain = restore_f32(checkpoint, 0, in, W, H);
      folded = restore_f32(checkpoint, 1, in, W, H);
      half = restore_f32(checkpoint, 2, in, W, H);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
  double max_half = 0, max_fold = 0, clamped = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    max_half = std::max(max_half, double(std::fabs(half[i] - folded[i])));
    max_fold = std::max(max_fold, double(std::fabs(folded[i] - plain[i])));
    clamped += folded[i] <= 0.0f || folded[i] >= 1.0f;
  }
  const fg::Tensor a = planar(folded, W, H), b = planar(half, W, H);
  state.counters["max_abs_error"] = max_half;
  state.counters["psnr_db"] = fg::data::psnr(b, a);
  state.counters["ssim"] = fg::data::ssim(b, a);
  state.counters["fold_max_abs_error"] = max_fold;
  state.counters["clamped_fraction"] = clamped / double(plain.size());
  state.SetLabel(std::to_string(W) + "x" + std::to_string(H) +
                 " f32 RGB, dynamic_unet width 1.0 (head scaled), f16 weights vs f32 weights in the inference mode" +
                 threads_label());
}
BENCHMARK(BM_F16WeightsError_DynamicUNet)->ArgNames({"size"})->Arg(1024)->Iterations(1)->Unit(benchmark::kSecond);

struct CleanUp {
  ~CleanUp() {
    std::error_code ec;
    fs::remove_all(kWorkDir, ec);
  }
} clean_up;

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) return child_main(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "--tile-child") == 0) return tile_child_main(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
