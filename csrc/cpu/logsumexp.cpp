// companion::logsumexp on CPU.
//
//   forward:  lse[n] = log(sum_v exp(x[n, v]))                 x [N, V] -> lse [N]
//   backward: grad_x[n, v] = grad[n] * exp(x[n, v] - lse[n])   (= grad[n] * softmax(x[n])_v)
//
// The log-sum-exp is the normalizer of a softmax over the vocabulary, log Z in
// log p(y | x) = logit_y - log Z; the fused DPO kernels build on the same online state.
// Rows are split across threads with at::parallel_for. Each row is reduced in blocks of kBlock values:
// a vectorizable max pass and sum-of-exp pass per block while it is in L1 (online_logsumexp.h),
// then the block states are merged online, so every row is read from memory once.
// float and double accumulate in their own type; bfloat16 and float16 are widened to float per block
// and the result is rounded back to the input dtype.
//
// This is the only CPU file of the op that touches torch; the math lives in online_logsumexp.h, the
// argument checks (shared with the CUDA file) in csrc/host/logsumexp_checks.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "logsumexp_checks.h"
#include "online_logsumexp.h"
#include "tensor_helpers.h"

namespace companion {
namespace {

// Values per block: 2048 floats = 8 KiB, so a block and its float copy (16-bit inputs) stay in L1 for the
// second pass. Measured on the 2-core dev machine (median of 9, x [4096, 32000] float32 and
// [512, 50257] bfloat16): kBlock = 2048, 16384 and 65536 are within run-to-run noise (0.073-0.087 s
// float32), so the L1-sized block is kept for machines with smaller L2.
constexpr int64_t kBlock = 2048;

// Rows per parallel task: about 32768 values, ATen's own grain (at::internal::GRAIN_SIZE), so that
// small inputs stay on one thread.
constexpr int64_t kGrainValues = 32768;
int64_t rows_per_task(int64_t V) { return std::max<int64_t>(1, kGrainValues / V); }

// 16-bit block -> float block (bfloat16 by a vectorized shift of its bits, float16 by c10's conversion).
inline void widen(const c10::BFloat16* x, float* out, int64_t n) {
  static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t));
  widen_bfloat16(reinterpret_cast<const uint16_t*>(x), out, n);
}
inline void widen(const c10::Half* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i]);
}

template <typename scalar_t>
void lse_forward_rows(const scalar_t* x, int64_t row_stride, scalar_t* lse, int64_t begin, int64_t end,
                      int64_t V) {
  using acc_t = acc_type_t<scalar_t>;
  alignas(64) acc_t buf[std::is_same_v<scalar_t, acc_t> ? 1 : kBlock];  // widened 16-bit block
  for (int64_t n = begin; n < end; ++n) {
    const scalar_t* row = x + n * row_stride;
    OnlineLogSumExp<acc_t> state;
    for (int64_t v0 = 0; v0 < V; v0 += kBlock) {
      const int64_t len = std::min(kBlock, V - v0);
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        state.merge(block_state<acc_t>(row + v0, len));
      } else {
        widen(row + v0, buf, len);
        state.merge(block_state<acc_t>(buf, len));
      }
    }
    lse[n] = static_cast<scalar_t>(state.result());
  }
}

template <typename scalar_t>
void lse_backward_rows(const scalar_t* grad, int64_t grad_stride, const scalar_t* x, int64_t row_stride,
                       const scalar_t* lse, int64_t lse_stride, scalar_t* grad_x, int64_t begin,
                       int64_t end, int64_t V) {
  using acc_t = acc_type_t<scalar_t>;
  constexpr bool kWiden = !std::is_same_v<scalar_t, acc_t>;
  alignas(64) acc_t in_buf[kWiden ? kBlock : 1];
  alignas(64) acc_t out_buf[kWiden ? kBlock : 1];
  for (int64_t n = begin; n < end; ++n) {
    const acc_t g = static_cast<acc_t>(grad[n * grad_stride]);
    const acc_t row_lse = static_cast<acc_t>(lse[n * lse_stride]);
    const scalar_t* row = x + n * row_stride;
    scalar_t* out_row = grad_x + n * V;
    for (int64_t v0 = 0; v0 < V; v0 += kBlock) {
      const int64_t len = std::min(kBlock, V - v0);
      if constexpr (!kWiden) {
        lse_backward_block<acc_t>(row + v0, out_row + v0, len, g, row_lse);
      } else {
        widen(row + v0, in_buf, len);
        lse_backward_block<acc_t>(in_buf, out_buf, len, g, row_lse);
        for (int64_t i = 0; i < len; ++i) out_row[v0 + i] = static_cast<scalar_t>(out_buf[i]);
      }
    }
  }
}

at::Tensor logsumexp_cpu(const at::Tensor& x_in) {
  check_logits(x_in, at::kCPU, "companion::logsumexp");
  const at::Tensor x = unit_inner_stride(x_in);
  const int64_t N = x.size(0), V = x.size(1);
  at::Tensor lse = at::empty({N}, x.options());  // (N,)
  if (N == 0) return lse;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "companion_logsumexp_cpu", [&] {
    const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
    scalar_t* lse_ptr = lse.mutable_data_ptr<scalar_t>();
    const int64_t row_stride = x.stride(0);
    at::parallel_for(0, N, rows_per_task(V), [&](int64_t begin, int64_t end) {
      lse_forward_rows<scalar_t>(x_ptr, row_stride, lse_ptr, begin, end, V);
    });
  });
  return lse;
}

at::Tensor logsumexp_backward_cpu(const at::Tensor& grad, const at::Tensor& x_in, const at::Tensor& lse) {
  check_logits(x_in, at::kCPU, "companion::logsumexp_backward");
  const at::Tensor x = unit_inner_stride(x_in);
  const int64_t N = x.size(0), V = x.size(1);
  check_logsumexp_backward(grad, x, lse);
  TORCH_CHECK(grad.device().is_cpu() && lse.device().is_cpu(),
              "companion::logsumexp_backward: grad and lse must be CPU tensors");
  at::Tensor grad_x = at::empty({N, V}, x.options());  // (N, V), contiguous
  if (N == 0) return grad_x;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, x.scalar_type(), "companion_logsumexp_backward_cpu", [&] {
        const scalar_t* grad_ptr = grad.const_data_ptr<scalar_t>();
        const scalar_t* x_ptr = x.const_data_ptr<scalar_t>();
        const scalar_t* lse_ptr = lse.const_data_ptr<scalar_t>();
        scalar_t* out_ptr = grad_x.mutable_data_ptr<scalar_t>();
        // grad often arrives expanded (stride 0) from a .sum(); strides are honoured, nothing is copied.
        const int64_t grad_stride = grad.stride(0), lse_stride = lse.stride(0), row_stride = x.stride(0);
        at::parallel_for(0, N, rows_per_task(V), [&](int64_t begin, int64_t end) {
          lse_backward_rows<scalar_t>(grad_ptr, grad_stride, x_ptr, row_stride, lse_ptr, lse_stride, out_ptr,
                                      begin, end, V);
        });
      });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CPU, m) {
  m.impl("logsumexp", &logsumexp_cpu);
  m.impl("logsumexp_backward", &logsumexp_backward_cpu);
}

}  // namespace companion
