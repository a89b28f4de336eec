// companion per-sample gradient projection on CPU (kernel family 2).
//
//   random_signs_fill: out[i, j] = R[row_offset + i, col_offset + j], R the implicit +-1 matrix of
//                       csrc/include/counter_hash.h (a pure function of (seed, row, col)).
//   project:            y = x R[row_offset : row_offset + D, :k] / sqrt(k)          x [N, D] -> y [N, k]
//   grad_project_dense: y_n = vec(G_n) R[row_offset : row_offset + d_out d_in, :k] / sqrt(k) with the
//                       per-sample weight gradient of a linear layer G_n = sum_t g_{n,t} a_{n,t}^T
//                       (Opacus' linear grad sampler; vec = row-major [d_out, d_in], as weight.grad), or with
//                       Adam's update direction m' / (sqrt(v') + eps), m' = b1 m + (1 - b1) G_n,
//                       v' = b2 v + (1 - b2) G_n^2 (LESS, Xia et al. 2024, Sec. 3 / collect_grad_reps.py).
//   grad_project_kronecker: LoGra's structured projection (Choe et al. 2024, Sec. 3)
//                       Y_n = P_out^T G_n P_in / sqrt(k_out k_in), P_in = R[rows of d_in, cols 0..k_in),
//                       P_out = R[rows of d_out, cols 2^31 .. 2^31 + k_out).
//
// The dense projection never materializes R: each thread owns a block of kColBlock output columns, and
// for every kRowBlock rows of x it hashes that [kRowBlock, kColBlock] tile of R into an L2-resident buffer
// and multiplies it in with a single-threaded BLAS call (MKL sgemm/dgemm through at::addmm_). The hash
// costs ~0.25 ns per entry per core (AVX-512 clone, counter_hash.h) and is paid once per call for all N
// rows, so the GEMM's 2 N D k flops dominate for N >= 32. The per-sample gradients are formed for all N
// examples a block of d_out rows at a time (at::bmm), never all at once. bfloat16/float16 inputs are
// widened to float32; float64 stays float64. This is the only CPU file of the family that touches torch;
// the hash lives in counter_hash.h, the argument checks and the block planning (shared with the CUDA file)
// in csrc/host/grad_projection_checks.h and csrc/host/grad_projection_plan.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>

#include "counter_hash.h"
#include "grad_projection_checks.h"
#include "grad_projection_plan.h"

namespace companion {
namespace {

// Tile of R generated per step: kRowBlock x kColBlock float32 = 256 KiB, inside one core's 1 MiB L2 next to
// MKL's packed panels. Not tuned: a single-thread sgemm sweep on the shared dev machine (tiles 512x128,
// 256x256, 512x512, 1024x256, 2048x128; N = 64, 128, 512) gave 67-130 GFLOP/s with run-to-run noise
// (other jobs on the 2 cores) larger than the differences between tile shapes.
constexpr int64_t kRowBlock = 512;
constexpr int64_t kColBlock = 128;
// Rows summed into a per-thread partial result before it is added to the output: a two-level sum, so the
// float32 rounding error grows with D / kFlushRows + kFlushRows / kRowBlock additions instead of
// D / kRowBlock. Measured on the 3-block test of tests/test_grad_projection.py (x [64, 393225], k = 24, 768
// tiles), max error against the float64 answer relative to MKL's one sgemm with the stored matrix: one
// level 2.9x (fails the 2x rule), two levels 0.61x.
constexpr int64_t kFlushRows = 16 * kRowBlock;
// Elements of one block of per-sample gradients [N, ob * d_in] (float32: 32 MiB).
constexpr int64_t kGradBlockElems = int64_t(1) << 23;


// out[j] = R[row, col0 + j], j < n, for the row with key `row_key`: whole words (32 columns from one hash,
// expanded by a vectorized shift/and/or) in the middle, the columns of partial words at either end one by
// one. The callers below are COMPANION_CPU_SIMD (portability.h): the word expansion is 16 lanes wide on
// AVX-512.
template <typename acc_t>
COMPANION_INLINE void fill_sign_row_impl(acc_t* __restrict__ out, uint64_t row_key, uint32_t col0,
                                         int64_t n) {
  using bits_t = std::conditional_t<std::is_same_v<acc_t, double>, uint64_t, uint32_t>;
  int64_t j = 0;
  auto one = [&](int64_t jj) {
    const uint32_t c = col0 + static_cast<uint32_t>(jj);
    out[jj] = ((sign_word(row_key, c >> 5) >> (c & 31u)) & 1u) ? acc_t(-1) : acc_t(1);
  };
  for (; j < n && ((col0 + static_cast<uint32_t>(j)) & 31u) != 0; ++j) one(j);
  for (; j + 32 <= n; j += 32) {
    const uint32_t word = sign_word(row_key, (col0 + static_cast<uint32_t>(j)) >> 5);
    acc_t* __restrict__ o = out + j;
#pragma omp simd
    for (uint32_t b = 0; b < 32; ++b) {
      if constexpr (std::is_same_v<acc_t, double>) {
        o[b] = __builtin_bit_cast(double, static_cast<bits_t>(sign_double_bits(word, b)));
      } else {
        o[b] = __builtin_bit_cast(float, static_cast<bits_t>(sign_float_bits(word, b)));
      }
    }
  }
  for (; j < n; ++j) one(j);
}

COMPANION_CPU_SIMD void fill_sign_row_f32(float* out, uint64_t row_key, uint32_t col0, int64_t n) {
  fill_sign_row_impl<float>(out, row_key, col0, n);
}
COMPANION_CPU_SIMD void fill_sign_row_f64(double* out, uint64_t row_key, uint32_t col0, int64_t n) {
  fill_sign_row_impl<double>(out, row_key, col0, n);
}
inline void fill_sign_row(float* out, uint64_t key, uint32_t col0, int64_t n) {
  fill_sign_row_f32(out, key, col0, n);
}
inline void fill_sign_row(double* out, uint64_t key, uint32_t col0, int64_t n) {
  fill_sign_row_f64(out, key, col0, n);
}

// Fill a [rows, cols] block with row stride ld: R[row0 + i, col0 + j].
template <typename acc_t>
void fill_signs(acc_t* out, int64_t ld, int64_t rows, int64_t cols, uint64_t base, uint64_t row0,
                uint32_t col0) {
  for (int64_t i = 0; i < rows; ++i) {
    fill_sign_row(out + i * ld, sign_row_key(base, row0 + static_cast<uint64_t>(i)), col0, cols);
  }
}

// Adam's update direction in place (LESS): G <- m' / (sqrt(v') + eps), state rows broadcast over N.
// c1 = 1 - b1 and c2 = 1 - b2 come rounded from double: 1 - 0.999f in float is 4.7e-5 off 0.001.
template <typename acc_t>
COMPANION_CPU_SIMD void adam_direction(acc_t* __restrict__ G, const acc_t* __restrict__ m,
                                       const acc_t* __restrict__ v, int64_t n, acc_t b1, acc_t c1, acc_t b2,
                                       acc_t c2, acc_t eps) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const acc_t g = G[i];
    const acc_t m1 = b1 * m[i] + c1 * g;
    const acc_t v1 = b2 * v[i] + c2 * g * g;
    G[i] = m1 / (std::sqrt(v1) + eps);
  }
}

// acc (N, cw) += x[:, r_begin:r_end] @ R[row_offset + r_begin : row_offset + r_end, col0 : col0 + cw],
// one hashed tile at a time, single-threaded. Above kFlushRows rows the tiles go through a partial sum.
template <typename scalar_t>
void project_rows(at::Tensor& acc, const at::Tensor& x, scalar_t* tile_ptr, const at::Tensor& tile,
                  uint64_t base, uint64_t row_offset, uint32_t col0, int64_t r_begin, int64_t r_end) {
  const int64_t cw = acc.size(1);
  const bool two_level = r_end - r_begin > kFlushRows;
  at::Tensor partial = two_level ? at::zeros_like(acc) : acc;  // (N, cw)
  for (int64_t r0 = r_begin; r0 < r_end; r0 += kRowBlock) {
    const int64_t rh = std::min(kRowBlock, r_end - r0);
    fill_signs<scalar_t>(tile_ptr, cw, rh, cw, base, row_offset + static_cast<uint64_t>(r0), col0);
    partial.addmm_(x.narrow(1, r0, rh), tile.narrow(0, 0, rh * cw).view({rh, cw}));  // (N, rh) @ (rh, cw)
    if (two_level && ((r0 + rh - r_begin) % kFlushRows == 0 || r0 + rh == r_end)) {
      acc.add_(partial);
      partial.zero_();
    }
  }
}

// out[:, :] += x @ R[row_offset : row_offset + D, col0 : col0 + k] for x [N, D] (unit inner stride) and
// out [N, k] of x's dtype (float or double). Tasks are blocks of kColBlock output columns, each hashing its
// own tiles of R; when there are fewer column blocks than threads (small k), the rows are split into
// chunks too, each chunk summed into its own buffer and the buffers added in a fixed order. Every BLAS call
// is single-threaded inside the parallel region: a multi-threaded sgemm on a [N, 512] x [512, cw] tile
// measured 9 ms instead of ~0.1 ms on the shared 2-core machine (threads waiting on a busy core).
void project_accumulate(at::Tensor& out, const at::Tensor& x, int64_t seed, uint64_t row_offset,
                        uint32_t col0) {
  const int64_t N = x.size(0), D = x.size(1), K = out.size(1);
  if (N == 0 || D == 0 || K == 0) return;
  const uint64_t base = sign_seed_base(seed);
  const int64_t n_col_blocks = (K + kColBlock - 1) / kColBlock;
  const int64_t threads = at::get_num_threads();
  const int64_t max_chunks = (D + kRowBlock - 1) / kRowBlock;
  const int64_t n_chunks =
      std::clamp<int64_t>((threads + n_col_blocks - 1) / n_col_blocks, 1, std::max<int64_t>(1, max_chunks));
  const int64_t chunk_rows = ((D + n_chunks - 1) / n_chunks + kRowBlock - 1) / kRowBlock * kRowBlock;
  // (n_chunks, N, K) partial results when the rows are split; out itself otherwise.
  at::Tensor chunks = n_chunks > 1 ? at::zeros({n_chunks, N, K}, out.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "companion_project_accumulate", [&] {
    at::parallel_for(0, n_col_blocks * n_chunks, 1, [&](int64_t begin, int64_t end) {
      // OpenMP workers do not inherit the caller's dispatch state: stay below autograd explicitly.
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      at::Tensor tile = at::empty({kRowBlock * kColBlock}, x.options());
      scalar_t* tile_ptr = tile.mutable_data_ptr<scalar_t>();
      for (int64_t task = begin; task < end; ++task) {
        const int64_t cb = task / n_chunks, rc = task % n_chunks;
        const int64_t c0 = cb * kColBlock, cw = std::min(kColBlock, K - c0);
        const int64_t r_begin = std::min(D, rc * chunk_rows), r_end = std::min(D, r_begin + chunk_rows);
        at::Tensor acc = (n_chunks > 1 ? chunks.select(0, rc) : out).narrow(1, c0, cw);  // (N, cw)
        project_rows<scalar_t>(acc, x, tile_ptr, tile, base, row_offset, col0 + static_cast<uint32_t>(c0),
                               r_begin, r_end);
      }
    });
  });
  if (n_chunks > 1) out.add_(chunks.sum(0));
}

// ------------------------------------------------------------------------------------------------ ops

void random_signs_fillcpu(at::Tensor& out, int64_t seed, int64_t row_offset, int64_t col_offset) {
  const char* op = "companion::random_signs_fill";
  check_random_signs_out(out, row_offset, col_offset, at::kCPU, op);
  const int64_t rows = out.size(0), cols = out.size(1);
  if (rows == 0 || cols == 0) return;
  const uint64_t base = sign_seed_base(seed);
  const int64_t ld = out.stride(0);
  const int64_t grain = std::max<int64_t>(1, 32768 / cols);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "companion_random_signs_fill", [&] {
    scalar_t* ptr = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      fill_signs<scalar_t>(ptr + begin * ld, ld, end - begin, cols, base,
                           static_cast<uint64_t>(row_offset) + static_cast<uint64_t>(begin),
                           static_cast<uint32_t>(col_offset));
    });
  });
}

at::Tensor project_cpu(const at::Tensor& x_in, int64_t proj_dim, int64_t seed, int64_t row_offset) {
  const char* op = "companion::project";
  check_project_input(x_in, at::kCPU, op);
  check_proj(proj_dim, row_offset, op);
  const at::ScalarType acc = x_in.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor x = x_in.to(acc);
  if (x.size(1) > 0 && x.stride(1) != 1) x = x.contiguous();
  at::Tensor out = at::zeros({x.size(0), proj_dim}, x.options().dtype(acc));  // (N, k)
  project_accumulate(out, x, seed, static_cast<uint64_t>(row_offset), 0);
  return scale_projection(out, static_cast<double>(proj_dim));
}

at::Tensor grad_project_dense_cpu(const at::Tensor& a_in, const at::Tensor& g_in, int64_t proj_dim,
                                  int64_t seed, int64_t row_offset, const std::optional<at::Tensor>& exp_avg,
                                  const std::optional<at::Tensor>& exp_avg_sq, double beta1, double beta2,
                                  double eps) {
  const char* op = "companion::grad_project_dense";
  check_pair(a_in, g_in, at::kCPU, op);
  check_proj(proj_dim, row_offset, op);
  const int64_t N = a_in.size(0), d_in = a_in.size(2), d_out = g_in.size(2);
  check_adam_state(exp_avg, exp_avg_sq, d_out, d_in, at::kCPU, op);
  // G [N, rows, d_in] <- Adam's direction, the state rows [first, first + rows * d_in) broadcast over N.
  auto adam = [&](at::Tensor& G, const at::Tensor& m, const at::Tensor& v, int64_t first) {
    const int64_t len = G.size(1) * G.size(2);
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "companion_adam_direction", [&] {
      scalar_t* Gp = G.mutable_data_ptr<scalar_t>();
      const scalar_t* mp = m.const_data_ptr<scalar_t>() + first;
      const scalar_t* vp = v.const_data_ptr<scalar_t>() + first;
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          adam_direction<scalar_t>(Gp + n * len, mp, vp, len, static_cast<scalar_t>(beta1),
                                   static_cast<scalar_t>(1.0 - beta1), static_cast<scalar_t>(beta2),
                                   static_cast<scalar_t>(1.0 - beta2), static_cast<scalar_t>(eps));
        }
      });
    });
  };
  return grad_project_dense_blocks(a_in, g_in, proj_dim, seed, row_offset, exp_avg, exp_avg_sq, kGradBlockElems,
                                   adam, &project_accumulate);
}

at::Tensor grad_project_kronecker_cpu(const at::Tensor& a_in, const at::Tensor& g_in, int64_t k_out,
                                      int64_t k_in, int64_t seed, int64_t row_offset) {
  const char* op = "companion::grad_project_kronecker";
  check_pair(a_in, g_in, at::kCPU, op);
  check_kronecker_widths(k_out, k_in, row_offset, op);
  return grad_project_kronecker_factored(a_in, g_in, k_out, k_in, seed, row_offset, kGradBlockElems,
                                         &random_signs_fillcpu);
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CPU, m) {
  m.impl("random_signs_fill", &random_signs_fillcpu);
  m.impl("project", &project_cpu);
  m.impl("grad_project_dense", &grad_project_dense_cpu);
  m.impl("grad_project_kronecker", &grad_project_kronecker_cpu);
}

}  // namespace companion
