// Data-parallel training's costs (dist/, docs/distributed.md), on as many ranks as it is started with:
//   BM_AllReduce_Filmgrad/BYTES   the communicator's all-reduce (non-blocking MPI_Iallreduce, polled), f32 tensor
//   BM_AllReduce_MPI/BYTES        a plain blocking MPI_Allreduce of the same buffer: MPI's own figure
//   BM_DataParallelStep/OVERLAP   one training step of models/tiny_unet.h (width 32, 64 px, global batch 8 split
//                                 over the ranks, Adam) with the gradient reducer; OVERLAP 1 starts buckets from the
//                                 backward hooks, 0 only after backward. images_per_s counts the global batch;
//                                 exposed_ms is the reducer's finish(): the communication backward did not hide.
// bytes_per_second is the algorithmic bandwidth (buffer bytes / time per all-reduce).
//
//   build/bench_distributed                       1 rank (MPI initialised as a singleton)
//   mpirun -np 2 build/bench_distributed ...      2 ranks; rank 0 alone reports (tools/run_dist_bench.sh)
// Every benchmark runs a fixed number of iterations, so all ranks call the same collectives.
#include <benchmark/benchmark.h>

#ifdef FG_WITH_MPI
#include <mpi.h>
#endif

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "dist/comm.h"
#include "dist/ddp.h"
#include "models/tiny_unet.h"
#include "nn/optim.h"
#include "tensor/philox.h"

namespace {

std::unique_ptr<fg::dist::Communicator> g_comm;

#ifdef FG_WITH_MPI

void BM_AllReduce_Filmgrad(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  fg::Tensor t = fg::Tensor::ones({bytes / 4});
  g_comm->barrier("the benchmark's barrier");
  for (auto _ : state) g_comm->all_reduce_sum(t, "the benchmark's all-reduce");
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["ranks"] = g_comm->size();
}

void BM_AllReduce_MPI(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  fg::Tensor t = fg::Tensor::ones({bytes / 4});
  MPI_Barrier(MPI_COMM_WORLD);
  for (auto _ : state) MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), int(t.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["ranks"] = g_comm->size();
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Args({64 << 10})->Args({1 << 20})->Args({16 << 20})->Iterations(30);
}
BENCHMARK(BM_AllReduce_Filmgrad)->Apply(sizes)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AllReduce_MPI)->Apply(sizes)->UseRealTime()->Unit(benchmark::kMicrosecond);

#endif

constexpr int64_t kGlobalBatch = 8, kSize = 64, kWidth = 32;

void BM_DataParallelStep(benchmark::State& state) {
  const bool overlap = state.range(0) != 0;
  fg::Generator gen(0);
  fg::models::TinyUNet net(gen, 3, 3, kWidth);
  fg::dist::broadcast_module_state(*g_comm, net);
  fg::nn::AdamOptions opts;
  fg::nn::Adam opt(net.parameters(), opts);
  fg::dist::ReducerOptions ro;
  ro.overlap = overlap;
  ro.bucket_bytes = 256 << 10;  // tiny_unet has 0.3 MB of f32 parameters: a few buckets
  fg::dist::GradientReducer reducer(*g_comm, net.parameters(), ro);
  const int64_t local = kGlobalBatch / g_comm->size();
  fg::Tensor x = fg::Tensor::empty({local, 3, kSize, kSize}), y = fg::Tensor::empty({local, 3, kSize, kSize});
  fg::uniform_(x, gen);
  fg::uniform_(y, gen);
  const fg::Variable xv(x), yv(y);
  double exposed = 0;
  auto step = [&] {
    fg::Variable loss = fg::mse_loss(net.forward(xv), yv);
    loss.backward();
    reducer.finish();
    exposed += reducer.last_timing().finish_seconds;
    opt.step();
    opt.zero_grad();
  };
  step();  // warm-up
  exposed = 0;
  g_comm->barrier("the benchmark's barrier");
  for (auto _ : state) step();
  state.counters["images_per_s"] =
      benchmark::Counter(double(kGlobalBatch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["exposed_ms"] = 1e3 * exposed / double(state.iterations());
  state.counters["buckets"] = double(reducer.bucket_count());
  state.counters["ranks"] = g_comm->size();
  state.SetLabel("tiny_unet width 32, 3x64x64, global batch 8, Adam");
}
BENCHMARK(BM_DataParallelStep)->Arg(1)->Arg(0)->Iterations(20)->UseRealTime()->Unit(benchmark::kMillisecond);

class QuietReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  fg::dist::Launch launch = fg::dist::detect_launch();
  if (!launch.launched) {
    // Not started by mpirun: one rank (MPI initialises itself as a singleton).
    launch.launched = true;
    launch.launcher = "singleton";
  }
  try {
    g_comm = fg::dist::make_communicator(launch, fg::Device::cpu());
  } catch (const fg::Error& e) {
    std::fprintf(stderr, "bench_distributed: %s\n", e.what());
    return 1;
  }
  // Rank 0 alone reports and writes --benchmark_out; the others run the same benchmarks (the same filter)
  // silently.
  std::vector<char*> kept;
  for (int i = 0; i < argc; ++i)
    if (g_comm->rank() == 0 || std::string(argv[i]).rfind("--benchmark_out", 0) != 0) kept.push_back(argv[i]);
  int args = int(kept.size());
  benchmark::Initialize(&args, kept.data());
  if (g_comm->rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    QuietReporter quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  g_comm.reset();
  return 0;
}
