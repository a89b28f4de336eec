// The DPO family of preference losses on one (chosen, rejected) pair, and the softmax-gradient block of
// the fused linear log-prob kernels. Torch-free and header-only, shared by csrc/cpu/dpo.cpp and
// csrc/cuda/dpo.cu (COMPANION_HD = __host__ __device__ under nvcc, portability.h).
//
// With sequence log-probs pc = log pi(y_w|x), pr = log pi(y_l|x) and reference rc, rr, the log-ratio
//   h = (pc - pr) - (rc - rr)          (reference_free: h = pc - pr)
// enters the losses as in TRL's DPOTrainer.dpo_loss (v0.12 .. v0.28):
//   sigmoid (DPO, Rafailov et al. 2023 eq. 7; cDPO with label smoothing eps, Mitchell 2023 eq. 3):
//            L = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
//   robust  (Chowdhury et al. 2024 eq. 8):
//            L = [-(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h)] / (1 - 2 eps)
//   hinge   (SLiC, Zhao et al. 2023):  L = relu(1 - beta h)
//   ipo     (Azar et al. 2023 eq. 17): L = (h - 1 / (2 beta))^2   (on length-averaged log-probs)
// and the implicit rewards are beta (pc - rc), beta (pr - rr). Besides L, dpo_pair returns dL/dh, from
// which every gradient follows: dL/dpc = dL/drr = dL/dh, dL/dpr = dL/drc = -dL/dh (0 for rc, rr when
// reference_free).
#pragma once

#include "online_logsumexp.h"
#include "portability.h"

namespace companion {

// Loss types, in the order of the names accepted by the ops (dpo_loss_type_from_name).
enum DpoLossType : int { kDpoSigmoid = 0, kDpoRobust = 1, kDpoHinge = 2, kDpoIpo = 3 };

struct DpoParams {
  double beta;             // > 0
  double label_smoothing;  // eps: sigmoid [0, 1], robust [0, 0.5); 0 for hinge and ipo
  int loss_type;           // DpoLossType
  bool reference_free;     // ignore rc, rr in h (not in the rewards, as TRL)
};

template <typename acc_t>
struct DpoPair {
  acc_t loss;
  acc_t dloss_dlogratio;  // dL/dh
  acc_t chosen_reward;    // beta (pc - rc)
  acc_t rejected_reward;  // beta (pr - rr)
};

COMPANION_HD COMPANION_INLINE float acc_log1p(float x) { return log1pf(x); }
COMPANION_HD COMPANION_INLINE double acc_log1p(double x) { return log1p(x); }

// log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)): no overflow for |x| up to the dtype's max.
template <typename acc_t>
COMPANION_HD COMPANION_INLINE acc_t log_sigmoid(acc_t x) {
  const acc_t neg_abs = x < acc_t(0) ? x : -x;
  return (x < acc_t(0) ? x : acc_t(0)) - acc_log1p(acc_exp(neg_abs));
}

// sigmoid(x), with exp taken only of -|x| so that it never overflows.
template <typename acc_t>
COMPANION_HD COMPANION_INLINE acc_t sigmoid(acc_t x) {
  const acc_t e = acc_exp(x < acc_t(0) ? x : -x);  // in (0, 1]
  return x < acc_t(0) ? e / (acc_t(1) + e) : acc_t(1) / (acc_t(1) + e);
}

template <typename acc_t>
COMPANION_HD COMPANION_INLINE DpoPair<acc_t> dpo_pair(acc_t pc, acc_t pr, acc_t rc, acc_t rr, const DpoParams& p) {
  const acc_t beta = static_cast<acc_t>(p.beta);
  const acc_t eps = static_cast<acc_t>(p.label_smoothing);
  const acc_t h = p.reference_free ? pc - pr : (pc - pr) - (rc - rr);
  const acc_t bh = beta * h;
  DpoPair<acc_t> out;
  out.chosen_reward = beta * (pc - rc);
  out.rejected_reward = beta * (pr - rr);
  switch (p.loss_type) {
    case kDpoSigmoid:
      // d/dx -log sigmoid(x) = -sigmoid(-x);  d/dx -log sigmoid(-x) = sigmoid(x)
      out.loss = -(acc_t(1) - eps) * log_sigmoid(bh) - eps * log_sigmoid(-bh);
      out.dloss_dlogratio = beta * (-(acc_t(1) - eps) * sigmoid(-bh) + eps * sigmoid(bh));
      break;
    case kDpoRobust: {
      const acc_t scale = acc_t(1) / (acc_t(1) - acc_t(2) * eps);
      out.loss = (-(acc_t(1) - eps) * log_sigmoid(bh) + eps * log_sigmoid(-bh)) * scale;
      out.dloss_dlogratio = beta * (-(acc_t(1) - eps) * sigmoid(-bh) - eps * sigmoid(bh)) * scale;
      break;
    }
    case kDpoHinge: {
      const acc_t margin = acc_t(1) - bh;
      out.loss = margin > acc_t(0) ? margin : acc_t(0);
      out.dloss_dlogratio = margin > acc_t(0) ? -beta : acc_t(0);  // relu'(0) = 0, as torch
      break;
    }
    default: {  // kDpoIpo
      const acc_t d = h - acc_t(1) / (acc_t(2) * beta);
      out.loss = d * d;
      out.dloss_dlogratio = acc_t(2) * d;
      break;
    }
  }
  return out;
}

// In place over one chunk row of logits z[0..n): z <- -b * exp(z - lse), the softmax part of
// d/dz (a * log_softmax(z)_t + c * lse) = a * onehot_t - (a - c) * softmax(z) with b = a - c; the caller
// adds a at the target. exp_poly vectorizes (online_logsumexp.h). lse is finite here (finite logits).
template <typename acc_t>
COMPANION_CPU_SIMD void softmax_grad_block(acc_t* __restrict__ z, int64_t n, acc_t b, acc_t lse) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    z[i] = -b * exp_poly(z[i] - lse);
  }
}

}  // namespace companion
