// companion sparse-parity ops on CPU (Panigrahi et al. 2025, arXiv 2410.05464, section 3).
//
//   parity_sample(n, batch, seed, start, S)   rows start..start+batch-1 of the stream for `seed`, packed
//                                            [B, W] int64 (W = ceil(n / 64), bit 1 = -1), and y = chi_S(x)
//   parity_pack(x) / parity_unpack(x_packed, n)   {-1, +1} float rows <-> packed words
//   monomial_correlations(x_packed, f, masks)     corr[s, c] = (1/N) sum_n f[n, c] chi_{S_s}(x_n),
//                                                 chi_S(x) = (-1)^popcount(x & S)          -> [S, C]
//   monomial_correlations_backward(grad, x_packed, masks)   grad_f[n, c] = (1/N) sum_s grad[s, c] chi_s(x_n)
//   ensemble_mlp_forward(x_packed, W1t, b1, W2, b2)  out[e, b] = W2[e] relu(W1t[e]^T x_b + b1[e]) + b2[e]
//   ensemble_mlp_backward(grad, x_packed, W1t, b1, W2) -> (dW1t, db1, dW2, db2)
//
// Correlations accumulate in float64 whatever f's dtype (terms are exact sign flips of f), over blocks of
// kBlock rows in a fixed order, so results do not depend on the thread count. The ensemble splits each
// member's hidden units into chunks of HC and runs one (member, chunk) per task; the table ("four
// Russians") math is in popcount_parity.h. Forward partial sums over chunks are reduced in chunk order,
// so the ensemble is deterministic too.
//
// This is the only CPU file of the family that touches torch; the math lives in popcount_parity.h, the
// argument checks and output allocation (shared with the CUDA file) in csrc/host/parity_checks.h and
// csrc/host/parity_plan.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "parity_checks.h"
#include "parity_plan.h"
#include "popcount_parity.h"
#include "tensor_helpers.h"

// The ensemble loops' 64-byte vector helpers are always inlined; GCC still notes, where the templates are
// instantiated (the end of this file), that passing such vectors without AVX-512 "changes the ABI".
#pragma GCC diagnostic ignored "-Wpsabi"

namespace companion {
namespace {

using parity::kPatterns;
using parity::words_for;

// Rows per block of the correlation loops: the block's words, sign bits and f (float64) take
// 1024 * 8 * (W + 1 + C) bytes, in L1 for W, C <= 2, and are reused by every subset of the task.
constexpr int64_t kBlock = 1024;

// Work per thread at least: about 2^19 inner-loop elements (~0.1 ms), so that small problems stay on one
// thread. A 2-thread OpenMP region has a fixed cost, and on a loaded machine waiting for the second core's
// time slice measured 2-8 ms (for torch's own `a + 1` on 1000 x 1000 too) against 0.08 ms for the whole
// 1-thread backward of E = 8, B = 64, H = 64.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 19;
int64_t task_grain(int64_t work_per_task) {
  return std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(1, work_per_task));
}

// ------------------------------------------------------------------------------------------ sampling

std::tuple<at::Tensor, at::Tensor> parity_sample_cpu(int64_t n, int64_t batch, int64_t seed, int64_t start,
                                                     const at::Tensor& support_mask) {
  const char* op = "companion::parity_sample";
  check_parity_sample(n, batch, seed, start, support_mask, at::kCPU, op);
  const int64_t W = words_for(n);
  const at::Tensor mask = support_mask.contiguous();
  auto [x, y] = new_parity_sample(mask, batch, W);  // (B, W), (B,)
  const uint64_t* m = words_ptr(mask);
  uint64_t* xp = mutable_words_ptr(x);
  float* yp = y.mutable_data_ptr<float>();
  const uint32_t key = parity::seed_key(static_cast<uint64_t>(seed));
  at::parallel_for(0, batch, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const uint32_t rk = parity::row_key(key, static_cast<uint64_t>(start + b));
      uint64_t acc = 0;
      for (int64_t w = 0; w < W; ++w) {
        const uint64_t word = parity::row_word(rk, w, n);
        xp[b * W + w] = word;
        acc ^= word & m[w];
      }
      yp[b] = parity::parity64(acc) ? -1.0f : 1.0f;
    }
  });
  return {x, y};
}

at::Tensor parity_pack_cpu(const at::Tensor& x_in) {
  const char* op = "companion::parity_pack";
  check_parity_pack(x_in, at::kCPU, op);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), n = x.size(1), W = words_for(n);
  at::Tensor out = new_rows(x, B, W, at::kLong);  // (B, W)
  uint64_t* op_ptr = mutable_words_ptr(out);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "companion_parity_pack_cpu", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    at::parallel_for(0, B, std::max<int64_t>(1, 32768 / n), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t w = 0; w < W; ++w) {
          const int64_t len = std::min<int64_t>(64, n - 64 * w);
          const scalar_t* row = xp + b * n + 64 * w;
          uint64_t word = 0;
          for (int64_t j = 0; j < len; ++j) word |= static_cast<uint64_t>(static_cast<float>(row[j]) < 0.0f) << j;
          op_ptr[b * W + w] = word;
        }
      }
    });
  });
  return out;
}

at::Tensor parity_unpack_cpu(const at::Tensor& x_packed_in, int64_t n) {
  const char* op = "companion::parity_unpack";
  check_parity_unpack(x_packed_in, n, at::kCPU, op);
  const int64_t W = words_for(n);
  const at::Tensor xw = x_packed_in.contiguous();
  const int64_t B = xw.size(0);
  at::Tensor out = new_rows(xw, B, n, at::kFloat);  // (B, n)
  const uint64_t* xp = words_ptr(xw);
  float* o = out.mutable_data_ptr<float>();
  at::parallel_for(0, B, std::max<int64_t>(1, 32768 / n), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t i = 0; i < n; ++i) o[b * n + i] = ((xp[b * W + i / 64] >> (i % 64)) & 1) ? -1.0f : 1.0f;
    }
  });
  return out;
}

// ------------------------------------------------------------------------------------- correlations

// Word-major copy xT [W, N] of x [N, W], so the per-word loops over rows are unit-stride.
std::vector<uint64_t> transpose_words(const at::Tensor& x_packed) {
  const at::Tensor x = x_packed.contiguous();
  const int64_t N = x.size(0), W = x.size(1);
  std::vector<uint64_t> xT(static_cast<size_t>(N * W));
  const uint64_t* xp = words_ptr(x);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t w = 0; w < W; ++w) xT[w * N + i] = xp[i * W + w];
  }
  return xT;
}

at::Tensor monomial_correlations_cpu(const at::Tensor& x_packed, const at::Tensor& f, const at::Tensor& masks_in) {
  const char* op = "companion::monomial_correlations";
  check_correlation_inputs(x_packed, masks_in, at::kCPU, op);
  check_correlation_f(f, x_packed.size(0), at::kCPU, op);
  const int64_t N = x_packed.size(0), W = x_packed.size(1), C = f.size(1), S = masks_in.size(0);
  const std::vector<uint64_t> xT = transpose_words(x_packed);
  const at::Tensor fT = f.t().to(at::kDouble).contiguous();  // (C, N) float64
  const at::Tensor masks = masks_in.contiguous();
  const uint64_t* mp = words_ptr(masks);
  const double* fp = fT.const_data_ptr<double>();
  at::Tensor acc = at::zeros({S, C}, f.options().dtype(at::kDouble));  // (S, C)
  double* ap = acc.mutable_data_ptr<double>();
  at::parallel_for(0, S, std::max<int64_t>(8, task_grain(N * W * C)), [&](int64_t s0, int64_t s1) {
    alignas(64) uint64_t sign_bits[kBlock];
    for (int64_t n0 = 0; n0 < N; n0 += kBlock) {
      const int64_t len = std::min(kBlock, N - n0);
      for (int64_t s = s0; s < s1; ++s) {
        if (W == 1 && C == 1) {
          ap[s] += parity::signed_sum_one_word(xT.data() + n0, mp[s], fp + n0, len);
          continue;
        }
        parity::parity_sign_bits(xT.data() + n0, N, W, mp + s * W, len, sign_bits);
        for (int64_t c = 0; c < C; ++c) ap[s * C + c] += parity::signed_sum(fp + c * N + n0, sign_bits, len);
      }
    }
  });
  acc.div_(static_cast<double>(N));
  return acc.to(f.scalar_type());
}

at::Tensor monomial_correlations_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x_packed,
                                              const at::Tensor& masks_in) {
  const char* op = "companion::monomial_correlations_backward";
  check_correlation_inputs(x_packed, masks_in, at::kCPU, op);
  const int64_t N = x_packed.size(0), W = x_packed.size(1), S = masks_in.size(0);
  check_correlation_grad(grad_in, N, S, at::kCPU, op);
  const int64_t C = grad_in.size(1);
  const std::vector<uint64_t> xT = transpose_words(x_packed);
  const at::Tensor g = grad_in.to(at::kDouble).contiguous();  // (S, C)
  const at::Tensor masks = masks_in.contiguous();
  const uint64_t* mp = words_ptr(masks);
  const double* gp = g.const_data_ptr<double>();
  at::Tensor out = at::empty({N, C}, grad_in.options().dtype(at::kDouble));  // (N, C)
  double* op_ptr = out.mutable_data_ptr<double>();
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  const double inv_n = 1.0 / static_cast<double>(N);
  at::parallel_for(0, blocks, task_grain(kBlock * S * W * C), [&](int64_t blk0, int64_t blk1) {
    alignas(64) uint64_t sign_bits[kBlock];
    std::vector<double> acc(static_cast<size_t>(C * kBlock));
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      const int64_t n0 = blk * kBlock, len = std::min(kBlock, N - n0);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = 0; s < S; ++s) {
        parity::parity_sign_bits(xT.data() + n0, N, W, mp + s * W, len, sign_bits);
        for (int64_t c = 0; c < C; ++c) parity::signed_axpy(gp[s * C + c], sign_bits, acc.data() + c * kBlock, len);
      }
      for (int64_t i = 0; i < len; ++i) {
        for (int64_t c = 0; c < C; ++c) op_ptr[(n0 + i) * C + c] = acc[c * kBlock + i] * inv_n;
      }
    }
  });
  return out.to(grad_in.scalar_type());
}

// ---------------------------------------------------------------------------------- ensemble MLP

// Chunks of hidden units per forward task: the lane-vector accumulators [B, C, lanes] are summed across
// lanes once per task, so a task spans several chunks (8 x 32 = 256 hidden units for float32).
constexpr int64_t kChunksPerTask = 8;


// The shared shape plus G, the nibbles per row of x that the tables of popcount_parity.h are looked up by.
struct TableShape : EnsembleShape {
  int64_t G;
};

TableShape check_ensemble_cpu(const at::Tensor& x_packed, const at::Tensor& w1t, const at::Tensor& b1,
                              const at::Tensor& w2, const char* op) {
  const EnsembleShape s = check_ensemble(x_packed, w1t, b1, w2, at::kCPU, op);
  return {s, (s.n + parity::kNibble - 1) / parity::kNibble};
}

// nib [X, B, G]: nibble g of row b times HC (the offset of its table row), X = 1 (shared x) or E.
template <typename T>
std::vector<uint16_t> nibble_offsets(const at::Tensor& x_packed, const TableShape& s) {
  const at::Tensor x = x_packed.contiguous();
  const int64_t rows = x.numel() / s.W;  // X * B
  std::vector<uint16_t> nib(static_cast<size_t>(rows * s.G));
  const uint64_t* xp = words_ptr(x);
  at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g = 0; g < s.G; ++g) {
        const int64_t bit = g * parity::kNibble;
        const uint64_t p = (xp[r * s.W + bit / 64] >> (bit % 64)) & (kPatterns - 1);
        nib[r * s.G + g] = static_cast<uint16_t>(p * parity::Simd<T>::kChunk);
      }
    }
  });
  return nib;
}

at::Tensor ensemble_mlp_forward_cpu(const at::Tensor& x_packed, const at::Tensor& w1t_in, const at::Tensor& b1_in,
                                    const at::Tensor& w2_in, const at::Tensor& b2_in) {
  const char* op = "companion::ensemble_mlp_forward";
  const TableShape s = check_ensemble_cpu(x_packed, w1t_in, b1_in, w2_in, op);
  check_ensemble_bias2(b2_in, s, w1t_in, at::kCPU, op);
  const at::Tensor w1t = w1t_in.contiguous(), b1 = b1_in.contiguous(), w2 = w2_in.contiguous();
  const at::Tensor b2 = b2_in.contiguous();
  at::Tensor out = new_ensemble_logits(w1t, s);  // (E, B, C)
  AT_DISPATCH_FLOATING_TYPES(w1t.scalar_type(), "companion_ensemble_mlp_forward_cpu", [&] {
    using S = parity::Simd<scalar_t>;
    constexpr int HC = S::kChunk;
    const int64_t chunks = (s.H + HC - 1) / HC, groups = (chunks + kChunksPerTask - 1) / kChunksPerTask;
    const std::vector<uint16_t> nib = nibble_offsets<scalar_t>(x_packed, s);
    std::vector<scalar_t> partial(static_cast<size_t>(s.E * groups * s.B * s.C));  // (E, groups, B, C)
    const scalar_t *w1p = w1t.const_data_ptr<scalar_t>(), *b1p = b1.const_data_ptr<scalar_t>();
    const scalar_t *w2p = w2.const_data_ptr<scalar_t>(), *b2p = b2.const_data_ptr<scalar_t>();
    const int64_t grain = task_grain(s.B * s.G * HC * kChunksPerTask);
    at::parallel_for(0, s.E * groups, grain, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> table(static_cast<size_t>(s.G * kPatterns * HC)), w2pad(static_cast<size_t>(s.C * HC));
      std::vector<scalar_t> acc(static_cast<size_t>(s.B * s.C * S::kLanes));  // (B, C, lanes)
      for (int64_t task = begin; task < end; ++task) {
        const int64_t e = task / groups, group = task % groups;
        const uint16_t* nb = nib.data() + (s.shared_x ? 0 : e * s.B * s.G);
        std::fill(acc.begin(), acc.end(), scalar_t(0));
        const int64_t ch_end = std::min(chunks, (group + 1) * kChunksPerTask);
        for (int64_t ch = group * kChunksPerTask; ch < ch_end; ++ch) {
          const int64_t h0 = ch * HC, hc = std::min<int64_t>(HC, s.H - h0);
          parity::build_tables<scalar_t>(w1p + e * s.n * s.H + h0, s.H, s.n, s.G, b1p + e * s.H + h0, hc,
                                         table.data());
          parity::pad_w2<scalar_t>(w2p + e * s.C * s.H + h0, s.H, s.C, hc, w2pad.data());
          parity::forward_chunk<scalar_t>(table.data(), nb, s.B, s.G, w2pad.data(), s.C, acc.data());
        }
        scalar_t* part = partial.data() + task * s.B * s.C;
        for (int64_t q = 0; q < s.B * s.C; ++q) {
          scalar_t sum = 0;
          for (int l = 0; l < S::kLanes; ++l) sum += acc[q * S::kLanes + l];
          part[q] = sum;
        }
      }
    });
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, s.E, task_grain(s.B * s.C * groups), [&](int64_t e0, int64_t e1) {
      for (int64_t e = e0; e < e1; ++e) {
        for (int64_t q = 0; q < s.B * s.C; ++q) {
          scalar_t acc = b2p[e * s.C + q % s.C];
          for (int64_t group = 0; group < groups; ++group) acc += partial[(e * groups + group) * s.B * s.C + q];
          o[e * s.B * s.C + q] = acc;
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ensemble_mlp_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_packed, const at::Tensor& w1t_in, const at::Tensor& b1_in,
    const at::Tensor& w2_in) {
  const char* op = "companion::ensemble_mlp_backward";
  const TableShape s = check_ensemble_cpu(x_packed, w1t_in, b1_in, w2_in, op);
  check_ensemble_grad(grad_in, s, w1t_in, at::kCPU, op);
  const at::Tensor w1t = w1t_in.contiguous(), b1 = b1_in.contiguous(), w2 = w2_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();  // (E, B, C)
  auto [gw1t, gb1, gw2, gb2] = new_ensemble_grads(w1t, b1, w2, s);
  AT_DISPATCH_FLOATING_TYPES(w1t.scalar_type(), "companion_ensemble_mlp_backward_cpu", [&] {
    constexpr int HC = parity::Simd<scalar_t>::kChunk;
    const int64_t chunks = (s.H + HC - 1) / HC;
    const std::vector<uint16_t> nib = nibble_offsets<scalar_t>(x_packed, s);
    const int64_t X = s.shared_x ? 1 : s.E, blocks = (s.B + parity::kBackwardBlock - 1) / parity::kBackwardBlock;
    std::vector<int32_t> order(static_cast<size_t>(X * blocks * s.G * parity::kBackwardBlock));
    std::vector<int32_t> starts(static_cast<size_t>(X * blocks * s.G * (kPatterns + 1)));
    parity::bucket_order<scalar_t>(nib.data(), X, s.B, s.G, order.data(), starts.data());
    const scalar_t *w1p = w1t.const_data_ptr<scalar_t>(), *b1p = b1.const_data_ptr<scalar_t>();
    const scalar_t *w2p = w2.const_data_ptr<scalar_t>(), *gp = grad.const_data_ptr<scalar_t>();
    scalar_t *gw1p = gw1t.mutable_data_ptr<scalar_t>(), *gb1p = gb1.mutable_data_ptr<scalar_t>();
    scalar_t *gw2p = gw2.mutable_data_ptr<scalar_t>(), *gb2p = gb2.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, s.E * chunks, task_grain(2 * s.B * s.G * HC), [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> table(static_cast<size_t>(s.G * kPatterns * HC));
      std::vector<scalar_t> buckets(table.size()), gh_block(static_cast<size_t>(parity::kBackwardBlock * HC));
      std::vector<scalar_t> acc2(static_cast<size_t>(s.C * HC)), w2pad(acc2.size());
      for (int64_t task = begin; task < end; ++task) {
        const int64_t e = task / chunks, h0 = (task % chunks) * HC, hc = std::min<int64_t>(HC, s.H - h0);
        parity::build_tables<scalar_t>(w1p + e * s.n * s.H + h0, s.H, s.n, s.G, b1p + e * s.H + h0, hc,
                                       table.data());
        parity::pad_w2<scalar_t>(w2p + e * s.C * s.H + h0, s.H, s.C, hc, w2pad.data());
        const int64_t x = s.shared_x ? 0 : e;
        const uint16_t* nb = nib.data() + x * s.B * s.G;
        parity::backward_chunk<scalar_t>(table.data(), nb, s.B, s.G, s.n, w2pad.data(), s.H, s.C,
                                             hc, gp + e * s.B * s.C,
                                             order.data() + x * blocks * s.G * parity::kBackwardBlock,
                                             starts.data() + x * blocks * s.G * (kPatterns + 1),
                                             gh_block.data(), buckets.data(), acc2.data(),
                                             gw1p + e * s.n * s.H + h0, gb1p + e * s.H + h0,
                                             gw2p + e * s.C * s.H + h0);
        if (h0 == 0) {  // d out / d b2 = 1: db2[e, c] = sum_b grad[e, b, c], once per member
          for (int64_t c = 0; c < s.C; ++c) {
            scalar_t acc = 0;
            for (int64_t b = 0; b < s.B; ++b) acc += gp[(e * s.B + b) * s.C + c];
            gb2p[e * s.C + c] = acc;
          }
        }
      }
    });
  });
  return {gw1t, gb1, gw2, gb2};
}

}  // namespace

TORCH_LIBRARY_IMPL(companion, CPU, m) {
  m.impl("parity_sample", &parity_sample_cpu);
  m.impl("parity_pack", &parity_pack_cpu);
  m.impl("parity_unpack", &parity_unpack_cpu);
  m.impl("monomial_correlations", &monomial_correlations_cpu);
  m.impl("monomial_correlations_backward", &monomial_correlations_backward_cpu);
  m.impl("ensemble_mlp_forward", &ensemble_mlp_forward_cpu);
  m.impl("ensemble_mlp_backward", &ensemble_mlp_backward_cpu);
}

}  // namespace companion
