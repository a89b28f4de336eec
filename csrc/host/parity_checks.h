// Argument checks of the sparse-parity ops (parity_sample / pack / unpack, monomial_correlations and its
// backward, the ensemble MLP forward and backward), shared by csrc/cpu/sparse_parity.cpp and
// csrc/cuda/sparse_parity.cu.
//
// Host-only (ATen, TORCH_CHECK). Every tensor must be on a device of `type` ("must be a CPU tensor" /
// "must be a CUDA tensor"). The CUDA file adds its grid limits (subsets, columns, samples, members) after
// these.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Exception.h>

#include "input_checks.h"
#include "popcount_parity.h"

namespace companion {

// Bit-packed signs: int64 words, `dim`-D.
inline void check_packed(const at::Tensor& t, int64_t dim, c10::DeviceType type, const char* op,
                         const char* name) {
  check_device_type(t, type, op, name);
  TORCH_CHECK(t.scalar_type() == at::kLong, op, ": ", name, " must be int64 (bit-packed signs), got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, op, ": ", name, " must be ", dim, "-D, got shape ", t.sizes());
}

// ------------------------------------------------------------------------------------------ sampling

inline void check_parity_sample(int64_t n, int64_t batch, int64_t seed, int64_t start,
                                const at::Tensor& support_mask, c10::DeviceType type, const char* op) {
  TORCH_CHECK(n >= 1, op, ": n must be >= 1, got ", n);
  TORCH_CHECK(batch >= 0, op, ": batch must be >= 0, got ", batch);
  TORCH_CHECK(seed >= 0 && start >= 0, op, ": seed and start must be >= 0, got ", seed, ", ", start);
  const int64_t W = parity::words_for(n);
  check_packed(support_mask, 1, type, op, "support_mask");
  TORCH_CHECK(support_mask.size(0) == W, op, ": support_mask must have ", W, " words for n = ", n, ", got ",
              support_mask.size(0));
}

// x [B, n] of {-1, +1} floats.
inline void check_parity_pack(const at::Tensor& x, c10::DeviceType type, const char* op) {
  check_device_type(x, type, op, "x");
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D [B, n], got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": x must be a float tensor, got ", x.scalar_type());
  TORCH_CHECK(x.size(1) >= 1, op, ": x must have n >= 1 columns, got shape ", x.sizes());
}

// x_packed [B, W] with W = ceil(n / 64).
inline void check_parity_unpack(const at::Tensor& x_packed, int64_t n, c10::DeviceType type, const char* op) {
  check_packed(x_packed, 2, type, op, "x_packed");
  TORCH_CHECK(n >= 1, op, ": n must be >= 1, got ", n);
  const int64_t W = parity::words_for(n);
  TORCH_CHECK(x_packed.size(1) == W, op, ": x_packed must have ", W, " words per row for n = ", n, ", got ",
              x_packed.size(1));
}

// ------------------------------------------------------------------------------------- correlations

// x_packed [N, W] and the subsets masks [S, W], W >= 1.
inline void check_correlation_inputs(const at::Tensor& x_packed, const at::Tensor& masks, c10::DeviceType type,
                                     const char* op) {
  check_packed(x_packed, 2, type, op, "x_packed");
  check_packed(masks, 2, type, op, "masks");
  TORCH_CHECK(x_packed.size(1) >= 1, op, ": x_packed must have at least one word per row, got shape ",
              x_packed.sizes());
  TORCH_CHECK(masks.size(1) == x_packed.size(1), op, ": masks must have as many words per row as x_packed (",
              x_packed.size(1), "), got shape ", masks.sizes());
}

// f [N, C] of monomial_correlations, N >= 1 the rows of x_packed.
inline void check_correlation_f(const at::Tensor& f, int64_t N, c10::DeviceType type, const char* op) {
  check_device_type(f, type, op, "f");
  TORCH_CHECK(f.dim() == 2, op, ": f must be 2-D [N, C], got shape ", f.sizes());
  TORCH_CHECK(f.scalar_type() == at::kFloat || f.scalar_type() == at::kDouble, op,
              ": f must be float32 or float64, got ", f.scalar_type());
  TORCH_CHECK(f.size(0) == N, op, ": f must have one row per row of x_packed (", N, "), got shape ", f.sizes());
  TORCH_CHECK(N >= 1, op, ": the mean over rows needs N >= 1 rows");
}

// grad [S, C] of monomial_correlations_backward, beside x_packed with N >= 1 rows.
inline void check_correlation_grad(const at::Tensor& grad, int64_t N, int64_t S, c10::DeviceType type,
                                   const char* op) {
  check_device_type(grad, type, op, "grad");
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == S, op, ": grad must be [S, C] with S = ", S, ", got shape ",
              grad.sizes());
  TORCH_CHECK(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble, op,
              ": grad must be float32 or float64, got ", grad.scalar_type());
  TORCH_CHECK(N >= 1, op, ": the mean over rows needs N >= 1 rows");
}

// ---------------------------------------------------------------------------------- ensemble MLP

struct EnsembleShape {
  int64_t E, B, n, H, C, W;
  bool shared_x;            // x_packed [B, W] is shared by every member, else [E, B, W]
  int64_t x_member_stride;  // words from one member's x to the next: 0 when shared, else B * W
};

// x_packed [B, W] or [E, B, W], weight1 (transposed) [E, n, H], bias1 [E, H], weight2 [E, C, H].
inline EnsembleShape check_ensemble(const at::Tensor& x_packed, const at::Tensor& w1t, const at::Tensor& b1,
                                    const at::Tensor& w2, c10::DeviceType type, const char* op) {
  check_device_type(x_packed, type, op, "x_packed");
  TORCH_CHECK(x_packed.scalar_type() == at::kLong, op, ": x_packed must be int64 (bit-packed signs), got ",
              x_packed.scalar_type());
  TORCH_CHECK(x_packed.dim() == 2 || x_packed.dim() == 3, op, ": x_packed must be [B, W] or [E, B, W], got shape ",
              x_packed.sizes());
  for (const auto* t : {&w1t, &b1, &w2}) check_device_type(*t, type, op, "weights");
  TORCH_CHECK(w1t.dim() == 3 && b1.dim() == 2 && w2.dim() == 3, op,
              ": weight1 must be [E, n, H], bias1 [E, H], weight2 [E, C, H], got ", w1t.sizes(), ", ", b1.sizes(),
              ", ", w2.sizes());
  EnsembleShape s{};
  s.E = w1t.size(0);
  s.n = w1t.size(1);
  s.H = w1t.size(2);
  s.C = w2.size(1);
  s.W = parity::words_for(s.n);
  s.shared_x = x_packed.dim() == 2;
  s.B = x_packed.size(x_packed.dim() - 2);
  s.x_member_stride = s.shared_x ? 0 : s.B * s.W;
  TORCH_CHECK(s.E >= 1 && s.n >= 1 && s.H >= 1 && s.C >= 1, op, ": E, n, H and C must be >= 1, got weight1 ",
              w1t.sizes(), ", weight2 ", w2.sizes());
  TORCH_CHECK(b1.size(0) == s.E && b1.size(1) == s.H, op, ": bias1 must be [", s.E, ", ", s.H, "], got ", b1.sizes());
  TORCH_CHECK(w2.size(0) == s.E && w2.size(2) == s.H, op, ": weight2 must be [", s.E, ", C, ", s.H, "], got ",
              w2.sizes());
  TORCH_CHECK(x_packed.size(-1) == s.W, op, ": x_packed must have ", s.W, " words per row for n = ", s.n,
              ", got shape ", x_packed.sizes());
  TORCH_CHECK(s.shared_x || x_packed.size(0) == s.E, op, ": x_packed [E, B, W] must have E = ", s.E,
              ", got shape ", x_packed.sizes());
  TORCH_CHECK(w1t.scalar_type() == at::kFloat || w1t.scalar_type() == at::kDouble, op,
              ": weights must be float32 or float64, got ", w1t.scalar_type());
  TORCH_CHECK(b1.scalar_type() == w1t.scalar_type() && w2.scalar_type() == w1t.scalar_type(), op,
              ": weights must share a dtype, got ", w1t.scalar_type(), ", ", b1.scalar_type(), ", ", w2.scalar_type());
  return s;
}

// bias2 [E, C] of the forward, in the weights' dtype.
inline void check_ensemble_bias2(const at::Tensor& b2, const EnsembleShape& s, const at::Tensor& w1t,
                                 c10::DeviceType type, const char* op) {
  check_device_type(b2, type, op, "bias2");
  TORCH_CHECK(b2.dim() == 2 && b2.size(0) == s.E && b2.size(1) == s.C, op, ": bias2 must be [", s.E, ", ", s.C,
              "], got ", b2.sizes());
  TORCH_CHECK(b2.scalar_type() == w1t.scalar_type(), op, ": weights must share a dtype");
}

// grad [E, B, C] of the backward, in the weights' dtype.
inline void check_ensemble_grad(const at::Tensor& grad, const EnsembleShape& s, const at::Tensor& w1t,
                                c10::DeviceType type, const char* op) {
  check_device_type(grad, type, op, "grad");
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == s.E && grad.size(1) == s.B && grad.size(2) == s.C, op,
              ": grad must be [", s.E, ", ", s.B, ", ", s.C, "], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == w1t.scalar_type(), op, ": grad must have the weights' dtype ",
              w1t.scalar_type(), ", got ", grad.scalar_type());
}

}  // namespace companion
