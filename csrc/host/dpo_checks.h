// Argument checks of the fused linear log-prob and DPO ops (token_logps, dpo_loss, fused_linear_dpo and
// their backwards), shared by csrc/cpu/dpo.cpp and csrc/cuda/dpo.cu.
//
// Host-only (ATen, TORCH_CHECK). `device` is where the kernel wants its tensors (check_placed in
// input_checks.h): at::kCPU on CPU, the device of the op's first tensor on CUDA. The range check of the
// targets stays in each kernel file: the CPU one checks each target as it reads it, the CUDA one on the
// GPU.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <initializer_list>
#include <utility>

#include "dpo_loss.h"
#include "input_checks.h"

namespace companion {

// A tensor with its name in the messages.
using NamedTensor = std::pair<const at::Tensor*, const char*>;

inline int dpo_loss_type_from_name(c10::string_view name, const char* op) {
  if (name == "sigmoid") return kDpoSigmoid;
  if (name == "robust") return kDpoRobust;
  if (name == "hinge") return kDpoHinge;
  if (name == "ipo") return kDpoIpo;
  TORCH_CHECK_VALUE(false, op, ": loss_type must be one of sigmoid, robust, hinge, ipo, got '", name, "'");
  return -1;
}

inline DpoParams make_dpo_params(double beta, c10::string_view loss_type, double label_smoothing,
                                 bool reference_free, const char* op) {
  const int type = dpo_loss_type_from_name(loss_type, op);
  TORCH_CHECK_VALUE(beta > 0.0, op, ": beta must be > 0, got ", beta);
  if (type == kDpoRobust) {
    TORCH_CHECK_VALUE(label_smoothing >= 0.0 && label_smoothing < 0.5, op,
                      ": label_smoothing must lie in [0, 0.5) for loss_type 'robust', got ", label_smoothing);
  } else if (type == kDpoSigmoid) {
    TORCH_CHECK_VALUE(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
                      ": label_smoothing must lie in [0, 1], got ", label_smoothing);
  } else {
    TORCH_CHECK_VALUE(label_smoothing == 0.0, op, ": label_smoothing applies to 'sigmoid' and 'robust' only, got ",
                      label_smoothing, " with '", loss_type, "'");
  }
  return DpoParams{beta, label_smoothing, type, reference_free};
}

// The kernels run in float32 or float64 (the float64 path is the high-precision check of the float32 one).
inline void check_float32_or_64(const at::Tensor& t, const at::Device& device, const char* op, const char* name) {
  check_placed(t, device, op, name);
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
                   " must be float32 or float64, got ", t.scalar_type());
}

// int64 labels with n elements (any shape); their values are checked where they are read.
inline void check_targets(const at::Tensor& t, int64_t n, const at::Device& device, const char* op,
                          const char* name) {
  check_placed(t, device, op, name);
  TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, op, ": ", name, " must be int64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.numel() == n, op, ": ", name, " must have ", n, " elements, got shape ", t.sizes());
}

// The unembedding weight [V, H], V > 0, H the hidden size.
inline void check_weight(const at::Tensor& w, int64_t H, const at::Device& device, const char* op) {
  check_float32_or_64(w, device, op, "weight");
  TORCH_CHECK_VALUE(w.dim() == 2, op, ": weight must be 2-D [V, H], got shape ", w.sizes());
  TORCH_CHECK_VALUE(w.size(0) > 0, op, ": weight must have at least one row (V > 0), got shape ", w.sizes());
  TORCH_CHECK_VALUE(w.size(1) == H, op, ": weight must be [V, H] with H = ", H,
                    " (the hidden size), got shape ", w.sizes());
}

// Vectors [n] with the dtype of `like`: per-row gradients and lse, per-pair reference log-probs.
inline void check_vectors(std::initializer_list<NamedTensor> ts, const at::Tensor& like, int64_t n,
                          const at::Device& device, const char* op) {
  for (const auto& [t, name] : ts) {
    check_float32_or_64(*t, device, op, name);
    check_same_dtype(*t, like, op, name);
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == n, op, ": ", name, " must have shape [", n, "], got ",
                      t->sizes());
  }
}

// hidden [N, H] and weight [V, H] of token_logps and its backward.
inline void check_hidden_and_weight(const at::Tensor& hidden, const at::Tensor& weight, const at::Device& device,
                                    const char* op) {
  check_float32_or_64(hidden, device, op, "hidden");
  TORCH_CHECK_VALUE(hidden.dim() == 2, op, ": hidden must be 2-D [N, H], got shape ", hidden.sizes());
  check_weight(weight, hidden.size(1), device, op);
  check_same_dtype(weight, hidden, op, "weight");
}

// The four (or, with grad_losses, five) per-pair vectors of dpo_loss: all [B] like the first.
inline void check_pair_vectors(std::initializer_list<NamedTensor> ts, const at::Device& device, const char* op) {
  const at::Tensor& first = *ts.begin()->first;
  for (const auto& [t, name] : ts) {
    check_float32_or_64(*t, device, op, name);
    check_same_dtype(*t, first, op, name);
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == first.size(0), op, ": ", name, " must have shape [",
                      first.size(0), "] like ", ts.begin()->second, ", got ", t->sizes());
  }
}

// hidden_chosen [B, Tc, H], hidden_rejected [B, Tr, H] and weight [V, H] of fused_linear_dpo.
inline void check_fused_hidden_and_weight(const at::Tensor& hidden_chosen, const at::Tensor& hidden_rejected,
                                          const at::Tensor& weight, const at::Device& device, const char* op) {
  check_float32_or_64(hidden_chosen, device, op, "hidden_chosen");
  TORCH_CHECK_VALUE(hidden_chosen.dim() == 3, op, ": hidden_chosen must be 3-D [B, T, H], got shape ",
                    hidden_chosen.sizes());
  const int64_t B = hidden_chosen.size(0), H = hidden_chosen.size(2);
  check_float32_or_64(hidden_rejected, device, op, "hidden_rejected");
  check_same_dtype(hidden_rejected, hidden_chosen, op, "hidden_rejected");
  TORCH_CHECK_VALUE(hidden_rejected.dim() == 3 && hidden_rejected.size(0) == B && hidden_rejected.size(2) == H,
                    op, ": hidden_rejected must be [B=", B, ", T, H=", H, "], got shape ", hidden_rejected.sizes());
  check_weight(weight, H, device, op);
  check_same_dtype(weight, hidden_chosen, op, "weight");
}

}  // namespace companion
