"""Theory checks for Wei, Malladi, Arora, Sanyal, "Provable unlearning in topic modeling and downstream tasks"
(ICLR 2025, arXiv 2411.12600): the facts that Theorem 1 (U_base's (epsilon, delta)-unlearning and deletion
capacity) and the head theorem of Section 5 (U_head) rest on, checked on our implementation.

Every check function takes the parameter its negative control changes; `NEGATIVE_CONTROLS` lists, for each
check, arguments under which the check must fail (tests/test_topic_unlearning.py asserts that it does).

1. Co-occurrence sensitivity (the base of the proof of Theorem 1): Q-hat(S) - Q-hat(S \\ F) =
   (m_U / m) (mean_F W - mean_kept W) exactly, hence ||.||_1 <= 2 m_U / m, attained when the forget set's word
   pairs occur nowhere else. Control: the bound m_U / m (factor 1) is violated.
2. Gaussian mechanism (Algorithm 1's noise step): sigma = Delta sqrt(2 ln(1.25/delta)) / epsilon (raised
   where needed) has exact delta(epsilon) <= delta by Balle and Wang (2018, Theorem 8), whose formula is
   itself checked against numerical integration of the privacy-loss tail. Control: half that sigma fails.
3. Deletion capacity linear in m (Theorem 1): empirical capacity with noise calibrated to kappa 2 m_U / m;
   fitted slope within 0.2 of 1. Control: noise calibrated with a fixed m (no 1/m) gives a flat capacity.
4. Head-only capacity (Section 5): head / base capacity in [1, r] for unit-norm heads. Control: a head of
   norm 10 against the same absolute tolerance falls below 1.
5. Unbiasedness: E Q-hat = A R A^T exactly on an enumerable model (n = 4, r = 2, L = 2: every ordered word
   pair's probability), and R = E[theta theta^T] matches Monte Carlo. Control: the naive h h^T / L^2
   estimator is biased.
6. Newton step with the stored Hessian (Sekhari et al. 2021's T(S), as Algorithm 1's update is summarised):
   its residual to the exact re-solve is second order in the change (fitted slope >= 1.8; (m_U / m)^2 when
   the change is linear in m_U / m). Control: keeping the old coefficients (no step) has slope 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate
from scipy.stats import norm

from common.claims import Claim
from common.data.topic_models import dirichlet_second_moment, separable_topic_model
from common.experiment import Check
from papers.topic_unlearning.capacity import CapacitySpec, base_capacity, head_capacity
from papers.topic_unlearning.learner import (
    cooccurrence,
    cooccurrence_sum,
    document_counts,
    row_normalise,
    simplex_qp,
)
from papers.topic_unlearning.synthetic import build
from papers.topic_unlearning.unlearning import (
    anchor_forget_set,
    gaussian_delta,
    gaussian_sigma,
    newton_coefficients,
    updated_q_sum,
)

PAPER = "topic_unlearning"


# ---------------------------------------------------------------------------------------------------------
# 1. Q-hat sensitivity
# ---------------------------------------------------------------------------------------------------------
def check_q_sensitivity(bound_factor: float = 2.0) -> list[Claim]:
    """Random corpora of variable-length documents: the identity, the l1 bound bound_factor * m_U / m over
    all trials, and a corpus where the bound 2 m_U / m is attained."""
    rng = np.random.default_rng(0)
    worst_identity, worst_ratio = 0.0, 0.0
    for _ in range(30):
        n, m = int(rng.integers(5, 40)), int(rng.integers(20, 300))
        docs = [rng.integers(0, n, size=int(rng.integers(2, 8))) for _ in range(m)]
        H = document_counts(docs, n)
        m_u = int(rng.integers(1, m // 2))
        forget = rng.choice(m, size=m_u, replace=False)
        kept = np.setdiff1d(np.arange(m), forget)
        Q, Q_kept = cooccurrence_sum(H) / m, cooccurrence_sum(H[kept]) / kept.size
        identity = (m_u / m) * (cooccurrence_sum(H[forget]) / m_u - Q_kept)
        worst_identity = max(worst_identity, float(np.abs((Q - Q_kept) - identity).max()))
        worst_ratio = max(worst_ratio, float(np.abs(Q - Q_kept).sum() / (bound_factor * m_u / m)))
    # attained: the forget set's pairs (words 0, 1) occur nowhere else (kept documents use words 2..9)
    m, m_u = 1000, 37
    docs = np.concatenate([np.tile([0, 1], (m_u, 1)), rng.integers(2, 10, size=(m - m_u, 2))])
    Q, Q_kept = cooccurrence(docs, 10), cooccurrence(docs[m_u:], 10)
    attained = float(np.abs(Q - Q_kept).sum() / (bound_factor * m_u / m))
    return [
        Claim.check(
            "topic_unlearning.theory.q_identity",
            "Q(S) - Q(S\\F) = (m_U/m)(mean_F W - mean_kept W) on 30 random variable-length corpora "
            "(max abs error)",
            worst_identity,
            "<=",
            1e-14,
            kind="sanity",
        ),
        Claim.check(
            "topic_unlearning.theory.q_l1_bound",
            f"||Q(S) - Q(S\\F)||_1 / ({bound_factor:g} m_U / m) <= 1 on every random corpus, and on "
            "a corpus whose forget pairs occur nowhere else (max of both)",
            max(worst_ratio, attained),
            "<=",
            1.0 + 1e-12,
            kind="sanity",
            details=f"random corpora max ratio {worst_ratio:.4f}; disjoint-pair corpus {attained:.6f}",
        ),
        Claim.check(
            "topic_unlearning.theory.q_l1_bound_attained",
            f"the disjoint-pair corpus attains the bound: ratio to {bound_factor:g} m_U / m >= 0.999",
            attained,
            ">=",
            0.999,
            kind="sanity",
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# 2. Gaussian mechanism
# ---------------------------------------------------------------------------------------------------------
def _delta_by_integration(epsilon: float, sigma: float, sensitivity: float) -> float:
    """delta(eps) = int max(0, p(x) - e^eps q(x)) dx for p = N(Delta, sigma^2), q = N(0, sigma^2)."""

    def gap(x: float) -> float:
        return max(0.0, norm.pdf(x, sensitivity, sigma) - math.exp(epsilon) * norm.pdf(x, 0.0, sigma))

    # the integrand is positive for x > x0 = Delta/2 + eps sigma^2 / Delta
    x0 = sensitivity / 2 + epsilon * sigma**2 / sensitivity
    return float(integrate.quad(gap, x0, x0 + 40 * sigma, epsabs=1e-16, epsrel=1e-10, limit=200)[0])


def check_gaussian_mechanism(sigma_scale: float = 1.0) -> list[Claim]:
    """Over a grid of (epsilon, delta): exact delta(epsilon) of sigma_scale * gaussian_sigma <= delta."""
    worst, rows = 0.0, []
    for epsilon in (0.1, 0.5, 1.0, 2.0, 4.0):
        for delta in (1e-3, 1e-5, 1e-8):
            sigma = sigma_scale * gaussian_sigma(1.0, epsilon, delta)
            exact = gaussian_delta(epsilon, sigma, 1.0)
            worst = max(worst, exact / delta)
            rows.append(f"eps={epsilon:g}, delta={delta:g}: sigma={sigma:.4g}, exact={exact:.3g}")
    sigma_1 = gaussian_sigma(1.0, 1.0, 1e-5)
    formula_error = max(
        abs(gaussian_delta(e, s, 1.0) - _delta_by_integration(e, s, 1.0))
        for e, s in ((1.0, 2.0), (0.5, 1.3), (2.0, 0.9))
    )
    return [
        Claim.check(
            "topic_unlearning.theory.gaussian_mechanism",
            "the noise scale gives (epsilon, delta)-indistinguishability: max over the grid of exact "
            "delta(epsilon) / delta (Balle-Wang) <= 1",
            worst,
            "<=",
            1.0,
            kind="sanity",
            details="; ".join(rows[::3]) + f"; sigma/Delta at eps=1, delta=1e-5: {sigma_1:.4f}",
        ),
        Claim.check(
            "topic_unlearning.theory.balle_wang_formula",
            "the closed-form privacy profile matches numerical integration (max abs difference)",
            formula_error,
            "<=",
            1e-9,
            kind="sanity",
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# 3-4. Deletion capacity (small instances)
# ---------------------------------------------------------------------------------------------------------
SMALL = {"n": 30, "r": 3, "anchor_mass": 0.1, "alpha": 0.1, "length": 2}
SPEC = CapacitySpec(epsilon=1.0, delta=1e-5, noise_draws=40)


def check_capacity_linear(
    fixed_m: int | None = None, ms: tuple[int, ...] = (200_000, 400_000, 800_000)
) -> list[Claim]:
    """Theorem 1's m_U ~ m: fitted log-log slope of the empirical capacity within 0.2 of 1. With fixed_m,
    the noise is calibrated to kappa 2 m_U / fixed_m at every m (the negative control)."""
    caps = []
    for m in ms:
        inst = build(SMALL["n"], SMALL["r"], SMALL["anchor_mass"], SMALL["alpha"], m, SMALL["length"], seed=0)
        kappa = inst.state.sensitivity * (1.0 if fixed_m is None else m / fixed_m)
        caps.append(base_capacity(inst.state, inst.model.A, kappa, SPEC, inst.rng))
    caps_arr = np.asarray(caps, dtype=float)
    slope = float(np.polyfit(np.log(ms), np.log(np.maximum(caps_arr, 0.5)), 1)[0])
    return [
        Claim.check(
            "topic_unlearning.theory.capacity_linear_in_m",
            f"n={SMALL['n']}, r={SMALL['r']}: |fitted slope of m_U in m - 1| <= 0.2 (Theorem 1)",
            abs(slope - 1.0),
            "<=",
            0.2,
            details=f"m = {list(ms)}, capacity {caps}, slope {slope:.3f}"
            + ("" if fixed_m is None else f" (noise calibrated with fixed m={fixed_m})"),
        )
    ]


def check_head_ratio(head_norm: float = 1.0) -> list[Claim]:
    """Section 5: head-only capacity / base capacity in [1, r] for heads w = head_norm 1_T / sqrt(|T|)."""
    r = SMALL["r"]
    heads = []
    for k in range(1, r + 1):
        w = np.zeros(r)
        w[:k] = head_norm / np.sqrt(k)
        heads.append(w)
    inst = build(
        SMALL["n"], r, SMALL["anchor_mass"], SMALL["alpha"], 400_000, SMALL["length"], seed=1, heads=heads
    )
    base = base_capacity(inst.state, inst.model.A, inst.state.sensitivity, SPEC, inst.rng)
    head = [
        head_capacity(inst.state, inst.model.A, w, k, SPEC, inst.rng)
        for w, k in zip(heads, inst.kappa_heads, strict=True)
    ]
    ratios = np.asarray(head, dtype=float) / max(base, 1)
    inside = float(np.all((ratios >= 1.0) & (ratios <= r)))
    return [
        Claim.check(
            "topic_unlearning.theory.head_ratio_in_1_r",
            f"n={SMALL['n']}, r={r}: every head's capacity / base capacity lies in [1, r] "
            f"(1 = all inside; heads of norm {head_norm:g})",
            inside,
            ">=",
            1.0,
            details=f"base {base}, heads {head}, ratios {np.round(ratios, 2).tolist()}",
        )
    ]


# ---------------------------------------------------------------------------------------------------------
# 5. Unbiasedness of Q-hat
# ---------------------------------------------------------------------------------------------------------
def _w_matrix(pair: tuple[int, int], n: int, estimator: str) -> np.ndarray:
    h = np.bincount(np.asarray(pair), minlength=n).astype(float)
    if estimator == "aghm":
        return (np.outer(h, h) - np.diag(h)) / 2.0  # L (L - 1) = 2
    return np.outer(h, h) / 4.0  # naive h h^T / L^2


def check_unbiased(estimator: str = "aghm") -> list[Claim]:
    """E[W_d] over every ordered word pair equals A R A^T exactly (n = 4, r = 2); R matches Monte Carlo."""
    rng = np.random.default_rng(0)
    model = separable_topic_model(4, 2, 0.3, 0.5, rng)
    P = model.A @ model.R @ model.A.T  # probability of the ordered pair (w1, w2)
    expected = sum(P[i, j] * _w_matrix((i, j), 4, estimator) for i in range(4) for j in range(4))
    bias = float(np.abs(expected - model.Q).max())
    theta = rng.dirichlet([0.5, 0.5], size=400_000)
    R_mc = theta.T @ theta / theta.shape[0]
    R_err = float(np.abs(R_mc - dirichlet_second_moment(np.array([0.5, 0.5]))).max())
    return [
        Claim.check(
            "topic_unlearning.theory.q_unbiased",
            f"E Q-hat = A R A^T exactly by enumeration (n=4, r=2, L=2; {estimator} estimator; max abs)",
            bias,
            "<=",
            1e-15,
            kind="sanity",
        ),
        Claim.check(
            "topic_unlearning.theory.dirichlet_second_moment",
            "R = (diag(alpha) + alpha alpha^T) / (a0 (a0 + 1)) matches 400k Dirichlet draws (max abs)",
            R_err,
            "<=",
            2e-3,
            kind="sanity",
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# 6. Newton step with the stored Hessian
# ---------------------------------------------------------------------------------------------------------
def check_newton_residual(hessian: str = "stored") -> list[Claim]:
    """Residual ||C_step - C_exact||_F of one face-Newton step (hessian "stored") or of no step ("none")
    against the exact re-solve, for nested anchor forget sets of growing m_U, fitted (log-log) against the
    size of the change ||C_exact - C_old||_F: slope >= 1.8 (second order). Measured on the words whose face
    of the simplex (support of C_i) the deletion does not change: a local statement, as Newton's is. The
    change itself grows like
    (m_U / m)^s with s between 1/2 (random part) and 1 (aligned part), so the residual's slope in m_U / m is
    2 s; against the change it is 2 whatever s is."""
    inst = build(50, 3, 0.1, 0.1, 400_000, 2, seed=2)
    state, rng = inst.state, inst.rng
    # small against the ~16k documents that hold topic 0's anchor, so that the anchor rows move little
    sizes = (25, 50, 100, 200, 400)
    nested = anchor_forget_set(state, max(sizes), 0, rng)  # prefixes: the perturbation grows along one path
    residuals, changes, moved = [], [], []
    for m_u in sizes:
        Q_new = updated_q_sum(state, nested[:m_u]) / (state.m - m_u)
        Qbar, _ = row_normalise(Q_new)
        X = Qbar[state.anchors]
        C_exact = simplex_qp(X @ X.T, Qbar @ X.T)
        C_step = (
            state.C if hessian == "none" else newton_coefficients(state, Q_new, hessian, fallback=False)[0]
        )
        # (n,): words whose face did not change and whose raw step stayed in the simplex
        same_face = np.all((C_exact > 0) == (state.C > 0), axis=1) & (C_step.min(axis=1) >= 0)
        moved.append(int((~same_face).sum()))
        residuals.append(float(np.linalg.norm((C_step - C_exact)[same_face])))
        changes.append(float(np.linalg.norm((state.C - C_exact)[same_face])))
    slope = float(np.polyfit(np.log(changes), np.log(residuals), 1)[0])
    drift = float(np.polyfit(np.log(sizes), np.log(changes), 1)[0])
    return [
        Claim.check(
            "topic_unlearning.theory.newton_residual_quadratic",
            f"Newton step ({hessian} Hessian): residual to the exact re-solve is second order in the "
            "change of C (fitted log-log slope >= 1.8)",
            slope,
            ">=",
            1.8,
            details=f"m_U = {list(sizes)} of m = {state.m}; change ||C_exact - C_old|| "
            f"{[f'{v:.2e}' for v in changes]} (slope in m_U {drift:.2f}); residual "
            f"{[f'{v:.2e}' for v in residuals]}; words left out (face changed or the "
            f"raw step left the simplex) {moved}",
        )
    ]


CHECKS = (
    Check(
        "topic_q_sensitivity",
        PAPER,
        "Q-hat sensitivity: exact identity, l1 <= 2 m_U / m, attained",
        "Theorem 1 (proof: sensitivity of the co-occurrence estimate)",
        check_q_sensitivity,
    ),
    Check(
        "topic_gaussian_mechanism",
        PAPER,
        "Gaussian noise scale gives (epsilon, delta)-indistinguishability",
        "Algorithm 1 (noise step), Theorem 1",
        check_gaussian_mechanism,
    ),
    Check(
        "topic_capacity_linear",
        PAPER,
        "Deletion capacity grows linearly in m",
        "Theorem 1 (m_U = O~(m / (r^2 sqrt(n r))))",
        check_capacity_linear,
    ),
    Check(
        "topic_head_ratio",
        PAPER,
        "Head-only capacity between 1 and r times the base capacity",
        "Section 5 (head capacity Omega~(m q / (r sqrt(n r))), q in [1/r, 1])",
        check_head_ratio,
    ),
    Check(
        "topic_q_unbiased",
        PAPER,
        "E Q-hat = A R A^T exactly",
        "Algorithm 3 (AGHMMSWZ 2013 estimator)",
        check_unbiased,
    ),
    Check(
        "topic_newton_residual",
        PAPER,
        "Stored-Hessian Newton step: residual O((m_U/m)^2)",
        "Algorithm 1 (Newton update of C_i), Sekhari et al. 2021",
        check_newton_residual,
    ),
)

# check name -> keyword arguments under which it must fail (its negative control)
NEGATIVE_CONTROLS = {
    "topic_q_sensitivity": {"bound_factor": 1.0},
    "topic_gaussian_mechanism": {"sigma_scale": 0.5},
    "topic_capacity_linear": {"fixed_m": 200_000},
    "topic_head_ratio": {"head_norm": 10.0},
    "topic_q_unbiased": {"estimator": "naive"},
    "topic_newton_residual": {"hessian": "none"},
}
