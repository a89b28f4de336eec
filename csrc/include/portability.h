// Portability macros of the torch-free kernel headers, defined once for every header of csrc/include/:
//
//   COMPANION_HD        __host__ __device__ under nvcc / hipcc (one definition serves the CPU and the
//                       CUDA kernels), nothing in plain C++
//   COMPANION_INLINE    always inlined: __forceinline__ under nvcc, inline __attribute__((always_inline))
//                       with GCC / Clang, plain inline elsewhere
//   COMPANION_CPU_SIMD  for the vectorized CPU loops: out of line (inlined into the callers' loops, GCC 12
//                       stops vectorizing them) and, with GCC >= 12 on x86-64, cloned for AVX-512
//                       (x86-64-v4) / AVX2+FMA (x86-64-v3) / baseline SSE2 with the clone picked at load time
//                       (target_clones); out of line only elsewhere. Not for device code.
//
// Torch-free: included by the math headers (counter_hash.h, online_logsumexp.h, dpo_loss.h,
// popcount_parity.h) and through them by csrc/cpu/*.cpp and csrc/cuda/*.cu.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define COMPANION_HD __host__ __device__
#else
#define COMPANION_HD
#endif

#if defined(__CUDACC__)
#define COMPANION_INLINE __forceinline__
#elif defined(__GNUC__)
#define COMPANION_INLINE inline __attribute__((always_inline))
#else
#define COMPANION_INLINE inline
#endif

#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define COMPANION_CPU_SIMD \
  __attribute__((noinline, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__GNUC__) || defined(__clang__)
#define COMPANION_CPU_SIMD __attribute__((noinline))
#else
#define COMPANION_CPU_SIMD
#endif
