// companion sparse-parity ops on CUDA (Panigrahi et al. 2025, arXiv 2410.05464, section 3); the same
// schemas and results as csrc/cpu/sparse_parity.cpp:
//
//   parity_sample / parity_pack / parity_unpack     one thread per row (per row and word for pack)
//   monomial_correlations      one block per (subset s, column c): threads stride over the N rows, each
//                              term f[n, c] * (-1)^popcount(x_n & S_s) is summed in float64, then a
//                              fixed-order block reduction (deterministic)
//   monomial_correlations_backward   one thread per (row n, column c), looping over the S subsets
//   ensemble_mlp_forward       one block per (member e, sample b): threads stride over the hidden units,
//                              z = b1 + sum_i (+-W1t[e, i, h]) (coalesced over h), relu, then the C class
//                              sums reduced over the block in groups of kClassGroup classes
//   ensemble_mlp_backward      kernel 1: a thread per (e, h) loops over the samples, recomputes z and writes
//                              gh [E, B, H] while accumulating dW2, db1; kernel 2: a thread per (e, i, h) forms
//                              dW1t = sum_b x_bi gh[e, b, h]; kernel 3: db2 = sum_b grad
//
// Bit layout, hash and parity are in popcount_parity.h (shared with the CPU kernels and the reference), the
// argument checks and output allocation in csrc/host/parity_checks.h and csrc/host/parity_plan.h (shared with
// the CPU kernels).
// Includes only ATen/torch headers and c10/cuda (no ATen/cuda headers, which pull cuBLAS). Not yet tuned on
// a GPU: the block sizes are the usual 256 threads.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "parity_checks.h"
#include "parity_plan.h"
#include "popcount_parity.h"
#include "tensor_helpers.h"

namespace companion {
namespace {

constexpr int kThreads = 256;
constexpr int kClassGroup = 8;  // classes reduced per pass of the forward (C = 2 for parity: one pass)

using parity::words_for;

unsigned blocks_for(int64_t count) { return static_cast<unsigned>(std::max<int64_t>(1, (count + kThreads - 1) / kThreads)); }

// Sum of a block's values (blockDim.x == kThreads) in a fixed order; the result is valid in thread 0.
template <typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* shared) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  acc_t total = acc_t(0);
  if (threadIdx.x == 0) {
    for (int w = 0; w < kThreads / 32; ++w) total += shared[w];
  }
  return total;
}

// ------------------------------------------------------------------------------------------ sampling

__global__ void sample_kernel(int64_t n, int64_t W, int64_t batch, uint32_t key, int64_t start,
                              const uint64_t* __restrict__ mask, uint64_t* __restrict__ x, float* __restrict__ y) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  const uint32_t rk = parity::row_key(key, static_cast<uint64_t>(start + b));
  uint64_t acc = 0;
  for (int64_t w = 0; w < W; ++w) {
    const uint64_t word = parity::row_word(rk, w, n);
    x[b * W + w] = word;
    acc ^= word & mask[w];
  }
  y[b] = parity::parity64(acc) ? -1.0f : 1.0f;
}

template <typename scalar_t>
__global__ void pack_kernel(const scalar_t* __restrict__ x, int64_t B, int64_t n, int64_t W, uint64_t* __restrict__ out) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= B * W) return;
  const int64_t b = t / W, w = t % W;
  const int64_t len = min(static_cast<int64_t>(64), n - 64 * w);
  const scalar_t* row = x + b * n + 64 * w;
  uint64_t word = 0;
  for (int64_t j = 0; j < len; ++j) word |= static_cast<uint64_t>(static_cast<float>(row[j]) < 0.0f) << j;
  out[t] = word;
}

__global__ void unpack_kernel(const uint64_t* __restrict__ x, int64_t B, int64_t n, int64_t W, float* __restrict__ out) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= B * n) return;
  const int64_t b = t / n, i = t % n;
  out[t] = ((x[b * W + i / 64] >> (i % 64)) & 1) ? -1.0f : 1.0f;
}

std::tuple<at::Tensor, at::Tensor> parity_sample_cuda(int64_t n, int64_t batch, int64_t seed, int64_t start,
                                                      const at::Tensor& support_mask) {
  const char* op = "companion::parity_sample";
  check_parity_sample(n, batch, seed, start, support_mask, at::kCUDA, op);
  const int64_t W = words_for(n);
  const c10::cuda::CUDAGuard guard(support_mask.device());
  const at::Tensor mask = support_mask.contiguous();
  auto [x, y] = new_parity_sample(mask, batch, W);  // (B, W), (B,)
  if (batch == 0) return {x, y};
  sample_kernel<<<blocks_for(batch), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      n, W, batch, parity::seed_key(static_cast<uint64_t>(seed)), start, words_ptr(mask), mutable_words_ptr(x),
      y.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {x, y};
}

at::Tensor parity_pack_cuda(const at::Tensor& x_in) {
  const char* op = "companion::parity_pack";
  check_parity_pack(x_in, at::kCUDA, op);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), n = x.size(1), W = words_for(n);
  at::Tensor out = new_rows(x, B, W, at::kLong);  // (B, W)
  if (B == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "companion_parity_pack_cuda", [&] {
    pack_kernel<scalar_t><<<blocks_for(B * W), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.const_data_ptr<scalar_t>(), B, n, W, mutable_words_ptr(out));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor parity_unpack_cuda(const at::Tensor& x_packed_in, int64_t n) {
  const char* op = "companion::parity_unpack";
  check_parity_unpack(x_packed_in, n, at::kCUDA, op);
  const int64_t W = words_for(n);
  const c10::cuda::CUDAGuard guard(x_packed_in.device());
  const at::Tensor xw = x_packed_in.contiguous();
  const int64_t B = xw.size(0);
  at::Tensor out = new_rows(xw, B, n, at::kFloat);  // (B, n)
  if (B == 0) return out;
  unpack_kernel<<<blocks_for(B * n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      words_ptr(xw), B, n, W, out.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// ------------------------------------------------------------------------------------- correlations

__device__ __forceinline__ bool odd_overlap(const uint64_t* __restrict__ x, const uint64_t* __restrict__ mask,
                                            int64_t W) {
  uint64_t acc = 0;
  for (int64_t w = 0; w < W; ++w) acc ^= x[w] & mask[w];
  return __popcll(acc) & 1;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    correlations_kernel(const uint64_t* __restrict__ x, const scalar_t* __restrict__ f, const uint64_t* __restrict__ masks,
                        int64_t N, int64_t W, int64_t C, scalar_t* __restrict__ out) {
  __shared__ double shared[kThreads / 32];
  const int64_t s = blockIdx.x, c = blockIdx.y;
  const uint64_t* mask = masks + s * W;
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    const double v = static_cast<double>(f[i * C + c]);
    acc += odd_overlap(x + i * W, mask, W) ? -v : v;
  }
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) out[s * C + c] = static_cast<scalar_t>(total / static_cast<double>(N));
}

template <typename scalar_t>
__global__ void correlations_backward_kernel(const scalar_t* __restrict__ grad, const uint64_t* __restrict__ x,
                                             const uint64_t* __restrict__ masks, int64_t N, int64_t W, int64_t S,
                                             int64_t C, scalar_t* __restrict__ out) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= N * C) return;
  const int64_t i = t / C, c = t % C;
  double acc = 0.0;
  for (int64_t s = 0; s < S; ++s) {
    const double g = static_cast<double>(grad[s * C + c]);
    acc += odd_overlap(x + i * W, masks + s * W, W) ? -g : g;
  }
  out[t] = static_cast<scalar_t>(acc / static_cast<double>(N));
}

// The shared checks, then the grid limit of the forward: one block per subset along x.
void check_correlation_inputs_cuda(const at::Tensor& x_packed, const at::Tensor& masks, const char* op) {
  check_correlation_inputs(x_packed, masks, at::kCUDA, op);
  TORCH_CHECK(masks.size(0) <= 0x7fffffff, op, ": at most 2^31 - 1 subsets");
}

at::Tensor monomial_correlations_cuda(const at::Tensor& x_packed_in, const at::Tensor& f_in, const at::Tensor& masks_in) {
  const char* op = "companion::monomial_correlations";
  check_correlation_inputs_cuda(x_packed_in, masks_in, op);
  check_correlation_f(f_in, x_packed_in.size(0), at::kCUDA, op);
  const int64_t N = x_packed_in.size(0), W = x_packed_in.size(1), C = f_in.size(1), S = masks_in.size(0);
  TORCH_CHECK(C <= 65535, op, ": at most 65535 columns of f");
  const c10::cuda::CUDAGuard guard(f_in.device());
  const at::Tensor x = x_packed_in.contiguous(), f = f_in.contiguous(), masks = masks_in.contiguous();
  at::Tensor out = at::empty({S, C}, f.options());  // (S, C)
  if (S == 0 || C == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(f.scalar_type(), "companion_monomial_correlations_cuda", [&] {
    const dim3 grid(static_cast<unsigned>(S), static_cast<unsigned>(C));
    correlations_kernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        words_ptr(x), f.const_data_ptr<scalar_t>(), words_ptr(masks), N, W, C, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor monomial_correlations_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x_packed_in,
                                               const at::Tensor& masks_in) {
  const char* op = "companion::monomial_correlations_backward";
  check_correlation_inputs_cuda(x_packed_in, masks_in, op);
  const int64_t N = x_packed_in.size(0), W = x_packed_in.size(1), S = masks_in.size(0);
  check_correlation_grad(grad_in, N, S, at::kCUDA, op);
  const c10::cuda::CUDAGuard guard(grad_in.device());
  const int64_t C = grad_in.size(1);
  const at::Tensor x = x_packed_in.contiguous(), g = grad_in.contiguous(), masks = masks_in.contiguous();
  at::Tensor out = at::empty({N, C}, g.options());  // (N, C)
  if (C == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "companion_monomial_correlations_backward_cuda", [&] {
    correlations_backward_kernel<scalar_t><<<blocks_for(N * C), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), words_ptr(x), words_ptr(masks), N, W, S, C, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// ---------------------------------------------------------------------------------- ensemble MLP

// z[e, b, h] = b1[e, h] + sum_i (-1)^{bit i of x_b} W1t[e, i, h]
template <typename scalar_t>
__device__ __forceinline__ scalar_t hidden_pre(const uint64_t* __restrict__ xb, const scalar_t* __restrict__ w1t,
                                               scalar_t b1, int64_t n, int64_t H, int64_t h) {
  scalar_t z = b1;
  for (int64_t i = 0; i < n; ++i) {
    const scalar_t w = w1t[i * H + h];
    z += ((xb[i >> 6] >> (i & 63)) & 1) ? -w : w;
  }
  return z;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    ensemble_forward_kernel(const uint64_t* __restrict__ x, int64_t x_member_stride, const scalar_t* __restrict__ w1t,
                            const scalar_t* __restrict__ b1, const scalar_t* __restrict__ w2,
                            const scalar_t* __restrict__ b2, int64_t B, int64_t n, int64_t H, int64_t C, int64_t W,
                            scalar_t* __restrict__ out) {
  __shared__ scalar_t shared[kThreads / 32];
  const int64_t e = blockIdx.y, b = blockIdx.x;
  const uint64_t* xb = x + e * x_member_stride + b * W;
  const scalar_t* w1e = w1t + e * n * H;
  for (int64_t c0 = 0; c0 < C; c0 += kClassGroup) {
    scalar_t acc[kClassGroup];
#pragma unroll
    for (int q = 0; q < kClassGroup; ++q) acc[q] = scalar_t(0);
    for (int64_t h = threadIdx.x; h < H; h += kThreads) {
      const scalar_t z = hidden_pre(xb, w1e, b1[e * H + h], n, H, h);
      const scalar_t hid = z > scalar_t(0) ? z : scalar_t(0);
#pragma unroll
      for (int q = 0; q < kClassGroup; ++q) {
        if (c0 + q < C) acc[q] += hid * w2[(e * C + c0 + q) * H + h];
      }
    }
    for (int q = 0; q < kClassGroup && c0 + q < C; ++q) {
      const scalar_t total = block_sum(acc[q], shared);
      if (threadIdx.x == 0) out[(e * B + b) * C + c0 + q] = total + b2[e * C + c0 + q];
    }
  }
}

// A thread per (member, hidden unit): loops over the samples, writes gh and accumulates dW2 and db1.
template <typename scalar_t>
__global__ void ensemble_backward_hidden_kernel(const scalar_t* __restrict__ grad, const uint64_t* __restrict__ x,
                                                int64_t x_member_stride, const scalar_t* __restrict__ w1t,
                                                const scalar_t* __restrict__ b1, const scalar_t* __restrict__ w2,
                                                int64_t E, int64_t B, int64_t n, int64_t H, int64_t C, int64_t W,
                                                scalar_t* __restrict__ gh, scalar_t* __restrict__ gw2,
                                                scalar_t* __restrict__ gb1) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= E * H) return;
  const int64_t e = t / H, h = t % H;
  const scalar_t* w1e = w1t + e * n * H;
  const scalar_t bias = b1[e * H + h];
  scalar_t sum_gh = scalar_t(0);
  for (int64_t c = 0; c < C; ++c) gw2[(e * C + c) * H + h] = scalar_t(0);
  for (int64_t b = 0; b < B; ++b) {
    const scalar_t z = hidden_pre(x + e * x_member_stride + b * W, w1e, bias, n, H, h);
    const scalar_t* gb = grad + (e * B + b) * C;
    scalar_t g = scalar_t(0);
    if (z > scalar_t(0)) {
      for (int64_t c = 0; c < C; ++c) {
        g += gb[c] * w2[(e * C + c) * H + h];
        gw2[(e * C + c) * H + h] += gb[c] * z;
      }
    }
    gh[(e * B + b) * H + h] = g;
    sum_gh += g;
  }
  gb1[e * H + h] = sum_gh;
}

// dW1t[e, i, h] = sum_b x[b, i] gh[e, b, h]: a thread per (e, i, h), coalesced over h.
template <typename scalar_t>
__global__ void ensemble_backward_w1_kernel(const scalar_t* __restrict__ gh, const uint64_t* __restrict__ x,
                                            int64_t x_member_stride, int64_t E, int64_t B, int64_t n, int64_t H,
                                            int64_t W, scalar_t* __restrict__ gw1t) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= E * n * H) return;
  const int64_t e = t / (n * H), i = (t / H) % n, h = t % H;
  const uint64_t* xe = x + e * x_member_stride;
  scalar_t acc = scalar_t(0);
  for (int64_t b = 0; b < B; ++b) {
    const scalar_t v = gh[(e * B + b) * H + h];
    acc += ((xe[b * W + (i >> 6)] >> (i & 63)) & 1) ? -v : v;
  }
  gw1t[t] = acc;
}

template <typename scalar_t>
__global__ void ensemble_backward_b2_kernel(const scalar_t* __restrict__ grad, int64_t E, int64_t B, int64_t C,
                                            scalar_t* __restrict__ gb2) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= E * C) return;
  const int64_t e = t / C, c = t % C;
  scalar_t acc = scalar_t(0);
  for (int64_t b = 0; b < B; ++b) acc += grad[(e * B + b) * C + c];
  gb2[t] = acc;
}

// The shared checks, then the grid limits: samples along x, members along y.
EnsembleShape check_ensemble_cuda(const at::Tensor& x_packed, const at::Tensor& w1t, const at::Tensor& b1,
                                  const at::Tensor& w2, const char* op) {
  const EnsembleShape s = check_ensemble(x_packed, w1t, b1, w2, at::kCUDA, op);
  TORCH_CHECK(s.B <= 0x7fffffff && s.E <= 65535, op, ": at most 2^31 - 1 samples and 65535 members");
  return s;
}

at::Tensor ensemble_mlp_forward_cuda(const at::Tensor& x_packed_in, const at::Tensor& w1t_in, const at::Tensor& b1_in,
                                     const at::Tensor& w2_in, const at::Tensor& b2_in) {
  const char* op = "companion::ensemble_mlp_forward";
  const EnsembleShape s = check_ensemble_cuda(x_packed_in, w1t_in, b1_in, w2_in, op);
  check_ensemble_bias2(b2_in, s, w1t_in, at::kCUDA, op);
  const c10::cuda::CUDAGuard guard(w1t_in.device());
  const at::Tensor x = x_packed_in.contiguous(), w1t = w1t_in.contiguous(), b1 = b1_in.contiguous();
  const at::Tensor w2 = w2_in.contiguous(), b2 = b2_in.contiguous();
  at::Tensor out = new_ensemble_logits(w1t, s);  // (E, B, C)
  if (s.B == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(w1t.scalar_type(), "companion_ensemble_mlp_forward_cuda", [&] {
    const dim3 grid(static_cast<unsigned>(s.B), static_cast<unsigned>(s.E));
    ensemble_forward_kernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        words_ptr(x), s.x_member_stride, w1t.const_data_ptr<scalar_t>(), b1.const_data_ptr<scalar_t>(),
        w2.const_data_ptr<scalar_t>(), b2.const_data_ptr<scalar_t>(), s.B, s.n, s.H, s.C, s.W,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ensemble_mlp_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_packed_in, const at::Tensor& w1t_in, const at::Tensor& b1_in,
    const at::Tensor& w2_in) {
  const char* op = "companion::ensemble_mlp_backward";
  const EnsembleShape s = check_ensemble_cuda(x_packed_in, w1t_in, b1_in, w2_in, op);
  check_ensemble_grad(grad_in, s, w1t_in, at::kCUDA, op);
  const c10::cuda::CUDAGuard guard(w1t_in.device());
  const at::Tensor x = x_packed_in.contiguous(), w1t = w1t_in.contiguous(), b1 = b1_in.contiguous();
  const at::Tensor w2 = w2_in.contiguous(), grad = grad_in.contiguous();
  auto [gw1t, gb1, gw2, gb2] = new_ensemble_grads(w1t, b1, w2, s);
  at::Tensor gh = at::empty({s.E, s.B, s.H}, w1t.options());  // (E, B, H) scratch: d loss / d z
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(w1t.scalar_type(), "companion_ensemble_mlp_backward_cuda", [&] {
    ensemble_backward_hidden_kernel<scalar_t><<<blocks_for(s.E * s.H), kThreads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), words_ptr(x), s.x_member_stride, w1t.const_data_ptr<scalar_t>(),
        b1.const_data_ptr<scalar_t>(), w2.const_data_ptr<scalar_t>(), s.E, s.B, s.n, s.H, s.C, s.W,
        gh.mutable_data_ptr<scalar_t>(), gw2.mutable_data_ptr<scalar_t>(), gb1.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ensemble_backward_w1_kernel<scalar_t><<<blocks_for(s.E * s.n * s.H), kThreads, 0, stream>>>(
        gh.const_data_ptr<scalar_t>(), words_ptr(x), s.x_member_stride, s.E, s.B, s.n, s.H, s.W,
        gw1t.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ensemble_backward_b2_kernel<scalar_t><<<blocks_for(s.E * s.C), kThreads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), s.E, s.B, s.C, gb2.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gw1t, gb1, gw2, gb2};
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CUDA, m) {
  m.impl("parity_sample", &parity_sample_cuda);
  m.impl("parity_pack", &parity_pack_cuda);
  m.impl("parity_unpack", &parity_unpack_cuda);
  m.impl("monomial_correlations", &monomial_correlations_cuda);
  m.impl("monomial_correlations_backward", &monomial_correlations_backward_cuda);
  m.impl("ensemble_mlp_forward", &ensemble_mlp_forward_cuda);
  m.impl("ensemble_mlp_backward", &ensemble_mlp_backward_cuda);
}

}  // namespace companion
