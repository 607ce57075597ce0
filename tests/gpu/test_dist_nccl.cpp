// The NCCL backend (dist/comm_nccl.cpp) on every GPU present, one rank per GPU under mpirun: all-reduce and
// broadcast of CUDA tensors give the exact sums (small integers in f32), and the gradient reducer on CUDA
// parameters gives the average the CPU computes. Skipped, visibly, without a CUDA build, NCCL, a device or mpirun.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

#include "dist/comm.h"
#include "dist/ddp.h"
#include "tests/support/gpu_util.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/context.h"
#endif

namespace fg {
namespace {

class NcclRank : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!dist::detect_launch().launched) GTEST_SKIP() << "runs only as a rank under mpirun (see Nccl.*)";
  }
};

TEST_F(NcclRank, CollectivesAndTheReducerOnCudaTensors) {
  const dist::Launch launch = dist::detect_launch();
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(launch, Device::cuda(launch.local_rank));
  ASSERT_STREQ(comm->backend(), "nccl");
  const Device dev = Device::cuda(launch.local_rank);
  const int n = comm->size(), r = comm->rank();
  // all-reduce: rank r holds r + 1 everywhere; the sum is n (n + 1) / 2, exact in f32.
  Tensor t = Tensor::full({1000}, double(r + 1), DType::F32, dev);
  comm->all_reduce_sum(t, "test all-reduce");
  for (float v : t.to(Device::cpu()).to_vector_f32()) ASSERT_EQ(v, float(n * (n + 1) / 2));
  // broadcast: rank 0's values reach everyone.
  Tensor b = Tensor::full({77}, r == 0 ? 42.0 : -1.0, DType::F32, dev);
  comm->broadcast(b, 0, "test broadcast");
  for (float v : b.to(Device::cpu()).to_vector_f32()) ASSERT_EQ(v, 42.0f);
  // reducer: parameter k's gradient on rank r is (r + 1) * (k + 1); the average is (n + 1) / 2 * (k + 1).
  std::vector<Variable> params;
  for (int k = 0; k < 5; ++k) params.emplace_back(Tensor::zeros({300}, DType::F32, dev), true);
  dist::ReducerOptions ro;
  ro.bucket_bytes = 2048;
  dist::GradientReducer reducer(*comm, params, ro);
  for (int k = 0; k < 5; ++k) {
    Tensor g = Tensor::full({300}, double((r + 1) * (k + 1)), DType::F32, dev);
    params[size_t(k)].set_grad(g);
  }
  // No backward here, so finish() starts every bucket itself.
  reducer.finish();
  for (int k = 0; k < 5; ++k)
    for (float v : params[size_t(k)].grad().to(Device::cpu()).to_vector_f32())
      ASSERT_FLOAT_EQ(v, float((n + 1) / 2.0 * (k + 1)));
}

#ifdef FG_WITH_NCCL
std::string mpirun_command() {
  FILE* p = popen("command -v mpirun", "r");
  std::array<char, 256> buf{};
  const bool found = p && fgets(buf.data(), int(buf.size()), p) != nullptr;
  if (p) pclose(p);
  return found ? "mpirun" : "";
}
#endif

TEST(Nccl, OneRankPerGpu) {
  if (dist::detect_launch().launched) GTEST_SKIP() << "this is a rank; the parent test checks its result";
  GPU_TEST_SKIP_IF_NO_DEVICE();
#ifndef FG_WITH_NCCL
  GTEST_SKIP() << "filmgrad was built without NCCL (pip install nvidia-nccl-cu13, then reconfigure)";
#else
  if (mpirun_command().empty()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  const int gpus = cuda::device_count();
  std::string cmd = "mpirun --oversubscribe -np " + std::to_string(gpus);
  if (geteuid() == 0) cmd += " --allow-run-as-root";
  cmd += " " + std::string(FG_BINARY_DIR) + "/test_dist_nccl --gtest_color=no --gtest_filter=NcclRank.* 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t got;
  while ((got = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), got);
  const int st = pclose(p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  size_t ok = 0;
  for (size_t at = out.find("[       OK ] NcclRank."); at != std::string::npos;
       at = out.find("[       OK ] NcclRank.", at + 1))
    ++ok;
  EXPECT_EQ(ok, size_t(gpus)) << out;
#endif
}

}  // namespace
}  // namespace fg
