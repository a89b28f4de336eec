// Online log-sum-exp: lse(x) = log(sum_i exp(x_i)) in one pass over x, without overflow.
//
// The state is (m, s) with m = max_i x_i seen so far and s = sum_i exp(x_i - m), so that
// lse = m + log(s) (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax", Alg. 3).
// Two states over disjoint parts of x merge into the state of their union, which is what makes the
// reduction parallel: per thread/lane, then per warp and block (CUDA) or per chunk (CPU).
//
// Infinities and NaN, chosen to agree with torch.logsumexp:
//   - an empty state, or one that has seen only -inf, gives -inf (never NaN);
//   - any +inf input gives +inf; any NaN input gives NaN.
// Terms with x_i == m are counted as exactly 1 (exp(0)), which is also how -inf == -inf and
// +inf == +inf are handled without ever forming inf - inf.
//
// Torch-free and header-only: included by the CPU kernels (plain C++) and by the CUDA kernels, where
// COMPANION_HD expands to __host__ __device__. Reused by the fused DPO kernels.
#pragma once

#include <math.h>
#include <stdint.h>

#include "portability.h"

// The vectorized CPU loops below are COMPANION_CPU_SIMD (portability.h): out of line and, with GCC on
// x86-64, cloned for AVX-512 / AVX2+FMA / baseline SSE2. Measured on this repo's 2-core AVX-512 machine,
// one thread, x [512, 32000] float32: 3.6 ns/value (SSE2 clone), 1.1 ns/value (x86-64-v4 clone). The loops
// only vectorize with -fno-trapping-math (set in setup.py); without it they are correct but scalar.

namespace companion {

// exp / log of the accumulation type (float or double); plain C names work on host and device.
COMPANION_HD COMPANION_INLINE float acc_exp(float x) { return expf(x); }
COMPANION_HD COMPANION_INLINE double acc_exp(double x) { return exp(x); }
COMPANION_HD COMPANION_INLINE float acc_log(float x) { return logf(x); }
COMPANION_HD COMPANION_INLINE double acc_log(double x) { return log(x); }

template <typename acc_t>
struct OnlineLogSumExp {
  acc_t m;  // running max of the values seen (-inf when none)
  acc_t s;  // sum of exp(x_i - m) over the values seen (0 when none)

  COMPANION_HD COMPANION_INLINE OnlineLogSumExp() : m(-static_cast<acc_t>(INFINITY)), s(acc_t(0)) {}
  COMPANION_HD COMPANION_INLINE OnlineLogSumExp(acc_t m_, acc_t s_) : m(m_), s(s_) {}

  // Add one value x. One exp per call; a new max rescales the running sum.
  COMPANION_HD COMPANION_INLINE void update(acc_t x) {
    if (x > m) {  // new max (false for NaN)
      s = s * acc_exp(m - x) + acc_t(1);  // m = -inf: s * 0 = 0
      m = x;
    } else if (x == m) {  // covers -inf == -inf and +inf == +inf: exp(0) = 1
      s += acc_t(1);
    } else {  // x < m, or x is NaN (which then propagates through s)
      s += acc_exp(x - m);
    }
  }

  // Merge the state of another, disjoint set of values.
  COMPANION_HD COMPANION_INLINE void merge(const OnlineLogSumExp& other) {
    if (other.m > m) {
      s = s * acc_exp(m - other.m) + other.s;
      m = other.m;
    } else if (other.m == m) {
      s += other.s;
    } else {  // other.m < m (other.s may be NaN: it propagates, since NaN * 0 = NaN)
      s += other.s * acc_exp(other.m - m);
    }
  }

  // log(sum exp(x_i)): -inf for no values or all -inf, +inf if any +inf, NaN if any NaN.
  COMPANION_HD COMPANION_INLINE acc_t result() const { return m + acc_log(s); }
};

// ---------------------------------------------------------------------------------------------
// Vectorizable pieces for CPU loops. The compiler cannot vectorize calls to libm's expf without
// -ffast-math (which would also assume there are no infinities), so the chunk sums use exp_poly:
// branch-free arithmetic that GCC/Clang turn into SIMD code under `#pragma omp simd`.
// ---------------------------------------------------------------------------------------------

// Bit casts that compilers keep in SIMD registers (memcpy through a stack slot blocks vectorization).
COMPANION_HD COMPANION_INLINE int32_t companion_float_as_int(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(x);
#else
  return __builtin_bit_cast(int32_t, x);
#endif
}
COMPANION_HD COMPANION_INLINE float companion_int_as_float(int32_t x) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(x);
#else
  return __builtin_bit_cast(float, x);
#endif
}

// exp(x) for float: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the degree-6
// minimax polynomial of Cephes expf (max relative error measured 1.4 ulp on [-87, 0]).
// exp_poly(-inf) = 0, exp_poly(+inf) = +inf, exp_poly(NaN) = NaN; results below 2^-126 flush to 0.
COMPANION_HD COMPANION_INLINE float exp_poly(float x) {
  const float kHi = 88.3762626647949f;   // log(FLT_MAX)
  const float kLo = -87.3365447505531f;  // log(FLT_MIN): 2^n stays a normal number
  // Two flat selects (NaN fails both tests and stays NaN); a nested ?: defeats GCC's if-conversion.
  float xc = x > kHi ? kHi : x;
  xc = xc < kLo ? kLo : xc;
  // n = round(x / ln2) with the 1.5 * 2^23 trick: exact for |n| < 2^22, and the low mantissa bits
  // of t then hold n as an integer.
  const float kShift = 12582912.0f;
  const float t = xc * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  float r = xc - n * 0.693359375f;  // ln2 split in two for an exact product n * ln2_hi
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // 2^n built from its exponent bits: the integer n sits in the low bits of t.
  const int32_t n_int = companion_float_as_int(t) - 0x4B400000;  // minus the bits of kShift
  const float two_n = companion_int_as_float((n_int + 127) << 23);
  float y = p * two_n;
  y = x < kLo ? 0.0f : y;
  y = x > kHi ? static_cast<float>(INFINITY) : y;
  return y;
}

// The double path (used for gradcheck and as a high-precision mode) keeps libm's exp: accuracy
// matters more there than SIMD width.
COMPANION_HD COMPANION_INLINE double exp_poly(double x) { return exp(x); }

// max of x[0..n) (n >= 1), ignoring NaN (the sum pass picks NaN up).
template <typename acc_t>
COMPANION_CPU_SIMD acc_t block_max(const acc_t* __restrict__ x, int64_t n) {
  acc_t m = x[0];
#pragma omp simd reduction(max : m)
  for (int64_t i = 1; i < n; ++i) {
    m = x[i] > m ? x[i] : m;
  }
  return m;
}

// sum_i exp(x_i - m) for a finite m >= max(x); x_i - m lies in [-inf, 0], or is NaN.
// float: SIMD lanes give several partial sums. double (exp is not vectorized anyway): compensated
// (Kahan-Babuska-Neumaier) summation, so the float64 path, the high-precision check of the others, stays
// within about one rounding of the exact result (a plain sequential sum measured 2.7x torch's error).
template <typename acc_t>
COMPANION_CPU_SIMD acc_t block_sum_exp(const acc_t* __restrict__ x, int64_t n, acc_t m) {
  acc_t s = acc_t(0);
  if constexpr (sizeof(acc_t) == sizeof(double)) {
    acc_t c = acc_t(0);  // running compensation: the low-order bits lost from s
    for (int64_t i = 0; i < n; ++i) {
      const acc_t term = exp_poly(x[i] - m);
      const acc_t t = s + term;
      c += s >= term ? (s - t) + term : (term - t) + s;  // terms are >= 0, so compare, not abs
      s = t;
    }
    return s + c;
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) {
      s += exp_poly(x[i] - m);
    }
    return s;
  }
}

// State of a contiguous block x[0..n) (n >= 1) by two passes over it while it sits in L1: a max pass
// and a sum-of-exp pass, both vectorized. Blocks whose max is infinite (rare: all -inf, or a +inf)
// take the exact scalar update path.
template <typename acc_t>
inline OnlineLogSumExp<acc_t> block_state(const acc_t* __restrict__ x, int64_t n) {
  const acc_t m = block_max(x, n);
  if (!(m > -static_cast<acc_t>(INFINITY) && m < static_cast<acc_t>(INFINITY))) {
    OnlineLogSumExp<acc_t> state;
    for (int64_t i = 0; i < n; ++i) state.update(x[i]);
    return state;
  }
  return OnlineLogSumExp<acc_t>(m, block_sum_exp(x, n, m));
}

// bfloat16 -> float for a block: a bfloat16 is the high half of a float's bits, so widening is a shift
// (vectorized, where a per-element conversion call is not). `bits` are the raw bfloat16 values.
COMPANION_CPU_SIMD inline void widen_bfloat16(const uint16_t* __restrict__ bits, float* __restrict__ out,
                                              int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    out[i] = companion_int_as_float(static_cast<int32_t>(static_cast<uint32_t>(bits[i]) << 16));
  }
}

// d lse / d x_i = exp(x_i - lse) = softmax(x)_i, scaled by the incoming gradient g. A row whose lse
// is -inf (all inputs -inf, no mass) gets zero gradient instead of exp(-inf - -inf) = NaN.
template <typename acc_t>
COMPANION_CPU_SIMD void lse_backward_block(const acc_t* __restrict__ x, acc_t* __restrict__ out, int64_t n,
                                           acc_t g, acc_t lse) {
  if (lse == -static_cast<acc_t>(INFINITY)) {
    for (int64_t i = 0; i < n; ++i) out[i] = acc_t(0);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    out[i] = g * exp_poly(x[i] - lse);
  }
}

#if defined(__CUDACC__)
// ------------------------------------------------------------------- CUDA warp and block reductions
// Shared by the log-sum-exp and fused DPO kernels (one block of kThreads threads per row).

// Butterfly merge over the 32 lanes: every lane ends with the warp's state.
template <typename acc_t>
__device__ __forceinline__ OnlineLogSumExp<acc_t> warp_merge(OnlineLogSumExp<acc_t> state) {
  constexpr unsigned kFullMask = 0xffffffffu;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const OnlineLogSumExp<acc_t> other(__shfl_xor_sync(kFullMask, state.m, offset),
                                       __shfl_xor_sync(kFullMask, state.s, offset));
    state.merge(other);
  }
  return state;
}

// Merge the states of all kThreads threads of the block; the result is valid in thread 0.
template <int kThreads, typename acc_t>
__device__ __forceinline__ OnlineLogSumExp<acc_t> block_merge(OnlineLogSumExp<acc_t> state) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "kThreads must be a multiple of 32, at most 1024");
  constexpr int kWarps = kThreads / 32;
  __shared__ acc_t warp_m[kWarps];
  __shared__ acc_t warp_s[kWarps];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  state = warp_merge(state);
  if (lane == 0) {
    warp_m[warp] = state.m;
    warp_s[warp] = state.s;
  }
  __syncthreads();
  if (warp == 0) {
    state = lane < kWarps ? OnlineLogSumExp<acc_t>(warp_m[lane], warp_s[lane]) : OnlineLogSumExp<acc_t>();
    state = warp_merge(state);
  }
  return state;
}
#endif  // defined(__CUDACC__)

}  // namespace companion
