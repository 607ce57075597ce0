// `filmgrad demo` and `filmgrad version`: option parsing only; the demo itself is apps/demo.cpp.
#include <omp.h>

#include <cstdio>
#include <string>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/demo.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"

namespace fg::apps {

int cmd_demo(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(
        "usage: filmgrad demo [--steps N] [--out DIR] [--seed S]\n"
        "  --steps N   training steps (default 1500)\n"
        "  --out DIR   where samples.ppm is written (default demo_out)\n"
        "  --seed S    random seed for data and weights (default 1)\n",
        stdout);
    return 0;
  }
  ArgParser args("demo", {{"--steps"}, {"--out"}, {"--seed"}});
  args.parse(argc, argv, 2);
  DemoOptions opt;
  opt.steps = args.integer("--steps", opt.steps, 0);
  opt.out_dir = args.text("--out", opt.out_dir);
  if (opt.out_dir.empty()) throw UsageError("--out needs a non-empty folder name");
  opt.seed = args.seed("--seed", opt.seed);
  return run_demo(opt);
}

namespace {

// The filmgrad GEMM kernel sets this CPU can run, widest first, e.g. "avx2 generic".
std::string available_gemm_isas() {
  std::string out;
  for (cpu::GemmIsa isa : {cpu::GemmIsa::AVX512, cpu::GemmIsa::AVX2, cpu::GemmIsa::GENERIC})
    if (cpu::gemm_isa_supported(isa)) out += std::string(out.empty() ? "" : " ") + cpu::gemm_isa_name(isa);
  return out;
}

}  // namespace

int cmd_version(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(
        "usage: filmgrad version\n"
        "  prints the version, whether CUDA and data-parallel training (MPI, NCCL) are built in, the OpenMP\n"
        "  threads, and the CPU GEMM kernels picked for this CPU (FG_CPU_GEMM=filmgrad|openblas and\n"
        "  FG_CPU_KERNELS=auto|avx512|avx2|generic change them; docs/cpu_kernels.md)\n",
        stdout);
    return 0;
  }
  ArgParser args("version", {});
  args.parse(argc, argv, 2);
  std::printf("filmgrad %s\n", kFilmgradVersion);
#ifdef FG_WITH_CUDA
  std::printf("cuda: built in\n");
#else
  std::printf("cuda: not built (nvcc was not found at build time)\n");
#endif
#if defined(FG_WITH_MPI) && defined(FG_WITH_NCCL)
  std::printf("data-parallel: mpi (cpu ranks), nccl (cuda ranks); docs/distributed.md\n");
#elif defined(FG_WITH_MPI)
  std::printf("data-parallel: mpi (cpu ranks; cuda ranks need NCCL at build time); docs/distributed.md\n");
#else
  std::printf("data-parallel: not built (MPI was not found at build time)\n");
#endif
  std::printf("openmp threads: %d\n", omp_get_max_threads());
  std::printf("cpu gemm: %s\n", cpu::gemm_kernel_name().c_str());
  std::printf("cpu kernels available: %s\n", available_gemm_isas().c_str());
  std::printf("cpu conv2d: %s\n", kernels::conv2d_cpu_algorithms());
  return 0;
}

}  // namespace fg::apps
