// Every schema of the `companion` op library, in one place (torch.ops.companion.*).
//
// Kernels register against these schemas with TORCH_LIBRARY_IMPL(companion, CPU | CUDA) in
// csrc/cpu/<family>.cpp and csrc/cuda/<family>.cu; fake (meta) kernels and autograd are registered from
// Python in common/ops/<family>.py.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(companion, m) {
  // Log-sum-exp over the last dim: x [N, V] -> lse [N], lse[n] = log(sum_v exp(x[n, v])).
  m.def("logsumexp(Tensor x) -> Tensor");
  // grad_x [N, V] = grad[:, None] * exp(x - lse[:, None]); rows with lse = -inf get zero gradient.
  m.def("logsumexp_backward(Tensor grad, Tensor x, Tensor lse) -> Tensor");

  // --- family 1: fused linear log-probs and DPO (csrc/cpu/dpo.cpp, common/ops/dpo.py) ---
  // hidden [N, H], weight [V, H], targets [N] int64 -> logps [N] = log_softmax(hidden @ weight.T)[targets]
  // (0 where targets == ignore_index), lse [N] = logsumexp(hidden @ weight.T, -1); no [N, V] logits.
  m.def("token_logps(Tensor hidden, Tensor weight, Tensor targets, int ignore_index) -> (Tensor, Tensor)");
  // (grad_hidden [N, H], grad_weight [V, H]) of sum(grad_logps * logps + grad_lse * lse).
  m.def(
      "token_logps_backward(Tensor grad_logps, Tensor grad_lse, Tensor hidden, Tensor weight, Tensor targets, "
      "Tensor lse, int ignore_index) -> (Tensor, Tensor)");
  // Per-pair DPO losses [B] (loss_type: sigmoid | robust | hinge | ipo), chosen and rejected rewards [B].
  m.def(
      "dpo_loss(Tensor policy_chosen_logps, Tensor policy_rejected_logps, Tensor ref_chosen_logps, "
      "Tensor ref_rejected_logps, float beta, str loss_type, float label_smoothing, bool reference_free) "
      "-> (Tensor, Tensor, Tensor)");
  // grad_losses * dloss/dh [B], h = (pc - pr) - (rc - rr): every input's gradient is +-1 times it.
  m.def(
      "dpo_loss_backward(Tensor grad_losses, Tensor policy_chosen_logps, Tensor policy_rejected_logps, "
      "Tensor ref_chosen_logps, Tensor ref_rejected_logps, float beta, str loss_type, float label_smoothing, "
      "bool reference_free) -> Tensor");
  // Mean DPO loss from hidden states [B, T, H] and labels [B, T] of both sides; returns (loss, chosen_rewards,
  // rejected_rewards, grad_hidden_chosen, grad_hidden_rejected, grad_weight, grad_logratio [B]) with the
  // gradients of the loss computed in the same pass (empty [0] tensors when compute_grad is false).
  m.def(
      "fused_linear_dpo(Tensor hidden_chosen, Tensor hidden_rejected, Tensor weight, Tensor labels_chosen, "
      "Tensor labels_rejected, Tensor ref_chosen_logps, Tensor ref_rejected_logps, float beta, str loss_type, "
      "float label_smoothing, bool average_log_prob, bool reference_free, int ignore_index, bool compute_grad) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");

  // --- family 2: per-sample gradient projection (csrc/cpu/grad_projection.cpp, common/ops/grad_projection.py) ---
  // R is the implicit +-1 matrix of csrc/include/counter_hash.h: R[row, col] a pure function of (seed, row, col).
  // out [rows, cols] float32/64 <- R[row_offset + i, col_offset + j].
  m.def("random_signs_fill(Tensor(a!) out, int seed, int row_offset, int col_offset) -> ()");
  // x [N, D] -> x @ R[row_offset : row_offset + D, 0 : proj_dim] / sqrt(proj_dim) [N, proj_dim], R never whole.
  m.def("project(Tensor x, int proj_dim, int seed, int row_offset) -> Tensor");
  // activations [N, T, d_in], output_grads [N, T, d_out] -> vec(G_n) R[row_offset:, :proj_dim] / sqrt(proj_dim),
  // G_n = sum_t g_t a_t^T (or Adam's m'/(sqrt(v')+eps) with state [d_out, d_in]) -> [N, proj_dim].
  m.def(
      "grad_project_dense(Tensor activations, Tensor output_grads, int proj_dim, int seed, int row_offset, "
      "Tensor? exp_avg, Tensor? exp_avg_sq, float beta1, float beta2, float eps) -> Tensor");
  // LoGra: vec(P_out^T G_n P_in) / sqrt(k_out k_in) [N, k_out * k_in], P_in = R[row_offset:, 0:k_in],
  // P_out = R[row_offset:, 2^31 : 2^31 + k_out].
  m.def(
      "grad_project_kronecker(Tensor activations, Tensor output_grads, int k_out, int k_in, int seed, "
      "int row_offset) -> Tensor");

  // --- family 3: sparse parity (csrc/cpu/sparse_parity.cpp, common/ops/sparse_parity.py) ---
  // Packed {-1,+1} rows: int64 words, coordinate i in bit i % 64 of word i / 64, bit 1 = -1 (W = ceil(n/64)).
  // Rows start..start+batch-1 of the counter-based stream for seed -> (x_packed [B, W], y [B] = chi_S(x)).
  m.def("parity_sample(int n, int batch, int seed, int start, Tensor support_mask) -> (Tensor, Tensor)");
  m.def("parity_pack(Tensor x) -> Tensor");                   // x [B, n] in {-1,+1} -> [B, W] int64
  m.def("parity_unpack(Tensor x_packed, int n) -> Tensor");   // [B, W] -> [B, n] float32
  // corr[s, c] = mean_n f[n, c] * (-1)^popcount(x_n & masks[s]); f [N, C], masks [S, W] -> [S, C].
  m.def("monomial_correlations(Tensor x_packed, Tensor f, Tensor masks) -> Tensor");
  // grad_f [N, C] = (1/N) sum_s grad[s, c] chi_s(x_n).
  m.def("monomial_correlations_backward(Tensor grad, Tensor x_packed, Tensor masks) -> Tensor");
  // E one-hidden-layer ReLU MLPs on packed x ([B, W] shared or [E, B, W]): weight1 [E, n, H] (transposed),
  // bias1 [E, H], weight2 [E, C, H], bias2 [E, C] -> logits [E, B, C].
  m.def("ensemble_mlp_forward(Tensor x_packed, Tensor weight1, Tensor bias1, Tensor weight2, Tensor bias2) -> Tensor");
  // (grad_weight1, grad_bias1, grad_weight2, grad_bias2) from grad [E, B, C]; the hidden layer is recomputed.
  m.def(
      "ensemble_mlp_backward(Tensor grad, Tensor x_packed, Tensor weight1, Tensor bias1, Tensor weight2) -> "
      "(Tensor, Tensor, Tensor, Tensor)");
}

// `import common._C` only has to load this shared library so that the registrations above run; the
// module itself is empty (ops are reached through torch.ops.companion).
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",     // m_name
      nullptr,  // m_doc
      -1,       // m_size
      nullptr,  // m_methods
  };
  return PyModule_Create(&module_def);
}
