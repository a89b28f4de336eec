// Host-side planning of the per-sample gradient projections (grad_project_dense, grad_project_kronecker),
// shared by csrc/cpu/grad_projection.cpp and csrc/cuda/grad_projection.cu: the accumulation dtype, the
// blocks of weight rows in which the per-sample gradients G_n = sum_t g_t a_t^T are formed (never all N at
// once), and the choice between LoGra's two contraction orders. The device parts come in as callables:
// the Adam map of a block of G, the projection of a block onto R, and the fill of a block of R.
//
// Host-only (ATen): the GEMMs go through the ATen dispatcher (MKL on CPU, cuBLAS behind ATen on CUDA), so
// the same code runs on either device. Argument checks are in grad_projection_checks.h and run first.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdint.h>

#include "counter_hash.h"  // kKroneckerOutColOffset

namespace companion {

// float64 when both inputs are float64, else float32 (bfloat16 and float16 inputs are widened).
inline at::ScalarType pair_acc_dtype(const at::Tensor& a, const at::Tensor& g) {
  return a.scalar_type() == at::kDouble && g.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// out *= 1 / sqrt(k): the Johnson-Lindenstrauss scaling of every projection (k the projection width).
inline at::Tensor& scale_projection(at::Tensor& out, double k) { return out.mul_(1.0 / std::sqrt(k)); }

// grad_project_dense after its checks: out [N, proj_dim] = vec(G_n) R[row_offset :, :proj_dim] / sqrt(proj_dim)
// for activations a [N, T, d_in] and output gradients g [N, T, d_out], with G formed a block of weight rows
// at a time so that a block [N, rows, d_in] stays within max_block_elems. When exp_avg / exp_avg_sq are
// given, adam(G, m, v, first) maps each block G [N, rows, d_in] (contiguous) to Adam's direction in place,
// m and v being the whole state (acc dtype, contiguous) and `first` the offset of the block's first entry
// in it. project(out, block [N, rows * d_in], seed, row0, 0) (the device's project_accumulate) adds
// block @ R[row0 : row0 + rows * d_in, 0 : proj_dim] to out.
template <typename AdamFn, typename ProjectFn>
at::Tensor grad_project_dense_blocks(const at::Tensor& a_in, const at::Tensor& g_in, int64_t proj_dim,
                                     int64_t seed, int64_t row_offset, const std::optional<at::Tensor>& exp_avg,
                                     const std::optional<at::Tensor>& exp_avg_sq, int64_t max_block_elems,
                                     const AdamFn& adam, const ProjectFn& project) {
  const int64_t N = a_in.size(0), d_in = a_in.size(2), d_out = g_in.size(2);
  const at::ScalarType acc = pair_acc_dtype(a_in, g_in);
  at::Tensor m, v;
  if (exp_avg.has_value()) {
    m = exp_avg->to(acc).contiguous();
    v = exp_avg_sq->to(acc).contiguous();
  }
  const at::Tensor a = a_in.to(acc), g = g_in.to(acc);
  at::Tensor out = at::zeros({N, proj_dim}, a.options());  // (N, k)
  if (N == 0 || d_in == 0 || d_out == 0) return out;
  // Rows of the weight per block: the block of N gradients [N, ob, d_in] stays within max_block_elems.
  const int64_t ob = std::clamp<int64_t>(max_block_elems / std::max<int64_t>(1, N * d_in), 1, d_out);
  for (int64_t o0 = 0; o0 < d_out; o0 += ob) {
    const int64_t obw = std::min(ob, d_out - o0);
    // G[:, o0:o0+obw, :] = sum_t g[:, t, o0:o0+obw]^T a[:, t, :]
    at::Tensor G = at::bmm(g.narrow(2, o0, obw).transpose(1, 2), a).contiguous();  // (N, obw, d_in)
    if (m.defined()) adam(G, m, v, o0 * d_in);
    project(out, G.view({N, obw * d_in}), seed,
            static_cast<uint64_t>(row_offset) + static_cast<uint64_t>(o0 * d_in), 0);
  }
  return scale_projection(out, static_cast<double>(proj_dim));
}

// grad_project_kronecker after its checks: LoGra's Y_n = P_out^T G_n P_in / sqrt(k_out k_in), flattened to
// [N, k_out * k_in], with P_in = R[row_offset :, 0 : k_in] and P_out = R[row_offset :, 2^31 : 2^31 + k_out]
// built by fill(out, seed, row_offset, col_offset) (the device's random_signs_fill). G_n is formed only on
// the path through it, max_block_elems entries of the [N, d_out, d_in] gradients at a time.
template <typename FillFn>
at::Tensor grad_project_kronecker_factored(const at::Tensor& a_in, const at::Tensor& g_in, int64_t k_out,
                                           int64_t k_in, int64_t seed, int64_t row_offset, int64_t max_block_elems,
                                           const FillFn& fill) {
  const int64_t N = a_in.size(0), T = a_in.size(1), d_in = a_in.size(2), d_out = g_in.size(2);
  const at::ScalarType acc = pair_acc_dtype(a_in, g_in);
  const at::Tensor a = a_in.to(acc), g = g_in.to(acc);
  const auto opts = a.options();
  at::Tensor p_in = at::empty({d_in, k_in}, opts);     // (d_in, k_in) = R[rows, 0:k_in]
  at::Tensor p_out = at::empty({d_out, k_out}, opts);  // (d_out, k_out) = R[rows, 2^31 : 2^31 + k_out]
  fill(p_in, seed, row_offset, 0);
  fill(p_out, seed, row_offset, static_cast<int64_t>(kKroneckerOutColOffset));
  // Two orders of the same sum: through the T projected pairs (LoGra's way, cheap when T is small) or
  // through G_n (cheap when d_out d_in is small, e.g. LoRA factors); pick the one with fewer flops.
  const double via_t = double(T) * (double(d_in) * k_in + double(d_out) * k_out + double(k_out) * k_in);
  const double right_first = double(d_out) * d_in * k_in + double(k_out) * d_out * k_in;
  const double left_first = double(k_out) * d_out * d_in + double(k_out) * d_in * k_in;
  const double via_g = double(T) * d_out * d_in + std::min(right_first, left_first);
  at::Tensor out;
  if (via_t <= via_g) {
    const at::Tensor ap = at::matmul(a, p_in);   // (N, T, k_in)
    const at::Tensor gp = at::matmul(g, p_out);  // (N, T, k_out)
    out = at::bmm(gp.transpose(1, 2), ap);       // (N, k_out, k_in)
  } else {  // G_n for chunks of examples, never all N at once
    out = at::empty({N, k_out, k_in}, opts);
    const int64_t nc = std::max<int64_t>(1, max_block_elems / std::max<int64_t>(1, d_out * d_in));
    for (int64_t n0 = 0; n0 < N; n0 += nc) {
      const int64_t w = std::min(nc, N - n0);
      // (w, d_out, d_in)
      const at::Tensor G = at::bmm(g.narrow(0, n0, w).transpose(1, 2), a.narrow(0, n0, w));
      // (w, k_out, k_in)
      const at::Tensor Y = right_first <= left_first ? at::matmul(p_out.t(), at::matmul(G, p_in))
                                                     : at::matmul(at::matmul(p_out.t(), G), p_in);
      out.narrow(0, n0, w).copy_(Y);
    }
  }
  out = out.reshape({N, k_out * k_in});  // (N, k)
  return scale_projection(out, static_cast<double>(k_out) * static_cast<double>(k_in));
}

}  // namespace companion
