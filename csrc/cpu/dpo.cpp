// companion fused linear log-probs and the DPO losses on CPU.
//
//   token_logps:   logps[n] = log softmax(hidden[n] @ weight^T)[targets[n]]  (0 where targets[n] is
//                  ignore_index), lse[n] = log sum_v exp(hidden[n] . weight[v])
//                  hidden [N, H], weight [V, H] (the unembedding), targets [N] -> logps [N], lse [N]
//   backward:      dz[n, v] = a[n] onehot(targets[n])_v - b[n] softmax(z[n])_v,  a = grad_logps (0 where
//                  ignored), b = a - grad_lse;  grad_hidden = dz @ weight, grad_weight = dz^T @ hidden
//   dpo_loss:      the per-pair losses of dpo_loss.h (TRL's DPOTrainer.dpo_loss), and dL/dh
//   fused_linear_dpo: mean DPO loss straight from the hidden states of chosen and rejected sequences,
//                  with every gradient computed in the same call (as Liger's fused linear preference loss)
//
// The logits z = hidden @ weight^T never exist beyond one [kRowChunk, kVocabChunk] chunk. Rows (only those
// with a target, or a non-zero gradient) are gathered into chunks; a chunk's logits are one ATen GEMM per
// vocabulary chunk, folded into per-row online log-sum-exp states (online_logsumexp.h, Milakov &
// Gimelshein 2018) with the target logit picked up on the way (pass 1). The gradient (pass 2) recomputes
// each chunk's logits, turns them in place into dz with the vectorized softmax_grad_block (dpo_loss.h),
// and accumulates grad_hidden (dz @ W_c) and grad_weight (dz^T @ h) with two more GEMMs: 4 GEMMs of
// N x V x H in all against the 3 of a materialized implementation, in exchange for O(chunk) memory; the
// fused DPO op needs the pass-1 sequence log-probs of both sides before any dz is known, so it cannot
// skip the recomputation without holding a pair's full [2T, V] logits.
// Threads (at::parallel_for, one region per row chunk and pass) own fixed runs of vocabulary chunks and run
// their chunk's GEMMs (ATen, single-threaded inside the region) and element-wise loops on their own.
// float32 and float64; the float64 path is the high-precision check of the float32 one.
//
// This is the only CPU file of the op family that touches torch; the math lives in dpo_loss.h and
// online_logsumexp.h, the argument checks and host-side preparation (shared with the CUDA file) in
// csrc/host/dpo_checks.h and csrc/host/dpo_plan.h.
#include <ATen/Dispatch.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dpo_checks.h"
#include "dpo_loss.h"
#include "dpo_plan.h"
#include "online_logsumexp.h"

namespace companion {
namespace {

// Chunk of the logits: kRowChunk rows x kVocabChunk vocabulary entries, 2 MiB in float32 per worker thread
// (one chunk per thread in flight, about the L2 of one core of the dev machine), so the element-wise
// passes that follow each GEMM read it from cache. Chosen, not swept: at B=4 pairs, T=256, H=256, V=16384
// (benchmarks/bench_dpo.py) the 4 GEMMs are ~0.35-0.40 s of the forward+backward (one [2048, 256] x
// [256, 16384] GEMM measured 0.085-0.10 s through ATen on the same machine), so the chunk shape can win
// at most the remaining element-wise share.
constexpr int64_t kRowChunk = 1024;
constexpr int64_t kVocabChunk = 512;

// The rows of the logits to compute: where their hidden state is, and their target (-1: none).
template <typename scalar_t>
struct Rows {
  std::vector<const scalar_t*> h;
  std::vector<int64_t> target;
  void push(const scalar_t* row, int64_t t) {
    h.push_back(row);
    target.push_back(t);
  }
  int64_t size() const { return static_cast<int64_t>(h.size()); }
};

// Copy rows [r0, r0 + len) of `rows` into the first `len` rows of buf [R, H].
template <typename scalar_t>
void gather_rows(const Rows<scalar_t>& rows, int64_t r0, int64_t len, scalar_t* buf, int64_t H) {
  for (int64_t i = 0; i < len; ++i) std::memcpy(buf + i * H, rows.h[r0 + i], sizeof(scalar_t) * H);
}

// Runs fn(worker, chunk) for every vocabulary chunk inside a single parallel region: worker w owns the
// contiguous chunks [w C / W, (w + 1) C / W) and visits them in order. Each worker's GEMMs run
// single-threaded (ATen and MKL do not nest inside a parallel region), so the only barrier is the region's
// end (a chunk-by-chunk version with multithreaded GEMMs measured 1.45 s instead of 0.52 s per
// forward+backward when one other process was busy on the 2-core dev machine). The assignment is static,
// not first-come: the workers' partial sums (grad_h, the online log-sum-exp states) are then summed in a
// fixed order, so the same inputs give the same bits on every call (a dynamic hand-out made backward
// non-reentrant, which gradcheck caught).
template <typename Fn>
void for_each_vocab_chunk(int64_t num_chunks, int64_t num_workers, const Fn& fn) {
  at::parallel_for(0, num_workers, 1, [&](int64_t begin, int64_t end) {
    // Worker threads do not inherit the caller's dispatch state: without this guard the chunk GEMMs would
    // go through autograd again (and refuse out= on a weight that requires grad).
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    for (int64_t worker = begin; worker < end; ++worker) {
      const int64_t first = worker * num_chunks / num_workers, last = (worker + 1) * num_chunks / num_workers;
      for (int64_t c = first; c < last; ++c) fn(worker, c);
    }
  });
}

int64_t workers_for(int64_t num_chunks) { return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), num_chunks)); }

// Pass 1: lse[i] and the target logit z[i, target[i]] of every row (target_logit untouched where target
// is -1). One GEMM of rows x V x H in chunks.
template <typename scalar_t>
void lse_pass(const Rows<scalar_t>& rows, const at::Tensor& w, scalar_t* lse, scalar_t* target_logit) {
  const int64_t N = rows.size(), V = w.size(0), H = w.size(1);
  if (N == 0) return;
  const auto [R, Vc, num_chunks] = plan_logit_chunks(N, V, kRowChunk, kVocabChunk);
  const int64_t num_workers = workers_for(num_chunks);
  at::Tensor h_buf = at::empty({R, H}, w.options());                 // (R, H)
  at::Tensor z_buf = at::empty({num_workers, R * Vc}, w.options());  // a chunk of logits per worker
  // per worker, per row of the row chunk: the online state over the worker's vocabulary chunks
  std::vector<OnlineLogSumExp<scalar_t>> state(num_workers * R);
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rlen = std::min(R, N - r0);
    gather_rows(rows, r0, rlen, h_buf.mutable_data_ptr<scalar_t>(), H);
    const at::Tensor h_r = h_buf.narrow(0, 0, rlen);  // (rlen, H)
    std::fill(state.begin(), state.end(), OnlineLogSumExp<scalar_t>());
    for_each_vocab_chunk(num_chunks, num_workers, [&](int64_t worker, int64_t c) {
      const int64_t v0 = c * Vc, vlen = std::min(Vc, V - v0);
      at::Tensor z = z_buf[worker].narrow(0, 0, rlen * vlen).view({rlen, vlen});  // (rlen, vlen)
      at::mm_out(z, h_r, w.narrow(0, v0, vlen).t());
      const scalar_t* zp = z.const_data_ptr<scalar_t>();
      OnlineLogSumExp<scalar_t>* st = state.data() + worker * R;
      for (int64_t i = 0; i < rlen; ++i) {
        const scalar_t* z_row = zp + i * vlen;
        st[i].merge(block_state<scalar_t>(z_row, vlen));
        const int64_t t = rows.target[r0 + i] - v0;
        if (t >= 0 && t < vlen) target_logit[r0 + i] = z_row[t];  // one chunk holds the target
      }
    });
    for (int64_t i = 0; i < rlen; ++i) {
      OnlineLogSumExp<scalar_t> total;
      for (int64_t k = 0; k < num_workers; ++k) total.merge(state[k * R + i]);
      lse[r0 + i] = total.result();
    }
  }
}

// Pass 2: dz[i] = a[i] onehot(target[i]) - b[i] softmax(z[i]) for every row, grad_h_rows[i] = dz[i] @ W
// (written), grad_w += dz^T @ h. Three GEMMs of rows x V x H in chunks (one recomputes the logits). The
// workers own disjoint vocabulary chunks, hence disjoint rows of grad_w; each sums its own grad_h.
template <typename scalar_t>
void grad_pass(const Rows<scalar_t>& rows, const at::Tensor& w, const scalar_t* lse, const scalar_t* a,
               const scalar_t* b, const std::vector<scalar_t*>& grad_h_rows, at::Tensor& grad_w) {
  const int64_t N = rows.size(), V = w.size(0), H = w.size(1);
  if (N == 0) return;
  const auto [R, Vc, num_chunks] = plan_logit_chunks(N, V, kRowChunk, kVocabChunk);
  const int64_t num_workers = workers_for(num_chunks);
  at::Tensor h_buf = at::empty({R, H}, w.options());                 // (R, H)
  at::Tensor gh_buf = at::empty({num_workers, R, H}, w.options());   // grad of the chunk's rows, per worker
  at::Tensor z_buf = at::empty({num_workers, R * Vc}, w.options());
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rlen = std::min(R, N - r0);
    gather_rows(rows, r0, rlen, h_buf.mutable_data_ptr<scalar_t>(), H);
    const at::Tensor h_r = h_buf.narrow(0, 0, rlen);  // (rlen, H)
    gh_buf.zero_();
    for_each_vocab_chunk(num_chunks, num_workers, [&](int64_t worker, int64_t c) {
      const int64_t v0 = c * Vc, vlen = std::min(Vc, V - v0);
      at::Tensor z = z_buf[worker].narrow(0, 0, rlen * vlen).view({rlen, vlen});  // (rlen, vlen)
      const at::Tensor w_c = w.narrow(0, v0, vlen);                               // (vlen, H)
      at::mm_out(z, h_r, w_c.t());
      scalar_t* zp = z.mutable_data_ptr<scalar_t>();
      for (int64_t i = 0; i < rlen; ++i) {
        scalar_t* z_row = zp + i * vlen;
        const int64_t n = r0 + i;
        if (b[n] != scalar_t(0)) {
          softmax_grad_block<scalar_t>(z_row, vlen, b[n], lse[n]);
        } else {
          std::fill(z_row, z_row + vlen, scalar_t(0));
        }
        const int64_t t = rows.target[n] - v0;
        if (t >= 0 && t < vlen) z_row[t] += a[n];
      }
      gh_buf[worker].narrow(0, 0, rlen).addmm_(z, w_c);  // (rlen, H) += (rlen, vlen) @ (vlen, H)
      grad_w.narrow(0, v0, vlen).addmm_(z.t(), h_r);     // (vlen, H) += (vlen, rlen) @ (rlen, H)
    });
    const scalar_t* ghp = gh_buf.const_data_ptr<scalar_t>();
    for (int64_t i = 0; i < rlen; ++i) {
      scalar_t* out = grad_h_rows[r0 + i];
      std::memcpy(out, ghp + i * H, sizeof(scalar_t) * H);
      for (int64_t k = 1; k < num_workers; ++k) {
        const scalar_t* part = ghp + (k * R + i) * H;
        for (int64_t j = 0; j < H; ++j) out[j] += part[j];
      }
    }
  }
}

// Target of row n for the kernels: -1 when ignored; anything else outside [0, V) is an error.
inline int64_t checked_target(int64_t t, int64_t n, int64_t V, int64_t ignore_index, const char* op,
                              const char* name) {
  if (t == ignore_index) return -1;
  TORCH_CHECK_VALUE(t >= 0 && t < V, op, ": ", name, " holds ", t, " at flat index ", n,
                    ", outside [0, V=", V, ") and not ignore_index (", ignore_index, ")");
  return t;
}

// ------------------------------------------------------------------------------------- token_logps

std::tuple<at::Tensor, at::Tensor> token_logps_cpu(const at::Tensor& hidden_in, const at::Tensor& weight_in,
                                                   const at::Tensor& targets_in, int64_t ignore_index) {
  const char* op = "companion::token_logps";
  check_hidden_and_weight(hidden_in, weight_in, at::kCPU, op);
  const int64_t N = hidden_in.size(0), H = hidden_in.size(1);
  check_targets(targets_in, N, at::kCPU, op, "targets");
  const at::Tensor hidden = hidden_in.contiguous(), weight = weight_in.contiguous();
  const at::Tensor targets = targets_in.contiguous();
  const int64_t V = weight.size(0);
  at::Tensor logps = at::empty({N}, hidden.options());  // (N,)
  at::Tensor lse = at::empty({N}, hidden.options());    // (N,)
  AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "companion_token_logps_cpu", [&] {
    const scalar_t* h = hidden.const_data_ptr<scalar_t>();
    const int64_t* tp = targets.const_data_ptr<int64_t>();
    Rows<scalar_t> rows;
    rows.h.reserve(N);
    rows.target.reserve(N);
    for (int64_t n = 0; n < N; ++n) rows.push(h + n * H, checked_target(tp[n], n, V, ignore_index, op, "targets"));
    std::vector<scalar_t> target_logit(N, scalar_t(0));
    scalar_t* lse_p = lse.mutable_data_ptr<scalar_t>();
    lse_pass<scalar_t>(rows, weight, lse_p, target_logit.data());
    scalar_t* out = logps.mutable_data_ptr<scalar_t>();
    for (int64_t n = 0; n < N; ++n) out[n] = rows.target[n] < 0 ? scalar_t(0) : target_logit[n] - lse_p[n];
  });
  return {logps, lse};
}

std::tuple<at::Tensor, at::Tensor> token_logps_backward_cpu(const at::Tensor& grad_logps,
                                                            const at::Tensor& grad_lse,
                                                            const at::Tensor& hidden_in,
                                                            const at::Tensor& weight_in,
                                                            const at::Tensor& targets_in,
                                                            const at::Tensor& lse_in, int64_t ignore_index) {
  const char* op = "companion::token_logps_backward";
  check_hidden_and_weight(hidden_in, weight_in, at::kCPU, op);
  const int64_t N = hidden_in.size(0), H = hidden_in.size(1);
  check_targets(targets_in, N, at::kCPU, op, "targets");
  check_vectors({{&grad_logps, "grad_logps"}, {&grad_lse, "grad_lse"}, {&lse_in, "lse"}}, hidden_in, N, at::kCPU, op);
  const at::Tensor hidden = hidden_in.contiguous(), weight = weight_in.contiguous();
  const at::Tensor targets = targets_in.contiguous(), lse = lse_in.contiguous();
  const at::Tensor g_lp = grad_logps.contiguous(), g_lse = grad_lse.contiguous();
  const int64_t V = weight.size(0);
  at::Tensor grad_hidden = at::zeros({N, H}, hidden.options());  // (N, H)
  at::Tensor grad_weight = at::zeros({V, H}, hidden.options());  // (V, H)
  AT_DISPATCH_FLOATING_TYPES(hidden.scalar_type(), "companion_token_logps_backward_cpu", [&] {
    const scalar_t* h = hidden.const_data_ptr<scalar_t>();
    const int64_t* tp = targets.const_data_ptr<int64_t>();
    const scalar_t* glp = g_lp.const_data_ptr<scalar_t>();
    const scalar_t* glse = g_lse.const_data_ptr<scalar_t>();
    const scalar_t* lse_all = lse.const_data_ptr<scalar_t>();
    scalar_t* gh = grad_hidden.mutable_data_ptr<scalar_t>();
    Rows<scalar_t> rows;
    std::vector<scalar_t> a, b, row_lse;
    std::vector<scalar_t*> gh_rows;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = checked_target(tp[n], n, V, ignore_index, op, "targets");
      const scalar_t an = t < 0 ? scalar_t(0) : glp[n];  // logps is the constant 0 where ignored
      const scalar_t bn = an - glse[n];
      if (an == scalar_t(0) && bn == scalar_t(0)) continue;  // no gradient through this row
      rows.push(h + n * H, t);
      a.push_back(an);
      b.push_back(bn);
      row_lse.push_back(lse_all[n]);
      gh_rows.push_back(gh + n * H);
    }
    grad_pass<scalar_t>(rows, weight, row_lse.data(), a.data(), b.data(), gh_rows, grad_weight);
  });
  return {grad_hidden, grad_weight};
}

// -------------------------------------------------------------------------------------------- dpo_loss

std::tuple<at::Tensor, at::Tensor, at::Tensor> dpo_loss_cpu(const at::Tensor& pc_in, const at::Tensor& pr_in,
                                                            const at::Tensor& rc_in, const at::Tensor& rr_in,
                                                            double beta, c10::string_view loss_type,
                                                            double label_smoothing, bool reference_free) {
  const char* op = "companion::dpo_loss";
  const DpoLossArgs args = dpo_loss_args(nullptr, pc_in, pr_in, rc_in, rr_in, beta, loss_type, label_smoothing,
                                         reference_free, at::kCPU, op);
  const auto& [params, pc, pr, rc, rr, grad, B] = args;
  at::Tensor losses = args.new_pair_vector(), cr = args.new_pair_vector(), rj = args.new_pair_vector();
  AT_DISPATCH_FLOATING_TYPES(pc.scalar_type(), "companion_dpo_loss_cpu", [&] {
    const scalar_t *pcp = pc.const_data_ptr<scalar_t>(), *prp = pr.const_data_ptr<scalar_t>(),
                   *rcp = rc.const_data_ptr<scalar_t>(), *rrp = rr.const_data_ptr<scalar_t>();
    scalar_t *lp = losses.mutable_data_ptr<scalar_t>(), *crp = cr.mutable_data_ptr<scalar_t>(),
             *rjp = rj.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < B; ++i) {
      const DpoPair<scalar_t> out = dpo_pair<scalar_t>(pcp[i], prp[i], rcp[i], rrp[i], params);
      lp[i] = out.loss;
      crp[i] = out.chosen_reward;
      rjp[i] = out.rejected_reward;
    }
  });
  return {losses, cr, rj};
}

at::Tensor dpo_loss_backward_cpu(const at::Tensor& grad_losses_in, const at::Tensor& pc_in,
                                 const at::Tensor& pr_in, const at::Tensor& rc_in, const at::Tensor& rr_in,
                                 double beta, c10::string_view loss_type, double label_smoothing,
                                 bool reference_free) {
  const char* op = "companion::dpo_loss_backward";
  const DpoLossArgs args = dpo_loss_args(&grad_losses_in, pc_in, pr_in, rc_in, rr_in, beta, loss_type,
                                         label_smoothing, reference_free, at::kCPU, op);
  const auto& [params, pc, pr, rc, rr, g, B] = args;
  at::Tensor grad_logratio = args.new_pair_vector();  // (B,): grad_losses * dL/dh
  AT_DISPATCH_FLOATING_TYPES(pc.scalar_type(), "companion_dpo_loss_backward_cpu", [&] {
    const scalar_t *gp = g.const_data_ptr<scalar_t>(), *pcp = pc.const_data_ptr<scalar_t>(),
                   *prp = pr.const_data_ptr<scalar_t>(), *rcp = rc.const_data_ptr<scalar_t>(),
                   *rrp = rr.const_data_ptr<scalar_t>();
    scalar_t* out = grad_logratio.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < B; ++i) {
      out[i] = gp[i] * dpo_pair<scalar_t>(pcp[i], prp[i], rcp[i], rrp[i], params).dloss_dlogratio;
    }
  });
  return grad_logratio;
}

// ------------------------------------------------------------------------------------ fused_linear_dpo

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> fused_linear_dpo_cpu(
    const at::Tensor& hidden_chosen_in, const at::Tensor& hidden_rejected_in, const at::Tensor& weight_in,
    const at::Tensor& labels_chosen_in, const at::Tensor& labels_rejected_in, const at::Tensor& ref_chosen_in,
    const at::Tensor& ref_rejected_in, double beta, c10::string_view loss_type, double label_smoothing,
    bool average_log_prob, bool reference_free, int64_t ignore_index, bool compute_grad) {
  const char* op = "companion::fused_linear_dpo";
  const auto [params, average, B, H, Tc, Tr] = fused_dpo_args(hidden_chosen_in, hidden_rejected_in, weight_in, beta,
                                                              loss_type, label_smoothing, average_log_prob,
                                                              reference_free, at::kCPU, op);
  check_targets(labels_chosen_in, B * Tc, at::kCPU, op, "labels_chosen");
  check_targets(labels_rejected_in, B * Tr, at::kCPU, op, "labels_rejected");
  check_vectors({{&ref_chosen_in, "ref_chosen_logps"}, {&ref_rejected_in, "ref_rejected_logps"}}, hidden_chosen_in, B,
                at::kCPU, op);
  const at::Tensor hc = hidden_chosen_in.contiguous(), hr = hidden_rejected_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor lc = labels_chosen_in.contiguous(), lr = labels_rejected_in.contiguous();
  const at::Tensor rc = ref_chosen_in.contiguous(), rr = ref_rejected_in.contiguous();
  const int64_t V = weight.size(0);
  const auto opts = hc.options();
  at::Tensor loss = at::empty({}, opts);
  at::Tensor chosen_rewards = at::empty({B}, opts), rejected_rewards = at::empty({B}, opts);
  at::Tensor grad_logratio = at::empty({B}, opts);  // (B,): d mean-loss / dh per pair
  at::Tensor grad_hc = compute_grad ? at::zeros({B, Tc, H}, opts) : at::empty({0}, opts);
  at::Tensor grad_hr = compute_grad ? at::zeros({B, Tr, H}, opts) : at::empty({0}, opts);
  at::Tensor grad_w = compute_grad ? at::zeros({V, H}, opts) : at::empty({0}, opts);
  AT_DISPATCH_FLOATING_TYPES(hc.scalar_type(), "companion_fused_linear_dpo_cpu", [&] {
    // Active rows (a target that is not ignore_index): chosen rows first, then rejected; seq[i] is the
    // row's sequence, b for chosen and B + b for rejected.
    Rows<scalar_t> rows;
    std::vector<int64_t> seq;
    std::vector<scalar_t*> gh_rows;
    const scalar_t* hp[2] = {hc.const_data_ptr<scalar_t>(), hr.const_data_ptr<scalar_t>()};
    const int64_t* lp[2] = {lc.const_data_ptr<int64_t>(), lr.const_data_ptr<int64_t>()};
    scalar_t* ghp[2] = {compute_grad ? grad_hc.mutable_data_ptr<scalar_t>() : nullptr,
                        compute_grad ? grad_hr.mutable_data_ptr<scalar_t>() : nullptr};
    const int64_t T[2] = {Tc, Tr};
    const char* names[2] = {"labels_chosen", "labels_rejected"};
    std::vector<int64_t> count(2 * B, 0);
    for (int side = 0; side < 2; ++side) {
      for (int64_t n = 0; n < B * T[side]; ++n) {
        const int64_t t = checked_target(lp[side][n], n, V, ignore_index, op, names[side]);
        if (t < 0) continue;
        const int64_t s = side * B + n / T[side];
        rows.push(hp[side] + n * H, t);
        seq.push_back(s);
        if (compute_grad) gh_rows.push_back(ghp[side] + n * H);
        ++count[s];
      }
    }
    const int64_t N = rows.size();
    std::vector<scalar_t> lse(N), target_logit(N);
    lse_pass<scalar_t>(rows, weight, lse.data(), target_logit.data());
    // Sequence log-probs, summed in double (the sum over T is where float32 loses most).
    std::vector<double> seq_logp(2 * B, 0.0);
    for (int64_t i = 0; i < N; ++i) seq_logp[seq[i]] += static_cast<double>(target_logit[i] - lse[i]);
    std::vector<double> scale(2 * B, 1.0);  // d seq_logp / d token logp
    if (average) {
      for (int64_t s = 0; s < 2 * B; ++s) {
        scale[s] = 1.0 / static_cast<double>(std::max<int64_t>(count[s], 1));  // all ignored: logp 0
        seq_logp[s] *= scale[s];
      }
    }
    const scalar_t* rcp = rc.const_data_ptr<scalar_t>();
    const scalar_t* rrp = rr.const_data_ptr<scalar_t>();
    scalar_t* crp = chosen_rewards.mutable_data_ptr<scalar_t>();
    scalar_t* rjp = rejected_rewards.mutable_data_ptr<scalar_t>();
    scalar_t* glr = grad_logratio.mutable_data_ptr<scalar_t>();
    double loss_sum = 0.0;
    std::vector<double> dh(B);
    for (int64_t b = 0; b < B; ++b) {
      const DpoPair<double> out = dpo_pair<double>(seq_logp[b], seq_logp[B + b], static_cast<double>(rcp[b]),
                                                   static_cast<double>(rrp[b]), params);
      loss_sum += out.loss;
      dh[b] = out.dloss_dlogratio / static_cast<double>(B);  // of the mean over pairs
      crp[b] = static_cast<scalar_t>(out.chosen_reward);
      rjp[b] = static_cast<scalar_t>(out.rejected_reward);
      glr[b] = static_cast<scalar_t>(dh[b]);
    }
    *loss.mutable_data_ptr<scalar_t>() = static_cast<scalar_t>(B > 0 ? loss_sum / static_cast<double>(B) : 0.0);
    if (!compute_grad) return;
    // d loss / d logp_token = dh * scale (chosen) or -dh * scale (rejected); log_softmax' = onehot - p.
    Rows<scalar_t> grad_rows;
    std::vector<scalar_t> coef, grad_lse;
    std::vector<scalar_t*> grad_gh;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t s = seq[i];
      const double g = s < B ? dh[s] * scale[s] : -dh[s - B] * scale[s];
      if (g == 0.0) continue;
      grad_rows.push(rows.h[i], rows.target[i]);
      coef.push_back(static_cast<scalar_t>(g));
      grad_lse.push_back(lse[i]);
      grad_gh.push_back(gh_rows[i]);
    }
    grad_pass<scalar_t>(grad_rows, weight, grad_lse.data(), coef.data(), coef.data(), grad_gh, grad_w);
  });
  return {loss, chosen_rewards, rejected_rewards, grad_hc, grad_hr, grad_w, grad_logratio};
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CPU, m) {
  m.impl("token_logps", &token_logps_cpu);
  m.impl("token_logps_backward", &token_logps_backward_cpu);
  m.impl("dpo_loss", &dpo_loss_cpu);
  m.impl("dpo_loss_backward", &dpo_loss_backward_cpu);
  m.impl("fused_linear_dpo", &fused_linear_dpo_cpu);
}

}  // namespace companion
