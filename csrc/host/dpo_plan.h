// Host-side preparation of the fused linear log-prob and DPO ops, shared by csrc/cpu/dpo.cpp and
// csrc/cuda/dpo.cu: the chunking of the logits into [rows, vocabulary] blocks, the checked and contiguous
// per-pair inputs of dpo_loss / dpo_loss_backward with their outputs, and the parsed arguments and shapes of
// fused_linear_dpo. Each device passes its own chunk sizes and device (check_placed in input_checks.h).
//
// Host-only (ATen, TORCH_CHECK); the argument checks themselves are in dpo_checks.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Device.h>
#include <c10/util/string_view.h>

#include <algorithm>
#include <stdint.h>

#include "dpo_checks.h"
#include "dpo_loss.h"

namespace companion {

// The logits z = h @ W^T of `rows` rows and a vocabulary of V, computed one chunk of at most
// rows x vocab entries at a time: rows / vocab are the chunk's extents, num_vocab its chunks along V.
struct LogitChunks {
  int64_t rows;
  int64_t vocab;
  int64_t num_vocab;
};

inline LogitChunks plan_logit_chunks(int64_t rows, int64_t V, int64_t row_chunk, int64_t vocab_chunk) {
  const int64_t R = std::min(row_chunk, rows), Vc = std::min(vocab_chunk, V);
  return {R, Vc, (V + Vc - 1) / Vc};
}

// dpo_loss and dpo_loss_backward after their checks: the loss parameters, the four per-pair log-prob
// vectors [B] made contiguous, and (for the backward) grad_losses [B].
struct DpoLossArgs {
  DpoParams params;
  at::Tensor pc, pr, rc, rr;
  at::Tensor grad;  // grad_losses (backward only; undefined for the forward)
  int64_t B;

  at::Tensor new_pair_vector() const { return at::empty({B}, pc.options()); }  // (B,) like the inputs
};

// grad_losses is nullptr for the forward; for the backward it is checked second, after
// policy_chosen_logps (the shape every vector must have).
inline DpoLossArgs dpo_loss_args(const at::Tensor* grad_losses, const at::Tensor& pc, const at::Tensor& pr,
                                 const at::Tensor& rc, const at::Tensor& rr, double beta, c10::string_view loss_type,
                                 double label_smoothing, bool reference_free, const at::Device& device,
                                 const char* op) {
  const DpoParams params = make_dpo_params(beta, loss_type, label_smoothing, reference_free, op);
  if (grad_losses == nullptr) {
    check_pair_vectors({{&pc, "policy_chosen_logps"}, {&pr, "policy_rejected_logps"},
                        {&rc, "ref_chosen_logps"}, {&rr, "ref_rejected_logps"}}, device, op);
  } else {
    check_pair_vectors({{&pc, "policy_chosen_logps"}, {grad_losses, "grad_losses"},
                        {&pr, "policy_rejected_logps"}, {&rc, "ref_chosen_logps"},
                        {&rr, "ref_rejected_logps"}}, device, op);
  }
  DpoLossArgs args{params, pc.contiguous(), pr.contiguous(), rc.contiguous(), rr.contiguous(), at::Tensor(),
                   pc.size(0)};
  if (grad_losses != nullptr) args.grad = grad_losses->contiguous();
  return args;
}

// fused_linear_dpo's loss parameters and shapes, after check_fused_hidden_and_weight: hidden_chosen
// [B, Tc, H], hidden_rejected [B, Tr, H]. IPO is defined on length-averaged log-probs (TRL averages them for
// 'ipo' whatever else is set).
struct FusedDpoArgs {
  DpoParams params;
  bool average;
  int64_t B, H, Tc, Tr;
};

inline FusedDpoArgs fused_dpo_args(const at::Tensor& hidden_chosen, const at::Tensor& hidden_rejected,
                                   const at::Tensor& weight, double beta, c10::string_view loss_type,
                                   double label_smoothing, bool average_log_prob, bool reference_free,
                                   const at::Device& device, const char* op) {
  const DpoParams params = make_dpo_params(beta, loss_type, label_smoothing, reference_free, op);
  check_fused_hidden_and_weight(hidden_chosen, hidden_rejected, weight, device, op);
  return {params, average_log_prob || params.loss_type == kDpoIpo, hidden_chosen.size(0), hidden_chosen.size(2),
          hidden_chosen.size(1), hidden_rejected.size(1)};
}

}  // namespace companion
