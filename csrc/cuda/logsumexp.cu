// companion::logsumexp on CUDA.
//
//   forward:  lse[n] = log(sum_v exp(x[n, v]))                 x [N, V] -> lse [N]
//   backward: grad_x[n, v] = grad[n] * exp(x[n, v] - lse[n])   (= grad[n] * softmax(x[n])_v)
//
// One block of kThreads threads per row. Each thread folds a strided slice of the row (coalesced loads)
// into an online (max, sum) state (online_logsumexp.h, Milakov & Gimelshein 2018); the states are merged
// with warp shuffles, then across warps through shared memory, so each row is read from global memory
// once. float and double accumulate in their own type; bfloat16 and float16 are widened to float and the
// result is rounded back to the input dtype. The backward is one block per row, elementwise.
//
// Includes only ATen/torch headers and c10/cuda (no ATen/cuda headers, which pull cuBLAS). This is the
// only CUDA file of the op that touches torch; the math lives in online_logsumexp.h, the argument checks
// (shared with the CPU file) in csrc/host/logsumexp_checks.h.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "logsumexp_checks.h"
#include "online_logsumexp.h"
#include "tensor_helpers.h"

namespace companion {
namespace {

// 8 warps per row: enough loads in flight to stream a 32k-50k vocabulary row; the cross-warp merge is
// one shared-memory round. Not yet tuned on a GPU.
constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    lse_forward_kernel(const scalar_t* __restrict__ x, int64_t row_stride, int64_t V, scalar_t* __restrict__ lse) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t row = blockIdx.x;
  const scalar_t* x_row = x + row * row_stride;  // (V,)
  OnlineLogSumExp<acc_t> state;
  for (int64_t v = threadIdx.x; v < V; v += kThreads) {
    state.update(static_cast<acc_t>(x_row[v]));
  }
  state = block_merge<kThreads>(state);
  if (threadIdx.x == 0) lse[row] = static_cast<scalar_t>(state.result());
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    lse_backward_kernel(const scalar_t* __restrict__ grad, int64_t grad_stride, const scalar_t* __restrict__ x,
                        int64_t row_stride, const scalar_t* __restrict__ lse, int64_t lse_stride,
                        scalar_t* __restrict__ grad_x, int64_t V) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t row = blockIdx.x;
  const acc_t g = static_cast<acc_t>(grad[row * grad_stride]);
  const acc_t row_lse = static_cast<acc_t>(lse[row * lse_stride]);
  const scalar_t* x_row = x + row * row_stride;  // (V,)
  scalar_t* out_row = grad_x + row * V;          // (V,)
  // A row with lse = -inf (all inputs -inf) has no mass: zero gradient rather than exp(-inf + inf) = NaN.
  const bool empty_row = row_lse == -static_cast<acc_t>(INFINITY);
  for (int64_t v = threadIdx.x; v < V; v += kThreads) {
    const acc_t p = empty_row ? acc_t(0) : acc_exp(static_cast<acc_t>(x_row[v]) - row_lse);
    out_row[v] = static_cast<scalar_t>(g * p);
  }
}

// The shared checks, then the grid limit: one block per row.
void check_logits_cuda(const at::Tensor& x, const char* op) {
  check_logits(x, at::kCUDA, op);
  TORCH_CHECK(x.size(0) <= 0x7fffffff, op, ": at most 2^31 - 1 rows, got ", x.size(0));
}

at::Tensor logsumexp_cuda(const at::Tensor& x_in) {
  check_logits_cuda(x_in, "companion::logsumexp");
  const c10::cuda::CUDAGuard device_guard(x_in.device());
  const at::Tensor x = unit_inner_stride(x_in);
  const int64_t N = x.size(0), V = x.size(1);
  at::Tensor lse = at::empty({N}, x.options());  // (N,)
  if (N == 0) return lse;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "companion_logsumexp_cuda", [&] {
    lse_forward_kernel<scalar_t><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), x.stride(0), V, lse.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return lse;
}

at::Tensor logsumexp_backward_cuda(const at::Tensor& grad, const at::Tensor& x_in, const at::Tensor& lse) {
  check_logits_cuda(x_in, "companion::logsumexp_backward");
  const c10::cuda::CUDAGuard device_guard(x_in.device());
  const at::Tensor x = unit_inner_stride(x_in);
  const int64_t N = x.size(0), V = x.size(1);
  check_logsumexp_backward(grad, x, lse);
  TORCH_CHECK(grad.device() == x.device() && lse.device() == x.device(),
              "companion::logsumexp_backward: grad and lse must be on ", x.device());
  at::Tensor grad_x = at::empty({N, V}, x.options());  // (N, V), contiguous
  if (N == 0) return grad_x;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, x.scalar_type(), "companion_logsumexp_backward_cuda", [&] {
        // grad often arrives expanded (stride 0) from a .sum(); strides are honoured, nothing is copied.
        lse_backward_kernel<scalar_t><<<static_cast<unsigned>(N), kThreads, 0, stream>>>(
            grad.const_data_ptr<scalar_t>(), grad.stride(0), x.const_data_ptr<scalar_t>(), x.stride(0),
            lse.const_data_ptr<scalar_t>(), lse.stride(0), grad_x.mutable_data_ptr<scalar_t>(), V);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return grad_x;
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CUDA, m) {
  m.impl("logsumexp", &logsumexp_cuda);
  m.impl("logsumexp_backward", &logsumexp_backward_cuda);
}

}  // namespace companion
