// `filmgrad bench [--quick] [--out FILE] [--filter TEXT] [--min-time S] [--threads N]`: the benchmarks this build
// has, run in-process (apps/bench_suite.h), so an installed program needs no bench/ binaries: the CPU FMA peak, the
// CPU GEMM (filmgrad's paths and OpenBLAS) on the convolutions' shapes, conv2d forward and backward on the two
// networks' layers, a training step, and with a GPU the CUDA matmul and conv2d beside cuBLAS and cuDNN (skipped,
// with the reason shown, otherwise). Prints a table as it goes and writes all figures as JSON (atomically, at the
// end).
#include <omp.h>

#include <cstdio>
#include <string>

#include "apps/args.h"
#include "apps/bench_suite.h"
#include "apps/commands.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

std::string help_text() {
  return "usage: filmgrad bench [--quick] [--out FILE] [--filter TEXT] [--min-time S] [--threads N]\n"
         "\n"
         "Runs the benchmarks this build has and prints one row per case: the mean time per run, FLOP/s,\n"
         "bytes/s (the tensors a run must read and write once) and the percent of the peak the case runs\n"
         "against. Groups: cpu.peak (the f32 FMA peak, measured, on one thread and on all), cpu.gemm\n"
         "(filmgrad's GEMM on every instruction set this CPU has, and OpenBLAS, one thread, on the shapes\n"
         "the convolutions call it with), cpu.conv2d (forward, backward-input, backward-weight on the layers\n"
         "of both networks, all threads), cpu.train_step (a small U-Net's forward, loss, backward and Adam\n"
         "step: images/s), and in CUDA builds with a GPU cuda.matmul and cuda.conv2d (filmgrad's kernels\n"
         "beside cuBLAS and cuDNN, f32 and bf16; skipped with the reason otherwise). The full suite takes a\n"
         "few minutes; bench/ has the Google Benchmark suites with every variant.\n"
         "\n"
         "options:\n"
         "  --quick        a subset of every group (about a minute on two cores)\n"
         "  --out FILE     the JSON file to write (default filmgrad-bench.json)\n"
         "  --filter TEXT  only the cases whose name contains TEXT (e.g. cpu.gemm, conv2d/forward)\n"
         "  --min-time S   seconds of timed runs per case (default 0.2, with --quick 0.1; at least 2 runs)\n"
         "  --threads N    OpenMP threads for the multi-threaded cases (default: OMP_NUM_THREADS or all cores)\n";
}

std::string si(double v, const char* unit) {
  if (!(v > 0)) return "-";
  const char* prefixes[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  while (v >= 1000.0 && i < 5) {
    v /= 1000.0;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s%s", v, prefixes[i], unit);
  return buf;
}

void print_row(const bench::SuiteResult& r) {
  if (!r.skipped.empty()) {
    std::printf("%-72s skipped: %s\n", r.name.c_str(), r.skipped.c_str());
  } else {
    char pct[16] = "-";
    if (r.peak > 0 && r.flops > 0) std::snprintf(pct, sizeof pct, "%.1f", r.pct_peak());
    std::string extra;
    if (r.images > 0) extra = "  " + si(r.images / r.seconds, "img/s");
    std::printf("%-72s %10.3f %13s %13s %7s%s\n", r.name.c_str(), r.seconds * 1e3,
                si(r.flops_per_s(), "FLOP/s").c_str(), si(r.bytes_per_s(), "B/s").c_str(), pct, extra.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  ArgParser args("bench", {{"--quick", 0}, {"--out", 1}, {"--filter", 1}, {"--min-time", 1}, {"--threads", 1}});
  args.parse(argc, argv, 2);
  bench::SuiteOptions o;
  o.quick = args.has("--quick");
  o.min_time = args.positive_number("--min-time", o.quick ? 0.1 : 0.2);
  o.filter = args.text("--filter");
  if (args.has("--threads")) omp_set_num_threads(int(args.integer("--threads", 1, 1)));
  const std::string out = args.text("--out", "filmgrad-bench.json");
  require_output_folder(out);

  std::printf("%-72s %10s %13s %13s %7s\n", "case", "ms/run", "FLOP/s", "bytes/s", "%peak");
  bench::SuiteContext ctx;
  const std::vector<bench::SuiteResult> results = bench::run_suite(o, &ctx, print_row);
  if (results.empty()) throw UsageError("no benchmark name contains '" + o.filter + "'");
  std::printf("peaks: CPU f32 FMA (%s) %s on 1 thread, %s on %d; GPU: %s\n", ctx.fma_isa.c_str(),
              si(ctx.cpu_peak_1, "FLOP/s").c_str(), si(ctx.cpu_peak_all, "FLOP/s").c_str(), ctx.threads,
              ctx.gpu.empty() ? ("none (" + ctx.gpu_skipped + ")").c_str()
                              : (ctx.gpu + ", " + si(ctx.gpu_f32_flops, "FLOP/s") + " f32, " +
                                 si(ctx.gpu_tensor_flops, "FLOP/s") + " bf16, " + si(ctx.gpu_bytes, "B/s"))
                                    .c_str());
  write_file_atomic(out, bench::suite_json(o, ctx, results));
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace fg::apps
