"""Theory checks for Wang, Malladi, Wang, Lyu, Li,
"The Marginal Value of Momentum for Small Learning Rate SGD" (ICLR 2024, arXiv 2307.15196): the algebra
behind "SGDM(gamma, beta) ~ SGD(gamma / (1 - beta))".

Every symbolic claim is *derived* here with sympy (recursions eliminated, Lyapunov equations solved,
characteristic roots expanded, geometric sums summed) and only then compared with the stated closed form;
the derived expression goes into the claim's `details`. Numeric claims carry measured errors.

Notation (paper): eq. (1) heavy ball  m' = beta m + g,        x' = x - gamma m'
                  eq. (3) EMA form    m' = beta m + (1-beta) g, x' = x - eta m'
with noise scale sigma = eta^{-1/2} (after Lemma 2.4) and 1 - beta = Theta(eta^alpha) (Definition 3.1).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from common.claims import Claim, negative_control
from common.experiment import Check

PAPER = "momentum"

eta, gamma, h, s, t = sp.symbols("eta gamma h s t", positive=True)
beta = sp.Symbol("beta", positive=True)  # used on 0 < beta < 1
ell = sp.Symbol("ell", positive=True)


def _identity(id: str, statement: str, difference: sp.Expr, details: str, paper_value: str = "") -> Claim:
    """A symbolic identity: passes (measured 1.0) iff sympy simplifies `difference` to exactly 0."""
    zero = sp.simplify(difference) == 0
    return Claim.check(
        id,
        statement,
        1.0 if zero else 0.0,
        ">=",
        1.0,
        paper_value=paper_value,
        details=f"{details}; simplified difference = {sp.simplify(difference)}",
    )


def _rejected(id: str, statement: str, difference: sp.Expr) -> Claim:
    """A negative control: a deliberately wrong formula that the identity check must reject (measured 1.0 iff
    sympy does *not* simplify `difference` to 0). Kind "sanity": it shows the check can fail."""
    simplified = sp.simplify(difference)
    return negative_control(id, statement, simplified != 0, f"simplified difference = {simplified}")


def _generic(expr: sp.Expr) -> sp.Expr:
    """Drop sympy's beta == 1 branches of geometric sums (we work on 0 < beta < 1)."""
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[-1][0])


def _fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# ---------------------------------------------------------------------------------------------------------
# (a) EMA form (eq. 3) == heavy ball (eq. 1) with gamma = eta (1 - beta)
# ---------------------------------------------------------------------------------------------------------
def check_ema_equals_heavy_ball() -> list[Claim]:
    """Eliminate m from both recursions: m_{k+1} = (x_k - x_{k+1}) / lr turns each into a second-order
    recurrence in x; the two coincide iff gamma = eta (1 - beta). Also the one-step maps are conjugate by
    m_HB = m_EMA / (1 - beta), so trajectories agree for every start (Section 2, eqs. 1 and 3)."""
    x_prev, x_k, x_next, g = sp.symbols("x_prev x_k x_next g")
    # EMA: (x_k - x_next)/eta = beta (x_prev - x_k)/eta + (1 - beta) g
    ema = sp.solve(sp.Eq((x_k - x_next) / eta, beta * (x_prev - x_k) / eta + (1 - beta) * g), x_next)[0]
    # heavy ball: (x_k - x_next)/gamma = beta (x_prev - x_k)/gamma + g
    hb = sp.solve(sp.Eq((x_k - x_next) / gamma, beta * (x_prev - x_k) / gamma + g), x_next)[0]
    gamma_star = sp.solve(sp.Eq(ema, hb), gamma)
    claims = [
        _identity(
            "momentum.sde.ema_equals_heavy_ball",
            "eliminating m, EMA-form SGDM (eq. 3) and heavy ball (eq. 1) give the same x-recurrence when "
            "gamma = eta (1 - beta)",
            ema - hb.subs(gamma, eta * (1 - beta)),
            f"EMA: x_(k+1) = {sp.expand(ema)}; heavy ball: x_(k+1) = {sp.expand(hb)}; "
            f"solving for gamma gives {gamma_star}",
            paper_value="effective learning rate eta = gamma / (1 - beta)",
        ),
        Claim.check(
            "momentum.sde.gamma_solution_unique",
            "the recurrences match for exactly one gamma, and it is eta (1 - beta)",
            1.0 if len(gamma_star) == 1 and sp.simplify(gamma_star[0] - eta * (1 - beta)) == 0 else 0.0,
            ">=",
            1.0,
            details=f"sympy.solve(ema == hb, gamma) = {gamma_star}",
        ),
    ]
    claims.append(
        _rejected(
            "momentum.sde.ema_heavy_ball_wrong_gamma_rejected",
            "with gamma = eta (no 1 - beta factor) the recurrences differ",
            ema - hb.subs(gamma, eta),
        )
    )
    # one-step maps on the state (x, m): conjugacy m_HB = m_EMA / (1 - beta)
    x, m = sp.symbols("x m")
    m_ema = beta * m + (1 - beta) * g
    x_ema = x - eta * m_ema
    m_hb = beta * (m / (1 - beta)) + g
    x_hb = x - eta * (1 - beta) * m_hb
    claims.append(
        _identity(
            "momentum.sde.ema_heavy_ball_conjugate",
            "one step of each: (x, m_EMA) and (x, m_EMA/(1-beta)) map to the same x and to momenta "
            "related by "
            "the same factor",
            sp.Abs(x_ema - x_hb) + sp.Abs(m_ema / (1 - beta) - m_hb),
            f"x' EMA = {x_ema}, x' HB = {sp.expand(x_hb)}",
        )
    )
    return claims


# ---------------------------------------------------------------------------------------------------------
# (b) stationary variance on L = h x^2 / 2 with additive gradient noise of variance s^2 (Lyapunov)
# ---------------------------------------------------------------------------------------------------------
def _sgdm_linear(eta_, beta_, h_, s_):
    """EMA-form SGDM on the quadratic as z' = A z + b xi with z = (x, m), xi ~ N(0, 1)."""
    A = sp.Matrix([[1 - eta_ * (1 - beta_) * h_, -eta_ * beta_], [(1 - beta_) * h_, beta_]])
    b = sp.Matrix([-eta_ * (1 - beta_) * s_, (1 - beta_) * s_])
    return A, b


def stationary_variances() -> tuple[sp.Expr, sp.Expr]:
    """Solve P = A P A^T + b b^T (SGDM) and v = (1 - eta h)^2 v + eta^2 s^2 (SGD) for Var_inf(x)."""
    A, b = _sgdm_linear(eta, beta, h, s)
    pxx, pxm, pmm = sp.symbols("p_xx p_xm p_mm")
    P = sp.Matrix([[pxx, pxm], [pxm, pmm]])
    eqs = A * P * A.T + b * b.T - P
    sol = sp.solve([eqs[0, 0], eqs[0, 1], eqs[1, 1]], [pxx, pxm, pmm], dict=True)[0]
    var_sgdm = sp.factor(sp.simplify(sol[pxx]))
    v = sp.Symbol("v")
    var_sgd = sp.factor(sp.solve(sp.Eq(v, (1 - eta * h) ** 2 * v + eta**2 * s**2), v)[0])
    return var_sgdm, var_sgd


def check_stationary_variance() -> list[Claim]:
    """SGDM and SGD share the leading order eta s^2 / (2h) of Var_inf and differ at O(eta^2): the same SDE to
    first order (Section 2.1 / Lemma 2.4 regime), not the same process."""
    var_sgdm, var_sgd = stationary_variances()
    stated_sgdm = eta * s**2 / (h * (2 - eta * h * (1 - beta) / (1 + beta)))
    stated_hb = gamma * s**2 * (1 + beta) / (h * (1 - beta) * (2 * (1 + beta) - gamma * h))
    ser_m = sp.series(var_sgdm, eta, 0, 3).removeO()
    ser_s = sp.series(var_sgd, eta, 0, 3).removeO()
    c1_m, c1_s = sp.simplify(ser_m.coeff(eta, 1)), sp.simplify(ser_s.coeff(eta, 1))
    c2_m, c2_s = sp.simplify(ser_m.coeff(eta, 2)), sp.simplify(ser_s.coeff(eta, 2))
    claims = [
        _identity(
            "momentum.sde.var_sgdm_closed_form",
            "the Lyapunov solution for EMA-form SGDM equals eta s^2 / (h (2 - eta h (1-beta)/(1+beta)))",
            var_sgdm - stated_sgdm,
            f"derived Var_inf(SGDM) = {var_sgdm}",
        ),
        _identity(
            "momentum.sde.var_heavy_ball_form",
            "in heavy-ball variables it is gamma s^2 (1+beta) / (h (1-beta) (2(1+beta) - gamma h)), "
            "gamma = eta (1 - beta)",
            var_sgdm - stated_hb.subs(gamma, eta * (1 - beta)),
            f"derived Var_inf(SGDM) = {var_sgdm}",
        ),
        _identity(
            "momentum.sde.var_sgd_closed_form",
            "SGD(eta) has Var_inf = eta s^2 / (h (2 - eta h))",
            var_sgd - eta * s**2 / (h * (2 - eta * h)),
            f"derived Var_inf(SGD) = {var_sgd}",
        ),
        _identity(
            "momentum.sde.var_leading_order_agrees",
            "the O(eta) coefficients of Var_inf agree and equal s^2 / (2h)",
            sp.Abs(c1_m - c1_s) + sp.Abs(c1_s - s**2 / (2 * h)),
            f"SGDM: {c1_m} eta, SGD: {c1_s} eta",
        ),
        _identity(
            "momentum.sde.var_second_order_differs",
            "the O(eta^2) coefficients of Var_inf are SGDM: s^2 (1-beta) / (4 (1+beta)) and SGD: s^2 / 4, so "
            "they differ by the predicted -s^2 beta / (2 (1+beta))",
            sp.Abs(c2_m - s**2 * (1 - beta) / (4 * (1 + beta)))
            + sp.Abs(c2_s - s**2 / 4)
            + sp.Abs(c2_m - c2_s + s**2 * beta / (2 * (1 + beta))),
            f"SGDM eta^2 coeff = {c2_m}; SGD eta^2 coeff = {c2_s}; difference = {sp.factor(c2_m - c2_s)}",
        ),
        _rejected(
            "momentum.sde.var_sgd_formula_for_sgdm_rejected",
            "SGD's Var_inf eta s^2 / (h (2 - eta h)) is not SGDM's",
            var_sgdm - eta * s**2 / (h * (2 - eta * h)),
        ),
    ]
    claims += _stationary_variance_numeric(var_sgdm, var_sgd)
    return claims


def _stationary_variance_numeric(var_sgdm: sp.Expr, var_sgd: sp.Expr) -> list[Claim]:
    """Exact covariance iteration and a seeded Monte Carlo (common noise for SGD and SGDM) vs the formulas."""
    vals = {eta: 0.1, beta: 0.9, h: 1.0, s: 1.0}
    target_m, target_s = float(var_sgdm.subs(vals)), float(var_sgd.subs(vals))
    A, b = (np.array(M.subs(vals), dtype=float) for M in _sgdm_linear(eta, beta, h, s))
    P = np.zeros((2, 2))
    for _ in range(3000):  # slow root ~ 1 - eta h: 3000 steps shrink the transient to ~1e-137
        P = A @ P @ A.T + b @ b.T
    exact_err = abs(P[0, 0] - target_m) / target_m

    rng = np.random.default_rng(20240725)
    n_paths, n_steps = 100_000, 400
    e_, b_, h_, s_ = 0.1, 0.9, 1.0, 1.0
    x_m = np.zeros(n_paths)
    mom = np.zeros(n_paths)
    x_s = np.zeros(n_paths)
    for _ in range(n_steps):
        xi = rng.standard_normal(n_paths)
        mom = b_ * mom + (1 - b_) * (h_ * x_m + s_ * xi)
        x_m = x_m - e_ * mom
        x_s = x_s - e_ * (h_ * x_s + s_ * xi)
    mc_m, mc_s = x_m.var(), x_s.var()
    se_m, se_s = mc_m * math.sqrt(2 / (n_paths - 1)), mc_s * math.sqrt(2 / (n_paths - 1))
    diff = x_s**2 - x_m**2  # common noise: the difference of second moments has a small standard error
    z_diff = diff.mean() / (diff.std(ddof=1) / math.sqrt(n_paths))
    return [
        Claim.check(
            "momentum.sde.var_exact_iteration",
            "3000 steps of the exact covariance recursion reach the Lyapunov Var_inf "
            "(eta=0.1, beta=0.9, h=s=1)",
            exact_err,
            "<=",
            1e-12,
            details=f"iterated {P[0, 0]:.15g} vs formula {target_m:.15g}",
        ),
        Claim.check(
            "momentum.sde.var_monte_carlo_sgdm",
            "Monte Carlo Var_inf of SGDM (1e5 paths, 400 steps) is within 4 standard errors of the formula",
            abs(mc_m - target_m) / se_m,
            "<=",
            4.0,
            details=f"MC {mc_m:.5f} +- {se_m:.5f} vs {target_m:.5f}",
        ),
        Claim.check(
            "momentum.sde.var_monte_carlo_sgd",
            "Monte Carlo Var_inf of SGD is within 4 standard errors of the formula",
            abs(mc_s - target_s) / se_s,
            "<=",
            4.0,
            details=f"MC {mc_s:.5f} +- {se_s:.5f} vs {target_s:.5f}",
        ),
        Claim.check(
            "momentum.sde.var_monte_carlo_resolves_difference",
            "with common noise the Monte Carlo resolves the O(eta^2) gap Var_SGD - Var_SGDM > 0 (z-score)",
            z_diff,
            ">=",
            3.0,
            details=f"MC gap {diff.mean():.5f} vs formula {target_s - target_m:.5f}",
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# (c) slow root of the heavy-ball characteristic polynomial
# ---------------------------------------------------------------------------------------------------------
def slow_root_series(order: int = 3) -> list[sp.Expr]:
    """Coefficients c_1..c_order of the root z = 1 + sum c_i eta^i of z^2 - (1 + beta - gamma h) z + beta,
    gamma = eta (1 - beta), found order by order (the root near 1; the other is near beta)."""
    z = sp.Symbol("z")
    poly = z**2 - (1 + beta - gamma * h) * z + beta
    cs = sp.symbols(f"c1:{order + 1}")
    ansatz = 1 + sum(c * eta ** (i + 1) for i, c in enumerate(cs))
    expanded = sp.expand(poly.subs(gamma, eta * (1 - beta)).subs(z, ansatz))
    found: dict[sp.Symbol, sp.Expr] = {}
    for i, c in enumerate(cs):
        coeff = expanded.coeff(eta, i + 1).subs(found)
        found[c] = sp.simplify(sp.solve(coeff, c)[0])
    return [found[c] for c in cs]


def check_slow_root() -> list[Claim]:
    """The slow eigenvalue of heavy ball is 1 - eta h - eta^2 h^2 beta/(1-beta) + O(eta^3), vs GD's 1 - eta h:
    a per-step drift mismatch O(eta^2/(1-beta)), i.e. O(eta^{1-alpha}) over T/eta steps (cf. Theorem 3.5)."""
    c1, c2, c3 = slow_root_series(3)
    z = sp.Symbol("z")
    gd = sp.solve(z - 1 + eta * h, z)[0]  # GD: x' = (1 - eta h) x, characteristic polynomial z - (1 - eta h)
    claims = [
        _identity(
            "momentum.sde.slow_root_second_order",
            "the heavy-ball slow root (gamma = eta (1-beta)) is "
            "1 - eta h - eta^2 h^2 beta/(1-beta) + O(eta^3)",
            sp.Abs(c1 + h) + sp.Abs(c2 + h**2 * beta / (1 - beta)),
            f"derived: 1 + ({c1}) eta + ({c2}) eta^2 + ({sp.factor(c3)}) eta^3",
        ),
        _identity(
            "momentum.sde.gd_root",
            "GD's root is exactly 1 - eta h, so the roots agree to first order and differ at "
            "O(eta^2/(1-beta))",
            sp.Abs(gd - (1 - eta * h)) + sp.Abs(c1 - sp.diff(gd, eta)),
            f"GD root {gd}",
        ),
    ]
    # numeric: the second-order series misses the true root by O(eta^3)
    b_, h_ = 0.9, 1.0
    etas = np.geomspace(1e-3, 1e-2, 6)
    errs = []
    for e_ in etas:
        g_ = e_ * (1 - b_)
        roots = np.roots([1.0, -(1 + b_ - g_ * h_), b_])
        slow = roots[np.argmax(np.abs(roots))].real
        errs.append(abs(slow - (1 - e_ * h_ - e_**2 * h_**2 * b_ / (1 - b_))))
    slope = _fit_slope(etas, np.array(errs))
    first_order = [
        abs(np.roots([1.0, -(1 + b_ - e_ * (1 - b_) * h_), b_]).real.max() - (1 - e_ * h_)) for e_ in etas
    ]
    slope_first = _fit_slope(etas, np.array(first_order))
    claims.append(
        Claim.check(
            "momentum.sde.slow_root_numeric_order",
            "numeric roots (numpy.roots, beta=0.9, h=1) minus the 2nd-order series scale as eta^3 "
            "(fitted slope)",
            slope,
            ">=",
            2.9,
            details=f"errors {[f'{e:.3g}' for e in errs]} at eta {[f'{e:.3g}' for e in etas]}; "
            f"predicted c3 = {float(c3.subs({beta: b_, h: h_})):.4g}",
        )
    )
    claims.append(
        Claim.check(
            "momentum.sde.slow_root_first_order_rejected",
            "negative control: the first-order series 1 - eta h (GD's root) misses the heavy-ball root at "
            "order eta^2, so the same slope test (>= 2.9) rejects it",
            slope_first,
            "<",
            2.9,
            kind="sanity",
            details=f"fitted slope of |root - (1 - eta h)|: {slope_first:.3f} (expected 2)",
        )
    )
    return claims


# ---------------------------------------------------------------------------------------------------------
# (d) SVAG coefficients (Li, Malladi, Arora 2021; used in Definition 5.1 of the momentum paper)
# ---------------------------------------------------------------------------------------------------------
def check_svag() -> list[Claim]:
    """r_{1,2} = (1 +- sqrt(2 l - 1)) / 2: mean preserved (r1 + r2 = 1), variance amplified l-fold
    (r1^2 + r2^2 = l), so the gradient g~ = r1 g1 + r2 g2 has E g~ = grad L, Cov g~ = l Cov g."""
    r1 = (1 + sp.sqrt(2 * ell - 1)) / 2
    r2 = (1 - sp.sqrt(2 * ell - 1)) / 2
    mu, v = sp.symbols("mu v", positive=True)  # mean and variance of each independent minibatch gradient
    mean_g = r1 * mu + r2 * mu
    var_g = r1**2 * v + r2**2 * v
    return [
        _identity(
            "momentum.sde.svag_sum",
            "SVAG: r1 + r2 = 1 (E g~ = grad L)",
            r1 + r2 - 1,
            f"r1 + r2 = {sp.simplify(r1 + r2)}, E g~ = {sp.simplify(mean_g)}",
        ),
        _identity(
            "momentum.sde.svag_squares",
            "SVAG: r1^2 + r2^2 = l (Cov g~ = l Cov g)",
            r1**2 + r2**2 - ell,
            f"r1^2 + r2^2 = {sp.simplify(sp.expand(r1**2 + r2**2))}, Var g~ = {sp.simplify(var_g)}",
        ),
        _rejected(
            "momentum.sde.svag_wrong_root_rejected",
            "with r = (1 +- sqrt(l)) / 2 the variance is not amplified l-fold",
            ((1 + sp.sqrt(ell)) / 2) ** 2 + ((1 - sp.sqrt(ell)) / 2) ** 2 - ell,
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# (e) drift and diffusion per unit SDE time, momentum eliminated
# ---------------------------------------------------------------------------------------------------------
def window_moments() -> dict[str, sp.Expr]:
    """Mean and variance of the displacement over n steps (t = n eta of SDE time) under a frozen gradient
    G + sigma xi (variance sigma^2 Sigma), sigma^2 = 1/eta, for SGD and for SGDM started with m at its
    stationary law for that gradient. Momentum is eliminated by summing m_j = beta^j m_0 +
    (1-beta) sum_{i<j} beta^{j-1-i} g_i, so x_n - x_0 = -eta sum_j m_j."""
    n = sp.Symbol("n", integer=True, positive=True)
    i, j, k = sp.symbols("i j k", integer=True)
    G, Sig, q = sp.symbols("G Sigma q", positive=True)  # q stands for beta^n, in (0, 1)
    sigma2 = 1 / eta
    # stationary law of m under the frozen gradient: mean G, variance from
    # v = beta^2 v + (1-beta)^2 sigma^2 Sigma
    v = sp.Symbol("v")
    v0 = sp.solve(sp.Eq(v, beta**2 * v + (1 - beta) ** 2 * sigma2 * Sig), v)[0]
    # sum_j m_j = m_0 a + sum_i g_i w_i, a = sum_{j=1}^n beta^j, w_i = (1-beta) sum_{j=i+1}^n beta^(j-1-i)
    a = _generic(sp.summation(beta**j, (j, 1, n)))
    w_i = _generic(sp.summation((1 - beta) * beta ** (j - 1 - i), (j, i + 1, n)))
    sum_w = _generic(sp.summation(w_i, (i, 0, n - 1)))
    sum_w2 = _generic(sp.summation(sp.expand(w_i**2), (i, 0, n - 1)))
    to_q = {beta**n: q, beta ** (2 * n): q**2}
    mean_m = sp.simplify((-eta * (G * a + G * sum_w)).subs(to_q))
    var_m = sp.simplify((eta**2 * (v0 * a**2 + sigma2 * Sig * sum_w2)).expand().subs(to_q))
    mean_s = -eta * n * G
    var_s = eta**2 * n * sigma2 * Sig
    return {
        "n": n,
        "G": G,
        "Sigma": Sig,
        "q": q,
        "v0": v0,
        "a": a,
        "w_i": w_i,
        "sum_w2": sum_w2,
        "mean_sgdm": mean_m,
        "var_sgdm": var_m,
        "mean_sgd": mean_s,
        "var_sgd": var_s,
    }


def check_drift_diffusion() -> list[Claim]:
    """Per unit SDE time t = k eta, SGD and SGDM (momentum eliminated) have the same drift -grad L exactly and
    the same diffusion Sigma up to a relative O(eta / (1 - beta)) = O(eta^{1-alpha}), so both match
    dX = -grad L dt + Sigma^{1/2} dW to leading order when alpha < 1 (Section 3, Theorem 3.5 regime)."""
    w = window_moments()
    n, Sig, q = w["n"], w["Sigma"], w["q"]
    diff_var = sp.factor(sp.simplify(w["var_sgdm"] - w["var_sgd"]))
    stated_gap = -2 * eta * Sig * beta * (1 - q) / (1 - beta**2)
    claims = [
        _identity(
            "momentum.sde.drift_matches",
            "mean displacement over n steps: SGDM (m stationary) equals SGD, -eta n G = -t G",
            w["mean_sgdm"] - w["mean_sgd"],
            f"E[x_n - x_0] SGDM = {w['mean_sgdm']}",
        ),
        _identity(
            "momentum.sde.stationary_momentum_variance",
            "the stationary momentum variance under a frozen gradient is (1-beta)/(1+beta) sigma^2 Sigma",
            w["v0"] - (1 - beta) / (1 + beta) * Sig / eta,
            f"derived v0 = {sp.factor(w['v0'])}",
        ),
        _identity(
            "momentum.sde.diffusion_gap_closed_form",
            "Var_SGDM - Var_SGD over n steps = -2 eta Sigma beta (1 - beta^n) / (1 - beta^2): "
            "a relative O(eta/((1-beta) t)) correction",
            diff_var - stated_gap,
            f"derived Var_SGDM(x_n - x_0) - Var_SGD = {diff_var} (q = beta^n)",
        ),
    ]
    # leading order: with 1 - beta = eta^alpha, n = t/eta: Var_SGDM / (t Sigma) -> 1 as eta -> 0 iff alpha < 1
    ratio = (w["var_sgdm"] / (t * Sig)).subs(n, t / eta)
    limits = {}
    for alpha in (sp.Integer(0), sp.Rational(1, 4), sp.Rational(1, 2), sp.Rational(3, 4), sp.Integer(1)):
        b_alpha = sp.Rational(9, 10) if alpha == 0 else 1 - eta**alpha  # alpha = 0: fixed beta = 0.9
        expr = ratio.subs(q, b_alpha ** (t / eta)).subs(beta, b_alpha)
        limits[alpha] = sp.simplify(sp.limit(expr, eta, 0))
    ok = all(sp.simplify(limits[a] - 1) == 0 for a in limits if a < 1)
    claims.append(
        Claim.check(
            "momentum.sde.diffusion_leading_order",
            "with 1 - beta = eta^alpha, Var_SGDM(x_n - x_0) / (t Sigma) -> 1 (the SGD diffusion) for "
            "alpha in {0, 1/4, 1/2, 3/4}",
            1.0 if ok else 0.0,
            ">=",
            1.0,
            details="limits eta->0: "
            + ", ".join(f"alpha={a}: {limits[a]}" for a in limits)
            + " (alpha = 1 is outside Theorem 3.5: the diffusion no longer matches)",
        )
    )
    claims.append(
        Claim.check(
            "momentum.sde.diffusion_fails_at_alpha_one",
            "at alpha = 1 (1 - beta = eta) the leading diffusion differs: |limit - 1| > 0",
            float(abs(sp.N(limits[sp.Integer(1)].subs(t, 1)) - 1)),
            ">",
            0.0,
            kind="sanity",  # the negative control of diffusion_leading_order
            details=f"alpha=1 limit = {limits[sp.Integer(1)]} (evaluated at t = 1)",
        )
    )
    # numeric: the summed closed form against brute-force coefficients for a small window
    vals = {beta: 0.8, eta: 0.05, Sig: 1.3, w["G"]: 0.7}
    n_ = 7
    b_, e_, S_ = 0.8, 0.05, 1.3
    coef_m0 = sum(b_**jj for jj in range(1, n_ + 1))
    coefs = [(1 - b_) * sum(b_ ** (jj - 1 - ii) for jj in range(ii + 1, n_ + 1)) for ii in range(n_)]
    v0_ = (1 - b_) / (1 + b_) * S_ / e_
    brute = e_**2 * (v0_ * coef_m0**2 + (S_ / e_) * sum(c * c for c in coefs))
    closed = float(w["var_sgdm"].subs(vals).subs({q: b_**n_}).subs(n, n_))
    claims.append(
        Claim.check(
            "momentum.sde.window_variance_numeric",
            "the summed closed form of Var_SGDM(x_n - x_0) matches brute-force coefficients (n=7, beta=0.8)",
            abs(closed - brute) / brute,
            "<=",
            1e-12,
            details=f"closed form {closed:.15g} vs brute force {brute:.15g}",
        )
    )
    return claims


# ---------------------------------------------------------------------------------------------------------
# (f) Theorem 4.5: SGD and SGDM follow the same slow flow (label noise, uv model) on the t = k eta^2 clock
# ---------------------------------------------------------------------------------------------------------
def check_slow_sde_flow() -> list[Claim]:
    """Theorem 4.5 (the slow SDE of Li, Wang & Arora 2022 on the manifold of minimisers, over O(1/eta^2)
    steps) on L(u, v) = (u v - y)^2 / 2 with label noise y = 1 + N(0, 1): the limit is the flow du/dt =
    -(1/2) u (u^2 - u^-2) / (u^2 + u^-2) on u v = 1 (drift -(1/4) s^2 grad_Gamma tr H). SGD and SGDM
    (beta = 0.9) at eta = 0.04 and 0.02, 2000 paths each: the mean sharpness stays within 10% of the flow's
    decrease and the error shrinks with eta. Negative control: the flow with twice the constant is
    rejected."""
    from papers.momentum import fig_slow_sde as fs

    config = fs.SlowSDEConfig(etas=(0.04, 0.02), betas=(0.9,), alphas=(), n_paths=2000, horizon=3.0)
    runs = [
        fs.simulate(eta, fs.method_betas(config, eta), horizon=config.horizon, n_paths=config.n_paths,
                    s=config.label_noise, u0=config.u0, v0=config.v0, n_records=config.n_records,
                    seed=np.random.SeedSequence([7, j]))
        for j, eta in enumerate(config.etas)
    ]
    errs = [fs.flow_errors(run, config) for run in runs]  # per eta: (error per row, se, flow decrease)
    rel = np.array([e[0] / e[2] for e in errs])  # (etas, rows): SGD, SGDM
    wrong = fs.flow_errors(runs[-1], config, constant=2 * fs.FLOW_CONSTANT)
    claims = []
    for r, name in enumerate(("SGD", "SGDM beta=0.9")):
        claims.append(
            Claim.check(
                f"momentum.sde.slow_flow_{'sgd' if r == 0 else 'sgdm'}",
                f"{name} at eta = 0.02: max_t |mean sharpness - the flow's| / the flow's decrease <= 0.1, "
                "and smaller than at eta = 0.04",
                float(rel[-1, r]) if rel[-1, r] < rel[0, r] else float("inf"),
                "<=",
                0.1,
                details=f"relative errors at eta 0.04 / 0.02: {rel[0, r]:.4f} / {rel[-1, r]:.4f}",
            )
        )
    claims.append(
        Claim.check(
            "momentum.sde.slow_flow_wrong_constant_rejected",
            "negative control: against the flow with twice the constant, SGD's relative error exceeds 0.1",
            float(wrong[0][0] / wrong[2]),
            ">",
            0.1,
            kind="sanity",
        )
    )
    return claims


CHECKS = (
    Check(
        name="momentum_ema_heavy_ball",
        paper=PAPER,
        title="EMA-form SGDM equals PyTorch heavy ball with gamma = eta (1 - beta)",
        statement_ref="Section 2, eqs. (1) and (3)",
        verify=check_ema_equals_heavy_ball,
    ),
    Check(
        name="momentum_stationary_variance",
        paper=PAPER,
        title="Stationary variance on a quadratic: SGDM and SGD agree at O(eta), differ at O(eta^2)",
        statement_ref="Sections 2-3 (same SDE to first order)",
        verify=check_stationary_variance,
    ),
    Check(
        name="momentum_slow_root",
        paper=PAPER,
        title="Heavy-ball slow eigenvalue 1 - eta h - eta^2 h^2 beta/(1-beta) + O(eta^3)",
        statement_ref="derived, linear case (not a numbered result): the per-step drift mismatch behind "
        "Theorem 3.5's rate on a quadratic",
        verify=check_slow_root,
    ),
    Check(
        name="momentum_svag",
        paper=PAPER,
        title="SVAG coefficients preserve the mean and amplify the variance l-fold",
        statement_ref="Definition 5.1 (SVAG, Li, Malladi, Arora 2021)",
        verify=check_svag,
    ),
    Check(
        name="momentum_slow_sde_flow",
        paper=PAPER,
        title="SGD and SGDM both follow the label-noise slow flow on u v = 1 (uv model)",
        statement_ref="Theorem 4.5 (slow SDE, O(1/eta^2) steps)",
        verify=check_slow_sde_flow,
    ),
    Check(
        name="momentum_drift_diffusion",
        paper=PAPER,
        title="Drift and diffusion per unit SDE time match between SGD and SGDM for alpha < 1",
        statement_ref="derived, frozen-gradient heuristic (not the theorem): the moment matching behind "
        "Section 3's SDE and Theorem 3.5's alpha < 1 condition",
        verify=check_drift_diffusion,
    ),
)


# ---------------------------------------------------------------------------------------------------------
# Census: the paper's results that admit a finite check, and the checks that cover them
# ---------------------------------------------------------------------------------------------------------
# `refs`: the strings a covering check's statement_ref uses for the result. `source`: where the statement was
# read (reference notes, section 4: "verified" = quoted there from the paper or its reviews, "recalled" =
# marked there as not checked against the PDF).
RESULTS = (
    {
        "id": "Eqs. (1) and (3)",
        "refs": ("eqs. (1) and (3)",),
        "statement": "heavy ball (gamma, beta) and EMA-form SGDM (eta, beta) coincide when "
        "gamma = eta (1 - beta)",
        "checks": ("momentum_ema_heavy_ball",),
        "source": "verified: eq. 1 from an ar5iv excerpt; eq. 3 recalled from a review's description",
    },
    {
        "id": "Sections 2-3 (first-order SDE)",
        "refs": ("Sections 2-3",),
        "statement": "SGDM and SGD(eta) share the first-order SDE; on a quadratic their stationary variances "
        "agree at O(eta) and differ at O(eta^2) (a derived consequence, not a numbered result)",
        "checks": ("momentum_stationary_variance",),
        "source": "derived here from the SDE of Sec. 2.1 (recalled)",
    },
    {
        "id": "Theorem 3.5",
        "refs": ("Theorem 3.5",),
        "statement": "for 1 - beta = Theta(eta^alpha), alpha in [0, 1), SGDM and SGD are weak approximations "
        "of each other over O(1/eta) steps with error O(eta^((1-alpha)/2))",
        "checks": ("momentum_slow_root", "momentum_drift_diffusion"),
        "coverage": "partial: the linear case (slow root) and the frozen-gradient moments (alpha < 1 vs "
        "alpha = 1); the weak-error rate itself is measured by figure fig_weak_error, not by a theory check",
        "source": "verified (reviews): alpha in [0, 1), O(1/eta) horizon, the rate",
    },
    {
        "id": "Definition 5.1",
        "refs": ("Definition 5.1",),
        "statement": "SVAG: r_{1,2} = (1 +- sqrt(2l - 1))/2 keep the gradient's mean and multiply its "
        "covariance by l",
        "checks": ("momentum_svag",),
        "source": "recalled (Li, Malladi, Arora 2021, as used in Definition 5.1)",
    },
    {
        "id": "Theorem 4.5",
        "refs": ("Theorem 4.5",),
        "statement": "over O(1/eta^2) steps SGD and SGDM follow the same slow SDE on the manifold of "
        "minimisers",
        "checks": ("momentum_slow_sde_flow",),
        "coverage": "on the uv model with label noise: both optimizers against the analytic flow (constant "
        "1/4 from Li, Wang & Arora 2022), a doubled constant rejected; figure fig_slow_sde does the same at "
        "more etas and paths",
        "source": "verified (reviews) for the claim; the slow SDE's constants recalled (Li, Wang, Arora "
        "2022)",
    },
)


def _sanity_of(verify) -> list[Claim]:
    """The negative controls a check already carries: its claims of kind "sanity"."""
    return [c for c in verify() if c.kind == "sanity"]


# check name -> the negative control(s): Claims of kind "sanity", each passing iff the check rejected a wrong
# formula or a parameter outside the statement.
def _variance_control() -> list[Claim]:
    """The control of check_stationary_variance without its Monte Carlo: SGD's Var_inf is not SGDM's."""
    var_sgdm, _ = stationary_variances()
    return [
        _rejected(
            "momentum.sde.var_sgd_formula_for_sgdm_rejected",
            "SGD's Var_inf eta s^2 / (h (2 - eta h)) is not SGDM's",
            var_sgdm - eta * s**2 / (h * (2 - eta * h)),
        )
    ]


def _alpha_one_control() -> list[Claim]:
    """The control of check_drift_diffusion alone: at alpha = 1 the diffusion ratio's limit is not 1."""
    w = window_moments()
    ratio = (w["var_sgdm"] / (t * w["Sigma"])).subs(w["n"], t / eta)
    b_one = 1 - eta
    limit = sp.simplify(sp.limit(ratio.subs(w["q"], b_one ** (t / eta)).subs(beta, b_one), eta, 0))
    gap = float(abs(sp.N(limit.subs(t, 1)) - 1))
    return [
        Claim.check(
            "momentum.sde.diffusion_fails_at_alpha_one",
            "at alpha = 1 (1 - beta = eta) the leading diffusion differs: |limit - 1| > 0",
            gap,
            ">",
            0.0,
            kind="sanity",
            details=f"alpha=1 limit = {limit} (evaluated at t = 1)",
        )
    ]


CONTROLS = {
    "momentum_ema_heavy_ball": lambda: _sanity_of(check_ema_equals_heavy_ball),
    "momentum_stationary_variance": _variance_control,
    "momentum_slow_root": lambda: _sanity_of(check_slow_root),
    "momentum_svag": lambda: _sanity_of(check_svag),
    "momentum_drift_diffusion": _alpha_one_control,
    "momentum_slow_sde_flow": lambda: _sanity_of(check_slow_sde_flow),
}
