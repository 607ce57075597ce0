// The benchmark cases of `filmgrad bench` and the shape tables bench/ shares (apps/bench_suite.h).
#include "apps/bench_suite.h"

#include <omp.h>

#include <chrono>
#include <cstdio>

#include "apps/bench_peak.h"
#include "apps/commands.h"
#include "apps/json.h"
#include "autograd/ops.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"
#include "kernels/matmul.h"
#include "models/tiny_unet.h"
#include "nn/optim.h"
#include "tensor/philox.h"
#ifdef FG_WITH_CUDA
#include "apps/bench_gpu_peak.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/matmul.h"
#include "kernels/vendor/cublas_matmul.h"
#include "kernels/vendor/cudnn_conv2d.h"
#include "tensor/cuda/context.h"
#endif

namespace fg::bench {

// ---- shape tables ----

// The (trans_a, trans_b, M, N, K) of the gemm_blas calls that conv2d_forward (W x col: no transposes),
// conv2d_backward_input (W^T x dy: A transposed) and conv2d_backward_weight (dy x col^T: B transposed) make on the
// layers of conv_layers() at one thread, recorded by logging gemm_blas's arguments on 2026-12-07 (the column tiles
// come from conv2d's 1 MiB column budget, so N is the tile width, not the image size). The largest or most
// frequent tile of each layer.
const std::vector<GemmShape>& gemm_shapes() {
  static const std::vector<GemmShape> table = {
      {"forward", "r34.conv1@256", false, false, 64, 1639, 147},
      {"forward", "r34.layer1", false, false, 64, 256, 576},
      {"forward", "r34.layer1@256", false, false, 64, 410, 576},
      {"forward", "r34.layer2", false, false, 128, 192, 1152},
      {"forward", "unet.block2.conv", false, false, 256, 128, 2304},
      {"forward", "xc.block512", false, false, 512, 128, 4608},
      {"forward", "r34.layer4", false, false, 512, 32, 4608},
      {"forward", "unet.block1.conv", false, false, 384, 128, 3456},
      {"forward", "unet.block3.conv1", false, false, 96, 147, 1728},
      {"forward", "unet.res@256", false, false, 99, 294, 891},
      {"forward", "unet.last.shuf", false, false, 384, 2048, 96},
      {"forward", "unet.head", false, false, 3, 2048, 99},
      {"backward_input", "r34.layer1", true, false, 576, 256, 64},
      {"backward_input", "unet.block2.conv", true, false, 2304, 128, 256},
      {"backward_input", "xc.block512", true, false, 4608, 128, 512},
      {"backward_input", "unet.block3.conv1", true, false, 1728, 147, 96},
      {"backward_input", "unet.res@256", true, false, 891, 294, 99},
      {"backward_weight", "r34.layer1", false, true, 64, 576, 256},
      {"backward_weight", "unet.block2.conv", false, true, 256, 2304, 128},
      {"backward_weight", "xc.block512", false, true, 512, 4608, 128},
      {"backward_weight", "unet.block3.conv1", false, true, 96, 1728, 147},
      {"backward_weight", "unet.res@256", false, true, 99, 891, 294},
  };
  return table;
}

std::string gemm_shape_name(const GemmShape& s) {
  return std::string(s.direction) + "/" + s.layer + "/" + std::to_string(s.M) + "x" + std::to_string(s.N) + "x" +
         std::to_string(s.K);
}

// Shapes derived from SPEC.md section B at a 64 px input (the table there is for 256 px; every size is /4):
// encoder 64 -> conv1 32 -> maxpool 16 (layer1) -> 8 (layer2) -> 4 (layer3) -> 2 (layer4, bridge); UnetBlock i
// takes up_c channels at the lower size, PixelShuffle_ICNR's 1x1 conv makes 2*up_c there, the shuffle doubles
// the size with up_c/2 channels, the skip adds skip_c: ni = up_c/2 + skip_c, two 3x3 convs ni -> ni (the last
// block ni -> ni/2).
const std::vector<ConvLayer>& conv_layers() {
  static const std::vector<ConvLayer> table = {
      // ResNet34 encoder, 64 px, batch 8
      {"r34.conv1", 8, 3, 64, 64, 64, 7, 2, 3, 1},
      {"r34.layer1", 8, 64, 16, 16, 64, 3, 1, 1, 1},
      {"r34.layer2.0.conv1", 8, 64, 16, 16, 128, 3, 2, 1, 1},
      {"r34.layer2.0.downsample", 8, 64, 16, 16, 128, 1, 2, 0, 1},
      {"r34.layer2", 8, 128, 8, 8, 128, 3, 1, 1, 1},
      {"r34.layer3.0.conv1", 8, 128, 8, 8, 256, 3, 2, 1, 1},
      {"r34.layer3", 8, 256, 4, 4, 256, 3, 1, 1, 1},
      {"r34.layer4.0.conv1", 8, 256, 4, 4, 512, 3, 2, 1, 1},
      {"r34.layer4", 8, 512, 2, 2, 512, 3, 1, 1, 1},
      // bridge
      {"unet.bridge.conv1", 8, 512, 2, 2, 1024, 3, 1, 1, 1},
      {"unet.bridge.conv2", 8, 1024, 2, 2, 512, 3, 1, 1, 1},
      // decoder: UnetBlock(up_c, skip_c) = shuf 1x1 up_c -> 2 up_c, then 3x3 ni -> ni (twice)
      {"unet.block0.shuf", 8, 512, 2, 2, 1024, 1, 1, 0, 1},
      {"unet.block0.conv", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"unet.block1.shuf", 8, 512, 4, 4, 1024, 1, 1, 0, 1},
      {"unet.block1.conv", 8, 384, 8, 8, 384, 3, 1, 1, 1},
      {"unet.block2.shuf", 8, 384, 8, 8, 768, 1, 1, 0, 1},
      {"unet.block2.conv", 8, 256, 16, 16, 256, 3, 1, 1, 1},
      {"unet.block3.shuf", 8, 256, 16, 16, 512, 1, 1, 0, 1},
      {"unet.block3.conv1", 8, 192, 32, 32, 96, 3, 1, 1, 1},
      {"unet.block3.conv2", 8, 96, 32, 32, 96, 3, 1, 1, 1},
      {"unet.last.shuf", 8, 96, 32, 32, 384, 1, 1, 0, 1},
      {"unet.res", 8, 99, 64, 64, 99, 3, 1, 1, 1},
      {"unet.head", 8, 99, 64, 64, 3, 1, 1, 0, 1},
      // cross-channel U-Net (SPEC.md section A), 64 px: encoder blocks halve the size and double the channels
      {"xc.block64", 8, 64, 32, 32, 64, 3, 1, 1, 1},
      {"xc.block128", 8, 128, 16, 16, 128, 3, 1, 1, 1},
      {"xc.block256", 8, 256, 8, 8, 256, 3, 1, 1, 1},
      {"xc.block512", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"xc.dilated", 8, 512, 4, 4, 512, 3, 1, 2, 2},
      // larger inputs: 128 px and 256 px (batch 8)
      {"r34.layer1@128", 8, 64, 32, 32, 64, 3, 1, 1, 1},
      {"r34.layer4@128", 8, 512, 4, 4, 512, 3, 1, 1, 1},
      {"unet.block2.conv@128", 8, 256, 32, 32, 256, 3, 1, 1, 1},
      {"unet.block3.conv1@128", 8, 192, 64, 64, 96, 3, 1, 1, 1},
      {"r34.conv1@256", 8, 3, 256, 256, 64, 7, 2, 3, 1},
      {"r34.layer1@256", 8, 64, 64, 64, 64, 3, 1, 1, 1},
      {"unet.res@256", 8, 99, 256, 256, 99, 3, 1, 1, 1},
      {"xc.dilated@256", 8, 512, 16, 16, 512, 3, 1, 2, 2},
  };
  return table;
}

std::string conv_shape_name(const ConvLayer& l) {
  return std::to_string(l.N) + "x" + std::to_string(l.C) + "x" + std::to_string(l.H) + "x" + std::to_string(l.W) +
         "->" + std::to_string(l.O) + ",k" + std::to_string(l.K) + "s" + std::to_string(l.stride) + "p" +
         std::to_string(l.pad) + "d" + std::to_string(l.dilation);
}

namespace {
std::pair<int64_t, int64_t> conv_out(const ConvLayer& l) {
  const int64_t eff = l.dilation * (l.K - 1) + 1;
  return {(l.H + 2 * l.pad - eff) / l.stride + 1, (l.W + 2 * l.pad - eff) / l.stride + 1};
}
}  // namespace

double conv_flops(const ConvLayer& l) {
  const auto [OH, OW] = conv_out(l);
  return 2.0 * double(l.N * l.O * OH * OW) * double(l.C * l.K * l.K);
}

// ---- the training step ----

struct TinyUNetTrainStep::State {
  Generator gen{0};
  models::TinyUNet net;
  nn::Adam opt;
  Variable x, y;
  State(int64_t batch, int64_t size, int64_t width)
      : net(gen, 3, 3, width), opt(net.parameters(), [] {
          nn::AdamOptions o;
          o.lr = 1e-3;
          return o;
        }()) {
    Tensor xt = Tensor::empty({batch, 3, size, size}), yt = Tensor::empty({batch, 3, size, size});
    uniform_(xt, gen);
    uniform_(yt, gen);
    x = Variable(xt);
    y = Variable(yt);
  }
};

TinyUNetTrainStep::TinyUNetTrainStep(int64_t batch, int64_t size, int64_t width)
    : state_(std::make_unique<State>(batch, size, width)) {}
TinyUNetTrainStep::~TinyUNetTrainStep() = default;

void TinyUNetTrainStep::run() {
  state_->opt.zero_grad();
  Variable loss = mse_loss(state_->net.forward(state_->x), state_->y);
  loss.backward();
  state_->opt.step();
}

// ---- the suite ----

namespace {

// A case: its figures per run, and prepare(), which allocates the inputs and returns the operation to time.
struct Case {
  SuiteResult result;  // name, group, device, threads, flops, bytes, peak, images filled in
  std::function<std::function<void()>()> prepare;
  std::string skipped;  // set instead of prepare for cases that cannot run here
};

using Clock = std::chrono::steady_clock;

// Times op on the CPU: one untimed run, then runs until min_time has passed (at least 2).
void time_cpu(const std::function<void()>& op, double min_time, SuiteResult* r) {
  op();
  int64_t runs = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    op();
    ++runs;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (runs < 2 || elapsed < min_time);
  r->runs = runs;
  r->seconds = elapsed / double(runs);
}

#ifdef FG_WITH_CUDA
// Times op on the GPU with events: one untimed run (and a synchronisation), then batches of runs, each batch
// doubling, until min_time of device time has passed.
void time_cuda(const std::function<void()>& op, double min_time, SuiteResult* r) {
  op();
  cuda::synchronize(0);
  cuda::Event start(0), stop(0);
  int64_t runs = 0, batch = 1;
  double elapsed = 0;
  while (runs < 2 || elapsed < min_time) {
    start.record();
    for (int64_t i = 0; i < batch; ++i) op();
    stop.record();
    stop.synchronize();
    elapsed += double(stop.elapsed_ms(start)) * 1e-3;
    runs += batch;
    batch *= 2;
  }
  r->runs = runs;
  r->seconds = elapsed / double(runs);
}
#endif

Tensor random_tensor(const Shape& shape, Generator& gen, DType dt = DType::F32, Device device = Device::cpu()) {
  Tensor t = Tensor::empty(shape, dt, device);
  uniform_(t, gen, -1.0, 1.0);
  return t;
}

// Quick subsets: the names of the shapes kept by --quick.
bool quick_gemm(const GemmShape& s) {
  const std::string name = gemm_shape_name(s);
  return name == "forward/r34.layer1/64x256x576" || name == "forward/xc.block512/512x128x4608" ||
         name == "backward_input/unet.block2.conv/2304x128x256" ||
         name == "backward_weight/unet.block2.conv/256x2304x128";
}
bool quick_conv(const ConvLayer& l) {
  const std::string name = l.name;
  return name == "r34.conv1" || name == "r34.layer1" || name == "unet.block2.conv" || name == "xc.block512" ||
         name == "xc.dilated" || name == "unet.res";
}

enum class Direction { FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT };
const char* direction_name(Direction d) {
  return d == Direction::FORWARD ? "forward" : d == Direction::BACKWARD_INPUT ? "backward_input" : "backward_weight";
}

void add_cpu_cases(const SuiteOptions& o, const SuiteContext& ctx, std::vector<Case>* cases) {
  // GEMM: one single-threaded call per run, as conv2d makes them, against the one-thread peak.
  std::vector<std::pair<std::string, int>> impls;  // name, isa (-1: OpenBLAS)
  for (cpu::GemmIsa isa : {cpu::GemmIsa::AVX512, cpu::GemmIsa::AVX2, cpu::GemmIsa::GENERIC})
    if (cpu::gemm_isa_supported(isa) && (!o.quick || isa == cpu::gemm_isa()))
      impls.push_back({std::string("filmgrad-") + cpu::gemm_isa_name(isa), int(isa)});
  impls.push_back({"openblas", -1});
  for (const GemmShape& s : gemm_shapes()) {
    if (o.quick && !quick_gemm(s)) continue;
    for (const auto& [impl, isa] : impls) {
      Case c;
      c.result.name = "cpu.gemm/" + impl + "/" + gemm_shape_name(s);
      c.result.group = "cpu.gemm";
      c.result.device = "cpu";
      c.result.threads = 1;
      c.result.flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
      c.result.bytes = 4.0 * double(s.M * s.K + s.K * s.N + s.M * s.N);
      c.result.peak = ctx.cpu_peak_1;
      const int isa_value = isa;
      c.prepare = [s, isa_value]() -> std::function<void()> {
        auto A = std::make_shared<std::vector<float>>(size_t(s.M * s.K));
        auto B = std::make_shared<std::vector<float>>(size_t(s.K * s.N));
        auto C = std::make_shared<std::vector<float>>(size_t(s.M * s.N));
        for (size_t i = 0; i < A->size(); ++i) (*A)[i] = float((i * 7919) % 2003) / 1001.0f - 1.0f;
        for (size_t i = 0; i < B->size(); ++i) (*B)[i] = float((i * 104729) % 1999) / 999.0f - 1.0f;
        return [s, isa_value, A, B, C] {
          // Selected on every run, so a case cannot leave another's choice behind; restored by the caller.
          if (isa_value < 0) {
            cpu::set_gemm_backend(cpu::GemmBackend::OPENBLAS);
          } else {
            cpu::set_gemm_backend(cpu::GemmBackend::FILMGRAD);
            cpu::set_gemm_isa(cpu::GemmIsa(isa_value));
          }
          const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
          cpu::gemm_blas(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A->data(), lda, B->data(), ldb, 0.0f, C->data(), s.N);
        };
      };
      cases->push_back(std::move(c));
    }
  }
  // conv2d, production path (GEMM), on all threads.
  for (Direction d : {Direction::FORWARD, Direction::BACKWARD_INPUT, Direction::BACKWARD_WEIGHT}) {
    for (const ConvLayer& l : conv_layers()) {
      if (o.quick && !quick_conv(l)) continue;
      const auto [OH, OW] = conv_out(l);
      Case c;
      c.result.name = std::string("cpu.conv2d/") + direction_name(d) + "/" + l.name + "/" + conv_shape_name(l);
      c.result.group = "cpu.conv2d";
      c.result.device = "cpu";
      c.result.threads = ctx.threads;
      c.result.flops = conv_flops(l);
      const double x = double(l.N * l.C * l.H * l.W), w = double(l.O * l.C * l.K * l.K),
                   y = double(l.N * l.O * OH * OW);
      c.result.bytes = 4.0 * (x + w + y + (d == Direction::FORWARD ? double(l.O) : 0.0));
      c.result.peak = ctx.cpu_peak_all;
      c.prepare = [l, d, OH = OH, OW = OW]() -> std::function<void()> {
        Generator gen(7);
        const kernels::Conv2dGeometry g{l.stride, l.stride, l.pad, l.pad, l.dilation, l.dilation};
        Tensor x = random_tensor({l.N, l.C, l.H, l.W}, gen), w = random_tensor({l.O, l.C, l.K, l.K}, gen);
        Tensor b = random_tensor({l.O}, gen), dy = random_tensor({l.N, l.O, OH, OW}, gen);
        return [=] {
          if (d == Direction::FORWARD)
            kernels::conv2d_forward(x, w, b, g);
          else if (d == Direction::BACKWARD_INPUT)
            kernels::conv2d_backward_input(dy, w, x.shape(), g);
          else
            kernels::conv2d_backward_weight(dy, x, w.shape(), g);
        };
      };
      cases->push_back(std::move(c));
    }
  }
  // The training step, on one thread and on all (the full suite), or on all (quick).
  std::vector<int> step_threads;
  if (!o.quick && ctx.threads > 1) step_threads.push_back(1);
  step_threads.push_back(ctx.threads);
  for (int t : step_threads) {
    Case c;
    c.result.name = "cpu.train_step/tiny_unet/" + std::to_string(kTrainStepBatch) + "x3x" +
                    std::to_string(kTrainStepSize) + "x" + std::to_string(kTrainStepSize) + ",width" +
                    std::to_string(kTrainStepWidth) + "/threads" + std::to_string(t);
    c.result.group = "cpu.train_step";
    c.result.device = "cpu";
    c.result.threads = t;
    c.result.images = double(kTrainStepBatch);
    c.prepare = [t]() -> std::function<void()> {
      auto step = std::make_shared<TinyUNetTrainStep>();
      return [step, t] {
        omp_set_num_threads(t);
        step->run();
      };
    };
    cases->push_back(std::move(c));
  }
}

// Without CUDA, or without a device, the same cases are listed as skipped (with the reason), so --filter selects
// the same names on every machine.
void add_cuda_cases(const SuiteOptions& o, const SuiteContext& ctx, std::vector<Case>* cases) {
  const bool have_gpu = ctx.gpu_skipped.empty();
#ifdef FG_WITH_CUDA
  const bool have_cudnn = vendor::cudnn_available();
#else
  const bool have_cudnn = false;
#endif
  // Square products in the layouts training uses, own kernels beside cuBLAS, f32 and bf16.
  struct Variant {
    const char* name;
    DType dt;
    bool vendor;
  };
  const Variant matmul_variants[] = {{"tiled_f32", DType::F32, false},
                                     {"cublas_f32", DType::F32, true},
                                     {"wmma_bf16", DType::BF16, false},
                                     {"cublas_bf16", DType::BF16, true}};
  std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{1024, 2048, 4096, 8192};
  for (int64_t n : sizes) {
    for (const Variant& v : matmul_variants) {
      Case c;
      c.result.name = std::string("cuda.matmul/") + v.name + "/" + std::to_string(n) + "x" + std::to_string(n) + "x" +
                      std::to_string(n);
      c.result.group = "cuda.matmul";
      c.result.device = "cuda";
      c.result.flops = 2.0 * double(n) * double(n) * double(n);
      c.result.bytes = 3.0 * double(n * n) * double(dtype_size(v.dt));
      c.result.peak = v.dt == DType::F32 ? ctx.gpu_f32_flops : ctx.gpu_tensor_flops;
      if (!have_gpu) {
        c.skipped = ctx.gpu_skipped;
      } else {
#ifdef FG_WITH_CUDA
        c.prepare = [n, v]() -> std::function<void()> {
          Generator gen(11);
          Tensor a = random_tensor({n, n}, gen, v.dt, Device::cuda(0)),
                 b = random_tensor({n, n}, gen, v.dt, Device::cuda(0));
          auto out = std::make_shared<Tensor>(Tensor::empty({n, n}, v.dt, Device::cuda(0)));
          return [a, b, out, v] {
            if (v.vendor)
              vendor::matmul_into(*out, a, b);
            else
              cuda::matmul_into(
                  *out, a, b, false, false,
                  v.dt == DType::F32 ? cuda::MatmulKernel::MATMUL_TILED_F32 : cuda::MatmulKernel::MATMUL_WMMA);
          };
        };
#endif
      }
      cases->push_back(std::move(c));
    }
  }
  // Convolutions at 64 px with batch 32 (the layer table's shapes, batch scaled), forward and backward.
  const Variant conv_variants[] = {{"implicit_gemm_f32", DType::F32, false},
                                   {"cudnn_f32", DType::F32, true},
                                   {"wmma_bf16", DType::BF16, false},
                                   {"cudnn_bf16", DType::BF16, true}};
  for (Direction d : {Direction::FORWARD, Direction::BACKWARD_INPUT, Direction::BACKWARD_WEIGHT}) {
    for (ConvLayer l : conv_layers()) {
      if (!quick_conv(l)) continue;  // the GPU suite keeps to the quick layers; bench_cuda_conv2d has them all
      if (o.quick && d != Direction::FORWARD) continue;
      l.N = 32;
      const auto [OH, OW] = conv_out(l);
      for (const Variant& v : conv_variants) {
        Case c;
        c.result.name =
            std::string("cuda.conv2d/") + direction_name(d) + "/" + v.name + "/" + l.name + "/" + conv_shape_name(l);
        c.result.group = "cuda.conv2d";
        c.result.device = "cuda";
        c.result.flops = conv_flops(l);
        const double x = double(l.N * l.C * l.H * l.W), w = double(l.O * l.C * l.K * l.K),
                     y = double(l.N * l.O * OH * OW);
        c.result.bytes = double(dtype_size(v.dt)) * (x + w + y);
        c.result.peak = v.dt == DType::F32 ? ctx.gpu_f32_flops : ctx.gpu_tensor_flops;
        if (!have_gpu) {
          c.skipped = ctx.gpu_skipped;
        } else if (v.vendor && !have_cudnn) {
          c.skipped = "this build does not link cuDNN";
        } else {
#ifdef FG_WITH_CUDA
          c.prepare = [l, d, v, OH = OH, OW = OW]() -> std::function<void()> {
            Generator gen(7);
            const kernels::Conv2dGeometry g{l.stride, l.stride, l.pad, l.pad, l.dilation, l.dilation};
            const Device dev = Device::cuda(0);
            Tensor x = random_tensor({l.N, l.C, l.H, l.W}, gen, v.dt, dev);
            Tensor w = random_tensor({l.O, l.C, l.K, l.K}, gen, v.dt, dev);
            Tensor b = random_tensor({l.O}, gen, v.dt, dev), dy = random_tensor({l.N, l.O, OH, OW}, gen, v.dt, dev);
            auto out = std::make_shared<Tensor>(Tensor::empty(d == Direction::FORWARD          ? Shape{l.N, l.O, OH, OW}
                                                              : d == Direction::BACKWARD_INPUT ? x.shape()
                                                                                               : w.shape(),
                                                              v.dt, dev));
            const auto kernel =
                v.dt == DType::F32 ? cuda::Conv2dKernel::CONV_IMPLICIT_GEMM_F32 : cuda::Conv2dKernel::CONV_WMMA;
            return [=] {
              if (d == Direction::FORWARD) {
                if (v.vendor)
                  vendor::conv2d_forward_into(*out, x, w, b, g);
                else
                  cuda::conv2d_forward_into(*out, x, w, b, g, kernel);
              } else if (d == Direction::BACKWARD_INPUT) {
                if (v.vendor)
                  vendor::conv2d_backward_input_into(*out, dy, w, g);
                else
                  cuda::conv2d_backward_input_into(*out, dy, w, g, kernel);
              } else {
                if (v.vendor)
                  vendor::conv2d_backward_weight_into(*out, dy, x, g);
                else
                  cuda::conv2d_backward_weight_into(*out, dy, x, g, kernel);
              }
            };
          };
#endif
        }
        cases->push_back(std::move(c));
      }
    }
  }
}

}  // namespace

std::vector<SuiteResult> run_suite(const SuiteOptions& o, SuiteContext* ctx,
                                   const std::function<void(const SuiteResult&)>& on_result) {
  ctx->threads = omp_get_max_threads();
  ctx->fma_isa = kFmaIsa;
  ctx->gemm_isa = cpu::gemm_isa_name(cpu::gemm_isa());
  ctx->cpu_peak_1 = measure_fma_peak(1);
  ctx->cpu_peak_all = ctx->threads > 1 ? measure_fma_peak(ctx->threads) : ctx->cpu_peak_1;
#ifdef FG_WITH_CUDA
  ctx->cuda_build = true;
  if (cuda::device_count() == 0) {
    ctx->gpu_skipped = "no CUDA device present";
  } else {
    const GpuPeaks g = gpu_peaks(0);
    ctx->gpu = g.name;
    ctx->gpu_f32_flops = g.f32_flops;
    ctx->gpu_tensor_flops = g.tensor_flops;
    ctx->gpu_bytes = g.bytes;
  }
#else
  ctx->gpu_skipped = "this build has no CUDA (configure with nvcc present and FG_WITH_CUDA=ON)";
#endif

  std::vector<Case> cases;
  // The FMA chains the peaks come from, timed as a case like the others, so the table shows what the
  // percentages are against (and how steady the clock is).
  std::vector<int> peak_threads{1};
  if (ctx->threads > 1) peak_threads.push_back(ctx->threads);
  for (int t : peak_threads) {
    constexpr long kRounds = 1 << 22;
    Case c;
    c.result.name = "cpu.peak/fma_" + ctx->fma_isa + "/threads" + std::to_string(t);
    c.result.group = "cpu.peak";
    c.result.device = "cpu";
    c.result.threads = t;
    c.result.flops = double(kRounds) * kFlopsPerRound * t;
    c.result.peak = t == 1 ? ctx->cpu_peak_1 : ctx->cpu_peak_all;
    c.prepare = [t]() -> std::function<void()> { return [t] { time_fma_chains(t, kRounds); }; };
    cases.push_back(std::move(c));
  }
  add_cpu_cases(o, *ctx, &cases);
  add_cuda_cases(o, *ctx, &cases);

  const cpu::GemmBackend saved_backend = cpu::gemm_backend();
  const cpu::GemmIsa saved_isa = cpu::gemm_isa();
  const int saved_threads = omp_get_max_threads();
  std::vector<SuiteResult> results;
  for (Case& c : cases) {
    if (!o.filter.empty() && c.result.name.find(o.filter) == std::string::npos) continue;
    SuiteResult r = c.result;
    if (!c.skipped.empty()) {
      r.skipped = c.skipped;
    } else if (c.prepare) {
      const std::function<void()> op = c.prepare();
      if (r.device == "cpu") {
        time_cpu(op, o.min_time, &r);
      } else {
#ifdef FG_WITH_CUDA
        time_cuda(op, o.min_time, &r);
#endif
      }
      cpu::set_gemm_backend(saved_backend);
      cpu::set_gemm_isa(saved_isa);
      omp_set_num_threads(saved_threads);
    }
    results.push_back(r);
    if (on_result) on_result(r);
  }
  return results;
}

std::string suite_json(const SuiteOptions& o, const SuiteContext& ctx, const std::vector<SuiteResult>& results) {
  using apps::json_number;
  using apps::json_quote;
  const auto or_null = [](double v) { return v > 0 ? json_number(v) : std::string("null"); };
  std::string s = "{\n  \"filmgrad_version\": " + json_quote(apps::kFilmgradVersion);
  s += ",\n  \"quick\": " + std::string(o.quick ? "true" : "false");
  s += ",\n  \"min_time_s\": " + json_number(o.min_time);
  s += ",\n  \"filter\": " + json_quote(o.filter);
  s += ",\n  \"context\": {\"threads\": " + std::to_string(ctx.threads) + ", \"fma_isa\": " + json_quote(ctx.fma_isa) +
       ", \"gemm_isa\": " + json_quote(ctx.gemm_isa) + ", \"cpu_peak_flops_1_thread\": " + json_number(ctx.cpu_peak_1) +
       ", \"cpu_peak_flops_all_threads\": " + json_number(ctx.cpu_peak_all) +
       ", \"cuda_build\": " + (ctx.cuda_build ? "true" : "false") +
       ", \"gpu\": " + (ctx.gpu.empty() ? std::string("null") : json_quote(ctx.gpu)) +
       ", \"gpu_skipped\": " + (ctx.gpu_skipped.empty() ? std::string("null") : json_quote(ctx.gpu_skipped)) +
       ", \"gpu_peak_f32_flops\": " + or_null(ctx.gpu_f32_flops) +
       ", \"gpu_peak_tensor16_flops\": " + or_null(ctx.gpu_tensor_flops) +
       ", \"gpu_peak_bytes_per_s\": " + or_null(ctx.gpu_bytes) + "}";
  s += ",\n  \"results\": [";
  for (size_t i = 0; i < results.size(); ++i) {
    const SuiteResult& r = results[i];
    s += i ? ",\n    {" : "\n    {";
    s += "\"name\": " + json_quote(r.name) + ", \"group\": " + json_quote(r.group) +
         ", \"device\": " + json_quote(r.device) + ", \"threads\": " + std::to_string(r.threads);
    if (!r.skipped.empty()) {
      s += ", \"skipped\": " + json_quote(r.skipped) + "}";
      continue;
    }
    s += ", \"runs\": " + std::to_string(r.runs) + ", \"seconds\": " + json_number(r.seconds) +
         ", \"flops\": " + or_null(r.flops) + ", \"bytes\": " + or_null(r.bytes) +
         ", \"flops_per_s\": " + or_null(r.flops_per_s()) + ", \"bytes_per_s\": " + or_null(r.bytes_per_s()) +
         ", \"peak_flops\": " + or_null(r.peak) + ", \"pct_peak\": " + or_null(r.pct_peak()) +
         ", \"images_per_s\": " + or_null(r.images > 0 && r.seconds > 0 ? r.images / r.seconds : 0) + "}";
  }
  s += results.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return s;
}

}  // namespace fg::bench
