"""Ranking accuracy, idealized ranking accuracy and the flip threshold of Chen et al. 2024.

Paper: Chen, Malladi, Zhang, Chen, Zhang, Ranganath, Cho, "Preference Learning Algorithms Do Not Learn
Preference Rankings", NeurIPS 2024, arXiv 2405.19534.

* Definition 2.3 (ranking accuracy): R = 1[pi(y_w|x) >= pi(y_l|x)], averaged over the dataset; the
  length-normalized variant compares pi(y|x)^(1/|y|).
* Theorem 3.1 / Corollary 3.3 (idealized ranking accuracy): the optimal RLHF/DPO policy under Bradley-Terry
  with P(y_w > y_l) = alpha satisfies
  pi*(y_w)/pi*(y_l) = [pi_ref(y_w)/pi_ref(y_l)] (alpha/(1-alpha))^(1/beta), so it ranks a pair correctly iff
  log pi_ref(y_w) - log pi_ref(y_l) + (1/beta) log(alpha/(1-alpha)) > 0.
* Theorem 4.1 (flip threshold): with c = log pi_ref(y_l)/pi_ref(y_w), the model ranks the pair correctly iff
  its DPO loss is at most -log sigmoid(beta c).

Everything is computed in log space, as the formulas are written. The official code
(`rlhf_minimizer_client.py`) computes the non-length-normalized ratio as `log p(y1) / log p(y2)`, a ratio of
log-likelihoods that is > 1 when p(y1) < p(y2); we do not copy that (see README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ALPHA_EPS",
    "ranking_accuracy",
    "idealized_ranking_accuracy",
    "idealized_correct",
    "flip_threshold",
    "dpo_pair_loss",
]

ALPHA_EPS = 1e-3  # Corollary 3.3: alpha = 1 (unanimous raters) is replaced by 1 - eps, eps = 0.001
LOGP_TOLERANCE = 1e-6  # a log-probability may exceed 0 by float rounding, not more


def _as_vector(name: str, values: Any, *, logprob: bool = False) -> np.ndarray:
    """A finite (or -inf for log-probs) 1-D float64 array; raises a ValueError naming `name` otherwise."""
    if hasattr(values, "detach"):  # torch tensors without importing torch
        values = values.detach().cpu().double().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D sequence of numbers: {err}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per pair), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: ranking accuracy needs at least one pair")
    if np.isnan(arr).any():
        raise ValueError(f"{name} holds NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    if logprob:
        bad = np.flatnonzero(arr > LOGP_TOLERANCE)
        if bad.size:
            raise ValueError(
                f"{name} must hold log-probabilities (<= 0); index {int(bad[0])} is {arr[bad[0]]:.6g}"
            )
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; index {int(np.flatnonzero(~np.isfinite(arr))[0])} is not")
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    sizes = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"inputs must have one entry per pair, got lengths {sizes}")


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta}")
    return beta


def ranking_accuracy(logp_chosen: Any, logp_rejected: Any) -> float:
    """Definition 2.3: the fraction of pairs with log pi(y_w|x) >= log pi(y_l|x) (ties count as correct).

    Pass length-normalized log-probs (log pi(y|x) / |y|) for the paper's R-tilde.
    """
    chosen = _as_vector("logp_chosen", logp_chosen, logprob=True)
    rejected = _as_vector("logp_rejected", logp_rejected, logprob=True)
    _same_length(logp_chosen=chosen, logp_rejected=rejected)
    return float(np.mean(chosen >= rejected))


def idealized_correct(
    ref_logp_chosen: Any,
    ref_logp_rejected: Any,
    alpha: Any,
    beta: float,
    lengths_chosen: Any = None,
    lengths_rejected: Any = None,
) -> np.ndarray:
    """Per pair: does the optimal policy of Theorem 3.1 rank y_w above y_l? (bool array, Corollary 3.3)

    1[log pi_ref(y_w) - log pi_ref(y_l) + (1/beta) log(alpha / (1 - alpha)) > 0], alpha clipped to
    [1e-3, 1 - 1e-3]; with lengths, log pi_ref(y) is replaced by log pi_ref(y) / |y|.
    """
    beta = _check_beta(beta)
    chosen = _as_vector("ref_logp_chosen", ref_logp_chosen, logprob=True)
    rejected = _as_vector("ref_logp_rejected", ref_logp_rejected, logprob=True)
    a = _as_vector("alpha", alpha)
    if a.size == 1 and chosen.size > 1:
        a = np.full_like(chosen, a[0])
    _same_length(ref_logp_chosen=chosen, ref_logp_rejected=rejected, alpha=a)
    if ((a < 0) | (a > 1)).any():
        raise ValueError(
            f"alpha is a fraction of raters and must lie in [0, 1]; got min {a.min()}, max {a.max()}"
        )
    if (lengths_chosen is None) != (lengths_rejected is None):
        raise ValueError("pass both lengths_chosen and lengths_rejected (length normalization) or neither")
    if lengths_chosen is not None:
        len_w = _as_vector("lengths_chosen", lengths_chosen)
        len_l = _as_vector("lengths_rejected", lengths_rejected)
        _same_length(ref_logp_chosen=chosen, lengths_chosen=len_w, lengths_rejected=len_l)
        if (len_w <= 0).any() or (len_l <= 0).any():
            raise ValueError("lengths must be positive (number of response tokens)")
        chosen, rejected = chosen / len_w, rejected / len_l
    a = np.clip(a, ALPHA_EPS, 1.0 - ALPHA_EPS)
    margin = chosen - rejected + np.log(a / (1.0 - a)) / beta
    return margin > 0


def idealized_ranking_accuracy(
    ref_logp_chosen: Any,
    ref_logp_rejected: Any,
    alpha: Any,
    beta: float,
    lengths_chosen: Any = None,
    lengths_rejected: Any = None,
) -> float:
    """Corollary 3.3: the ranking accuracy of the optimal DPO/RLHF policy pi* (Theorem 3.1).

    `alpha` is the Bradley-Terry probability that y_w is preferred (in the paper: the fraction of raters who
    preferred y_w; one value per pair or one for all), clipped to [1e-3, 1 - 1e-3]. The pair counts as correct
    iff log pi_ref(y_w|x) - log pi_ref(y_l|x) + (1/beta) log(alpha/(1-alpha)) > 0. With `lengths_chosen` and
    `lengths_rejected` (token counts) the reference log-probs are length-normalized (the paper's R-tilde*).
    """
    return float(
        np.mean(
            idealized_correct(
                ref_logp_chosen, ref_logp_rejected, alpha, beta, lengths_chosen, lengths_rejected
            )
        )
    )


def flip_threshold(ref_logp_chosen: Any, ref_logp_rejected: Any, beta: float) -> np.ndarray | float:
    """Theorem 4.1: the DPO loss below which (inclusive) the pair is ranked correctly, -log sigmoid(beta c).

    c = log pi_ref(y_l|x) - log pi_ref(y_w|x) is positive when the reference ranks the pair wrongly; then the
    threshold is below log 2 and falls like exp(-beta c). Returns a float for one pair, else an array.
    """
    beta = _check_beta(beta)
    chosen = _as_vector("ref_logp_chosen", ref_logp_chosen, logprob=True)
    rejected = _as_vector("ref_logp_rejected", ref_logp_rejected, logprob=True)
    _same_length(ref_logp_chosen=chosen, ref_logp_rejected=rejected)
    c = rejected - chosen
    threshold = np.logaddexp(0.0, -beta * c)  # -log sigmoid(beta c), stable for |beta c| large
    scalar = np.ndim(ref_logp_chosen) == 0 and np.ndim(ref_logp_rejected) == 0
    return float(threshold[0]) if scalar else threshold


def dpo_pair_loss(
    logp_chosen: Any, logp_rejected: Any, ref_logp_chosen: Any, ref_logp_rejected: Any, beta: float
) -> np.ndarray:
    """Per-pair DPO loss -log sigmoid(beta [(log pi(y_w) - log pi(y_l)) - (log pi_ref(y_w) -
    log pi_ref(y_l))]) in float64 (for analysis of trained models; training goes through
    `common.ops.dpo_loss`)."""
    beta = _check_beta(beta)
    pc, pr, rc, rr = (
        _as_vector(n, v, logprob=True)
        for n, v in (
            ("logp_chosen", logp_chosen),
            ("logp_rejected", logp_rejected),
            ("ref_logp_chosen", ref_logp_chosen),
            ("ref_logp_rejected", ref_logp_rejected),
        )
    )
    _same_length(logp_chosen=pc, logp_rejected=pr, ref_logp_chosen=rc, ref_logp_rejected=rr)
    return np.logaddexp(0.0, -beta * ((pc - pr) - (rc - rr)))
