"""Checks for Jiang, Zhou, Feng, Malladi, Kolter, "Adaptive Data Optimization: Dynamic Sample Selection
with Scaling Laws" (ICLR 2025, arXiv 2410.11820): the algebra and the fixed points of ADO's policy, and the
scaling-law fit. Each check comes with a negative control: a wrong statement the same test rejects.

* Learning potential (sympy): for L(n) = eps + beta n^(-alpha), -dL/dn = (alpha / n) (L(n) - eps) (the slope
  ADO weights by). Control: the same test on -dL/dn = (alpha / n) L(n) (eps forgotten) fails.
* Sharpened prior: with identical laws rho_k ∝ mu_k h_k^s and h -> pi -> rho, so the fixed point solves
  log rho = log mu + s log rho + c: rho ∝ mu^(1/(1-s)), mu^2 at the paper's s = 0.5 (sympy derives the
  exponent; iterating `AdoSampler.step_policy` with expected counts checks it at s = 0.5 and 0.25).
  Control: the unsharpened prior mu is rejected by the same tolerance.
* Floor: clip_min_probability keeps every weight >= floor / (1 + K floor) (the official clip raises and
  then renormalises, so the floor itself is not a bound). Control: "every weight >= floor" is violated.
* Time average: pibar(t) = (t1 mu + sum_{tau=t1..t} rho(tau)) / (t + 1), t1 the first policy step (the
  official update pibar <- (1 - 1/(t+1)) pibar + rho / (t+1) from pibar = mu). Control: the plain mean of
  rho (no memory of the prior) is rejected.
* Fit recovery: on L(n) = eps + beta n^(-alpha) with 0.3% multiplicative noise, `fit_scaling_law`
  recovers (eps, beta, alpha). Control: the same tolerance rejects a truth whose eps is off by 0.1 nats.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from common.claims import Claim
from common.experiment import Check
from papers.ado.law import fit_scaling_law, scaling_law
from papers.ado.sampler import AdoConfig, AdoSampler, clip_min_probability

PAPER = "ado"


# ----------------------------------------------------------------------------------------------------------
def potential_identity_holds(candidate: sp.Expr) -> bool:
    """Whether -dL/dn equals `candidate` (an expression in n, eps, beta, alpha and L) identically."""
    n, beta, alpha = sp.symbols("n beta alpha", positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    L = eps + beta * n ** (-alpha)
    expr = candidate.subs(sp.Symbol("L"), L)
    return sp.simplify(-sp.diff(L, n) - expr) == 0


def _potential_symbols() -> tuple[sp.Symbol, ...]:
    return (*sp.symbols("n beta alpha", positive=True), sp.Symbol("epsilon", positive=True), sp.Symbol("L"))


def check_learning_potential() -> list[Claim]:
    n, _beta, alpha, eps, L = _potential_symbols()
    right = potential_identity_holds(alpha / n * (L - eps))
    wrong = potential_identity_holds(alpha / n * L)
    return [
        Claim.check("ado.theory.learning_potential",
                    "-dL/dn = (alpha/n)(L - eps) for L = eps + beta n^-alpha (sympy; 1 = identity holds)",
                    1.0 if right else 0.0, ">=", 1.0, kind="sanity",
                    paper_value="Method: the learning potential ADO weights each domain by"),
        Claim.check("ado.theory.learning_potential_control",
                    "negative control: the same test rejects -dL/dn = (alpha/n) L (1 = rejected)",
                    0.0 if wrong else 1.0, ">=", 1.0, kind="sanity"),
    ]


# ----------------------------------------------------------------------------------------------------------
def fixed_point_exponent() -> sp.Expr:
    """Solve log rho = log mu + s log rho + c for log rho: the exponent of mu at the fixed point."""
    s, x, m, c = sp.symbols("s x m c")
    solution = sp.solve(sp.Eq(x, m + s * x + c), x)[0]  # x = log rho, m = log mu
    return sp.simplify(sp.diff(solution, m))  # 1 / (1 - s)


def iterate_identical_laws(mu: np.ndarray, s: float, steps: int) -> np.ndarray:
    """The policy after `steps` steps of `AdoSampler.step_policy` with identical laws for every domain and
    expected counts (h driven by pi itself, the large-batch limit); floor 0 so that it does not bind."""
    sampler = AdoSampler(mu, 1, AdoConfig(start_step=0, floor=0.0, s=s))
    K = mu.shape[0]
    sampler.set_laws(np.full(K, 2.0), np.full(K, 5.0), np.full(K, 0.3))
    sampler.seen = 1000
    for t in range(steps):
        sampler.step_policy(t, sampler.weights)
    return sampler.weights


def check_sharpened_prior() -> list[Claim]:
    mu = np.array([0.4, 0.3, 0.2, 0.1])
    s_sym = sp.Symbol("s")
    exponent = fixed_point_exponent()
    exponent_ok = sp.simplify(exponent - 1 / (1 - s_sym)) == 0
    errors, control = {}, {}
    for s in (0.5, 0.25):
        pi = iterate_identical_laws(mu, s, 20_000)
        p = float(exponent.subs(s_sym, s))
        target = mu**p / (mu**p).sum()
        errors[s] = float(np.abs(pi - target).max())
        control[s] = float(np.abs(pi - mu).max())
    tol = 0.01  # the 1/t memory of the prior decays like t^-(1-s): ~2e-3 at s = 0.5 after 20k steps
    return [
        Claim.check("ado.theory.sharpened_prior",
                    "identical laws: max |pi - mu^(1/(1-s)) normalised| after 20k policy steps, s = 0.5 "
                    "(mu^2) and s = 0.25 (mu^(4/3)); the exponent 1/(1-s) from sympy",
                    max(errors.values()) if exponent_ok else float("nan"), "<=", tol, kind="sanity",
                    paper_value="a property of s = 0.5: the policy sharpens the prior to mu^2",
                    details=f"exponent {exponent}; errors {errors}; mu = {mu.tolist()}"),
        Claim.check("ado.theory.sharpened_prior_control",
                    "negative control: the unsharpened prior mu is rejected (min over s of max |pi - mu|)",
                    min(control.values()), ">", tol, kind="sanity", details=f"{control}"),
    ]


# ----------------------------------------------------------------------------------------------------------
def check_floor() -> list[Claim]:
    rng = np.random.default_rng(0)
    floor, worst_ratio, worst_floor = 0.01, np.inf, np.inf
    for K in (2, 5, 22):
        bound = floor / (1 + K * floor)
        for _ in range(2000):
            p = rng.dirichlet(np.full(K, 0.3))
            out = clip_min_probability(p, floor)
            worst_ratio = min(worst_ratio, out.min() / bound)
            worst_floor = min(worst_floor, out.min() / floor)
    example = clip_min_probability(np.array([0.995, 0.005]), floor)
    return [
        Claim.check("ado.theory.floor_bound",
                    "min weight / (floor / (1 + K floor)) after clip_min_probability, 6000 Dirichlet draws, "
                    "K in {2, 5, 22}, floor 0.01",
                    worst_ratio, ">=", 1.0 - 1e-12, kind="sanity",
                    paper_value="official clip_min_probability with delta_min = 0.01",
                    details=f"[0.995, 0.005] -> {example.round(5).tolist()}"),
        Claim.check("ado.theory.floor_bound_control",
                    "negative control: 'every weight >= floor' fails (min weight / floor, same draws)",
                    worst_floor, "<", 1.0, kind="sanity"),
    ]


# ----------------------------------------------------------------------------------------------------------
def check_time_average() -> list[Claim]:
    rng = np.random.default_rng(1)
    mu = np.array([0.5, 0.2, 0.2, 0.1])
    t1 = 80
    sampler = AdoSampler(mu, 8, AdoConfig(start_step=t1))
    sampler.seen = 1000
    rhos = []
    for t in range(400):
        if t >= t1:  # a new random law each step, so rho moves
            sampler.set_laws(rng.uniform(1, 3, 4), rng.uniform(1, 10, 4), rng.uniform(0.05, 0.8, 4))
        sampler.step_policy(t, rng.multinomial(8, sampler.weights).astype(float) + 1e-9)
        if t >= t1:
            rhos.append(sampler.rho.copy())
    t = 399
    formula = (t1 * mu + np.sum(rhos, axis=0)) / (t + 1)
    plain = np.mean(rhos, axis=0)
    return [
        Claim.check("ado.theory.time_average",
                    "max |pibar(t) - (t1 mu + sum_{t1..t} rho) / (t + 1)|, t1 = 80, t = 399",
                    float(np.abs(sampler.pi_bar - formula).max()), "<=", 1e-12, kind="sanity",
                    paper_value="official curr_dist: p_avg <- (1 - 1/(itr+1)) p_avg + dist / (itr+1)"),
        Claim.check("ado.theory.time_average_control",
                    "negative control: the plain mean of rho (no prior memory) is rejected",
                    float(np.abs(sampler.pi_bar - plain).max()), ">", 1e-6, kind="sanity"),
    ]


# ----------------------------------------------------------------------------------------------------------
KNOWN_LAWS = ((2.5, 12.0, 0.35), (2.0, 30.0, 0.5), (4.2, 3.0, 0.2))  # (eps, beta, alpha)


def recovery_errors(truth: tuple[float, float, float],
                    fitted: tuple[float, float, float]) -> dict[str, float]:
    (e0, b0, a0), (e1, b1, a1) = truth, fitted
    return {"eps": abs(e1 - e0), "log_beta": abs(np.log(b1 / b0)), "alpha": abs(a1 - a0)}


RECOVERY_TOL = {"eps": 0.05, "log_beta": 0.3, "alpha": 0.05}


def recovered(truth: tuple[float, float, float], fitted: tuple[float, float, float]) -> bool:
    return all(v <= RECOVERY_TOL[k] for k, v in recovery_errors(truth, fitted).items())


def check_fit_recovery() -> list[Claim]:
    rng = np.random.default_rng(2)
    n = 32.0 * np.arange(40, 2500, 5)  # the toy's x axis: sequences seen, after ignoring 40 steps
    results, fits = [], []
    for truth in KNOWN_LAWS:
        loss = scaling_law(n, *truth) * np.exp(0.003 * rng.standard_normal(n.shape))
        fitted = fit_scaling_law(n, loss, n_refine=8)
        fits.append(fitted)
        results.append(recovered(truth, fitted))
    shifted = [recovered((e + 0.1, b, a), f) for (e, b, a), f in zip(KNOWN_LAWS, fits, strict=True)]
    detail = "; ".join(f"truth {t} -> ({f[0]:.3f}, {f[1]:.2f}, {f[2]:.3f})" for t, f in zip(KNOWN_LAWS, fits,
                                                                                          strict=True))
    return [
        Claim.check("ado.theory.fit_recovery",
                    f"fraction of 3 known laws recovered by the Huber/L-BFGS-B fit (best 8 of the 512 grid "
                    f"starts; tolerances {RECOVERY_TOL}, 0.3% noise)",
                    float(np.mean(results)), ">=", 1.0, kind="sanity",
                    paper_value="Method: per-domain laws fitted online with a Huber loss in log space",
                    details=detail),
        Claim.check("ado.theory.fit_recovery_control",
                    "negative control: fraction 'recovered' against a truth with eps + 0.1 nats",
                    float(np.mean(shifted)), "<=", 0.0, kind="sanity"),
    ]


CHECKS = (
    Check("ado_learning_potential", PAPER, "The learning potential of a power law",
          "method (learning potential)", check_learning_potential),
    Check("ado_sharpened_prior", PAPER, "Identical laws give the sharpened prior mu^(1/(1-s))",
          "method (policy), s = 0.5", check_sharpened_prior),
    Check("ado_floor", PAPER, "The floor's lower bound on every weight", "official clip_min_probability",
          check_floor),
    Check("ado_time_average", PAPER, "The time average of the policy", "method (time-averaged policy)",
          check_time_average),
    Check("ado_fit_recovery", PAPER, "The scaling-law fit recovers known parameters",
          "method (per-domain scaling law)", check_fit_recovery),
)
