// Peak memory of restoring an image held in memory through the C API (include/filmgrad/filmgrad.h), as an
// embedding program does it, with the full-width Dynamic U-Net (random weights, saved as `filmgrad train` saves
// them): 256x256, 1024x1024 and 6000x4000 (24 MP) 16-bit RGB images.
//
// Each restore runs in a child process (this program started again with --child), so that the figure is one
// restore's alone: the child sets the CPU block cache to 256 MiB (what embed_c and `filmgrad restore` use), loads the
// model, makes the image in memory (smooth gradients and noise), restores it into a second buffer of the same type,
// and reports its own peak resident set (VmHWM) after loading, then (the peak reset) during the restore. The
// caller's two 16-bit buffers are part of the restore's peak, as in a real embedding program (6 bytes per pixel
// each way).
//
// Counters (MiB): load_peak_mb (loading the model), loaded_rss_mb (resident once loaded), restore_peak_mb (the model
// held, the buffers, the restore), buffers_mb (the caller's input and output); seconds, tiles. JSON:
// --benchmark_out=FILE --benchmark_out_format=json. The 24 MP case takes about half an hour on 2 cores.
#include <benchmark/benchmark.h>
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
#include <sstream>
#include <string>
#include <vector>

#include "apps/task.h"
#include "filmgrad/filmgrad.h"
#include "nn/checkpoint.h"
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

int count_tiles(int64_t, int64_t total, void* user) {
  *static_cast<int64_t*>(user) = total;
  return 0;
}

// The child: --child MODEL WIDTH HEIGHT TILE. Prints "load_peak_kb loaded_rss_kb restore_peak_kb tiles seconds" on
// success.
int child_main(int argc, char** argv) {
  if (argc != 6) return 2;
  const int64_t W = std::atoll(argv[3]), H = std::atoll(argv[4]);
  auto check = [](fg_status s, const char* what) {
    if (s == FG_OK) return;
    std::fprintf(stderr, "%s: %s\n", what, fg_last_error());
    std::exit(1);
  };
  check(fg_set_cpu_cache_limit(256), "fg_set_cpu_cache_limit");
  fg_model* model = nullptr;
  check(fg_model_load(argv[2], nullptr, &model), "fg_model_load");
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
  int64_t tiles = 0;
  o.progress = count_tiles;
  o.user_data = &tiles;
  const auto start = std::chrono::steady_clock::now();
  check(fg_restore(model, &a, &b, nullptr, &o), "fg_restore");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fg_model_free(model);
  std::printf("%ld %ld %ld %lld %.3f\n", after_load, held, peak_rss_kb(), static_cast<long long>(tiles), seconds);
  return 0;
}

void make_checkpoint(const std::string& path) {
  fg::apps::ModelConfig config;  // dust, dynamic_unet, width 1.0
  fg::Generator gen(12);
  fg::apps::RestorationModel model(config, gen, /*build_loss=*/false);
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

void BM_EmbedPeakRSS_DynamicUNet(benchmark::State& state) {
  const int64_t W = state.range(0), H = state.range(1), tile = 512;
  fs::create_directories(kWorkDir);
  const std::string checkpoint = (kWorkDir / "dynamic_unet.safetensors").string();
  if (!fs::exists(checkpoint)) {
    // Written by a child that exits, so that this process stays small.
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
    if (maker < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("could not write the checkpoint");
      return;
    }
  }
  const std::string command = self_path() + " --child " + checkpoint + " " + std::to_string(W) + " " +
                              std::to_string(H) + " " + std::to_string(tile) + " 2>&1";
  std::string output;
  int status = -1;
  for (auto _ : state) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) break;
    char buffer[512];
    output.clear();
    while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
    status = ::pclose(pipe);
  }
  long load_peak = 0, held = 0, restore_peak = 0;
  long long tiles = 0;
  double seconds = 0;
  if (status != 0 ||
      std::sscanf(output.c_str(), "%ld %ld %ld %lld %lf", &load_peak, &held, &restore_peak, &tiles, &seconds) != 5) {
    state.SkipWithError(("the child failed: " + output).c_str());
    return;
  }
  state.SetIterationTime(seconds);
  state.counters["load_peak_mb"] = double(load_peak) / 1024.0;
  state.counters["loaded_rss_mb"] = double(held) / 1024.0;
  state.counters["restore_peak_mb"] = double(restore_peak) / 1024.0;
  state.counters["buffers_mb"] = double(2 * W * H * 3 * 2) / (1024.0 * 1024.0);
  state.counters["seconds"] = seconds;
  state.counters["tiles"] = double(tiles);
  state.SetLabel(std::to_string(W) + "x" + std::to_string(H) + " 16-bit RGB in memory, dynamic_unet width 1.0, tile " +
                 std::to_string(tile) + ", cache 256 MiB, OMP threads " +
                 (std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "all"));
}
BENCHMARK(BM_EmbedPeakRSS_DynamicUNet)
    ->ArgNames({"w", "h"})
    ->Args({256, 256})
    ->Args({1024, 1024})
    ->Args({6000, 4000})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

struct CleanUp {
  ~CleanUp() {
    std::error_code ec;
    fs::remove_all(kWorkDir, ec);
  }
} clean_up;

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) return child_main(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
