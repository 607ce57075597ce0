// The benchmarks `filmgrad bench` runs in-process, and the parts the Google Benchmark suites under bench/ share with
// it: the GEMM shapes (bench_gemm), the convolution layers (bench_conv2d) and the training step (bench_train_step).
// The shapes live here once, so the installed program and the bench/ binaries time the same problems; only the
// timing loop differs (Google Benchmark's there, run_suite's here).
//
// run_suite's timing: each case is prepared (inputs allocated and filled), run once untimed (first-touch, caches,
// cuDNN's algorithm search), then repeatedly until min_time seconds have passed and at least 2 timed runs were
// made; the figure is the mean time per run. CPU cases are timed with the steady clock; CUDA cases with a pair of
// CUDA events around the timed runs on the device's stream. Rates: FLOP/s = flops / time, bytes/s = bytes / time
// (the tensors each run must read and write once), pct_peak = 100 * FLOP/s / the peak of the path (the measured
// CPU FMA peak of as many threads as the case uses, apps/bench_peak.h; on the GPU the f32 pipes or the dense
// tensor cores, apps/bench_gpu_peak.h). A training step counts no flops; it reports images/s.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace fg::bench {

// ---- shared shape tables ----

// A (trans_a, trans_b, M, N, K) gemm_blas call that conv2d makes on one of the layers below at one thread.
struct GemmShape {
  const char* direction;  // forward, backward_input, backward_weight
  const char* layer;
  bool ta, tb;
  int64_t M, N, K;
};
const std::vector<GemmShape>& gemm_shapes();
std::string gemm_shape_name(const GemmShape& s);  // "<direction>/<layer>/<M>x<N>x<K>"

// A convolution layer of the two networks at 64 px, batch 8 (and some at 128 and 256 px).
struct ConvLayer {
  const char* name;
  int64_t N, C, H, W, O, K, stride, pad, dilation;
};
const std::vector<ConvLayer>& conv_layers();
std::string conv_shape_name(const ConvLayer& l);  // "<N>x<C>x<H>x<W>-><O>,k<K>s<S>p<P>d<D>"
double conv_flops(const ConvLayer& l);            // 2*N*O*OH*OW*C*K*K, padding taps included

// One CPU training step (forward, MSE loss, backward, Adam step) of models/tiny_unet.h on random data.
constexpr int64_t kTrainStepBatch = 8, kTrainStepSize = 64, kTrainStepWidth = 32;
class TinyUNetTrainStep {
 public:
  TinyUNetTrainStep(int64_t batch = kTrainStepBatch, int64_t size = kTrainStepSize, int64_t width = kTrainStepWidth);
  ~TinyUNetTrainStep();
  void run();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// ---- the in-process suite (`filmgrad bench`) ----

struct SuiteOptions {
  bool quick = false;     // a subset of every group (about a minute on a 2-core machine)
  double min_time = 0.2;  // seconds of timed runs per case (at least 2 runs)
  std::string filter;     // only cases whose name contains it (empty: all)
};

// What the figures are measured against, recorded beside them.
struct SuiteContext {
  int threads = 1;          // OpenMP threads of the multi-threaded cases
  std::string fma_isa;      // the FMA peak's instruction set (avx512, avx2, scalar)
  std::string gemm_isa;     // the CPU GEMM path production uses
  double cpu_peak_1 = 0;    // f32 FMA peak, one thread, flop/s
  double cpu_peak_all = 0;  // f32 FMA peak, `threads` threads together
  bool cuda_build = false;
  std::string gpu;          // device name; empty without one
  std::string gpu_skipped;  // why the CUDA cases did not run (empty when they did)
  double gpu_f32_flops = 0, gpu_tensor_flops = 0, gpu_bytes = 0;
};

struct SuiteResult {
  std::string name;     // e.g. "cpu.gemm/filmgrad-avx2/forward/r34.layer1/64x256x576"
  std::string group;    // cpu.peak, cpu.gemm, cpu.conv2d, cpu.train_step, cuda.matmul, cuda.conv2d
  std::string device;   // "cpu" or "cuda"
  int threads = 0;      // CPU threads (0 for CUDA cases)
  int64_t runs = 0;     // timed runs
  double seconds = 0;   // mean seconds per run
  double flops = 0;     // per run; 0 when not counted
  double bytes = 0;     // per run; 0 when not counted
  double peak = 0;      // flop/s that pct_peak is against; 0 when none
  double images = 0;    // images per run (training steps), else 0
  std::string skipped;  // non-empty: why the case did not run (then no figures)

  double flops_per_s() const { return seconds > 0 ? flops / seconds : 0; }
  double bytes_per_s() const { return seconds > 0 ? bytes / seconds : 0; }
  double pct_peak() const { return peak > 0 ? 100.0 * flops_per_s() / peak : 0; }
};

// Measures the context (the CPU peaks take about a second) and runs the cases; on_result is called after each.
std::vector<SuiteResult> run_suite(const SuiteOptions& options, SuiteContext* context,
                                   const std::function<void(const SuiteResult&)>& on_result);

// The results and context as one JSON document (the format docs/cli.md describes).
std::string suite_json(const SuiteOptions& options, const SuiteContext& context,
                       const std::vector<SuiteResult>& results);

}  // namespace fg::bench
