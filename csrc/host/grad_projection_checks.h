// Argument checks of the gradient projection ops (random_signs_fill, project, grad_project_dense,
// grad_project_kronecker), shared by csrc/cpu/grad_projection.cpp and csrc/cuda/grad_projection.cu.
//
// Host-only (ATen, TORCH_CHECK). The op's first tensor must be on a device of `type`; the others follow it
// (check_placed in input_checks.h). The CUDA file adds its grid limit on the projection width after these.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/DeviceType.h>
#include <c10/util/Exception.h>

#include <optional>
#include <stdint.h>

#include "counter_hash.h"
#include "input_checks.h"

namespace companion {

// Columns of the implicit sign matrix are uint32 (counter_hash.h): col_offset + cols <= 2^32.
constexpr uint64_t kColLimit = uint64_t(1) << 32;

inline void check_floating(const at::Tensor& t, const at::Device& device, const char* op, const char* name) {
  check_placed(t, device, op, name);
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be float32, float64, bfloat16 or float16, got ", t.scalar_type());
}

// A projection width k (proj_dim, k_out or k_in) and the first row of R it reads.
inline void check_proj(int64_t k, int64_t row_offset, const char* op, const char* k_name = "proj_dim") {
  TORCH_CHECK(k > 0, op, ": ", k_name, " must be positive, got ", k);
  TORCH_CHECK(static_cast<uint64_t>(k) <= kColLimit, op, ": ", k_name, " must be at most 2^32, got ", k);
  TORCH_CHECK(row_offset >= 0, op, ": row_offset must be non-negative, got ", row_offset);
}

// out [rows, cols] of random_signs_fill: float32 or float64, unit column stride, inside R's index domain.
inline void check_random_signs_out(const at::Tensor& out, int64_t row_offset, int64_t col_offset,
                                   c10::DeviceType type, const char* op) {
  check_device_type(out, type, op, "out");
  TORCH_CHECK(out.dim() == 2, op, ": out must be 2-D [rows, cols], got shape ", out.sizes());
  TORCH_CHECK(out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble, op,
              ": out must be float32 or float64, got ", out.scalar_type());
  TORCH_CHECK(out.size(1) == 0 || out.stride(1) == 1, op, ": out must have unit column stride");
  TORCH_CHECK(row_offset >= 0, op, ": row_offset must be non-negative, got ", row_offset);
  TORCH_CHECK(col_offset >= 0 &&
                  static_cast<uint64_t>(col_offset) + static_cast<uint64_t>(out.size(1)) <= kColLimit,
              op, ": columns must lie in [0, 2^32): col_offset=", col_offset, ", cols=", out.size(1));
}

// x [N, D] of project.
inline void check_project_input(const at::Tensor& x, c10::DeviceType type, const char* op) {
  check_device_type(x, type, op, "x");
  check_floating(x, x.device(), op, "x");
  TORCH_CHECK(x.dim() == 2, op, ": x must be 2-D [N, D], got shape ", x.sizes());
}

// A linear layer's activations a [N, T, d_in] and output gradients g [N, T, d_out].
inline void check_pair(const at::Tensor& a, const at::Tensor& g, c10::DeviceType type, const char* op) {
  check_device_type(a, type, op, "activations");
  check_floating(a, a.device(), op, "activations");
  check_floating(g, a.device(), op, "output_grads");
  TORCH_CHECK(a.dim() == 3, op, ": activations must be 3-D [N, T, d_in], got shape ", a.sizes());
  TORCH_CHECK(g.dim() == 3, op, ": output_grads must be 3-D [N, T, d_out], got shape ", g.sizes());
  TORCH_CHECK(a.size(0) == g.size(0), op, ": activations and output_grads disagree on N: ", a.size(0), " vs ",
              g.size(0));
  TORCH_CHECK(a.size(1) == g.size(1), op, ": activations and output_grads disagree on T: ", a.size(1), " vs ",
              g.size(1));
}

// Adam's moments of the weight [d_out, d_in] (LESS), both or neither, on `device`.
inline void check_adam_state(const std::optional<at::Tensor>& exp_avg, const std::optional<at::Tensor>& exp_avg_sq,
                             int64_t d_out, int64_t d_in, const at::Device& device, const char* op) {
  TORCH_CHECK(exp_avg.has_value() == exp_avg_sq.has_value(), op,
              ": exp_avg and exp_avg_sq must be given together");
  if (!exp_avg.has_value()) return;
  for (const at::Tensor* s : {&*exp_avg, &*exp_avg_sq}) {
    const char* name = s == &*exp_avg ? "exp_avg" : "exp_avg_sq";
    check_floating(*s, device, op, name);
    TORCH_CHECK(s->dim() == 2 && s->size(0) == d_out && s->size(1) == d_in, op, ": ", name,
                " must have the weight's shape [d_out, d_in] = [", d_out, ", ", d_in, "], got ", s->sizes());
  }
}

// LoGra's two widths: P_in takes columns [0, k_in) of R and P_out [2^31, 2^31 + k_out).
inline void check_kronecker_widths(int64_t k_out, int64_t k_in, int64_t row_offset, const char* op) {
  check_proj(k_out, row_offset, op, "k_out");
  check_proj(k_in, row_offset, op, "k_in");
  TORCH_CHECK(static_cast<uint64_t>(k_out) <= kKroneckerOutColOffset, op, ": k_out must be at most 2^31");
  TORCH_CHECK(static_cast<uint64_t>(k_in) <= kKroneckerOutColOffset, op, ": k_in must be at most 2^31");
}

}  // namespace companion
