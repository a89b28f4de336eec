// Sparse parity on bit-packed {-1, +1} data: counter-based sampling, parities by popcount, and the CPU loops
// of the fused ensemble MLP (Panigrahi et al. 2025, "Progressive distillation induces an implicit
// curriculum", arXiv 2410.05464, section 3: x ~ Unif{+-1}^n, y = prod_{i in S} x_i, 1-hidden-layer ReLU MLPs).
//
// Packing: coordinate i of a row lives in bit (i % 64) of 64-bit word i / 64, with bit 1 meaning x_i = -1.
// Then prod_{i in S} x_i = chi_S(x) = (-1)^popcount(x & S) for S packed the same way, and the bits beyond n
// in the last word are always 0.
//
// Sampling: the bits of row r (the r-th example of the stream for `seed`) are 32-bit blocks
//   block(seed, r, j) = lowbias32(row_key(seed_key(seed), r) ^ lowbias32(j + 0xC2B2AE35)),
// lowbias32 being Wellons' integer hash of counter_hash.h (a bijection of uint32). Word w of the row is
// block(2w) | block(2w + 1) << 32. Every value depends only on (seed, r, j), so CPU, CUDA and the
// pure-PyTorch reference (common/ops/sparse_parity.py) produce the same bits, and a batch is the same
// whatever the thread count or the batch split.
//
// Torch-free and header-only: included by csrc/cpu/sparse_parity.cpp and csrc/cuda/sparse_parity.cu, where
// COMPANION_HD expands to __host__ __device__. The second half (CPU only) holds the vectorizable loops.
#pragma once

#include <stdint.h>
#include <string.h>

#include "counter_hash.h"  // lowbias32
#include "portability.h"

namespace companion {
namespace parity {

// Words per packed row of n coordinates.
COMPANION_HD COMPANION_INLINE int64_t words_for(int64_t n) { return (n + 63) / 64; }

// ----------------------------------------------------------------------------------- counter-based bits

// The 32-bit hash is lowbias32 of counter_hash.h (C. Wellons, "Prospecting for hash functions", 2018:
// bias 0.17 from the ideal avalanche), the same function that keys the gradient-projection signs.
COMPANION_HD COMPANION_INLINE uint32_t seed_key(uint64_t seed) {
  return lowbias32(lowbias32(static_cast<uint32_t>(seed) ^ 0x9E3779B9U) ^ static_cast<uint32_t>(seed >> 32));
}

COMPANION_HD COMPANION_INLINE uint32_t row_key(uint32_t key, uint64_t row) {
  return lowbias32(lowbias32(key ^ static_cast<uint32_t>(row)) ^ static_cast<uint32_t>(row >> 32) ^
                   0x85EBCA6BU);
}

COMPANION_HD COMPANION_INLINE uint32_t row_block(uint32_t rkey, uint32_t j) {
  return lowbias32(rkey ^ lowbias32(j + 0xC2B2AE35U));
}

// Word w of a row (n coordinates): 64 coordinates, the bits at or beyond n cleared.
COMPANION_HD COMPANION_INLINE uint64_t row_word(uint32_t rkey, int64_t w, int64_t n) {
  const uint64_t lo = row_block(rkey, static_cast<uint32_t>(2 * w));
  const uint64_t hi = row_block(rkey, static_cast<uint32_t>(2 * w + 1));
  uint64_t word = lo | (hi << 32);
  const int64_t rest = n - 64 * w;  // coordinates in this word, >= 1
  if (rest < 64) word &= (uint64_t(1) << rest) - 1;
  return word;
}

// popcount(v) & 1 by xor-folding: branch-free shifts and xors that vectorize on any SIMD level (a vector
// popcount needs AVX-512 VPOPCNTDQ, which the dev machine lacks).
COMPANION_HD COMPANION_INLINE uint64_t parity64(uint64_t v) {
  v ^= v >> 32;
  v ^= v >> 16;
  v ^= v >> 8;
  v ^= v >> 4;
  v ^= v >> 2;
  v ^= v >> 1;
  return v & 1;
}

#if !defined(__CUDACC__)
// ----------------------------------------------------------------------------------------- CPU loops

// The 64-byte vector helpers below are always inlined, so the "vector passed without AVX-512 changes the
// ABI" notes that GCC prints for the baseline clones concern no real call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

COMPANION_INLINE uint64_t double_bits(double x) { return __builtin_bit_cast(uint64_t, x); }
COMPANION_INLINE double bits_double(uint64_t x) { return __builtin_bit_cast(double, x); }

// sign_bits[i] = parity(x & mask) << 63 over one block, with x stored word-major: xT[w * stride + i].
COMPANION_CPU_SIMD inline void parity_sign_bits(const uint64_t* __restrict__ xT, int64_t stride, int64_t W,
                                                const uint64_t* __restrict__ mask, int64_t len,
                                                uint64_t* __restrict__ sign_bits) {
  {
    const uint64_t m = mask[0];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) sign_bits[i] = xT[i] & m;
  }
  for (int64_t w = 1; w < W; ++w) {
    const uint64_t m = mask[w];
    const uint64_t* __restrict__ row = xT + w * stride;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) sign_bits[i] ^= row[i] & m;
  }
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) sign_bits[i] = parity64(sign_bits[i]) << 63;
}

// sum_i chi_i * f[i] with chi_i = -1 where sign_bits[i] is set: the sign bit of the double is flipped,
// so every term is exact and only the sum rounds (SIMD lanes hold partial sums).
COMPANION_CPU_SIMD inline double signed_sum(const double* __restrict__ f, const uint64_t* __restrict__ sign_bits,
                                            int64_t len) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < len; ++i) s += bits_double(double_bits(f[i]) ^ sign_bits[i]);
  return s;
}

// The one-word case (n <= 64) of parity_sign_bits + signed_sum fused into one pass, sign bits kept in
// registers: measured 2.1x faster than the two passes (n = 50, N = 2^14, 1376 subsets).
COMPANION_CPU_SIMD inline double signed_sum_one_word(const uint64_t* __restrict__ x, uint64_t mask,
                                                     const double* __restrict__ f, int64_t len) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < len; ++i) s += bits_double(double_bits(f[i]) ^ (parity64(x[i] & mask) << 63));
  return s;
}

// acc[i] += chi_i * g (the transposed product, for the gradient with respect to f).
COMPANION_CPU_SIMD inline void signed_axpy(double g, const uint64_t* __restrict__ sign_bits, double* __restrict__ acc,
                                           int64_t len) {
  const uint64_t gb = double_bits(g);
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) acc[i] += bits_double(gb ^ sign_bits[i]);
}

// ----------------------------------------------------------------------- fused ensemble MLP on {-1,+1}^n
//
// One member, hidden units [h0, h0 + hc) with hc <= HC ("a chunk"):
//   z[b, h] = b1[h] + sum_i W1[h, i] x[b, i],   hid = relu(z),   out[b, c] = sum_h W2[c, h] hid[b, h] (+ b2)
// Because x is +-1, z is a sum of table rows ("four Russians"): split the n coordinates into nibbles
// g = 0..G-1 and tabulate, for every 4-bit pattern p, T[g][p][h] = sum_{i in nibble g} (-1)^{bit of p} W1[h, i]
// (b1 folded into nibble 0). Then z[b] = sum_g T[g][nibble_g(x_b)]: G = n / 4 vector adds per sample instead
// of n multiply-adds, and the tables (G * 16 * HC values, 26 KiB for n = 50) stay in L1/L2.
// The backward recomputes z (cheaper than storing hid [E, B, H]) and accumulates the gradients of W1 the
// same way in reverse: gh[b] is added into bucket Bk[g][nibble_g(x_b)], after which
// dW1[h, i] = sum_p (-1)^{bit_i(p)} Bk[g][p][h] = sum_b gh[b, h] - 2 sum_{p: bit_i(p) = 1} Bk[g][p][h].
// Weights are stored transposed, W1t [n, H] (a row per input coordinate), so table rows are contiguous.
//
// The chunk is NV explicit 64-byte vectors (GCC vector extension): written as plain loops over j, GCC 12
// vectorized the loop over nibbles with gathers instead (measured 4 ms per member forward at n = 50,
// H = 1000, B = 512, against 0.3 ms with explicit vectors).

constexpr int kNibble = 4;
constexpr int kPatterns = 1 << kNibble;
constexpr int kVecBytes = 64;
constexpr int kChunkVectors = 2;  // a chunk = 2 vectors = 32 floats / 16 doubles

template <typename T>
struct Simd {
  typedef T vec __attribute__((vector_size(kVecBytes)));
  static constexpr int kLanes = kVecBytes / sizeof(T);
  static constexpr int kChunk = kLanes * kChunkVectors;  // HC
  static COMPANION_INLINE vec load(const T* p) {
    vec v;
    memcpy(&v, p, sizeof(vec));
    return v;
  }
  static COMPANION_INLINE void store(T* p, vec v) { memcpy(p, &v, sizeof(vec)); }
  static COMPANION_INLINE vec splat(T x) { return vec{} + x; }
  static COMPANION_INLINE T hsum(vec v) {
    T s = T(0);
    for (int l = 0; l < kLanes; ++l) s += v[l];
    return s;
  }
};

// T [G, 16, HC] for the chunk; columns j >= hc and coordinates i >= n are zero.
template <typename T>
COMPANION_CPU_SIMD void build_tables(const T* __restrict__ w1t, int64_t H, int64_t n, int64_t G,
                                     const T* __restrict__ b1, int64_t hc, T* __restrict__ table) {
  constexpr int HC = Simd<T>::kChunk;
  for (int64_t g = 0; g < G; ++g) {
    T col[kNibble][HC];  // the nibble's 4 rows of W1t, zero padded
    for (int q = 0; q < kNibble; ++q) {
      const int64_t i = g * kNibble + q;
      for (int j = 0; j < HC; ++j) col[q][j] = (i < n && j < hc) ? w1t[i * H + j] : T(0);
    }
    T* __restrict__ tg = table + g * kPatterns * HC;
    for (int j = 0; j < HC; ++j) {
      T base = col[0][j] + col[1][j] + col[2][j] + col[3][j];
      if (g == 0 && j < hc) base += b1[j];
      tg[j] = base;
    }
    for (int p = 1; p < kPatterns; ++p) {
      const int low = __builtin_ctz(p);
      const T* __restrict__ prev = tg + (p & (p - 1)) * HC;
      T* __restrict__ cur = tg + p * HC;
      for (int j = 0; j < HC; ++j) cur[j] = prev[j] - T(2) * col[low][j];
    }
  }
}

// W2 rows of the chunk, zero padded: w2pad [C, HC].
template <typename T>
inline void pad_w2(const T* __restrict__ w2, int64_t H, int64_t C, int64_t hc, T* __restrict__ w2pad) {
  constexpr int HC = Simd<T>::kChunk;
  for (int64_t c = 0; c < C; ++c) {
    for (int j = 0; j < HC; ++j) w2pad[c * HC + j] = j < hc ? w2[c * H + j] : T(0);
  }
}

// z for sample b: the sum of its G table rows. nb holds the sample's nibble offsets (pattern * HC).
template <typename T>
COMPANION_INLINE void gather_z(const T* __restrict__ table, const uint16_t* __restrict__ nb, int64_t G,
                               typename Simd<T>::vec (&z)[kChunkVectors]) {
  using S = Simd<T>;
  constexpr int HC = S::kChunk;
  for (int v = 0; v < kChunkVectors; ++v) z[v] = S::load(table + nb[0] + v * S::kLanes);
  for (int64_t g = 1; g < G; ++g) {
    const T* __restrict__ row = table + g * kPatterns * HC + nb[g];
    for (int v = 0; v < kChunkVectors; ++v) z[v] += S::load(row + v * S::kLanes);
  }
}

// Forward of one chunk for samples [0, B): acc[b, c, :] += W2[c, chunk] * relu(z[b, chunk]) as lane vectors
// (acc [B, C, lanes], summed across lanes once per task, not once per chunk).
template <typename T>
COMPANION_CPU_SIMD void forward_chunk(const T* __restrict__ table, const uint16_t* __restrict__ nib, int64_t B,
                                      int64_t G, const T* __restrict__ w2pad, int64_t C,
                                      T* __restrict__ acc) {
  using S = Simd<T>;
  using vec = typename S::vec;
  constexpr int HC = S::kChunk;
  const vec zero{};
  for (int64_t b = 0; b < B; ++b) {
    vec z[kChunkVectors];
    gather_z<T>(table, nib + b * G, G, z);
    for (int v = 0; v < kChunkVectors; ++v) z[v] = z[v] > zero ? z[v] : zero;
    for (int64_t c = 0; c < C; ++c) {
      T* __restrict__ a = acc + (b * C + c) * S::kLanes;
      vec s = S::load(a);
      for (int v = 0; v < kChunkVectors; ++v) s += z[v] * S::load(w2pad + c * HC + v * S::kLanes);
      S::store(a, s);
    }
  }
}

// Samples per backward block: the block's gh rows ([kBackwardBlock, HC], 16 KiB in float32) stay in L1
// while every nibble group sums them into its 16 buckets.
constexpr int64_t kBackwardBlock = 128;

// For every block of kBackwardBlock samples and every nibble group g: the block's sample indices (local,
// in [0, block)) ordered by their pattern in g, and where each pattern's run starts. order [X, blocks, G,
// kBackwardBlock] and starts [X, blocks, G, 17] as flat arrays; nib [X, B, G] holds pattern * HC.
template <typename T>
inline void bucket_order(const uint16_t* __restrict__ nib, int64_t X, int64_t B, int64_t G,
                         int32_t* __restrict__ order, int32_t* __restrict__ starts) {
  constexpr int HC = Simd<T>::kChunk;
  const int64_t blocks = (B + kBackwardBlock - 1) / kBackwardBlock;
  for (int64_t xb = 0; xb < X * blocks; ++xb) {
    const int64_t x = xb / blocks, b0 = (xb % blocks) * kBackwardBlock;
    const int64_t len = B - b0 < kBackwardBlock ? B - b0 : kBackwardBlock;
    for (int64_t g = 0; g < G; ++g) {
      int32_t* st = starts + (xb * G + g) * (kPatterns + 1);
      int32_t* ord = order + (xb * G + g) * kBackwardBlock;
      int32_t count[kPatterns] = {};
      for (int64_t i = 0; i < len; ++i) ++count[nib[(x * B + b0 + i) * G + g] / HC];
      st[0] = 0;
      for (int p = 0; p < kPatterns; ++p) st[p + 1] = st[p] + count[p];
      int32_t next[kPatterns];
      for (int p = 0; p < kPatterns; ++p) next[p] = st[p];
      for (int64_t i = 0; i < len; ++i) ord[next[nib[(x * B + b0 + i) * G + g] / HC]++] = static_cast<int32_t>(i);
    }
  }
}

// Backward of one chunk. Inputs: the chunk's tables and padded W2 rows, grad [B, C] (d loss / d out), and
// the samples' bucket order for its x rows (order, starts from bucket_order, offset to this member's rows).
// Outputs for the chunk: gw1t [n, H] rows (columns [0, hc)), gb1 [hc], gw2 [C, H] rows (columns [0, hc)).
// Scratch: gh_block [kBackwardBlock, HC], buckets [G, 16, HC] and acc2 [C, HC], all overwritten.
// Bucketing reads each block's gh rows in pattern order and writes each bucket once per block: a sample's
// gh costs G pairs of vector loads, where adding it into its G buckets directly cost G read-modify-writes
// (store-bound; measured 15.7 ms against 6.1 ms for the forward, one thread, E = 16, n = 50, H = 1000,
// B = 512).
template <typename T>
COMPANION_CPU_SIMD void backward_chunk(const T* __restrict__ table, const uint16_t* __restrict__ nib, int64_t B,
                                       int64_t G, int64_t n, const T* __restrict__ w2pad, int64_t H, int64_t C,
                                       int64_t hc, const T* __restrict__ grad, const int32_t* __restrict__ order,
                                       const int32_t* __restrict__ starts, T* __restrict__ gh_block,
                                       T* __restrict__ buckets, T* __restrict__ acc2, T* __restrict__ gw1t,
                                       T* __restrict__ gb1, T* __restrict__ gw2) {
  using S = Simd<T>;
  using vec = typename S::vec;
  constexpr int HC = S::kChunk, L = S::kLanes, NV = kChunkVectors;
  memset(buckets, 0, sizeof(T) * G * kPatterns * HC);
  memset(acc2, 0, sizeof(T) * C * HC);
  const vec zero{};
  vec w2c0[NV], w2c1[NV], acc_c0[NV], acc_c1[NV], sum_gh[NV];  // classes 0 and 1 in registers
  for (int v = 0; v < NV; ++v) {
    w2c0[v] = S::load(w2pad + v * L);
    w2c1[v] = C > 1 ? S::load(w2pad + HC + v * L) : zero;
    acc_c0[v] = acc_c1[v] = sum_gh[v] = zero;
  }
  for (int64_t b0 = 0, block = 0; b0 < B; b0 += kBackwardBlock, ++block) {
    const int64_t len = B - b0 < kBackwardBlock ? B - b0 : kBackwardBlock;
    for (int64_t i = 0; i < len; ++i) {
      const int64_t b = b0 + i;
      const uint16_t* __restrict__ nb = nib + b * G;
      const T* __restrict__ gb = grad + b * C;
      vec z[NV], gh[NV];
      gather_z<T>(table, nb, G, z);
      const vec g0 = S::splat(gb[0]), g1 = S::splat(C > 1 ? gb[1] : T(0));
      for (int v = 0; v < NV; ++v) gh[v] = g0 * w2c0[v] + g1 * w2c1[v];
      for (int64_t c = 2; c < C; ++c) {
        const vec gc = S::splat(gb[c]);
        for (int v = 0; v < NV; ++v) gh[v] += gc * S::load(w2pad + c * HC + v * L);
      }
      for (int v = 0; v < NV; ++v) {
        const auto on = z[v] > zero;
        z[v] = on ? z[v] : zero;  // relu(z)
        gh[v] = on ? gh[v] : zero;
        sum_gh[v] += gh[v];
        acc_c0[v] += g0 * z[v];
        acc_c1[v] += g1 * z[v];
        S::store(gh_block + i * HC + v * L, gh[v]);
      }
      for (int64_t c = 2; c < C; ++c) {
        const vec gc = S::splat(gb[c]);
        for (int v = 0; v < NV; ++v) S::store(acc2 + c * HC + v * L, S::load(acc2 + c * HC + v * L) + gc * z[v]);
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      const int32_t* __restrict__ st = starts + (block * G + g) * (kPatterns + 1);
      const int32_t* __restrict__ ord = order + (block * G + g) * kBackwardBlock;
      for (int p = 0; p < kPatterns; ++p) {
        if (st[p] == st[p + 1]) continue;
        T* __restrict__ bucket = buckets + (g * kPatterns + p) * HC;
        vec a[NV], a2[NV];  // two chains: the loads are independent, the adds are not
        for (int v = 0; v < NV; ++v) {
          a[v] = S::load(bucket + v * L);
          a2[v] = zero;
        }
        int32_t q = st[p];
        for (; q + 1 < st[p + 1]; q += 2) {
          const T* __restrict__ r0 = gh_block + ord[q] * HC;
          const T* __restrict__ r1 = gh_block + ord[q + 1] * HC;
          for (int v = 0; v < NV; ++v) {
            a[v] += S::load(r0 + v * L);
            a2[v] += S::load(r1 + v * L);
          }
        }
        if (q < st[p + 1]) {
          const T* __restrict__ r0 = gh_block + ord[q] * HC;
          for (int v = 0; v < NV; ++v) a[v] += S::load(r0 + v * L);
        }
        for (int v = 0; v < NV; ++v) S::store(bucket + v * L, a[v] + a2[v]);
      }
    }
  }
  T total[HC];
  for (int v = 0; v < NV; ++v) {
    S::store(total + v * L, sum_gh[v]);
    S::store(acc2 + v * L, acc_c0[v]);
    if (C > 1) S::store(acc2 + HC + v * L, acc_c1[v]);
  }
  for (int64_t j = 0; j < hc; ++j) gb1[j] = total[j];
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t j = 0; j < hc; ++j) gw2[c * H + j] = acc2[c * HC + j];
  }
  for (int64_t g = 0; g < G; ++g) {
    const T* __restrict__ bg = buckets + g * kPatterns * HC;
    for (int q = 0; q < kNibble; ++q) {
      const int64_t i = g * kNibble + q;
      if (i >= n) break;
      vec minus[NV];  // sum of the buckets whose pattern has x_i = -1
      for (int v = 0; v < NV; ++v) minus[v] = zero;
      for (int p = 0; p < kPatterns; ++p) {
        if (!((p >> q) & 1)) continue;
        for (int v = 0; v < NV; ++v) minus[v] += S::load(bg + p * HC + v * L);
      }
      T out[HC];
      for (int v = 0; v < NV; ++v) S::store(out + v * L, sum_gh[v] - T(2) * minus[v]);
      for (int64_t j = 0; j < hc; ++j) gw1t[i * H + j] = out[j];
    }
  }
}

#pragma GCC diagnostic pop
#endif  // !defined(__CUDACC__)

}  // namespace parity
}  // namespace companion
