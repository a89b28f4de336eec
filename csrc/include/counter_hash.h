// Counter-based random signs: entry (row, col) of an implicit +-1 matrix R is a pure function of
// (seed, row, col), so any block of R can be rebuilt exactly, on any device, in any tiling.
//
//   base        = splitmix64(seed)
//   row_key(r)  = splitmix64(base + r * GAMMA)      the (r+1)-th output of the SplitMix64 generator seeded
//                                                   with `base` (Steele, Lea & Flood 2014, "Fast splittable
//                                                   pseudorandom number generators"; passes BigCrush)
//   w           = col / 32, b = col % 32            32 columns share one hashed word
//   x           = lowbias32(lo32(row_key) ^ w)      one avalanche round keyed by the row
//   x           = lowbias32(x ^ hi32(row_key))      a second round with the other half of the key, so the
//                                                   word is not a function of (row key XOR w) alone
//   R[row, col] = +1 if bit b of x is 0, else -1
//
// lowbias32 is C. Wellons' 32-bit integer hash (hash-prospector, 2018: xorshift-multiply, two rounds;
// full avalanche, so the 32 bits of a word are as good as 32 separate hashes for a sign matrix). It is the
// one 32-bit hash of the repository: popcount_parity.h keys the sparse-parity stream with it too.
// One 64-bit key per row and one word per 32 entries: the per-entry work is a variable shift, an AND and
// an OR, which vectorize. Measured on the 2-core AVX-512 dev machine (shared, load ~3.5), one thread,
// 512 x 128 float32 tiles in L2, AVX-512 clone, 3 runs: one hash per entry (vectorized, 16 lanes)
// 0.71-0.75 ns/entry, one hash per 32 entries 0.23-0.31 ns/entry. The GEMM that consumes a tile spends 2N
// flops per entry (~1.2 ns at N = 64 and ~100 GFLOP/s). Unlike TRAK's fast_jl (a curand state per column
// and feature tile), nothing depends on the number of SMs, threads or the block sizes.
//
// Index domains: rows are uint64 (a flattened gradient may exceed 2^32 entries); columns are uint32
// (col_offset + cols <= 2^32, checked by the callers). common/ops/grad_projection.py reimplements the
// same arithmetic in torch int64 for `random_signs_reference` (the hash itself in common/ops/_counter_hash.py);
// the tests check both against Python ints.
//
// Torch-free and header-only: included by csrc/cpu/grad_projection.cpp and csrc/cuda/grad_projection.cu, and
// by popcount_parity.h for lowbias32.
#pragma once

#include <stdint.h>

#include "portability.h"

namespace companion {

constexpr uint64_t kSplitMixGamma = 0x9E3779B97F4A7C15ull;

// Columns [kKroneckerOutColOffset, ...) of the same implicit matrix hold LoGra's output-side factor
// P_out, disjoint from the input-side factor P_in in columns [0, k_in): one seed keys both.
constexpr uint64_t kKroneckerOutColOffset = 0x80000000ull;  // 2^31

COMPANION_HD COMPANION_INLINE uint64_t splitmix64(uint64_t z) {
  z += kSplitMixGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

COMPANION_HD COMPANION_INLINE uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// splitmix64(seed): computed once per call, shared by all rows.
COMPANION_HD COMPANION_INLINE uint64_t sign_seed_base(int64_t seed) {
  return splitmix64(static_cast<uint64_t>(seed));
}

// The 64-bit key of one row of R.
COMPANION_HD COMPANION_INLINE uint64_t sign_row_key(uint64_t base, uint64_t row) {
  return splitmix64(base + row * kSplitMixGamma);
}

// The hashed word of columns [32 w, 32 w + 32) of the row with key `row_key`.
COMPANION_HD COMPANION_INLINE uint32_t sign_word(uint64_t row_key, uint32_t w) {
  const uint32_t x = lowbias32(static_cast<uint32_t>(row_key) ^ w);
  return lowbias32(x ^ static_cast<uint32_t>(row_key >> 32));
}

// IEEE bits of R = +1.0f / -1.0f for bit b (0..31) of a word: bit b moved to the sign bit of 1.0f
// (0x3F800000). Branch-free; a variable shift, an AND and an OR.
COMPANION_HD COMPANION_INLINE uint32_t sign_float_bits(uint32_t word, uint32_t b) {
  return 0x3F800000u | ((word << (31u - b)) & 0x80000000u);
}
// The same as double bits (0x3FF0000000000000 = 1.0).
COMPANION_HD COMPANION_INLINE uint64_t sign_double_bits(uint32_t word, uint32_t b) {
  return 0x3FF0000000000000ull | (static_cast<uint64_t>((word << (31u - b)) & 0x80000000u) << 32);
}

// R[row, col] as +-1 in the accumulation type (one key per entry: for tails, tests and the CUDA kernel).
template <typename acc_t>
COMPANION_HD COMPANION_INLINE acc_t random_sign(uint64_t base, uint64_t row, uint32_t col) {
  const uint32_t word = sign_word(sign_row_key(base, row), col >> 5);
  return ((word >> (col & 31u)) & 1u) ? acc_t(-1) : acc_t(1);
}

}  // namespace companion
