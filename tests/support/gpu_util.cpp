// Helpers for the CPU-vs-CUDA parity suites; see gpu_util.h. Compiles in every build: the only CUDA call is
// device_count(), behind FG_WITH_CUDA; everything else goes through the Tensor API, which reaches the device.
#include "tests/support/gpu_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#ifdef FG_WITH_CUDA
#include "tensor/cuda/cuda_runtime.h"
#endif

namespace fg::test {

namespace {

constexpr uint8_t kSentinel = 0xA5;

// The row-major multi-index of flat element i of `shape`, as "[a, b, c]".
std::string index_str(const Shape& shape, size_t i) {
  const Shape strides = contiguous_strides(shape);
  std::ostringstream os;
  os << "[";
  int64_t rem = int64_t(i);
  for (size_t d = 0; d < strides.size(); ++d) {
    os << (d ? ", " : "") << rem / strides[d];
    rem %= strides[d];
  }
  os << "]";
  return os.str();
}

}  // namespace

bool gpu_available() {
#ifdef FG_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

std::string gpu_skip_reason() {
#ifdef FG_WITH_CUDA
  return "no CUDA device present: GPU tests skipped";
#else
  return "filmgrad was built without CUDA (nvcc not found): GPU tests skipped";
#endif
}

GuardedTensor empty_guarded(const Shape& shape, DType dtype, int64_t guard_bytes) {
  const int64_t es = int64_t(dtype_size(dtype));
  // The view starts guard_bytes into the allocation, which must be a whole number of elements (and keeps the
  // alignment a kernel may assume: guard_bytes is rounded up to 256 bytes, cudaMalloc's alignment).
  guard_bytes = (std::max<int64_t>(guard_bytes, 1) + 255) / 256 * 256;
  FG_ASSERT(guard_bytes % es == 0, "guard not a multiple of the element size");
  GuardedTensor g;
  g.guard_bytes = guard_bytes;
  const int64_t body = shape_numel(shape) * es;
  g.backing = Tensor::empty({guard_bytes + body + guard_bytes}, DType::U8, Device::cuda(0));
  g.backing.fill_(double(kSentinel));
  g.tensor = Tensor(g.backing.storage(), shape, contiguous_strides(shape), guard_bytes / es, dtype);
  return g;
}

GuardedTensor to_device_guarded(const Tensor& host, int64_t guard_bytes) {
  GuardedTensor g = empty_guarded(host.shape(), host.dtype(), guard_bytes);
  g.tensor.copy_(host);
  return g;
}

::testing::AssertionResult sentinels_intact(const GuardedTensor& t) {
  const std::vector<double> bytes = t.backing.to(Device::cpu()).to_vector();
  const size_t n = bytes.size(), guard = size_t(t.guard_bytes);
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    if (i >= guard && i < n - guard) continue;
    if (bytes[i] != double(kSentinel)) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  const bool before = first < guard;
  return ::testing::AssertionFailure()
         << bad << " sentinel byte(s) overwritten around " << t.tensor.str() << "; the first "
         << (before ? guard - first : first - (n - guard) + 1) << " byte(s) " << (before ? "before" : "after")
         << " the tensor (a kernel wrote out of bounds)";
}

::testing::AssertionResult nmse_within(const Tensor& ref, const Tensor& got, double max_nmse) {
  if (ref.shape() != got.shape())
    return ::testing::AssertionFailure() << "shape mismatch: expected " << shape_str(ref.shape()) << ", got "
                                         << shape_str(got.shape());
  std::vector<double> a = ref.to(Device::cpu()).to(DType::F64).to_vector();
  const std::vector<double> b = got.to(Device::cpu()).to(DType::F64).to_vector();
  // A 16-bit result is the reference rounded to 16 bits: where that rounding overflows (f16 above 65504), the
  // expected value is the Inf the dtype holds, not the wider reference's finite number. Elsewhere the unrounded
  // reference stays, so the NMSE bounds still measure the result's rounding.
  if ((got.dtype() == DType::F16 || got.dtype() == DType::BF16) && ref.dtype() != got.dtype()) {
    const std::vector<double> rounded = ref.to(Device::cpu()).to(got.dtype()).to(DType::F64).to_vector();
    for (size_t i = 0; i < a.size(); ++i)
      if (std::isfinite(a[i]) && !std::isfinite(rounded[i])) a[i] = rounded[i];
  }
  // NaN and Inf must sit at the same places (an Inf with the same sign); they are left out of the NMSE.
  std::ostringstream special;
  int special_bad = 0;
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool a_finite = std::isfinite(a[i]), b_finite = std::isfinite(b[i]);
    if (!a_finite || !b_finite) {
      const bool same = (std::isnan(a[i]) && std::isnan(b[i])) || (std::isinf(a[i]) && a[i] == b[i]);
      if (!same && special_bad++ < 5)
        special << "\n  at " << index_str(ref.shape(), i) << ": expected " << a[i] << ", got " << b[i];
      continue;
    }
    err += (a[i] - b[i]) * (a[i] - b[i]);
    norm += a[i] * a[i];
  }
  if (special_bad > 0)
    return ::testing::AssertionFailure() << special_bad << " NaN/Inf position(s) differ" << special.str();
  const double nmse = norm == 0.0 ? err : err / norm;
  if (nmse <= max_nmse) return ::testing::AssertionSuccess();
  // The largest differences first: they point at the index math that went wrong.
  std::vector<size_t> order;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i]) && a[i] != b[i]) order.push_back(i);
  std::partial_sort(order.begin(), order.begin() + std::min<size_t>(order.size(), 5), order.end(),
                    [&](size_t x, size_t y) { return std::abs(a[x] - b[x]) > std::abs(a[y] - b[y]); });
  std::ostringstream os;
  os << "NMSE " << nmse << " > " << max_nmse << " over " << a.size() << " elements (" << order.size() << " differ)";
  for (size_t k = 0; k < std::min<size_t>(order.size(), 5); ++k)
    os << "\n  at " << index_str(ref.shape(), order[k]) << ": expected " << a[order[k]] << ", got " << b[order[k]];
  return ::testing::AssertionFailure() << os.str();
}

const std::vector<DtypeCase>& cuda_float_dtypes() {
  static const std::vector<DtypeCase> cases = {
      {DType::F32, 1e-7}, {DType::F64, 1e-20}, {DType::F16, 1e-6}, {DType::BF16, 6e-5}};
  return cases;
}

DType ref_dtype(DType dtype) { return dtype == DType::F64 ? DType::F64 : DType::F32; }

Tensor ref_input(const Tensor& x, DType dtype) { return x.to(dtype).to(ref_dtype(dtype)); }

Tensor gpu_input(const Tensor& x, DType dtype) { return x.to(dtype).to(Device::cuda(0)); }

}  // namespace fg::test
