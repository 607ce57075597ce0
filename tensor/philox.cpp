// Philox4x32-10 and the tensor fills built on it. See philox.h for the stream definition every backend follows.
#include "tensor/philox.h"

#include <cmath>

#include "tensor/overlap.h"
#include "tensor/tensor.h"

namespace fg {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;      // round multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;    // key schedule increments

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}
}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c[0], hi0, lo0);
    mulhilo(kMul1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

uint32_t Generator::word(uint64_t first, uint64_t i) const {
  const uint64_t block = first + i / 4;
  const auto out = philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0u, 0u},
                                 {uint32_t(seed_), uint32_t(seed_ >> 32)});
  return out[i % 4];
}

namespace {

// A CUDA tensor is filled on its device (tensor/cuda/tensor_kernels.h) with the same stream; kind as the hook's.
// Returns false for a CPU tensor.
bool fill_on_device(Tensor& t, Generator& gen, int kind, double a, double b) {
  check_no_internal_overlap(t, "random fill");  // tensor/overlap.h; the CPU path's copy_ checks it too
  if (!t.device().is_cuda()) return false;
  FG_CHECK(dtype_is_floating(t.dtype()), "random fill: tensor must be floating point, got " << dtype_name(t.dtype()));
  auto& hooks = cuda_allocator_hooks();
  FG_CHECK(hooks.random_fill != nullptr, "random fills on " << t.device().str() << " need the CUDA backend");
  const uint64_t first = gen.reserve(uint64_t(t.numel()));
  hooks.random_fill(t, gen.seed(), first, kind, a, b);
  return true;
}

// Calls fill(i, block) for each element i, where block holds the four words of element i's Philox block.
template <typename Fill>
void fill_by_blocks(Tensor& t, Generator& gen, Fill fill) {
  FG_CHECK(t.device().is_cpu(), "random fills on " << t.device().str() << " need the CUDA backend");
  FG_CHECK(dtype_is_floating(t.dtype()), "random fill: tensor must be floating point, got " << dtype_name(t.dtype()));
  const int64_t n = t.numel();
  const uint64_t first = gen.reserve(uint64_t(n));
  const std::array<uint32_t, 2> key = {uint32_t(gen.seed()), uint32_t(gen.seed() >> 32)};
  Tensor out = Tensor::empty(t.shape(), DType::F64);
  double* p = out.data<double>();
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t b = 0; b < (n + 3) / 4; ++b) {
    const uint64_t block = first + uint64_t(b);
    const auto words = philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0u, 0u}, key);
    for (int64_t j = 0; j < 4 && b * 4 + j < n; ++j) p[b * 4 + j] = fill(j, words);
  }
  t.copy_(out);
}

}  // namespace

// The multiply-adds below are explicit fused operations (one rounding) so the values do not depend on whether the
// compiler contracts them; the CUDA kernel computes the same fma.
void uniform_(Tensor& t, Generator& gen, double lo, double hi) {
  if (fill_on_device(t, gen, 0, lo, hi)) return;
  fill_by_blocks(t, gen, [&](int64_t j, const std::array<uint32_t, 4>& w) {
    return std::fma(hi - lo, double(philox_uniform01(w[size_t(j)])), lo);
  });
}

void normal_(Tensor& t, Generator& gen, double mean, double stddev) {
  if (fill_on_device(t, gen, 1, mean, stddev)) return;
  fill_by_blocks(t, gen, [&](int64_t j, const std::array<uint32_t, 4>& w) {
    const size_t pair = size_t(j / 2) * 2;
    const double u1 = 1.0 - double(philox_uniform01(w[pair]));
    const double u2 = double(philox_uniform01(w[pair + 1]));
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * M_PI * u2;
    return std::fma(stddev, j % 2 == 0 ? r * std::cos(angle) : r * std::sin(angle), mean);
  });
}

void bernoulli_(Tensor& t, Generator& gen, double p) {
  FG_CHECK(p >= 0.0 && p <= 1.0, "bernoulli: probability " << p << " is outside [0, 1]");
  if (fill_on_device(t, gen, 2, p, 0.0)) return;
  fill_by_blocks(t, gen, [&](int64_t j, const std::array<uint32_t, 4>& w) {
    return double(philox_uniform01(w[size_t(j)])) < p ? 1.0 : 0.0;
  });
}

}  // namespace fg
