// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
//
// The stream is defined element by element so that any backend can reproduce it bit for bit in parallel:
// a draw of n values from a Generator with (seed, offset) computes, for element i,
//   block = philox4x32_10(counter = {lo32(offset + i/4), hi32(offset + i/4), 0, 0}, key = {lo32(seed), hi32(seed)})
//   word  = block[i % 4]
// and then advances offset by ceil(n / 4). Conversions from a word:
//   uniform01(word)  = (word >> 8) * 2^-24                                  in [0, 1), exact in f32
//   uniform(lo, hi)  = fma(hi - lo, uniform01(word), lo) in f64, rounded to the dtype
//   normal: the block's words (w0, w1) and (w2, w3) form two Box-Muller pairs, computed in f64:
//     u1 = 1 - uniform01(w_even) in (0, 1], u2 = uniform01(w_odd);
//     r = sqrt(-2 ln u1); element i%4 == 0 or 2 -> z = r cos(2 pi u2), 1 or 3 -> z = r sin(2 pi u2);
//     the value fma(stddev, z, mean), rounded to the dtype.
// CUDA tensors are filled on the device with the same definition (tensor/cuda/tensor_kernels.h).
//   bernoulli(p): uniform01(word) < p.
#pragma once
#include <array>
#include <cstdint>

namespace fg {

class Tensor;

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

inline float philox_uniform01(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f); }

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves the counters for n values and returns the offset of the first block (see the stream definition).
  uint64_t reserve(uint64_t n) {
    uint64_t first = offset_;
    offset_ += (n + 3) / 4;
    return first;
  }
  // Word i of a draw that started at block `first`.
  uint32_t word(uint64_t first, uint64_t i) const;

 private:
  uint64_t seed_;
  uint64_t offset_;
};

// Fill a floating tensor in place (any layout; elements are numbered in logical row-major order).
void uniform_(Tensor& t, Generator& gen, double lo = 0.0, double hi = 1.0);
void normal_(Tensor& t, Generator& gen, double mean = 0.0, double stddev = 1.0);
void bernoulli_(Tensor& t, Generator& gen, double p);  // 1 with probability p, else 0

}  // namespace fg
