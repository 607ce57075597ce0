// The fused optimizer kernels (kernels/cuda/adam.h) through nn::Adam, nn::AdamW and nn::SGD: parameters on CUDA
// follow the CPU optimizer step for step (f32 within NMSE 1e-7 over five steps, f64 far below), with L2 and
// decoupled weight decay and momentum, on sizes 1, odd and past a million elements. The parameters live in guarded
// buffers, so the sentinel bytes around them catch an update written out of bounds. The state stays on the device
// and reloads there.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "nn/optim.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

const Shape kShapes[] = {{1}, {7}, {3, 5, 11}, {1031, 1029}};

struct ParamSet {
  std::vector<Variable> cpu, gpu;
  std::vector<test::GuardedTensor> guards;
};

ParamSet make_params(DType dt) {
  ParamSet s;
  uint64_t seed = 300;
  for (const Shape& shape : kShapes) {
    const Tensor init = test::random_tensor(shape, seed++, DType::F64).to(dt);
    s.cpu.emplace_back(init.clone(), true);
    s.guards.push_back(test::to_device_guarded(init));
    s.gpu.emplace_back(s.guards.back().tensor, true);
  }
  return s;
}

// The same fresh gradients on both sides, different at every step.
void set_grads(const ParamSet& s, uint64_t step) {
  for (size_t i = 0; i < s.cpu.size(); ++i) {
    const Tensor g = test::random_tensor(s.cpu[i].shape(), 1000 * step + i, DType::F64, -2, 2).to(s.cpu[i].dtype());
    s.cpu[i].set_grad(g);
    s.gpu[i].set_grad(g.to(Device::cuda(0)));
  }
}

::testing::AssertionResult same_params(const ParamSet& s, double max_nmse) {
  for (size_t i = 0; i < s.cpu.size(); ++i) {
    ::testing::AssertionResult r = test::nmse_within(s.cpu[i].data(), s.gpu[i].data(), max_nmse);
    if (!r) return r << " (parameter " << i << ")";
    if (!s.gpu[i].data().device().is_cuda()) return ::testing::AssertionFailure() << "parameter left the GPU";
    ::testing::AssertionResult guard = test::sentinels_intact(s.guards[i]);
    if (!guard) return guard << " (parameter " << i << ")";
  }
  return ::testing::AssertionSuccess();
}

void run_steps(nn::Optimizer& cpu, nn::Optimizer& gpu, const ParamSet& s, double max_nmse, const std::string& what) {
  for (uint64_t step = 1; step <= 5; ++step) {
    set_grads(s, step);
    cpu.step();
    gpu.step();
    EXPECT_TRUE(same_params(s, max_nmse)) << what << " after step " << step;
  }
  // The state (exp_avg, exp_avg_sq, momentum_buffer) is on the device and agrees too.
  const std::map<std::string, Tensor> sc = cpu.state_dict(), sg = gpu.state_dict();
  ASSERT_EQ(sc.size(), sg.size()) << what;
  for (const auto& [name, t] : sc) {
    ASSERT_TRUE(sg.count(name)) << what << " " << name;
    if (name.find("step") != std::string::npos) {
      EXPECT_EQ(sg.at(name).item(), t.item()) << what << " " << name;
      continue;
    }
    EXPECT_TRUE(sg.at(name).device().is_cuda()) << what << " " << name;
    EXPECT_TRUE(test::nmse_within(t, sg.at(name), max_nmse)) << what << " " << name;
  }
}

double bound(DType dt) { return dt == DType::F64 ? 1e-24 : 1e-7; }

TEST(CudaOptim, AdamAndAdamWFollowTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : {DType::F32, DType::F64}) {
    for (double wd : {0.0, 0.05}) {
      nn::AdamOptions o;
      o.lr = 1e-2;
      o.weight_decay = wd;
      {
        ParamSet s = make_params(dt);
        nn::Adam cpu(s.cpu, o), gpu(s.gpu, o);
        run_steps(cpu, gpu, s, bound(dt), std::string("Adam ") + dtype_name(dt) + " wd " + std::to_string(wd));
      }
      {
        ParamSet s = make_params(dt);
        nn::AdamWOptions ow;
        ow.lr = 1e-2;
        ow.weight_decay = wd;
        nn::AdamW cpu(s.cpu, ow), gpu(s.gpu, ow);
        run_steps(cpu, gpu, s, bound(dt), std::string("AdamW ") + dtype_name(dt) + " wd " + std::to_string(wd));
      }
    }
  }
}

TEST(CudaOptim, SgdFollowsTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : {DType::F32, DType::F64}) {
    for (double momentum : {0.0, 0.9}) {
      for (double wd : {0.0, 0.01}) {
        ParamSet s = make_params(dt);
        nn::SGD cpu(s.cpu, {0.1, momentum, wd}), gpu(s.gpu, {0.1, momentum, wd});
        run_steps(cpu, gpu, s, bound(dt),
                  std::string("SGD ") + dtype_name(dt) + " momentum " + std::to_string(momentum) + " wd " +
                      std::to_string(wd));
      }
    }
  }
}

TEST(CudaOptim, StateReloadsOnTheDeviceAndHalfParametersAreRefused) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  ParamSet s = make_params(DType::F32);
  nn::AdamOptions o;
  nn::Adam a(s.gpu, o);
  set_grads(s, 1);
  a.step();
  const std::map<std::string, Tensor> saved = a.state_dict();
  nn::Adam b(s.gpu, o);
  b.load_state_dict(saved);
  for (const auto& [name, t] : b.state_dict()) {
    if (name.find("step") == std::string::npos) {
      EXPECT_TRUE(t.device().is_cuda()) << name;
    }
  }
  set_grads(s, 2);
  b.step();  // runs from the reloaded state
  EXPECT_TRUE(same_params(s, 1.0)) << "(sentinels only)";
  // f16 parameters: the optimizer keeps f32 master weights; a half parameter is a clear error.
  Variable h(Tensor::zeros({3}, DType::F16, Device::cuda(0)), true);
  h.set_grad(Tensor::zeros({3}, DType::F16, Device::cuda(0)));
  nn::Adam c({h}, o);
  EXPECT_NE(test::error_of([&] { c.step(); }).find("master weights"), std::string::npos);
  // A gradient on another device than its parameter.
  Variable p(Tensor::zeros({3}, DType::F32, Device::cuda(0)), true);
  p.set_grad(Tensor::zeros({3}, DType::F32));
  nn::SGD d({p}, {0.1, 0.0, 0.0});
  EXPECT_NE(test::error_of([&] { d.step(); }).find("gradient on cpu"), std::string::npos);
}

}  // namespace
}  // namespace fg
