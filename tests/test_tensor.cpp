// Tensor: construction, views without copies, contiguous(), copies with dtype conversion, f16/bf16 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tensor/host_cache.h"
#include "tensor/overlap.h"
#include "tensor/tensor.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

Tensor iota(const Shape& s, DType dt = DType::F32) { return Tensor::arange(shape_numel(s), dt).view(s); }

TEST(Tensor, EmptyHasContiguousStridesAndAlignedStorage) {
  Tensor t = Tensor::empty({2, 3, 4});
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kCpuAlignment, 0u);
  EXPECT_EQ(t.str(), "f32(2, 3, 4) cpu");
}

TEST(Tensor, ScalarAndZeroSized) {
  Tensor s = Tensor::scalar(2.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_DOUBLE_EQ(s.item(), 2.5);
  Tensor z = Tensor::zeros({0, 3});
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.reshape({3, 0}).shape(), (Shape{3, 0}));
}

// An empty tensor whose strides count its zero dimension as 1 is not "contiguous" by is_contiguous(), so
// contiguous() clones it; the copy must not walk its outer dimension (8e9 slices of nothing: a fuzz timeout).
TEST(Tensor, CopyingAnEmptyTensorWithAHugeDimensionIsImmediate) {
  const Tensor t = Tensor::empty({8000000009, 0, 20}, DType::F16);
  const Tensor c = t.contiguous();
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_EQ(c.numel(), 0);
  Tensor d = Tensor::empty({8000000009, 0, 20});
  d.copy_(t);  // across dtypes too
  EXPECT_THROW(d.copy_(Tensor::empty({3, 0, 20})), Error);  // shapes are still checked
}

TEST(Tensor, SliceSelectTransposeShareStorage) {
  Tensor t = iota({3, 4});
  Tensor s = t.slice(1, 1, 4, 2);  // columns 1 and 3
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(s.at({2, 1}), 11.0);
  EXPECT_FALSE(s.is_contiguous());
  Tensor tr = t.transpose(0, 1);
  EXPECT_EQ(tr.at({3, 2}), 11.0);
  EXPECT_EQ(t.select(0, -1).at({0}), 8.0);
  EXPECT_EQ(t.slice(0, -2, 100).shape(), (Shape{2, 4}));  // python-style clamping
  tr.slice(0, 0, 1).fill_(-1);                            // writes through the view
  EXPECT_EQ(t.at({2, 0}), -1.0);
}

TEST(Tensor, ContiguousCopiesInLogicalOrder) {
  Tensor t = iota({2, 3, 4}).permute({2, 0, 1});
  EXPECT_FALSE(t.is_contiguous());
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.shares_storage_with(t));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(c.at({i, j, k}), double(j * 12 + k * 4 + i));
}

TEST(Tensor, ViewOfNonContiguousWhenStridesAllow) {
  Tensor t = iota({4, 6}).slice(0, 0, 4, 2);  // rows 0 and 2: (2, 6) with strides (12, 1)
  Tensor v = t.view({2, 2, 3});               // splits the contiguous last dim: a view
  EXPECT_TRUE(v.shares_storage_with(t));
  EXPECT_EQ(v.at({1, 1, 2}), 17.0);
  EXPECT_THROW(t.view({12}), Error);  // would need a copy
  Tensor r = t.reshape({12});          // reshape copies instead
  EXPECT_FALSE(r.shares_storage_with(t));
  EXPECT_EQ(r.at({7}), 13.0);
  EXPECT_EQ(iota({2, 3}).view({-1}).shape(), (Shape{6}));
  EXPECT_THROW(iota({2, 3}).view({4, -1}), Error);
  EXPECT_THROW(iota({2, 3}).view({-1, -1}), Error);
  // size-1 dims with arbitrary strides do not break a view
  Tensor u = iota({3, 1, 4}).transpose(0, 1);  // (1, 3, 4)
  EXPECT_EQ(u.view({3, 2, 2}).at({2, 1, 1}), 11.0);
}

TEST(Tensor, ExpandUsesZeroStrides) {
  Tensor t = iota({3, 1});
  Tensor e = t.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.at({1, 2, 3}), 2.0);
  EXPECT_THROW(t.expand({3, 2, 2}), Error);
  EXPECT_EQ(t.expand({-1, 5}).shape(), (Shape{3, 5}));
}

TEST(Tensor, SqueezeUnsqueezeFlatten) {
  Tensor t = iota({2, 1, 3});
  EXPECT_EQ(t.squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_EQ(t.squeeze(0).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{2, 1, 3, 1}));
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 2, 1, 3}));
  EXPECT_EQ(iota({2, 3, 4, 5}).flatten(1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_THROW(t.squeeze(3), Error);
}

TEST(Tensor, CopyBroadcastsAndConverts) {
  Tensor dst = Tensor::zeros({2, 3}, DType::F64);
  dst.copy_(Tensor::from_vector({1, 2, 3}, {3}, DType::F32));
  EXPECT_EQ(dst.at({1, 2}), 3.0);
  Tensor i = Tensor::from_vector({1.4, 2.6, -0.5}, {3}, DType::F64).to(DType::I32);
  EXPECT_EQ(i.to_vector(), (std::vector<double>{1, 3, -1}));  // llround: half away from zero
  Tensor u = Tensor::full({2}, 255.0, DType::U8);
  EXPECT_EQ(u.to(DType::F32).at({1}), 255.0);
}

// tensor/overlap.h: how two views of one storage share memory, decided element by element.
TEST(Overlap, ClassifiesViewsOfOneStorage) {
  const Tensor x = iota({4, 6});
  EXPECT_EQ(memory_overlap(x, x), MemOverlap::FULL);
  EXPECT_EQ(memory_overlap(x, x.view({4, 6})), MemOverlap::FULL);
  EXPECT_EQ(memory_overlap(x, iota({4, 6})), MemOverlap::NONE);                           // another storage
  EXPECT_EQ(memory_overlap(x.slice(0, 0, 2), x.slice(0, 2, 4)), MemOverlap::NONE);        // disjoint ranges
  EXPECT_EQ(memory_overlap(x.select(1, 0), x.select(1, 1)), MemOverlap::NONE);            // interleaved columns
  EXPECT_EQ(memory_overlap(x.slice(1, 0, 6, 2), x.slice(1, 1, 6, 2)), MemOverlap::NONE);  // even and odd columns
  EXPECT_EQ(memory_overlap(x.slice(1, 1, 6), x.slice(1, 0, 5)), MemOverlap::PARTIAL);     // shifted by one
  EXPECT_EQ(memory_overlap(x, x.slice(0, 0, 1)), MemOverlap::PARTIAL);                    // a broadcast row of itself
  const Tensor sq = iota({6, 6});
  EXPECT_EQ(memory_overlap(sq, sq.transpose(0, 1)), MemOverlap::PARTIAL);
  // The same bytes as another dtype of the same size, element for element: elementwise-safe.
  const Tensor as_i32(sq.storage(), sq.shape(), sq.strides(), 0, DType::I32);
  EXPECT_EQ(memory_overlap(sq, as_i32), MemOverlap::FULL);
  // A reading of the bytes as u8: the first 4 elements of the u8 view sit inside element 0 of the f32 view.
  const Tensor bytes(sq.storage(), {8}, {1}, 0, DType::U8);
  EXPECT_TRUE(shares_memory(sq, bytes));
  EXPECT_FALSE(shares_memory(x.select(1, 0), x.select(1, 1)));
  EXPECT_TRUE(shares_memory(x.select(1, 2), x.select(0, 3)));  // they meet at (3, 2)
  EXPECT_FALSE(shares_memory(x.select(1, 2), x.select(0, 3).slice(0, 3, 6)));
}

TEST(Overlap, InternalOverlapIsAStrideZeroOrAHandBuiltLayout) {
  const Tensor x = iota({3, 4});
  EXPECT_FALSE(has_internal_overlap(x));
  EXPECT_FALSE(has_internal_overlap(x.transpose(0, 1)));
  EXPECT_FALSE(has_internal_overlap(x.slice(1, 0, 4, 3)));
  EXPECT_TRUE(has_internal_overlap(x.select(0, 0).expand({5, 4})));
  EXPECT_FALSE(has_internal_overlap(x.select(0, 0).unsqueeze(0).expand({1, 4})));  // one row: nothing repeats
  // Overlapping windows (2, 3) with strides (1, 1): elements (0, 1) and (1, 0) share an address.
  EXPECT_TRUE(has_internal_overlap(Tensor(x.storage(), {2, 3}, {1, 1}, 0, DType::F32)));
  // Strides (3, 2) over sizes (2, 2): offsets 0, 2, 3, 5, all distinct although the strides do not nest.
  EXPECT_FALSE(has_internal_overlap(Tensor(x.storage(), {2, 2}, {3, 2}, 0, DType::F32)));
}

// The one rule of every in-place op (tensor/overlap.h) applied to copy_ and fill_. Before it, the CPU copy_ of a
// shifted slice of itself silently did what a memmove does while the CUDA copy staged the source, and a strided
// self-copy (a transpose onto itself) read elements it had already written.
TEST(Overlap, CopyRefusesPartialOverlapAndSaysToClone) {
  Tensor x = Tensor::arange(10);
  const std::string shift = test::error_of([&] { x.slice(0, 1, 10).copy_(x.slice(0, 0, 9)); });
  EXPECT_NE(shift.find("copy_"), std::string::npos) << shift;
  EXPECT_NE(shift.find("clone()"), std::string::npos) << shift;
  EXPECT_EQ(x.to_vector(), Tensor::arange(10).to_vector());  // refused before anything was written
  x.slice(0, 1, 10).copy_(x.slice(0, 0, 9).clone());         // what the message says to do
  EXPECT_EQ(x.to_vector(), (std::vector<double>{0, 0, 1, 2, 3, 4, 5, 6, 7, 8}));
  Tensor m = iota({3, 3});
  EXPECT_THROW(m.copy_(m.transpose(0, 1)), Error);
  EXPECT_THROW(m.copy_(m.select(0, 1)), Error);  // a broadcast row of itself
  m.copy_(m);                                    // the same view: every element onto itself
  EXPECT_EQ(m.to_vector(), iota({3, 3}).to_vector());
  m.select(1, 0).copy_(m.select(1, 2));  // disjoint columns of one storage
  EXPECT_EQ(m.to_vector(), (std::vector<double>{2, 1, 2, 5, 4, 5, 8, 7, 8}));
  Tensor row = Tensor::zeros({4});
  EXPECT_THROW(row.unsqueeze(0).expand({3, 4}).copy_(iota({3, 4})), Error);  // three writes to each element
  const std::string fill = test::error_of([&] { row.unsqueeze(0).expand({3, 4}).fill_(1.0); });
  EXPECT_NE(fill.find("expand()"), std::string::npos) << fill;
  row.fill_(2.0);
  EXPECT_EQ(row.to_vector(), (std::vector<double>{2, 2, 2, 2}));
}

TEST(Overlap, SeveralOutputsAndElementwiseUpdates) {
  const Tensor x = iota({4, 4}), y = iota({4, 4});
  check_outputs_separate({&x}, {&y}, "op");
  EXPECT_THROW(check_outputs_separate({&x}, {&y, &x}, "op"), Error);  // the output is also an input
  const Tensor row0 = x.select(0, 0), row1 = x.select(0, 1), col0 = x.select(1, 0);
  check_outputs_separate({&row0, &row1}, {&y}, "op");
  EXPECT_NE(test::error_of([&] {
              check_outputs_separate({&row0, &col0}, {&y}, "op");
            }).find("two outputs"),
            std::string::npos);
  const Tensor undefined;
  check_outputs_separate({&x, &undefined}, {&undefined, &y}, "op");
  // An optimizer step: the parameter and its state written, the gradient read.
  const Tensor p = iota({3, 3}), m = iota({3, 3}), g = iota({3, 3});
  check_elementwise_update({&p, &m}, {&g}, "Adam");
  check_elementwise_update({&p, &m}, {&p}, "Adam");  // the parameter read as its own gradient: element by element
  const Tensor p_t = p.transpose(0, 1), m_t = m.transpose(0, 1);
  EXPECT_THROW(check_elementwise_update({&p, &m}, {&p_t}, "Adam"), Error);
  EXPECT_THROW(check_elementwise_update({&p, &m}, {&m_t}, "Adam"), Error);
}

TEST(Tensor, HalfConversionRoundsToNearestEven) {
  struct Case {
    float in;
    uint16_t bits;
  };
  const Case cases[] = {
      {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65520.0f, 0x7c00},  // 65520 rounds up to Inf
      {5.9604645e-08f, 0x0001},                                                // smallest subnormal
      {2.9802322e-08f, 0x0000},                                                // half of it: ties to even (0)
      {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00},                       // tie between 0x3c00/0x3c01 -> even
      {1.00146484375f, 0x3c02},                                                // tie between 0x3c01/0x3c02 -> even
      {0.0f, 0x0000}, {-0.0f, 0x8000}, {std::numeric_limits<float>::infinity(), 0x7c00},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(float_to_half(c.in).bits, c.bits) << c.in;
    if ((c.bits & 0x7c00) != 0x7c00) {
      // round trip through half is exact for a value that is representable
      EXPECT_EQ(float_to_half(half_to_float(half_t{c.bits})).bits, c.bits);
    }
  }
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::nanf("")))));
  // every half value converts to float and back unchanged
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if ((b & 0x7c00) == 0x7c00 && (b & 0x3ff)) continue;  // NaN payloads
    ASSERT_EQ(float_to_half(half_to_float(half_t{uint16_t(b)})).bits, b);
  }
}

TEST(Tensor, Bf16ConversionRoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(float_to_bf16(1.00390625f).bits, 0x3f80);  // exactly half an ulp above 1: ties to even
  EXPECT_EQ(float_to_bf16(1.01171875f).bits, 0x3f82);  // 1.5 ulp: ties to even (up)
  EXPECT_EQ(float_to_bf16(1.0078125f).bits, 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  Tensor t = Tensor::from_vector({1.0, 3.140625, -0.5}, {3}, DType::BF16);
  EXPECT_EQ(t.to(DType::F32).to_vector(), (std::vector<double>{1.0, 3.140625, -0.5}));
}

TEST(Tensor, Errors) {
  Tensor t = iota({2, 3});
  EXPECT_THROW(t.data<double>(), Error);  // wrong dtype access
  EXPECT_THROW(t.size(2), Error);
  EXPECT_THROW(t.permute({0, 0}), Error);
  EXPECT_THROW(t.at({2, 0}), Error);
  EXPECT_THROW(Tensor::empty({-1}), Error);
  EXPECT_THROW(Tensor::from_vector({1, 2}, {3}), Error);
  EXPECT_THROW(broadcast_shapes({2, 3}, {4, 3}), Error);
  EXPECT_EQ(broadcast_shapes({2, 1, 3}, {4, 1}), (Shape{2, 4, 3}));
  EXPECT_THROW(Tensor::empty({2}, DType::F32, Device::cuda(0)), Error);  // no CUDA backend registered here
  EXPECT_THROW(parse_device("gpu"), Error);
  EXPECT_EQ(parse_device("cuda:1").index, 1);
}

}  // namespace
}  // namespace fg

namespace fg {
namespace {

// The default limit follows the peak: blocks in use plus cached stay within max(1 GiB, the most in use at once).
// The 512 MiB blocks are never touched, so they cost address space, not memory.
TEST(HostCache, DefaultLimitFollowsThePeakInUse) {
  reset_host_cache_limit();
  release_host_cache();
  const size_t block = size_t(512) << 20;
  {
    std::vector<Tensor> step;
    for (int i = 0; i < 3; ++i) step.push_back(Tensor::empty({int64_t(block / 4)}));
    EXPECT_GE(host_cache_use().peak_in_use_bytes, 3 * block);
  }
  // All 1.5 GiB kept (a fixed 1 GiB limit would have freed one), and the next "step" gets them all back.
  EXPECT_EQ(host_cache_stats().cached_bytes, 3 * block);
  const size_t misses = host_cache_stats().misses;
  {
    std::vector<Tensor> step;
    for (int i = 0; i < 3; ++i) step.push_back(Tensor::empty({int64_t(block / 4)}));
    EXPECT_EQ(host_cache_stats().misses, misses);
    EXPECT_EQ(host_cache_stats().cached_bytes, 0u);
  }
  // A miss frees cached blocks so that in use plus cached stays within the peak: 1 GiB of other sizes in use
  // leaves room for one cached 512 MiB block out of three.
  {
    const size_t peak = host_cache_use().peak_in_use_bytes;
    Tensor other = Tensor::empty({int64_t((size_t(1) << 30) / 4)});
    const size_t cached = host_cache_stats().cached_bytes;
    EXPECT_LE(host_cache_use().in_use_bytes + cached, peak);
    EXPECT_EQ(cached, block);
  }
  // An explicit limit bounds the cached blocks alone, as before.
  set_host_cache_limit(size_t(8) << 20);
  EXPECT_LE(host_cache_stats().cached_bytes, size_t(8) << 20);
  reset_host_cache_limit();
  release_host_cache();
}

TEST(HostCache, LargeBlocksAreReusedAndCanBeReleased) {
  release_host_cache();
  const HostCacheStats before = host_cache_stats();
  EXPECT_EQ(before.cached_bytes, 0u);
  void* first;
  {
    Tensor a = Tensor::empty({1 << 20});  // 4 MiB: cached when freed
    first = a.raw_data();
  }
  EXPECT_GE(host_cache_stats().cached_bytes, size_t(4) << 20);
  Tensor b = Tensor::empty({1 << 20});
  EXPECT_EQ(b.raw_data(), first);  // the same block came back
  EXPECT_EQ(host_cache_stats().hits, before.hits + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw_data()) % kCpuAlignment, 0u);
  Tensor small = Tensor::empty({10});  // small blocks bypass the cache
  EXPECT_EQ(host_cache_stats().cached_bytes, 0u);
  release_host_cache();
}

}  // namespace
}  // namespace fg
