// Argument checks of companion::logsumexp and its backward, shared by csrc/cpu/logsumexp.cpp and
// csrc/cuda/logsumexp.cu. Host-only (ATen, TORCH_CHECK); the CUDA file adds its launch limits after these.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Exception.h>

#include "input_checks.h"

namespace companion {

// x [N, V], V > 0, a floating dtype, on a device of `type`.
inline void check_logits(const at::Tensor& x, c10::DeviceType type, const char* op) {
  check_device_type(x, type, op, "x");
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D [N, V], got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op,
              ": x must be float32, float64, bfloat16 or float16, got ", x.scalar_type());
  TORCH_CHECK(x.size(1) > 0, op, ": x must have at least one column (V > 0), got shape ", x.sizes());
}

// grad [N] and lse [N] beside a checked x [N, V], all of one dtype. Where grad and lse live is checked by
// the caller (the two kernels word that message differently).
inline void check_logsumexp_backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& lse) {
  const int64_t N = x.size(0);
  TORCH_CHECK(grad.dim() == 1 && grad.size(0) == N, "companion::logsumexp_backward: grad must have shape [",
              N, "], got ", grad.sizes());
  TORCH_CHECK(lse.dim() == 1 && lse.size(0) == N, "companion::logsumexp_backward: lse must have shape [", N,
              "], got ", lse.sizes());
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && lse.scalar_type() == x.scalar_type(),
              "companion::logsumexp_backward: grad, x and lse must share a dtype, got ", grad.scalar_type(),
              ", ", x.scalar_type(), ", ", lse.scalar_type());
}

}  // namespace companion
