// Host-side output allocation of the sparse-parity ops, shared by csrc/cpu/sparse_parity.cpp and
// csrc/cuda/sparse_parity.cu: the packed rows and labels of parity_sample, the packed / unpacked rows of
// parity_pack / parity_unpack, and the logits and gradients of the ensemble MLP.
//
// Host-only (ATen); the argument checks are in parity_checks.h and run first.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <stdint.h>
#include <tuple>

#include "parity_checks.h"

namespace companion {

// parity_sample: x_packed [batch, W] int64 and y [batch] float32, on the support mask's device.
inline std::tuple<at::Tensor, at::Tensor> new_parity_sample(const at::Tensor& support_mask, int64_t batch,
                                                            int64_t W) {
  return {at::empty({batch, W}, support_mask.options()),  // (B, W)
          at::empty({batch}, support_mask.options().dtype(at::kFloat))};  // (B,)
}

// [rows, cols] in `dtype` on the device of `like`: packed words (int64) of parity_pack, signs (float32) of
// parity_unpack.
inline at::Tensor new_rows(const at::Tensor& like, int64_t rows, int64_t cols, at::ScalarType dtype) {
  return at::empty({rows, cols}, like.options().dtype(dtype));
}

// The forward's logits [E, B, C] in the dtype of weight1 (transposed) w1t [E, n, H].
inline at::Tensor new_ensemble_logits(const at::Tensor& w1t, const EnsembleShape& s) {
  return at::empty({s.E, s.B, s.C}, w1t.options());
}

// The backward's gradients: of w1t [E, n, H], b1 [E, H] and w2 [E, C, H] (shaped like them, contiguous) and of
// bias2 [E, C].
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> new_ensemble_grads(
    const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2, const EnsembleShape& s) {
  return {at::empty(w1t.sizes(), w1t.options()), at::empty(b1.sizes(), b1.options()),
          at::empty(w2.sizes(), w2.options()), at::empty({s.E, s.C}, w1t.options())};
}

}  // namespace companion
