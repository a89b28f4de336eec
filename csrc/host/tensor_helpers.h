// Small host-side tensor helpers that the CPU and CUDA files of several kernel families share: the
// accumulation type of a kernel dtype, rows with unit inner stride, and bit-packed int64 words seen as
// uint64.
//
// Host-only (ATen): included by csrc/cpu/*.cpp and by the host code of csrc/cuda/*.cu, never by the
// torch-free kernel headers of csrc/include/.
#pragma once

#include <ATen/core/Tensor.h>

#include <stdint.h>
#include <type_traits>

namespace companion {

// float and double accumulate in their own type; bfloat16 and float16 are widened to float.
template <typename scalar_t>
using acc_type_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// x [N, V] with unit stride along V (copied only when it is not); any row stride is kept.
inline at::Tensor unit_inner_stride(const at::Tensor& x) { return x.stride(1) == 1 ? x : x.contiguous(); }

// The int64 words of a contiguous bit-packed tensor as uint64 (shifts and masks are on unsigned words).
inline const uint64_t* words_ptr(const at::Tensor& t) {
  return reinterpret_cast<const uint64_t*>(t.const_data_ptr<int64_t>());
}
inline uint64_t* mutable_words_ptr(const at::Tensor& t) {
  return reinterpret_cast<uint64_t*>(t.mutable_data_ptr<int64_t>());
}

}  // namespace companion
