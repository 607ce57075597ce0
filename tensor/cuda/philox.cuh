// Philox4x32-10 on the GPU: the same function as fg::philox4x32_10 (tensor/philox.cpp), so a kernel that follows
// the stream definition of tensor/philox.h draws bitwise the CPU's words. Include from .cu files only.
#pragma once
#include <cstdint>

namespace fg::cuda {

struct PhiloxWords {
  uint32_t w[4];
};

// counter = {lo32(block), hi32(block), 0, 0}, key = {lo32(seed), hi32(seed)}: the block of tensor/philox.h.
__device__ inline PhiloxWords philox_block(uint64_t block, uint64_t seed) {
  uint32_t c0 = uint32_t(block), c1 = uint32_t(block >> 32), c2 = 0u, c3 = 0u;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// fg::philox_uniform01: the top 24 bits as a float in [0, 1), exact.
__device__ inline float philox_uniform01(uint32_t word) { return float(word >> 8) * (1.0f / 16777216.0f); }

}  // namespace fg::cuda
