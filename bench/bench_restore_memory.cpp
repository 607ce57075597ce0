// Peak memory and speed of `filmgrad restore` on a 24-megapixel 16-bit scan on the CPU (the goal: at most 2 GB
// resident). The benchmark writes, once, in a temporary folder, a 6000x4000 16-bit RGB TIFF (smooth gradients and
// fine noise, Deflate-compressed as write_image writes it) and a Dynamic U-Net checkpoint at full width (random
// weights, saved as `filmgrad train` saves them), then runs the built `filmgrad restore` as a child process and
// reads the child's peak resident set from wait4() (ru_maxrss), so the figure is the whole program's: decoding,
// the model, the tiles, the output accumulator and the encoded output file.
//
// Counters: peak_rss_mb (MiB), megapixels_per_s, seconds, tiles. The tile side is the benchmark's argument.
// The program is found beside this benchmark (both are built in the build folder's root), or at $FG_FILMGRAD.
// JSON: --benchmark_out=FILE --benchmark_out_format=json.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/task.h"
#include "data/image_io.h"
#include "nn/checkpoint.h"
#include "tensor/philox.h"

namespace {

namespace fs = std::filesystem;

constexpr int64_t kWidth = 6000, kHeight = 4000;

const fs::path kWorkDir = fs::temp_directory_path() / ("fg_bench_restore_" + std::to_string(getpid()));
const fs::path& work_dir() { return kWorkDir; }

std::string filmgrad_program() {
  if (const char* env = std::getenv("FG_FILMGRAD")) return env;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("filmgrad") : (self.parent_path() / "filmgrad").string();
}

// The scan: smooth colour gradients with a few broad waves and +-1.5 % noise, so the TIFF compresses like a real
// scan (neither trivially nor not at all).
void make_scan(const std::string& path) {
  fg::Tensor t = fg::Tensor::empty({3, kHeight, kWidth});
  fg::Generator gen(11);
  fg::uniform_(t, gen, -0.015, 0.015);
  float* p = t.data<float>();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < kHeight; ++y)
      for (int64_t x = 0; x < kWidth; ++x) {
        const double u = double(x) / double(kWidth), v = double(y) / double(kHeight);
        const double base = 0.2 + 0.5 * (0.6 * u + 0.4 * v) + 0.1 * std::sin(9.0 * u + 2.0 * double(c)) *
                                                                  std::cos(7.0 * v);
        p[(c * kHeight + y) * kWidth + x] += float(base);
      }
  fg::data::write_image(path, fg::data::make_image(t, 16));
}

void make_checkpoint(const std::string& path) {
  fg::apps::ModelConfig config;  // dust, dynamic_unet, width 1.0: 41,405,589 parameters
  fg::Generator gen(12);
  fg::apps::RestorationModel model(config, gen, /*build_loss=*/false);
  fg::nn::CheckpointInfo info;
  info.model = config.model;
  info.config = config.to_json();  // what `filmgrad restore` rebuilds the model from
  fg::nn::save_checkpoint(path, model.module(), nullptr, info);
}

struct ChildResult {
  int status = -1;
  double seconds = 0;
  long max_rss_kb = 0;
  std::string log;
};

// Runs the program with `args`, its stdout and stderr to a log file; returns its status, wall time and peak RSS.
ChildResult run_child(const std::vector<std::string>& args) {
  const fs::path log = work_dir() / "restore.log";
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ChildResult r;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) return r;
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.max_rss_kb = usage.ru_maxrss;  // Linux: kilobytes
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.log = ss.str();
  return r;
}

void BM_RestoreMemory_DynamicUNet_24MP(benchmark::State& state) {
  const int64_t tile = state.range(0);
  const std::string program = filmgrad_program();
  if (!fs::exists(program)) {
    state.SkipWithError(("the filmgrad program was not found at " + program +
                         "; build the filmgrad_app target first or set FG_FILMGRAD")
                            .c_str());
    return;
  }
  fs::create_directories(work_dir());
  // The inputs are made in a child process that exits, so that this process stays small: a forked child's peak
  // resident set includes what it shared with its parent before exec.
  const std::string scan = (work_dir() / "scan_6000x4000_16bit.tif").string();
  const std::string checkpoint = (work_dir() / "dynamic_unet.safetensors").string();
  if (!fs::exists(scan) || !fs::exists(checkpoint)) {
    const pid_t maker = fork();
    if (maker == 0) {
      try {
        make_scan(scan);
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
      state.SkipWithError("could not write the test scan and checkpoint");
      return;
    }
  }
  const std::string out = (work_dir() / "restored.tif").string();
  ChildResult r;
  for (auto _ : state) {
    r = run_child({program, "restore", scan, "-o", out, "--model", checkpoint, "--tile", std::to_string(tile),
                   "--overwrite"});
    state.SetIterationTime(r.seconds);
    if (r.status != 0) break;
  }
  if (r.status != 0) {
    const std::string tail = r.log.size() > 400 ? r.log.substr(r.log.size() - 400) : r.log;
    state.SkipWithError(("filmgrad restore failed (status " + std::to_string(r.status) + "): " + tail).c_str());
    return;
  }
  const fg::data::ImageInfo info = fg::data::read_image_info(out);
  if (info.width != kWidth || info.height != kHeight || info.bit_depth != 16) {
    state.SkipWithError("the restored scan does not have the input's size and depth");
    return;
  }
  const double megapixels = double(kWidth * kHeight) * 1e-6;
  state.counters["peak_rss_mb"] = double(r.max_rss_kb) / 1024.0;
  state.counters["megapixels_per_s"] = megapixels / r.seconds;
  state.counters["seconds"] = r.seconds;
  const size_t at = r.log.find(" tiles,");
  if (at != std::string::npos) {
    const size_t begin = r.log.rfind(' ', at - 1);
    state.counters["tiles"] = std::stod(r.log.substr(begin + 1, at - begin - 1));
  }
  state.SetLabel("6000x4000 16-bit RGB TIFF, dynamic_unet width 1.0, tile " + std::to_string(tile) + ", margin 32, "
                 "ramp 32, OMP threads " + (std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "all"));
}

BENCHMARK(BM_RestoreMemory_DynamicUNet_24MP)
    ->ArgName("tile")
    ->Arg(512)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

// Removes the temporary folder after the benchmarks ran (Google Benchmark has no teardown hook for the process).
struct CleanUp {
  ~CleanUp() {
    std::error_code ec;
    fs::remove_all(work_dir(), ec);
  }
} clean_up;

}  // namespace

BENCHMARK_MAIN();
