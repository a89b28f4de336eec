"""Unlearning for the anchor-word topic model: Algorithm 1 (U_base) and Algorithm 2 (U_head) of Wei, Malladi,
Arora, Sanyal (ICLR 2025), as far as public secondary sources describe them, in the (epsilon, delta)-
unlearning framework of Sekhari, Acharya, Kamath, Suresh (NeurIPS 2021).

U_base(S_f, A(S), T(S)), our reading (a reviewer's summary of Algorithm 1: a Hessian (Newton) update of each
word's RecoverL2 coefficients C_i, recompute A and R, add Gaussian noise):

1. Q-hat(S \\ S_f) = (m Q-hat(S) - sum_{d in S_f} W_d) / (m - m_U), exactly, in O(m_U L^2 + n^2) time.
2. Anchors kept. For each word, one Newton step on f_i(c) = ||Qbar'_i - c Qbar'_S||^2 from the stored C_i,
   on the face of the simplex C_i lies on (the KKT system with the sum constraint). `hessian="updated"`
   uses the Hessian of the new objective (exact on that face); `hessian="stored"` uses the Hessian stored
   at learning time (Sekhari et al.'s T(S)), whose error is second order in m_U / m.
3. A and R from the new C and word marginals (Bayes' rule), as in learning.
4. Release A + N(0, sigma^2 I) (then clipped at 0 and columns renormalised: post-processing), with sigma
   from the Gaussian mechanism for l2 sensitivity Delta = kappa * 2 m_U / m: 2 m_U / m bounds the entrywise
   l1 change of Q-hat (exact identity, see proofs_checks/topic_deletion_capacity.py) and kappa is the l2
   change of the learned A per unit l1 change of Q-hat.

What is assumed, not taken from the paper: the paper's sigma and its sensitivity constant (which hides p and
its condition parameter gamma) were not available; kappa here is *measured* by `calibrate_sensitivity`
(the largest single-document ratio ||A(S) - A(S \\ {d})||_F / (2 / m) over the distinct documents that
contain an anchor word and a random sample of the others; to first order this bounds every forget set by
the triangle inequality), not proven. sigma = Delta sqrt(2 ln(1.25 / delta)) / epsilon (Dwork and Roth,
Theorem A.1), raised if needed until the exact privacy profile of the Gaussian mechanism (Balle and Wang
2018, Theorem 8) is at most delta, so the noise step is (epsilon, delta)-indistinguishable for every
epsilon > 0.

U_head (Algorithm 2, "unlearning after fine-tuning via a linear head"; the released model is the scorer
B = A w): the same base update, kept private, and noise on the n-vector B only, calibrated to B's own
sensitivity kappa_w; the base model A is never released, and unlearning does not modify what was released
of it. The paper states the head's capacity is Omega~(m q / (r sqrt(n r))), q in [1/r, 1], i.e. 1 to r
times the base's; the precise definition of q is not verified here (README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm

from papers.topic_unlearning.learner import (
    TopicState,
    cooccurrence_sum,
    face_solve,
    fit_from_cooccurrence,
    kkt_ok,
    row_normalise,
    simplex_qp,
    topics_from_coefficients,
)

HESSIANS = ("updated", "stored")


# --------------------------------------------------------------------------------------------------------
# The Gaussian mechanism
# --------------------------------------------------------------------------------------------------------
def gaussian_delta(epsilon: float, sigma: float, sensitivity: float) -> float:
    """Exact delta(epsilon) of the Gaussian mechanism with noise sigma and l2 sensitivity Delta (Balle and
    Wang 2018, Theorem 8), with D = Delta:
    Phi(D/(2 sigma) - eps sigma/D) - e^eps Phi(-D/(2 sigma) - eps sigma/D)."""
    if sensitivity <= 0:
        return 0.0
    if sigma <= 0:
        return 1.0
    a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
    return float(norm.cdf(a - b) - math.exp(epsilon) * norm.cdf(-a - b))


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    """sigma for (epsilon, delta) at l2 sensitivity Delta: Dwork-Roth's Delta sqrt(2 ln(1.25/delta))/epsilon,
    increased (bisection on the exact profile) where that is not enough (epsilon >= 1 can need more)."""
    _check_privacy(epsilon, delta)
    if sensitivity < 0 or not math.isfinite(sensitivity):
        raise ValueError(f"sensitivity must be a finite number >= 0, got {sensitivity!r}")
    if sensitivity == 0:
        return 0.0
    sigma = sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon
    if gaussian_delta(epsilon, sigma, sensitivity) <= delta:
        return sigma
    lo, hi = sigma, 2 * sigma
    while gaussian_delta(epsilon, hi, sensitivity) > delta:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gaussian_delta(epsilon, mid, sensitivity) > delta else (lo, mid)
    return hi


def _check_privacy(epsilon: float, delta: float) -> None:
    if (
        not isinstance(epsilon, int | float)
        or isinstance(epsilon, bool)
        or not (epsilon > 0)
        or not math.isfinite(epsilon)
    ):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if not isinstance(delta, int | float) or isinstance(delta, bool) or not (0 < delta < 1):
        raise ValueError(f"delta must be a number in (0, 1), got {delta!r}")


# --------------------------------------------------------------------------------------------------------
# Pieces of U_base
# --------------------------------------------------------------------------------------------------------
def _forget_indices(state: TopicState, forget_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    ids = np.asarray(forget_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(
            f"forget_ids must be a 1-D sequence of integer document ids, got {ids.dtype} {ids.shape}"
        )
    ids = ids.astype(np.int64)
    total = state.alive.size
    if ids.size and (ids.min() < 0 or ids.max() >= total):
        raise ValueError(
            f"forget_ids must lie in [0, {total}) (documents the model was trained on), got "
            f"range [{int(ids.min())}, {int(ids.max())}]"
        )
    if np.unique(ids).size != ids.size:
        raise ValueError("forget_ids has repeated ids: each document can be forgotten once")
    if ids.size and not state.alive[ids].all():
        gone = ids[~state.alive[ids]][:5].tolist()
        raise ValueError(f"documents {gone} were already forgotten")
    if ids.size >= state.m:
        raise ValueError(
            f"cannot forget {ids.size} of the {state.m} remaining documents: at least one must stay"
        )
    return ids


def updated_q_sum(state: TopicState, ids: np.ndarray) -> np.ndarray:
    """sum of W_d over the alive documents minus the forget set: O(m_U L^2 + n^2), independent of m."""
    if ids.size == 0:
        return state.q_sum.copy()
    return state.q_sum - cooccurrence_sum(state.counts[ids])


def newton_coefficients(
    state: TopicState, Q_new: np.ndarray, hessian: str, fallback: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One Newton step per word from the stored C on its face of the simplex (Algorithm 1, our reading);
    returns (C_new (n, r), G_new (r, r)). Rows whose step leaves the simplex or (for "updated") fails the
    KKT check are re-solved exactly (unless fallback=False: the raw step, for measuring it); that costs
    O(r^3) per such word, still independent of m."""
    Qbar, _ = row_normalise(Q_new)
    X = Qbar[state.anchors]  # (r, n)
    G_new = X @ X.T  # (r, r)
    b = Qbar @ X.T  # (n, r)
    C_old = state.C
    C_new = np.empty_like(C_old)
    supports = C_old > 0
    patterns, inverse = np.unique(supports, axis=0, return_inverse=True)
    H = G_new if hessian == "updated" else state.hessian
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        grad = C_old[rows] @ G_new - b[rows]  # (w, r): half the gradient of f_i at the stored C_i
        # the Newton step on the face: c_old + argmin_{sum(d) = 0, d_S only} d^T H d + 2 grad^T d
        step = face_solve(H, -grad, pattern) - face_solve(H, np.zeros_like(grad), pattern)
        C_new[rows] = C_old[rows] + step
    if not fallback:
        return C_new, G_new
    bad = C_new.min(axis=1) < 0
    if hessian == "updated":
        bad |= ~kkt_ok(G_new, b, C_new, tol=1e-8)
    if np.any(bad):
        C_new[bad] = simplex_qp(G_new, b[bad])
    return C_new, G_new


def release(A_pre: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A_pre + N(0, sigma^2 I), clipped at 0 with columns renormalised (post-processing keeps the
    guarantee). A column clipped to all zeros becomes uniform."""
    noisy = np.maximum(A_pre + sigma * rng.standard_normal(A_pre.shape), 0.0)
    sums = noisy.sum(axis=0, keepdims=True)
    uniform = np.full_like(noisy, 1.0 / noisy.shape[0])
    return np.where(sums > 0, noisy / np.where(sums > 0, sums, 1.0), uniform)


@dataclass(frozen=True)
class Unlearned:
    """What U_base returns: the released `A` (noisy), the pre-noise `A_pre`, `sigma`, the sensitivity
    bound `Delta` the noise covers, the updated `state` (for further deletions) and the wall time."""

    A: np.ndarray  # (n, r)
    A_pre: np.ndarray  # (n, r)
    sigma: float
    Delta: float
    state: TopicState
    seconds: float


def unlearn(
    state: TopicState,
    forget_ids: Sequence[int] | np.ndarray,
    epsilon: float,
    delta: float,
    *,
    sensitivity: float | None = None,
    hessian: str = "updated",
    rng: np.random.Generator | None = None,
) -> Unlearned:
    """U_base (Wei et al. 2025, Algorithm 1, our reading; module docstring): forget the training documents
    `forget_ids` from `state` with (epsilon, delta)-unlearning noise, at a cost independent of m.

    sensitivity: kappa, the l2 change of A per unit l1 change of Q-hat; default `state.sensitivity` (set by
    `calibrate_sensitivity`). The noise covers Delta = kappa * 2 m_U / m, m the documents before deletion.
    """
    if not isinstance(state, TopicState):
        raise ValueError(f"state must be a TopicState from learn_topics, got {type(state).__name__}")
    if state.method != "l2":
        raise ValueError(
            f"unlearn needs a state learned with method='l2' (its Newton step is on the RecoverL2 "
            f"objective), got method={state.method!r}"
        )
    _check_privacy(epsilon, delta)
    if hessian not in HESSIANS:
        raise ValueError(f"hessian must be one of {HESSIANS}, got {hessian!r}")
    kappa = state.sensitivity if sensitivity is None else sensitivity
    if kappa is None or not (isinstance(kappa, int | float) and math.isfinite(kappa) and kappa >= 0):
        raise ValueError(
            f"sensitivity must be a finite number >= 0 (calibrate_sensitivity(state) sets it), got {kappa!r}"
        )
    ids = _forget_indices(state, forget_ids)
    rng = np.random.default_rng() if rng is None else rng
    start = time.perf_counter()
    m_before = state.m
    q_sum = updated_q_sum(state, ids)
    alive = state.alive.copy()
    alive[ids] = False
    m_after = m_before - ids.size
    Q_new = q_sum / m_after
    C_new, G_new = newton_coefficients(state, Q_new, hessian)
    _, p_w = row_normalise(Q_new)
    A_pre, R_new = topics_from_coefficients(C_new, p_w, Q_new)
    Delta = kappa * 2.0 * ids.size / m_before
    sigma = gaussian_sigma(Delta, epsilon, delta)
    A_out = release(A_pre, sigma, rng)
    seconds = time.perf_counter() - start
    new_state = replace(
        state,
        alive=alive,
        q_sum=q_sum,
        m=m_after,
        C=C_new,
        A=A_pre,
        R=R_new,
        hessian=G_new if hessian == "updated" else state.hessian,
    )
    return Unlearned(A=A_out, A_pre=A_pre, sigma=sigma, Delta=Delta, state=new_state, seconds=seconds)


def retrain(state: TopicState, forget_ids: Sequence[int] | np.ndarray) -> TopicState:
    """A(S \\ S_f): the learner run from scratch on the kept documents (anchors re-selected). Q-hat of the
    kept documents is rebuilt exactly by the same subtraction, which is what retraining would compute."""
    ids = _forget_indices(state, forget_ids)
    q_sum = updated_q_sum(state, ids)
    alive = state.alive.copy()
    alive[ids] = False
    m_after = state.m - ids.size
    fit = fit_from_cooccurrence(q_sum / m_after, state.r, state.candidate_min_marginal, state.method)
    return replace(
        state,
        alive=alive,
        q_sum=q_sum,
        m=m_after,
        anchors=fit.anchors,
        C=fit.C,
        A=fit.A,
        R=fit.R,
        hessian=fit.hessian,
    )


# --------------------------------------------------------------------------------------------------------
# Errors between topic matrices, forget sets, sensitivity calibration
# --------------------------------------------------------------------------------------------------------
def match_columns(A_hat: np.ndarray, A_ref: np.ndarray) -> np.ndarray:
    """Permutation perm with A_hat[:, perm] closest to A_ref (Hungarian matching on l1 column distances)."""
    D = np.abs(A_hat[:, :, None] - A_ref[:, None, :]).sum(0)  # (r, r): hat column i vs ref column j
    rows, cols = linear_sum_assignment(D)
    perm = np.empty(A_ref.shape[1], dtype=np.int64)
    perm[cols] = rows
    return perm


def frobenius_error(A_hat: np.ndarray, A_ref: np.ndarray) -> float:
    """||A_hat P - A_ref||_F with P the best column matching."""
    return float(np.linalg.norm(A_hat[:, match_columns(A_hat, A_ref)] - A_ref))


def l1_error(A_hat: np.ndarray, A_ref: np.ndarray) -> float:
    """Mean over topics of ||A_hat_k - A_ref_k||_1 after matching (AGM 2012's recovery error)."""
    return float(np.abs(A_hat[:, match_columns(A_hat, A_ref)] - A_ref).sum(0).mean())


def random_forget_set(state: TopicState, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` alive documents drawn uniformly without replacement."""
    return rng.choice(np.flatnonzero(state.alive), size=size, replace=False)


def anchor_forget_set(state: TopicState, size: int, topic: int, rng: np.random.Generator) -> np.ndarray:
    """`size` alive documents that contain topic `topic`'s learned anchor word, topped up at random when
    there are too few (the adversarial forget set a reviewer raised: deleting a topic's anchor documents)."""
    word = int(state.anchors[topic])
    with_anchor = np.flatnonzero(state.alive & (state.counts[:, word].toarray().ravel() > 0))
    chosen = rng.permutation(with_anchor)[:size]
    if chosen.size < size:
        rest = np.setdiff1d(np.flatnonzero(state.alive), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, size=size - chosen.size, replace=False)])
    return chosen


def document_types(state: TopicState) -> tuple[np.ndarray, np.ndarray]:
    """(one alive document id per distinct document, the id's two words) for two-word corpora: deleting
    any copy of a type has the same effect. For longer documents, every alive document is its own type."""
    H = state.counts
    alive = np.flatnonzero(state.alive)
    lengths = np.asarray(H.sum(axis=1)).ravel()
    if not np.all(lengths == 2):
        return alive, np.full((alive.size, 2), -1)
    first = H.indices[H.indptr[:-1]]  # (m_total,) smallest word id of each document (csr indices are sorted)
    last = H.indices[H.indptr[1:] - 1]  # (m_total,) largest
    keys = first[alive].astype(np.int64) * state.n + last[alive]
    _, where = np.unique(keys, return_index=True)
    ids = alive[where]
    return ids, np.stack([first[ids], last[ids]], axis=1)


def calibrate_sensitivity(
    state: TopicState,
    rng: np.random.Generator,
    extra_types: int = 100,
    safety: float = 1.0,
    heads: Sequence[np.ndarray] = (),
) -> tuple[float, list[float], list[dict]]:
    """kappa = safety * max over single-document deletions d of ||A(S \\ {d}) - A(S)||_F / (2 / m), over
    every distinct document that contains an anchor word and `extra_types` other distinct documents drawn
    at random; for each head w (r,) in the learned column order, kappa_w the same for ||(.) w||_2.

    Why single documents: to first order the change of A is linear in the change of Q-hat, so by the
    triangle inequality a forget set F moves A by at most |F| times the largest single-document move, i.e.
    kappa 2 |F| / m; m_U copies of the worst document attain it. A(S \\ {d}) here is the pre-noise update
    (anchors kept, exact re-solve on the face), which equals retraining unless the deletion flips an anchor;
    higher-order effects and anchor flips are not covered (fig_recovery measures the bound on real forget
    sets with full retraining). A measured constant, not a proof (module docstring).
    Returns (kappa, [kappa_w], records of every type scanned)."""
    if not safety >= 1.0:
        raise ValueError(f"safety must be >= 1 (it multiplies a measured maximum), got {safety!r}")
    ids, words = document_types(state)
    with_anchor = np.isin(words, state.anchors).any(axis=1)
    others = np.flatnonzero(~with_anchor)
    chosen = np.concatenate(
        [np.flatnonzero(with_anchor), rng.choice(others, size=min(extra_types, others.size), replace=False)]
    )
    m = state.m
    records = []
    for t in chosen:
        d = ids[t : t + 1]
        q_sum = updated_q_sum(state, d)
        Q_new = q_sum / (m - 1)
        C_new, _ = newton_coefficients(state, Q_new, "updated")
        _, p_w = row_normalise(Q_new)
        Ap = p_w[:, None] * C_new
        diff = Ap / Ap.sum(axis=0, keepdims=True) - state.A  # (n, r)
        scale = 2.0 / m
        records.append(
            {
                "doc": int(d[0]),
                "words": words[t].tolist(),
                "anchor": bool(with_anchor[t]),
                "ratio": float(np.linalg.norm(diff) / scale),
                "head_ratios": [float(np.linalg.norm(diff @ w) / scale) for w in heads],
            }
        )
    kappa = safety * max(rec["ratio"] for rec in records)
    kappa_w = [safety * max(rec["head_ratios"][j] for rec in records) for j in range(len(heads))]
    return kappa, kappa_w, records
