// companion fused linear log-probs and the DPO losses on CUDA: the algorithm of csrc/cpu/dpo.cpp.
//
//   token_logps:   logps[n] = log softmax(hidden[n] @ weight^T)[targets[n]] (0 where ignore_index), lse[n]
//   backward:      dz = a onehot - b softmax(z), grad_hidden = dz @ weight, grad_weight = dz^T @ hidden
//   dpo_loss:      per-pair losses and dL/dh of dpo_loss.h (TRL's DPOTrainer.dpo_loss)
//   fused_linear_dpo: mean DPO loss from hidden states, gradients computed in the same call
//
// Rows are chunked (kRowChunk) and so is the vocabulary (kVocabChunk); only one [rows, vocab] chunk of
// logits exists at a time. Pass 1: a GEMM per chunk (ATen), then lse_chunk_kernel folds each row of the
// chunk into a per-row online (max, sum) state in global memory (one block per row, warp-shuffle and
// shared-memory merges; online_logsumexp.h) and picks up the target logit. Pass 2: the GEMM again, then
// softmax_grad_kernel turns the chunk into dz in place, and two GEMMs accumulate grad_hidden and
// grad_weight. Per-sequence sums, row gathers and the like are ATen ops; the per-pair losses are a small
// kernel over dpo_pair (dpo_loss.h). float32 and float64.
//
// Includes only ATen/torch headers and c10/cuda (no ATen/cuda headers, which pull cuBLAS): the GEMMs are
// reached through the ATen dispatcher. This is the only CUDA file of the op family that touches torch; the
// argument checks and host-side preparation (shared with the CPU file) are in csrc/host/dpo_checks.h and
// csrc/host/dpo_plan.h.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "dpo_checks.h"
#include "dpo_loss.h"
#include "dpo_plan.h"
#include "online_logsumexp.h"

namespace companion {
namespace {

// A 4096 x 4096 float32 chunk is 64 MiB: large enough for the GEMMs to fill a GPU, small next to the
// [N, V] logits it replaces. Not yet tuned on a GPU.
constexpr int64_t kRowChunk = 4096;
constexpr int64_t kVocabChunk = 4096;
constexpr int kThreads = 256;

// ------------------------------------------------------------------------------------------- kernels

// One block per row of a [rows, vlen] logits chunk (vocabulary entries v0 .. v0 + vlen): fold the row into
// the running (m, s) of that row, and store the target logit if the target lies in the chunk.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    lse_chunk_kernel(const scalar_t* __restrict__ z, int64_t vlen, int64_t v0, const int64_t* __restrict__ target,
                     scalar_t* __restrict__ run_m, scalar_t* __restrict__ run_s, scalar_t* __restrict__ target_logit) {
  const int64_t row = blockIdx.x;
  const scalar_t* z_row = z + row * vlen;  // (vlen,)
  const int64_t t = target[row] - v0;      // < 0 or >= vlen: not in this chunk (or no target)
  OnlineLogSumExp<scalar_t> state;
  for (int64_t v = threadIdx.x; v < vlen; v += kThreads) {
    const scalar_t x = z_row[v];
    state.update(x);
    if (v == t) target_logit[row] = x;
  }
  state = block_merge<kThreads>(state);
  if (threadIdx.x == 0) {
    OnlineLogSumExp<scalar_t> running(run_m[row], run_s[row]);
    running.merge(state);
    run_m[row] = running.m;
    run_s[row] = running.s;
  }
}

// In place over a [rows, vlen] chunk: z <- a onehot(target) - b exp(z - lse). grid (ceil(vlen / kThreads), rows).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    softmax_grad_kernel(scalar_t* __restrict__ z, int64_t vlen, int64_t v0, const int64_t* __restrict__ target,
                        const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                        const scalar_t* __restrict__ lse) {
  const int64_t row = blockIdx.y;
  const int64_t v = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (v >= vlen) return;
  scalar_t* zp = z + row * vlen + v;
  const scalar_t bn = b[row];
  scalar_t d = bn != scalar_t(0) ? -bn * acc_exp(*zp - lse[row]) : scalar_t(0);
  if (target[row] - v0 == v) d += a[row];
  *zp = d;
}

template <typename scalar_t>
__global__ void dpo_loss_kernel(const scalar_t* __restrict__ pc, const scalar_t* __restrict__ pr,
                                const scalar_t* __restrict__ rc, const scalar_t* __restrict__ rr, int64_t B,
                                DpoParams params, scalar_t* __restrict__ losses, scalar_t* __restrict__ chosen_rewards,
                                scalar_t* __restrict__ rejected_rewards) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B) return;
  const DpoPair<scalar_t> out = dpo_pair<scalar_t>(pc[i], pr[i], rc[i], rr[i], params);
  losses[i] = out.loss;
  chosen_rewards[i] = out.chosen_reward;
  rejected_rewards[i] = out.rejected_reward;
}

template <typename scalar_t>
__global__ void dpo_loss_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ pc,
                                         const scalar_t* __restrict__ pr, const scalar_t* __restrict__ rc,
                                         const scalar_t* __restrict__ rr, int64_t B, DpoParams params,
                                         scalar_t* __restrict__ grad_logratio) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B) return;
  grad_logratio[i] = grad[i] * dpo_pair<scalar_t>(pc[i], pr[i], rc[i], rr[i], params).dloss_dlogratio;
}

// The fused op's pairs: sequence log-probs seq_logp [2B] (chosen, then rejected; float64) -> per-pair loss
// and dL/dh (float64) and the rewards.
template <typename scalar_t>
__global__ void fused_pairs_kernel(const double* __restrict__ seq_logp, const scalar_t* __restrict__ rc,
                                   const scalar_t* __restrict__ rr, int64_t B, DpoParams params,
                                   double* __restrict__ losses, double* __restrict__ dloss_dlogratio,
                                   scalar_t* __restrict__ chosen_rewards, scalar_t* __restrict__ rejected_rewards) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B) return;
  const DpoPair<double> out = dpo_pair<double>(seq_logp[i], seq_logp[B + i], static_cast<double>(rc[i]),
                                               static_cast<double>(rr[i]), params);
  losses[i] = out.loss;
  dloss_dlogratio[i] = out.dloss_dlogratio;
  chosen_rewards[i] = static_cast<scalar_t>(out.chosen_reward);
  rejected_rewards[i] = static_cast<scalar_t>(out.rejected_reward);
}

unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// ------------------------------------------------------------------------------------------- checks

// int64 labels [n] on `device` in [0, V) or ignore_index; returns them with ignore_index mapped to -1.
// The range check reads one flag back from the GPU (and, on failure, the first bad label).
at::Tensor checked_targets(const at::Tensor& labels, int64_t n, int64_t V, int64_t ignore_index,
                           const at::Device& device, const char* op, const char* name) {
  check_targets(labels, n, device, op, name);
  const at::Tensor flat = labels.reshape({n});
  const at::Tensor ignored = flat.eq(ignore_index);
  const at::Tensor bad = ignored.logical_not().logical_and(flat.lt(0).logical_or(flat.ge(V)));
  if (bad.any().item<bool>()) {
    const int64_t idx = at::nonzero(bad).select(1, 0)[0].item<int64_t>();
    TORCH_CHECK_VALUE(false, op, ": ", name, " holds ", flat[idx].item<int64_t>(), " at flat index ", idx,
                      ", outside [0, V=", V, ") and not ignore_index (", ignore_index, ")");
  }
  return at::where(ignored, at::full({}, -1, flat.options()), flat);
}

// -------------------------------------------------------------------------------------------- passes

// Rows of the logits to compute: row i is h[index[i]] (or h[i] when index is undefined) with target[i]
// (-1: none).
struct PassRows {
  at::Tensor h;       // (M, H), contiguous
  at::Tensor index;   // (rows,) int64, or undefined
  at::Tensor target;  // (rows,) int64
  int64_t size() const { return target.size(0); }
};

at::Tensor chunk_rows(const PassRows& rows, int64_t r0, int64_t rlen, at::Tensor& h_buf) {
  if (!rows.index.defined()) return rows.h.narrow(0, r0, rlen);
  at::Tensor out = h_buf.narrow(0, 0, rlen);
  at::index_select_out(out, rows.h, 0, rows.index.narrow(0, r0, rlen));
  return out;
}

// Pass 1: lse [rows] and target_logit [rows] (left as is where the target is -1).
template <typename scalar_t>
void lse_pass(const PassRows& rows, const at::Tensor& w, at::Tensor& lse, at::Tensor& target_logit) {
  const int64_t N = rows.size(), V = w.size(0), H = w.size(1);
  if (N == 0) return;
  const auto [R, Vc, num_chunks] = plan_logit_chunks(N, V, kRowChunk, kVocabChunk);
  const auto opts = w.options();
  at::Tensor h_buf = rows.index.defined() ? at::empty({R, H}, opts) : at::Tensor();
  at::Tensor z_buf = at::empty({R * Vc}, opts);
  at::Tensor run_m = at::empty({R}, opts), run_s = at::empty({R}, opts);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rlen = std::min(R, N - r0);
    const at::Tensor h_r = chunk_rows(rows, r0, rlen, h_buf);  // (rlen, H)
    run_m.fill_(-std::numeric_limits<double>::infinity());
    run_s.zero_();
    for (int64_t c = 0; c < num_chunks; ++c) {
      const int64_t v0 = c * Vc, vlen = std::min(Vc, V - v0);
      at::Tensor z = z_buf.narrow(0, 0, rlen * vlen).view({rlen, vlen});  // (rlen, vlen)
      at::mm_out(z, h_r, w.narrow(0, v0, vlen).t());
      lse_chunk_kernel<scalar_t><<<static_cast<unsigned>(rlen), kThreads, 0, stream>>>(
          z.const_data_ptr<scalar_t>(), vlen, v0, rows.target.const_data_ptr<int64_t>() + r0,
          run_m.mutable_data_ptr<scalar_t>(), run_s.mutable_data_ptr<scalar_t>(),
          target_logit.mutable_data_ptr<scalar_t>() + r0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    lse.narrow(0, r0, rlen).copy_(run_m.narrow(0, 0, rlen).add(run_s.narrow(0, 0, rlen).log()));
  }
}

// Pass 2: dz = a onehot - b softmax(z) per row; grad_h[index[i]] += dz[i] @ W; grad_w += dz^T @ h.
template <typename scalar_t>
void grad_pass(const PassRows& rows, const at::Tensor& w, const at::Tensor& lse, const at::Tensor& a,
               const at::Tensor& b, at::Tensor& grad_h, at::Tensor& grad_w) {
  const int64_t N = rows.size(), V = w.size(0), H = w.size(1);
  if (N == 0) return;
  const auto [R, Vc, num_chunks] = plan_logit_chunks(N, V, kRowChunk, kVocabChunk);
  const auto opts = w.options();
  at::Tensor h_buf = rows.index.defined() ? at::empty({R, H}, opts) : at::Tensor();
  at::Tensor gh_buf = rows.index.defined() ? at::empty({R, H}, opts) : at::Tensor();
  at::Tensor z_buf = at::empty({R * Vc}, opts);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rlen = std::min(R, N - r0);
    const at::Tensor h_r = chunk_rows(rows, r0, rlen, h_buf);  // (rlen, H)
    at::Tensor gh_r = rows.index.defined() ? gh_buf.narrow(0, 0, rlen).zero_() : grad_h.narrow(0, r0, rlen);
    for (int64_t c = 0; c < num_chunks; ++c) {
      const int64_t v0 = c * Vc, vlen = std::min(Vc, V - v0);
      at::Tensor z = z_buf.narrow(0, 0, rlen * vlen).view({rlen, vlen});  // (rlen, vlen)
      const at::Tensor w_c = w.narrow(0, v0, vlen);                       // (vlen, H)
      at::mm_out(z, h_r, w_c.t());
      const dim3 grid(blocks_for(vlen, kThreads), static_cast<unsigned>(rlen));
      softmax_grad_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
          z.mutable_data_ptr<scalar_t>(), vlen, v0, rows.target.const_data_ptr<int64_t>() + r0,
          a.const_data_ptr<scalar_t>() + r0, b.const_data_ptr<scalar_t>() + r0, lse.const_data_ptr<scalar_t>() + r0);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      gh_r.addmm_(z, w_c);                            // (rlen, H) += (rlen, vlen) @ (vlen, H)
      grad_w.narrow(0, v0, vlen).addmm_(z.t(), h_r);  // (vlen, H) += (vlen, rlen) @ (rlen, H)
    }
    if (rows.index.defined()) grad_h.index_add_(0, rows.index.narrow(0, r0, rlen), gh_r);
  }
}

// ------------------------------------------------------------------------------------------------ ops

std::tuple<at::Tensor, at::Tensor> token_logps_cuda(const at::Tensor& hidden_in, const at::Tensor& weight_in,
                                                    const at::Tensor& targets_in, int64_t ignore_index) {
  const char* op = "companion::token_logps";
  const c10::cuda::CUDAGuard device_guard(hidden_in.device());
  const at::Device device = hidden_in.device();
  check_hidden_and_weight(hidden_in, weight_in, device, op);
  const int64_t N = hidden_in.size(0), H = hidden_in.size(1);
  const at::Tensor hidden = hidden_in.contiguous(), weight = weight_in.contiguous();
  const int64_t V = weight.size(0);
  const at::Tensor target = checked_targets(targets_in, N, V, ignore_index, device, op, "targets");
  at::Tensor lse = at::empty({N}, hidden.options());          // (N,)
  at::Tensor target_logit = at::zeros({N}, hidden.options());  // (N,)
  AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "companion_token_logps_cuda", [&] {
    lse_pass<scalar_t>(PassRows{hidden, at::Tensor(), target}, weight, lse, target_logit);
  });
  at::Tensor logps = at::where(target.lt(0), at::zeros({}, hidden.options()), target_logit.sub(lse));
  return {logps, lse};
}

std::tuple<at::Tensor, at::Tensor> token_logps_backward_cuda(const at::Tensor& grad_logps, const at::Tensor& grad_lse,
                                                             const at::Tensor& hidden_in, const at::Tensor& weight_in,
                                                             const at::Tensor& targets_in, const at::Tensor& lse_in,
                                                             int64_t ignore_index) {
  const char* op = "companion::token_logps_backward";
  const c10::cuda::CUDAGuard device_guard(hidden_in.device());
  const at::Device device = hidden_in.device();
  check_hidden_and_weight(hidden_in, weight_in, device, op);
  const int64_t N = hidden_in.size(0), H = hidden_in.size(1);
  check_vectors({{&grad_logps, "grad_logps"}, {&grad_lse, "grad_lse"}, {&lse_in, "lse"}}, hidden_in, N, device, op);
  const at::Tensor hidden = hidden_in.contiguous(), weight = weight_in.contiguous();
  const int64_t V = weight.size(0);
  const at::Tensor target = checked_targets(targets_in, N, V, ignore_index, device, op, "targets");
  const at::Tensor a = at::where(target.lt(0), at::zeros({}, hidden.options()), grad_logps).contiguous();
  const at::Tensor b = a.sub(grad_lse).contiguous();
  const at::Tensor lse = lse_in.contiguous();
  at::Tensor grad_hidden = at::zeros({N, H}, hidden.options());
  at::Tensor grad_weight = at::zeros({V, H}, hidden.options());
  AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "companion_token_logps_backward_cuda", [&] {
    grad_pass<scalar_t>(PassRows{hidden, at::Tensor(), target}, weight, lse, a, b, grad_hidden, grad_weight);
  });
  return {grad_hidden, grad_weight};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpo_loss_cuda(const at::Tensor& pc_in, const at::Tensor& pr_in,
                                                             const at::Tensor& rc_in, const at::Tensor& rr_in,
                                                             double beta, c10::string_view loss_type,
                                                             double label_smoothing, bool reference_free) {
  const char* op = "companion::dpo_loss";
  const c10::cuda::CUDAGuard device_guard(pc_in.device());
  const DpoLossArgs args = dpo_loss_args(nullptr, pc_in, pr_in, rc_in, rr_in, beta, loss_type, label_smoothing,
                                         reference_free, pc_in.device(), op);
  const auto& [params, pc, pr, rc, rr, grad, B] = args;
  at::Tensor losses = args.new_pair_vector(), cr = args.new_pair_vector(), rj = args.new_pair_vector();
  if (B == 0) return {losses, cr, rj};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(pc.scalar_type(), "companion_dpo_loss_cuda", [&] {
    dpo_loss_kernel<scalar_t><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(
        pc.const_data_ptr<scalar_t>(), pr.const_data_ptr<scalar_t>(), rc.const_data_ptr<scalar_t>(),
        rr.const_data_ptr<scalar_t>(), B, params, losses.mutable_data_ptr<scalar_t>(), cr.mutable_data_ptr<scalar_t>(),
        rj.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {losses, cr, rj};
}

at::Tensor dpo_loss_backward_cuda(const at::Tensor& grad_in, const at::Tensor& pc_in, const at::Tensor& pr_in,
                                  const at::Tensor& rc_in, const at::Tensor& rr_in, double beta,
                                  c10::string_view loss_type, double label_smoothing, bool reference_free) {
  const char* op = "companion::dpo_loss_backward";
  const c10::cuda::CUDAGuard device_guard(pc_in.device());
  const DpoLossArgs args = dpo_loss_args(&grad_in, pc_in, pr_in, rc_in, rr_in, beta, loss_type, label_smoothing,
                                         reference_free, pc_in.device(), op);
  const auto& [params, pc, pr, rc, rr, g, B] = args;
  at::Tensor grad_logratio = args.new_pair_vector();
  if (B == 0) return grad_logratio;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(pc.scalar_type(), "companion_dpo_loss_backward_cuda", [&] {
    dpo_loss_backward_kernel<scalar_t><<<blocks_for(B, kThreads), kThreads, 0, stream>>>(
        g.const_data_ptr<scalar_t>(), pc.const_data_ptr<scalar_t>(), pr.const_data_ptr<scalar_t>(),
        rc.const_data_ptr<scalar_t>(), rr.const_data_ptr<scalar_t>(), B, params,
        grad_logratio.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_logratio;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> fused_linear_dpo_cuda(
    const at::Tensor& hidden_chosen_in, const at::Tensor& hidden_rejected_in, const at::Tensor& weight_in,
    const at::Tensor& labels_chosen, const at::Tensor& labels_rejected, const at::Tensor& ref_chosen_in,
    const at::Tensor& ref_rejected_in, double beta, c10::string_view loss_type, double label_smoothing,
    bool average_log_prob, bool reference_free, int64_t ignore_index, bool compute_grad) {
  const char* op = "companion::fused_linear_dpo";
  const c10::cuda::CUDAGuard device_guard(hidden_chosen_in.device());
  const at::Device device = hidden_chosen_in.device();
  const auto [params, average, B, H, Tc, Tr] = fused_dpo_args(hidden_chosen_in, hidden_rejected_in, weight_in, beta,
                                                              loss_type, label_smoothing, average_log_prob,
                                                              reference_free, device, op);
  check_vectors({{&ref_chosen_in, "ref_chosen_logps"}, {&ref_rejected_in, "ref_rejected_logps"}}, hidden_chosen_in, B,
                device, op);
  const int64_t Nc = B * Tc, Nr = B * Tr;
  const at::Tensor weight = weight_in.contiguous();
  const int64_t V = weight.size(0);
  const at::Tensor tc = checked_targets(labels_chosen, Nc, V, ignore_index, device, op, "labels_chosen");
  const at::Tensor tr = checked_targets(labels_rejected, Nr, V, ignore_index, device, op, "labels_rejected");
  const auto opts = hidden_chosen_in.options();
  const auto long_opts = tc.options();
  // All rows of both sides (chosen first), their sequence (b, or B + b) and the active ones.
  const at::Tensor h_all = at::cat({hidden_chosen_in.reshape({Nc, H}), hidden_rejected_in.reshape({Nr, H})}).contiguous();
  const at::Tensor t_all = at::cat({tc, tr});
  const at::Tensor seq_all =
      at::cat({at::arange(Nc, long_opts).floor_divide(std::max<int64_t>(Tc, 1)),
               at::arange(Nr, long_opts).floor_divide(std::max<int64_t>(Tr, 1)).add(B)});
  const at::Tensor active = at::nonzero(t_all.ge(0)).select(1, 0).contiguous();  // (Nact,)
  const PassRows rows{h_all, active, t_all.index_select(0, active).contiguous()};
  const at::Tensor seq = seq_all.index_select(0, active);
  const int64_t Nact = active.size(0);
  at::Tensor lse = at::empty({Nact}, opts), target_logit = at::zeros({Nact}, opts);
  at::Tensor loss = at::empty({}, opts), chosen_rewards = at::empty({B}, opts), rejected_rewards = at::empty({B}, opts);
  at::Tensor grad_logratio = at::empty({B}, opts);
  at::Tensor grad_hc = at::empty({0}, opts), grad_hr = at::empty({0}, opts), grad_w = at::empty({0}, opts);
  const auto dopts = opts.dtype(at::kDouble);
  AT_DISPATCH_FLOATING_TYPES(opts.dtype().toScalarType(), "companion_fused_linear_dpo_cuda", [&] {
    lse_pass<scalar_t>(rows, weight, lse, target_logit);
    // Sequence log-probs in float64 (the sum over T is where float32 loses most).
    at::Tensor seq_logp = at::zeros({2 * B}, dopts).index_add_(0, seq, target_logit.sub(lse).to(at::kDouble));
    at::Tensor count = at::zeros({2 * B}, dopts).index_add_(0, seq, at::ones({Nact}, dopts));
    at::Tensor scale = average ? count.clamp_min(1.0).reciprocal() : at::ones({2 * B}, dopts);
    seq_logp.mul_(scale);
    at::Tensor losses = at::empty({B}, dopts), dh = at::empty({B}, dopts);
    if (B > 0) {
      const at::Tensor rc = ref_chosen_in.contiguous(), rr = ref_rejected_in.contiguous();
      fused_pairs_kernel<scalar_t><<<blocks_for(B, kThreads), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          seq_logp.const_data_ptr<double>(), rc.const_data_ptr<scalar_t>(), rr.const_data_ptr<scalar_t>(), B, params,
          losses.mutable_data_ptr<double>(), dh.mutable_data_ptr<double>(),
          chosen_rewards.mutable_data_ptr<scalar_t>(), rejected_rewards.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    dh.div_(static_cast<double>(std::max<int64_t>(B, 1)));  // of the mean over pairs
    loss.copy_(losses.sum().div(static_cast<double>(std::max<int64_t>(B, 1))));
    grad_logratio.copy_(dh);
    if (!compute_grad) return;
    // d loss / d logp_token = dh * scale (chosen) or -dh * scale (rejected); log_softmax' = onehot - p.
    const at::Tensor coef_seq = at::cat({dh, dh.neg()}).mul_(scale);                 // (2B,)
    const at::Tensor coef = coef_seq.index_select(0, seq).to(opts.dtype()).contiguous();  // (Nact,)
    at::Tensor grad_h_all = at::zeros({Nc + Nr, H}, opts);
    grad_w = at::zeros({V, H}, opts);
    grad_pass<scalar_t>(rows, weight, lse, coef, coef, grad_h_all, grad_w);
    grad_hc = grad_h_all.narrow(0, 0, Nc).reshape({B, Tc, H}).clone();
    grad_hr = grad_h_all.narrow(0, Nc, Nr).reshape({B, Tr, H}).clone();
  });
  return {loss, chosen_rewards, rejected_rewards, grad_hc, grad_hr, grad_w, grad_logratio};
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CUDA, m) {
  m.impl("token_logps", &token_logps_cuda);
  m.impl("token_logps_backward", &token_logps_backward_cuda);
  m.impl("dpo_loss", &dpo_loss_cuda);
  m.impl("dpo_loss_backward", &dpo_loss_backward_cuda);
  m.impl("fused_linear_dpo", &fused_linear_dpo_cuda);
}

}  // namespace companion
