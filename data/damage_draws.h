// Internal to damage synthesis (data/damage_negative.cpp, data/damage_dust.cpp): a buffered reader of a Generator's
// Philox stream, for code that draws many small numbers (a dust sheet takes thousands: positions, sizes, the steps
// of every hair). It reserves 64 words at a time and hands them out in order, so a sequence of draws is a pure
// function of the Generator's state, on every machine; what is left of the last reservation is skipped.
// Conversions follow tensor/philox.h: uniform01(word) = (word >> 8) * 2^-24; a normal is one Box-Muller value.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "tensor/philox.h"

namespace fg::data::detail {

class Draws {
 public:
  explicit Draws(Generator& gen) : gen_(gen) {}
  Draws(const Draws&) = delete;
  Draws& operator=(const Draws&) = delete;

  uint32_t word() {
    if (pos_ == kWords) refill();
    return buf_[size_t(pos_++)];
  }
  uint64_t word64() {
    const uint64_t hi = word();
    return (hi << 32) | uint64_t(word());
  }
  double uniform01() { return double(philox_uniform01(word())); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform01(); }
  // Inclusive range, lo <= hi, hi - lo far below 2^24 (bias below (hi - lo) / 2^24).
  int64_t uniform_int(int64_t lo, int64_t hi) {
    const int64_t n = hi - lo + 1;
    return lo + std::min(int64_t(uniform01() * double(n)), n - 1);
  }
  bool bernoulli(double p) { return uniform01() < p; }
  double normal(double mean, double stddev) {
    const double u1 = 1.0 - uniform01();  // (0, 1]: the log stays finite
    const double u2 = uniform01();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  // Pareto with minimum xm and tail index a: many near xm, a few far larger (P(X > x) = (xm / x)^a).
  double pareto(double xm, double a) { return xm * std::pow(1.0 - uniform01(), -1.0 / a); }
  // Knuth's product of uniforms below 30, a rounded normal above (where it is within a few percent).
  int64_t poisson(double mean) {
    if (!(mean > 0.0)) return 0;
    if (mean >= 30.0) return std::max<int64_t>(0, std::llround(normal(mean, std::sqrt(mean))));
    const double limit = std::exp(-mean);
    int64_t k = 0;
    for (double p = uniform01(); p > limit; p *= uniform01()) ++k;
    return k;
  }

 private:
  static constexpr int kWords = 64;
  void refill() {
    const uint64_t first = gen_.reserve(kWords);
    const std::array<uint32_t, 2> key = {uint32_t(gen_.seed()), uint32_t(gen_.seed() >> 32)};
    for (int b = 0; b < kWords / 4; ++b) {
      const uint64_t block = first + uint64_t(b);
      const auto w = philox4x32_10({uint32_t(block), uint32_t(block >> 32), 0u, 0u}, key);
      std::copy(w.begin(), w.end(), buf_.begin() + 4 * b);
    }
    pos_ = 0;
  }

  Generator& gen_;
  std::array<uint32_t, kWords> buf_{};
  int pos_ = kWords;
};

// SplitMix64's finaliser: a bijection of 64-bit words that scatters nearby inputs far apart.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One seed from four numbers, each of which changes the result.
inline uint64_t mix4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

}  // namespace fg::data::detail
