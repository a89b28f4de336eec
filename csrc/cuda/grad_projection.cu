// companion per-sample gradient projection on CUDA (kernel family 2); the same ops and math as
// csrc/cpu/grad_projection.cpp (see there for the formulas and papers):
//
//   random_signs_fill:      out[i, j] = R[row_offset + i, col_offset + j]
//   project:                x [N, D] @ R[row_offset:, :k] / sqrt(k), R hashed tile by tile in shared memory
//   grad_project_dense:     vec(G_n) (or Adam's m' / (sqrt(v') + eps)) projected, G formed in blocks
//   grad_project_kronecker: LoGra's P_out^T G_n P_in / sqrt(k_out k_in)
//
// R comes from the counter-based hash of csrc/include/counter_hash.h, so the GPU builds bit for bit the
// matrix the CPU and the reference build, whatever the tiling or the SM count (TRAK's fast_jl does not).
// The projection kernel is a shared-memory tiled GEMM (kBM x kBN outputs per block, kBK rows of D per
// step, kTM x kTN outputs per thread in registers): each step loads a kBM x kBK tile of x and hashes the
// kBK x kBN tile of R it multiplies, one 64-bit row key and one 32-column word per thread. Accumulation is
// in float (double for float64) per thread over all of D, no split-K, so results are deterministic.
// Per-sample gradients and the Kronecker products go through ATen's bmm/matmul (cuBLAS behind ATen; this
// file includes no cuBLAS header). The argument checks and the block planning, shared with the CPU file, are
// in csrc/host/grad_projection_checks.h and csrc/host/grad_projection_plan.h. Not yet tuned on a GPU.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

#include "counter_hash.h"
#include "grad_projection_checks.h"
#include "grad_projection_plan.h"
#include "tensor_helpers.h"

namespace companion {
namespace {

constexpr int kBM = 64;   // examples per block
constexpr int kBN = 64;   // output columns per block (2 hashed words per row of the R tile)
constexpr int kBK = 16;   // rows of D per step
constexpr int kTM = 4;    // outputs per thread along N
constexpr int kTN = 4;    // outputs per thread along k
constexpr int kThreads = (kBM / kTM) * (kBN / kTN);  // 256
static_assert(kBK * (kBN / 32) <= kThreads, "one hashed word per thread per step");
constexpr int64_t kGradBlockElems = int64_t(1) << 24;

template <typename acc_t>
__device__ __forceinline__ acc_t sign_from_word(uint32_t word, uint32_t b) {
  return ((word >> b) & 1u) ? acc_t(-1) : acc_t(1);
}

// out [rows, cols] (row stride ld) <- R[row0 + i, col0 + j]; one thread per entry.
template <typename acc_t>
__global__ void __launch_bounds__(256)
    random_signs_kernel(acc_t* __restrict__ out, int64_t ld, int64_t rows, int64_t cols, uint64_t base,
                        uint64_t row0, uint32_t col0) {
  const int64_t total = rows * cols;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols, j = idx % cols;
    const uint32_t c = col0 + static_cast<uint32_t>(j);
    const uint32_t word = sign_word(sign_row_key(base, row0 + static_cast<uint64_t>(i)), c >> 5);
    out[i * ld + j] = sign_from_word<acc_t>(word, c & 31u);
  }
}

// out[n, j] += sum_d x[n, d] R[row0 + d, col0 + j] over d < D; out [N, K] contiguous (acc_t), x [N, D] with
// row stride ldx and unit column stride. Grid: (ceil(N / kBM), ceil(K / kBN)).
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    project_kernel(const scalar_t* __restrict__ x, int64_t ldx, int64_t N, int64_t D, acc_t* __restrict__ out,
                   int64_t K, uint64_t base, uint64_t row0, uint32_t col0) {
  __shared__ acc_t xs[kBK][kBM + 1];  // x tile, transposed: xs[d][n]
  __shared__ acc_t rs[kBK][kBN];      // R tile
  const int tid = threadIdx.x;
  const int tx = tid % (kBN / kTN), ty = tid / (kBN / kTN);
  const int64_t n0 = int64_t(blockIdx.x) * kBM, j0 = int64_t(blockIdx.y) * kBN;
  acc_t acc[kTM][kTN];
#pragma unroll
  for (int a = 0; a < kTM; ++a)
#pragma unroll
    for (int b = 0; b < kTN; ++b) acc[a][b] = acc_t(0);

  for (int64_t d0 = 0; d0 < D; d0 += kBK) {
    // x tile: kBM x kBK values, consecutive threads along d (coalesced within a row).
    for (int e = tid; e < kBM * kBK; e += kThreads) {
      const int r = e / kBK, c = e % kBK;
      const int64_t n = n0 + r, d = d0 + c;
      xs[c][r] = (n < N && d < D) ? static_cast<acc_t>(x[n * ldx + d]) : acc_t(0);
    }
    // R tile: kBK rows x kBN columns = kBK * kBN / 32 hashed words, one per thread.
    if (tid < kBK * (kBN / 32)) {
      const int r = tid / (kBN / 32), w = tid % (kBN / 32);
      const int64_t d = d0 + r;
      const uint32_t c_first = col0 + static_cast<uint32_t>(j0) + 32u * w;  // col0 + j0 is any offset
      if (d < D) {
        const uint64_t key = sign_row_key(base, row0 + static_cast<uint64_t>(d));
        // the 32 columns may straddle two hashed words when col0 is not a multiple of 32
        const uint32_t lo_word = sign_word(key, c_first >> 5);
        const uint32_t hi_word = (c_first & 31u) ? sign_word(key, (c_first >> 5) + 1u) : lo_word;
#pragma unroll
        for (int b = 0; b < 32; ++b) {
          const uint32_t c = c_first + b;
          rs[r][32 * w + b] = sign_from_word<acc_t>((c >> 5) == (c_first >> 5) ? lo_word : hi_word, c & 31u);
        }
      } else {
#pragma unroll
        for (int b = 0; b < 32; ++b) rs[r][32 * w + b] = acc_t(0);
      }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kBK; ++k) {
      acc_t xa[kTM], rb[kTN];
#pragma unroll
      for (int a = 0; a < kTM; ++a) xa[a] = xs[k][ty * kTM + a];
#pragma unroll
      for (int b = 0; b < kTN; ++b) rb[b] = rs[k][tx * kTN + b];
#pragma unroll
      for (int a = 0; a < kTM; ++a)
#pragma unroll
        for (int b = 0; b < kTN; ++b) acc[a][b] += xa[a] * rb[b];
    }
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < kTM; ++a) {
    const int64_t n = n0 + ty * kTM + a;
    if (n >= N) continue;
#pragma unroll
    for (int b = 0; b < kTN; ++b) {
      const int64_t j = j0 + tx * kTN + b;
      if (j < K) out[n * K + j] += acc[a][b];
    }
  }
}

// G <- m' / (sqrt(v') + eps) for G [N, len] and state [len] broadcast over N (LESS's Adam direction).
template <typename acc_t>
__global__ void __launch_bounds__(256)
    adam_direction_kernel(acc_t* __restrict__ G, const acc_t* __restrict__ m, const acc_t* __restrict__ v,
                          int64_t N, int64_t len, acc_t b1, acc_t c1, acc_t b2, acc_t c2, acc_t eps) {
  const int64_t total = N * len;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % len;
    const acc_t g = G[idx];
    const acc_t m1 = b1 * m[i] + c1 * g;
    const acc_t v1 = b2 * v[i] + c2 * g * g;
    G[idx] = m1 / (sqrt(v1) + eps);
  }
}

unsigned grid_for(int64_t total, int threads) {
  return static_cast<unsigned>(std::clamp<int64_t>((total + threads - 1) / threads, 1, 65535 * 8));
}

// The projection kernel's grid has ceil(k / kBN) blocks along y, at most 65535.
void check_grid_width(int64_t k, const char* op, const char* k_name = "proj_dim") {
  TORCH_CHECK((k + kBN - 1) / kBN <= 65535, op, ": ", k_name, " must be at most 65535 * ", kBN, " on CUDA");
}

// out (N, K) acc dtype, contiguous, += x @ R[row0 : row0 + D, col0 : col0 + K]
void project_accumulate(at::Tensor& out, const at::Tensor& x_in, int64_t seed, uint64_t row0, uint32_t col0) {
  const at::Tensor x = x_in.size(1) > 0 && x_in.stride(1) != 1 ? x_in.contiguous() : x_in;
  const int64_t N = x.size(0), D = x.size(1), K = out.size(1);
  if (N == 0 || D == 0 || K == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const dim3 grid(static_cast<unsigned>((N + kBM - 1) / kBM), static_cast<unsigned>((K + kBN - 1) / kBN));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "companion_project_cuda", [&] {
    using acc_t = acc_type_t<scalar_t>;
    TORCH_CHECK(out.scalar_type() == c10::CppTypeToScalarType<acc_t>::value, "project: accumulator dtype");
    project_kernel<scalar_t, acc_t><<<grid, kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), x.stride(0), N, D, out.mutable_data_ptr<acc_t>(), K,
        sign_seed_base(seed), row0, col0);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void random_signs_fill_cuda(at::Tensor& out, int64_t seed, int64_t row_offset, int64_t col_offset) {
  const char* op = "companion::random_signs_fill";
  check_random_signs_out(out, row_offset, col_offset, at::kCUDA, op);
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t rows = out.size(0), cols = out.size(1);
  if (rows == 0 || cols == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "companion_random_signs_cuda", [&] {
    random_signs_kernel<scalar_t><<<grid_for(rows * cols, 256), 256, 0, stream>>>(
        out.mutable_data_ptr<scalar_t>(), out.stride(0), rows, cols, sign_seed_base(seed),
        static_cast<uint64_t>(row_offset), static_cast<uint32_t>(col_offset));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor project_cuda(const at::Tensor& x, int64_t proj_dim, int64_t seed, int64_t row_offset) {
  const char* op = "companion::project";
  check_project_input(x, at::kCUDA, op);
  check_proj(proj_dim, row_offset, op);
  check_grid_width(proj_dim, op);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor out = at::zeros({x.size(0), proj_dim}, x.options().dtype(acc));  // (N, k)
  project_accumulate(out, x, seed, static_cast<uint64_t>(row_offset), 0);
  return scale_projection(out, static_cast<double>(proj_dim));
}

at::Tensor grad_project_dense_cuda(const at::Tensor& a_in, const at::Tensor& g_in, int64_t proj_dim,
                                   int64_t seed, int64_t row_offset, const std::optional<at::Tensor>& exp_avg,
                                   const std::optional<at::Tensor>& exp_avg_sq, double beta1, double beta2,
                                   double eps) {
  const char* op = "companion::grad_project_dense";
  check_pair(a_in, g_in, at::kCUDA, op);
  check_proj(proj_dim, row_offset, op);
  check_grid_width(proj_dim, op);
  const c10::cuda::CUDAGuard guard(a_in.device());
  const int64_t N = a_in.size(0), d_in = a_in.size(2), d_out = g_in.size(2);
  check_adam_state(exp_avg, exp_avg_sq, d_out, d_in, a_in.device(), op);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // G [N, rows, d_in] <- Adam's direction, the state rows [first, first + rows * d_in) broadcast over N.
  auto adam = [&](at::Tensor& G, const at::Tensor& m, const at::Tensor& v, int64_t first) {
    const int64_t len = G.size(1) * G.size(2);
    AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "companion_adam_direction_cuda", [&] {
      adam_direction_kernel<scalar_t><<<grid_for(N * len, 256), 256, 0, stream>>>(
          G.mutable_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>() + first, v.const_data_ptr<scalar_t>() + first,
          N, len, static_cast<scalar_t>(beta1), static_cast<scalar_t>(1.0 - beta1), static_cast<scalar_t>(beta2),
          static_cast<scalar_t>(1.0 - beta2), static_cast<scalar_t>(eps));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  };
  return grad_project_dense_blocks(a_in, g_in, proj_dim, seed, row_offset, exp_avg, exp_avg_sq, kGradBlockElems,
                                   adam, &project_accumulate);
}

at::Tensor grad_project_kronecker_cuda(const at::Tensor& a_in, const at::Tensor& g_in, int64_t k_out,
                                       int64_t k_in, int64_t seed, int64_t row_offset) {
  const char* op = "companion::grad_project_kronecker";
  check_pair(a_in, g_in, at::kCUDA, op);
  check_kronecker_widths(k_out, k_in, row_offset, op);
  check_grid_width(k_out, op, "k_out");
  check_grid_width(k_in, op, "k_in");
  const c10::cuda::CUDAGuard guard(a_in.device());
  return grad_project_kronecker_factored(a_in, g_in, k_out, k_in, seed, row_offset, kGradBlockElems,
                                         &random_signs_fill_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CUDA, m) {
  m.impl("random_signs_fill", &random_signs_fill_cuda);
  m.impl("project", &project_cuda);
  m.impl("grad_project_dense", &grad_project_dense_cuda);
  m.impl("grad_project_kronecker", &grad_project_kronecker_cuda);
}

}  // namespace companion
