// CUDA tensors: host -> device -> host copies are exact, device-to-device copies, and a clear error for an
// impossible allocation. Skipped, with the reason printed, when filmgrad was built without CUDA or no GPU is present.
#include <gtest/gtest.h>

#include "tensor/tensor.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/cuda_runtime.h"
#endif

namespace fg {
namespace {

void skip_without_gpu() {
#ifdef FG_WITH_CUDA
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device present: GPU tests skipped";
#else
  GTEST_SKIP() << "filmgrad was built without CUDA (nvcc not found): GPU tests skipped";
#endif
}

TEST(CudaTensor, RoundTripCopiesAreExact) {
  skip_without_gpu();
  if (::testing::Test::IsSkipped()) return;
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32, DType::U8}) {
    const Tensor h = test::random_tensor({3, 5, 7}, 11, DType::F64, -100, 100).to(dt);
    const Tensor d = h.to(Device::cuda(0));
    EXPECT_TRUE(d.device().is_cuda());
    const Tensor d2 = d.clone();  // device to device
    EXPECT_EQ(d2.to(Device::cpu()).to_vector(), h.to_vector()) << dtype_name(dt);
  }
  // a non-contiguous host view is staged through a contiguous copy
  const Tensor v = test::random_tensor({4, 6}, 12).transpose(0, 1);
  EXPECT_EQ(v.to(Device::cuda(0)).to(Device::cpu()).to_vector(), v.to_vector());
}

TEST(CudaTensor, ImpossibleAllocationIsAClearError) {
  skip_without_gpu();
  if (::testing::Test::IsSkipped()) return;
  try {
    Tensor huge = Tensor::empty({int64_t(1) << 40}, DType::F32, Device::cuda(0));  // 4 TiB
    // A simulator or a CPU-backed device may grant it (lazily backed memory): then there is nothing to check.
    GTEST_SKIP() << "cuda:0 granted a 4 TiB allocation, so out of memory cannot be provoked on it: a simulated or "
                 << "CPU-backed device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("smaller batch"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fg
