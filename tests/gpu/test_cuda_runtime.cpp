// The CUDA runtime layer of tensor/: the caching allocator (statistics move, blocks are reused, peaks, the printout,
// emptying the cache, the out-of-memory message), pinned host tensors, strided copies and casts between every pair
// of dtypes (bitwise the CPU's conversions), fills, the Philox fills (bitwise the CPU's stream), device context
// (streams, events, properties) and the CUDA_CHECK message. Skipped with the reason when there is no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tensor/philox.h"
#include "tensor/tensor.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"
#ifdef FG_WITH_CUDA
#include "tensor/cuda/caching_allocator.h"
#include "tensor/cuda/context.h"
#include "tensor/cuda/cuda_check.h"
#endif

namespace fg {
namespace {

#ifdef FG_WITH_CUDA

const DType kAllTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8};
const DType kFloatTypes[] = {DType::F32, DType::F64, DType::F16, DType::BF16};

// The raw bytes of a tensor's elements in row-major order (after a contiguous CPU copy): bitwise comparisons.
std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<uint8_t> out(c.nbytes());
  if (!out.empty()) std::memcpy(out.data(), c.raw_data(), out.size());
  return out;
}

#define EXPECT_SAME_BITS(a, b, what) EXPECT_TRUE(bytes_of(a) == bytes_of(b)) << what

bool integral(DType dt) { return dt == DType::I64 || dt == DType::I32 || dt == DType::U8; }

// Values in `from` that exercise every rule of converting them to `to`: exact values, halfway cases, f16
// subnormals and overflow, rounding to integers, NaN and infinities. Integer targets get only values whose
// rounded result fits (out-of-range conversions are implementation-defined), and u8 no negative ones.
Tensor conversion_values(DType from, DType to) {
  std::vector<double> v;
  if (integral(to)) {
    v = {0.0, 1.0, 2.5, 3.5, 0.49999997, 100.4, 127.0, 200.6, 254.5, 7.0, 0.5, 1.5};
    if (to != DType::U8) v.insert(v.end(), {-2.5, -100.6, -0.0, 65504.0, -0.5, -1.5, 30000.0, -129.0});
  } else {
    v = {0.0, -0.0, 1.0, -2.5, 2.5, 0.49999997, 3.5, 100.4, -100.6, 127.0, 65504.0, 65520.0, 1e-5, 6e-8,
         -3e-6, 0.1, 1.0 / 3.0, 1e30, -1e-30, 255.0, 1.00048828125, 1.0009765625, 1e300, 5e-324};
    if (!integral(from)) {
      v.push_back(std::numeric_limits<double>::quiet_NaN());
      v.push_back(-std::numeric_limits<double>::quiet_NaN());
      v.push_back(std::numeric_limits<double>::infinity());
      v.push_back(-std::numeric_limits<double>::infinity());
    }
  }
  while (v.size() % 4) v.push_back(0.25);
  return Tensor::from_vector(v, {int64_t(v.size()) / 4, 4}, DType::F64).to(from);
}


// ---- the caching allocator ----

TEST(CudaAllocator, SizeClassesRoundUpByAtMostAnEighth) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  EXPECT_EQ(cuda::round_allocation_size(0), 512u);
  EXPECT_EQ(cuda::round_allocation_size(1), 512u);
  EXPECT_EQ(cuda::round_allocation_size(512), 512u);
  EXPECT_EQ(cuda::round_allocation_size(513), 1024u);
  for (size_t b : {size_t(1000), size_t(4097), size_t(1) << 20, (size_t(1) << 20) + 1, size_t(123456789)}) {
    const size_t r = cuda::round_allocation_size(b);
    EXPECT_GE(r, b);
    EXPECT_LE(double(r), double(b) * 1.125 + 512) << b;
    EXPECT_EQ(r % 512, 0u) << b;
  }
}

TEST(CudaAllocator, StatisticsFollowAllocationsAndBlocksAreReused) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  if (!cuda::caching_enabled()) GTEST_SKIP() << "FG_CUDA_NO_CACHING is set: nothing is cached";
  cuda::synchronize(0);
  const cuda::MemoryStats before = cuda::memory_stats(0);
  const size_t bytes = (size_t(3) << 20) + 4;  // an odd size
  const size_t rounded = cuda::round_allocation_size(bytes);
  {
    Tensor a = Tensor::empty({int64_t(bytes)}, DType::U8, Device::cuda(0));
    const cuda::MemoryStats during = cuda::memory_stats(0);
    EXPECT_EQ(during.allocated_bytes, before.allocated_bytes + rounded);
    EXPECT_EQ(during.requested_bytes, before.requested_bytes + bytes);
    EXPECT_EQ(during.allocations, before.allocations + 1);
    EXPECT_GE(during.peak_allocated_bytes, during.allocated_bytes);
    EXPECT_GE(during.reserved_bytes, during.allocated_bytes);
  }
  const cuda::MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_GE(after.cached_bytes, rounded);  // the freed block is kept
  // The same size class again: served from the cache, no cudaMalloc.
  Tensor b = Tensor::empty({int64_t(bytes) - 2}, DType::U8, Device::cuda(0));  // same size class
  const cuda::MemoryStats again = cuda::memory_stats(0);
  EXPECT_EQ(again.device_mallocs, after.device_mallocs);
  EXPECT_EQ(again.cache_hits, after.cache_hits + 1);
  EXPECT_EQ(again.cached_bytes, after.cached_bytes - rounded);
}

TEST(CudaAllocator, PeakIsKeptUntilReset) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  cuda::reset_peak_memory_stats(0);
  const size_t base = cuda::memory_stats(0).allocated_bytes;
  { Tensor big = Tensor::empty({int64_t(16) << 20}, DType::F32, Device::cuda(0)); }  // 64 MiB, freed at once
  const cuda::MemoryStats s = cuda::memory_stats(0);
  EXPECT_EQ(s.allocated_bytes, base);
  EXPECT_GE(s.peak_allocated_bytes, base + (size_t(64) << 20));
  cuda::reset_peak_memory_stats(0);
  EXPECT_EQ(cuda::memory_stats(0).peak_allocated_bytes, base);
}

TEST(CudaAllocator, EmptyCacheReturnsCachedBlocks) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  { Tensor t = Tensor::empty({1 << 20}, DType::F32, Device::cuda(0)); }
  cuda::empty_cache();
  const cuda::MemoryStats s = cuda::memory_stats(0);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.cached_blocks, 0u);
  EXPECT_EQ(s.reserved_bytes, s.allocated_bytes);
}

TEST(CudaAllocator, PrintoutNamesEveryFigure) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  Tensor t = Tensor::zeros({1000}, DType::F32, Device::cuda(0));
  const std::string text = cuda::print_memory_stats(0);
  for (const char* word : {"cuda:0", "allocated", "peak", "requested", "cached", "reserved", "cache hits",
                           "cudaMalloc", "out-of-memory retries", "pinned"})
    EXPECT_NE(text.find(word), std::string::npos) << word << " missing from:\n" << text;
}

TEST(CudaAllocator, OutOfMemorySaysWhatWasAskedWhatIsFreeAndWhatToDo) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const size_t retries_before = cuda::memory_stats(0).oom_retries;
  { Tensor cached = Tensor::empty({1 << 20}, DType::F32, Device::cuda(0)); }  // something in the cache to give back
  std::string msg;
  try {
    Tensor huge = Tensor::empty({int64_t(1) << 40}, DType::F32, Device::cuda(0));  // 4 TiB
  } catch (const Error& e) {
    msg = e.what();
  }
  // A simulator or a CPU-backed device may grant it (lazily backed memory): then there is nothing to check.
  if (msg.empty())
    GTEST_SKIP() << "cuda:0 (" << cuda::properties(0).name << ") granted a 4 TiB allocation, so out of memory "
                 << "cannot be provoked on it: a simulated or CPU-backed device";
  EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
  EXPECT_NE(msg.find("asked for 4194304.0 MiB"), std::string::npos) << msg;  // 4 TiB
  EXPECT_NE(msg.find("free on the device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("smaller batch"), std::string::npos) << msg;
  if (cuda::caching_enabled()) {
    EXPECT_GT(cuda::memory_stats(0).oom_retries, retries_before);
  }
  // The allocator still works afterwards.
  EXPECT_EQ(Tensor::full({3}, 2.0, DType::F32, Device::cuda(0)).to_vector(), (std::vector<double>{2, 2, 2}));
}

TEST(CudaAllocator, ManyLiveTensorsKeepTheirContents) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  std::vector<Tensor> live;
  const auto make = [](int i, double v) { return Tensor::full({int64_t(i * 37 + 1)}, v, DType::F32, Device::cuda(0)); };
  for (int i = 0; i < 64; ++i) live.push_back(make(i, double(i)));
  for (int i = 0; i < 64; i += 2) live[size_t(i)] = Tensor();  // free every other one, then reuse the blocks
  for (int i = 0; i < 64; i += 2) live[size_t(i)] = make(i, -double(i));
  for (int i = 0; i < 64; ++i) {
    const std::vector<double> v = live[size_t(i)].to_vector();
    ASSERT_EQ(v.size(), size_t(i * 37 + 1));
    for (double x : v) ASSERT_EQ(x, i % 2 ? double(i) : -double(i)) << i;
  }
}

// ---- pinned host memory ----

TEST(CudaPinned, PinnedTensorsArePageLockedAndRoundTrip) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  Tensor p = Tensor::empty_pinned({5, 7}, DType::F32);
  EXPECT_TRUE(p.is_pinned());
  EXPECT_TRUE(p.device().is_cpu());
  p.copy_(test::random_tensor({5, 7}, 3));
  const Tensor d = p.to(Device::cuda(0));
  Tensor back = Tensor::empty_pinned({5, 7}, DType::F32);
  back.copy_(d);
  EXPECT_EQ(back.to_vector(), p.to_vector());
  EXPECT_FALSE(Tensor::empty({2}, DType::F32).is_pinned());
  const size_t pinned_both = cuda::memory_stats(0).pinned_bytes;
  EXPECT_GE(pinned_both, size_t(2 * 5 * 7 * 4));
  p = Tensor();
  EXPECT_EQ(cuda::memory_stats(0).pinned_bytes, pinned_both - size_t(5 * 7 * 4));
}

// ---- copies, casts, fills ----

TEST(CudaCopy, EveryPairOfDtypesConvertsBitwiseLikeTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType from : kAllTypes) {
    for (DType to : kAllTypes) {
      // The source is made on the CPU and uploaded as it is; only the from -> to conversion runs on the GPU.
      const Tensor src = conversion_values(from, to);
      EXPECT_SAME_BITS(src.to(Device::cuda(0)).to(to), src.to(to), dtype_name(from) << " -> " << dtype_name(to));
      // The same through a strided (transposed) source.
      EXPECT_SAME_BITS(src.to(Device::cuda(0)).transpose(0, 1).to(to), src.transpose(0, 1).to(to),
                       dtype_name(from) << " -> " << dtype_name(to) << " transposed");
    }
  }
}

TEST(CudaCopy, StridedViewsCopyBothWays) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const Tensor host = test::random_tensor({3, 5, 7, 2}, 21);
  const Tensor dev = host.to(Device::cuda(0));
  // Non-contiguous sources on the device: permute, slice with a step, select, expand.
  const auto views = [](const Tensor& t) {
    return std::vector<Tensor>{t.permute({3, 1, 0, 2}), t.slice(1, 1, 5, 2), t.select(2, 4), t.transpose(0, 3),
                               t.slice(0, 1, 2).expand({4, 5, 7, 2}), t.narrow(3, 1, 1).squeeze(3)};
  };
  const std::vector<Tensor> hv = views(host), dv = views(dev);
  for (size_t i = 0; i < hv.size(); ++i) {
    EXPECT_EQ(dv[i].contiguous().to_vector(), hv[i].to_vector()) << "view " << i;
    EXPECT_EQ(dv[i].clone().to_vector(), hv[i].to_vector()) << "view " << i;
    EXPECT_EQ(dv[i].to(DType::F64).to_vector(), hv[i].to(DType::F64).to_vector()) << "view " << i;
    EXPECT_SAME_BITS(dv[i].to(DType::BF16), hv[i].to(DType::BF16), "view " << i);
  }
  // Into strided device destinations, from host and from device, with a dtype change.
  Tensor dst = Tensor::zeros({7, 5, 3}, DType::F16, Device::cuda(0));
  Tensor dst_cpu = Tensor::zeros({7, 5, 3}, DType::F16);
  const Tensor src = test::random_tensor({3, 5, 7}, 22);
  dst.permute({2, 1, 0}).copy_(src);                       // host f32 -> strided device f16
  dst_cpu.permute({2, 1, 0}).copy_(src);
  EXPECT_SAME_BITS(dst, dst_cpu, "host to strided device");
  dst.slice(0, 0, 7, 3).copy_(src.to(Device::cuda(0)).permute({2, 1, 0}).slice(0, 0, 7, 3));  // device -> device
  dst_cpu.slice(0, 0, 7, 3).copy_(src.permute({2, 1, 0}).slice(0, 0, 7, 3));
  EXPECT_SAME_BITS(dst, dst_cpu, "strided device to strided device");
  // Device -> strided host.
  Tensor host_dst = Tensor::zeros({5, 3}, DType::F64);
  host_dst.transpose(0, 1).copy_(dev.select(3, 1).select(2, 6));
  EXPECT_EQ(host_dst.to_vector(), host.select(3, 1).select(2, 6).transpose(0, 1).to(DType::F64).to_vector());
  // Broadcast source.
  Tensor b = Tensor::zeros({4, 3}, DType::F32, Device::cuda(0));
  b.copy_(Tensor::from_vector({1, 2, 3}, {3}).to(Device::cuda(0)));
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
}

// tensor/overlap.h, the rule of every in-place op on both devices: a copy from a view sharing the destination's
// memory in another layout is refused (it used to be staged through a copy on CUDA while the CPU's strided loop
// read elements it had already written), and clone() is the way to do it.
TEST(CudaCopy, OverlappingCopyIsRefusedAsOnTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  Tensor dev = Tensor::arange(10, DType::F32).to(Device::cuda(0));
  const std::string msg = test::error_of([&] { dev.slice(0, 1, 10).copy_(dev.slice(0, 0, 9)); });
  EXPECT_NE(msg.find("clone()"), std::string::npos) << msg;
  EXPECT_EQ(dev.to_vector(), Tensor::arange(10, DType::F32).to_vector());  // refused before anything was written
  dev.slice(0, 1, 10).copy_(dev.slice(0, 0, 9).clone());
  EXPECT_EQ(dev.to_vector(), (std::vector<double>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8}));
  Tensor m = Tensor::arange(9, DType::F32).view({3, 3}).to(Device::cuda(0));
  EXPECT_THROW(m.copy_(m.transpose(0, 1)), Error);
  m.copy_(m.transpose(0, 1).clone());
  EXPECT_EQ(m.to_vector(), (std::vector<double>{0, 3, 6, 1, 4, 7, 2, 5, 8}));
  m.select(1, 0).copy_(m.select(1, 2));  // disjoint columns of one storage: allowed
  EXPECT_EQ(m.to_vector(), (std::vector<double>{6, 3, 6, 7, 4, 7, 8, 5, 8}));
  EXPECT_THROW(m.select(0, 0).unsqueeze(0).expand({3, 3}).fill_(1.0), Error);
}

TEST(CudaCopy, CopiesIntoGuardedBuffersStayInBounds) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : kAllTypes) {
    const Tensor host = conversion_values(dt, dt);  // (rows, 4)
    const Shape s = host.shape();
    test::GuardedTensor g = test::to_device_guarded(host, 100);
    EXPECT_TRUE(test::sentinels_intact(g)) << dtype_name(dt);
    EXPECT_SAME_BITS(g.tensor, host, dtype_name(dt));
    g.tensor.transpose(0, 1).copy_(Tensor::ones({s[1], s[0]}, DType::F64).to(Device::cuda(0)));  // strided, cast
    EXPECT_TRUE(test::sentinels_intact(g)) << dtype_name(dt);
    g.tensor.slice(1, 1, 4, 2).fill_(7.0);
    EXPECT_TRUE(test::sentinels_intact(g)) << dtype_name(dt);
    Tensor expect = Tensor::ones(s, dt);
    expect.slice(1, 1, 4, 2).fill_(7.0);
    EXPECT_SAME_BITS(g.tensor, expect, dtype_name(dt));
  }
}

TEST(CudaFill, FillsEveryDtypeAndLayoutLikeTheCpu) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : kAllTypes) {
    for (double v : {0.0, -1.5, 3.25, 1e-6, 70000.0, 200.0}) {
      if (integral(dt) && (v < 0 || v > 255)) continue;
      Tensor d = Tensor::zeros({6, 5}, dt, Device::cuda(0));
      Tensor c = Tensor::zeros({6, 5}, dt);
      d.slice(0, 1, 6, 2).fill_(v);
      c.slice(0, 1, 6, 2).fill_(v);
      EXPECT_SAME_BITS(d, c, dtype_name(dt) << " " << v);
      EXPECT_SAME_BITS(Tensor::full({1}, v, dt, Device::cuda(0)), Tensor::full({1}, v, dt), dtype_name(dt));
    }
  }
  EXPECT_EQ(Tensor::zeros({0, 3}, DType::F32, Device::cuda(0)).numel(), 0);
  EXPECT_EQ(Tensor::scalar(2.5).to(Device::cuda(0)).item(), 2.5);
}

// ---- Philox on the GPU ----

// Fills `t_cpu` and `t_gpu` (same shape and layout, CPU and CUDA) from generators with the same state.
void fill_both(int kind, Tensor t_cpu, Tensor t_gpu, uint64_t seed, uint64_t offset) {
  Generator gc(seed, offset), gg(seed, offset);
  switch (kind) {
    case 0: uniform_(t_cpu, gc, -2.0, 3.0); uniform_(t_gpu, gg, -2.0, 3.0); break;
    case 1: normal_(t_cpu, gc, 0.5, 2.0); normal_(t_gpu, gg, 0.5, 2.0); break;
    default: bernoulli_(t_cpu, gc, 0.3); bernoulli_(t_gpu, gg, 0.3); break;
  }
  EXPECT_EQ(gc.offset(), gg.offset());
}

TEST(CudaPhilox, UniformAndBernoulliAreBitwiseTheCpuStream) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  for (DType dt : kFloatTypes) {
    for (int kind : {0, 2}) {
      for (int64_t n : {int64_t(1), int64_t(3), int64_t(257), int64_t(100003)}) {
        Tensor c = Tensor::empty({n}, dt), g = Tensor::empty({n}, dt, Device::cuda(0));
        fill_both(kind, c, g, 0x123456789abcdefULL, 77);
        EXPECT_SAME_BITS(g, c, dtype_name(dt) << " kind " << kind << " n " << n);
      }
      // A strided destination numbers its elements in logical row-major order, as on the CPU.
      Tensor c = Tensor::zeros({6, 9}, dt), g = Tensor::zeros({6, 9}, dt, Device::cuda(0));
      // An offset just below 2^32 blocks: the counter's high word changes inside the draw.
      fill_both(kind, c.transpose(0, 1).slice(0, 1, 9, 2), g.transpose(0, 1).slice(0, 1, 9, 2), 5,
                (uint64_t(1) << 32) - 2);
      EXPECT_SAME_BITS(g, c, dtype_name(dt) << " strided kind " << kind);
    }
  }
}

TEST(CudaPhilox, NormalMatchesTheCpuStream) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  // Box-Muller in f64 through the GPU's log, cos and sin (within 1-2 ulp of glibc's): f32/f16/bf16 results are
  // expected bitwise equal; a difference may only be one unit in the last place, in a vanishing fraction.
  for (DType dt : kFloatTypes) {
    const int64_t n = 200003;
    Tensor c = Tensor::empty({n}, dt), g = Tensor::empty({n}, dt, Device::cuda(0));
    fill_both(1, c, g, 42, 3);
    const std::vector<double> a = c.to_vector(), b = g.to_vector();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (a[size_t(i)] == b[size_t(i)]) continue;
      ++differ;
      const double tol = dt == DType::F64 ? 1e-14 : dt == DType::F32 ? 2.5e-7 : dt == DType::F16 ? 1e-3 : 8e-3;
      EXPECT_LE(std::abs(a[size_t(i)] - b[size_t(i)]), tol * std::max(1.0, std::abs(a[size_t(i)]))) << i;
    }
    EXPECT_LE(differ, dt == DType::F64 ? n : 2) << dtype_name(dt) << ": " << differ << " of " << n << " differ";
  }
  // A strided destination, and statistics of mean 0.5 and standard deviation 2.
  Tensor c = Tensor::zeros({300, 301}, DType::F32), g = Tensor::zeros({300, 301}, DType::F32, Device::cuda(0));
  fill_both(1, c.transpose(0, 1), g.transpose(0, 1), 9, 0);
  const std::vector<double> a = c.to_vector(), b = g.to_vector();
  double mean = 0, sq = 0;
  int64_t differ = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    differ += a[i] != b[i];
    mean += b[i];
    sq += b[i] * b[i];
  }
  mean /= double(b.size());
  const double sd = std::sqrt(sq / double(b.size()) - mean * mean);
  EXPECT_LE(differ, 2);
  EXPECT_NEAR(mean, 0.5, 0.02);
  EXPECT_NEAR(sd, 2.0, 0.02);
}

// ---- context ----

TEST(CudaContext, StreamsAndEvents) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  EXPECT_GE(cuda::device_count(), 1);
  EXPECT_NE(cuda::stream(0), nullptr);
  EXPECT_EQ(cuda::stream(0), cuda::stream(0));  // one compute stream per device
  cuda::Event start(0), stop(0);
  start.record();
  Tensor t = Tensor::zeros({1 << 20}, DType::F32, Device::cuda(0));
  stop.record();
  stop.synchronize();
  EXPECT_GE(stop.elapsed_ms(start), 0.0f);
  const std::string bad = test::error_of([] { cuda::stream(999); });
  EXPECT_NE(bad.find("cuda:999 does not exist"), std::string::npos) << bad;
  const std::string bad_tensor = test::error_of([] { Tensor::empty({2}, DType::F32, Device::cuda(999)); });
  EXPECT_NE(bad_tensor.find("does not exist"), std::string::npos) << bad_tensor;
}

// What a real GPU reports. A simulated or CPU-backed device (CUDA on OpenCL, a GPU simulator) may report no memory
// clock or bus width, hence no bandwidth, and sizes of its own choosing: the checks of a real device are skipped
// there, with what it reported.
TEST(CudaContext, PropertiesOfARealDevice) {
  GPU_TEST_SKIP_IF_NO_DEVICE();
  const cuda::DeviceProperties& p = cuda::properties(0);
  EXPECT_GT(p.sm_count, 0);
  EXPECT_GT(std::strlen(p.name), 0u);
  if (p.memory_bandwidth_gbs <= 0.0)
    GTEST_SKIP() << "cuda:0 (" << p.name << ", compute capability " << p.major << "." << p.minor
                 << ") reports no memory clock or bus width (bandwidth " << p.memory_bandwidth_gbs
                 << " GB/s): a simulated or CPU-backed device; the checks of a real GPU's properties are skipped";
  EXPECT_GE(p.major, 7);
  EXPECT_GT(p.total_memory, size_t(1) << 30);
  EXPECT_GT(p.memory_bandwidth_gbs, 100.0);
}

#endif  // FG_WITH_CUDA

// Runs in every build: a CUDA error names the failing statement, the file and the line.
TEST(CudaCheck, ErrorNamesStatementFileAndLine) {
#ifdef FG_WITH_CUDA
  const std::string msg = test::error_of([] { CUDA_CHECK(cudaSetDevice(12345)); });
  EXPECT_NE(msg.find("cudaSetDevice(12345)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("test_cuda_runtime.cpp:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CUDA error"), std::string::npos) << msg;
#else
  GTEST_SKIP() << test::gpu_skip_reason();
#endif
}

TEST(CudaTensorWithoutGpu, DeviceTensorsFailWithAClearMessage) {
  if (test::gpu_available()) GTEST_SKIP() << "a GPU is present: this checks the message without one";
  const std::string msg = test::error_of([] { Tensor::empty({2}, DType::F32, Device::cuda(0)); });
  EXPECT_FALSE(msg.empty());
  // A pinned tensor falls back to ordinary memory.
  const Tensor p = Tensor::empty_pinned({3}, DType::F32);
  EXPECT_FALSE(p.is_pinned());
  EXPECT_EQ(p.numel(), 3);
}

}  // namespace
}  // namespace fg
