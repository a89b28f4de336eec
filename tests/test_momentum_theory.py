"""Momentum paper (Wang et al., ICLR 2024): the sympy/numeric theory checks and the two theory figures at
quick scale (Theorem 3.5 weak error, Theorem 4.5 slow SDE: their claims run in tests/test_quick_claims.py),
plus exactness properties of the estimators."""

from __future__ import annotations

import numpy as np
import pytest

from papers.momentum import fig_slow_sde, fig_weak_error
from proofs_checks import momentum_sde
from proofs_checks.momentum_sde import beta
from tests.conftest import failed_lines


@pytest.mark.parametrize("check", momentum_sde.CHECKS, ids=lambda c: c.name)
def test_theory_check_passes(check):
    claims = check.verify()
    assert claims, f"{check.name} returned no claims"
    assert not failed_lines(claims), "\n".join(failed_lines(claims))


def test_every_theory_check_carries_a_negative_control_that_rejects_a_wrong_formula():
    """Each check of momentum_sde holds a negative control (kind "sanity"): a wrong formula or a parameter
    outside the statement. It passes only if the check rejected that input, so the check can fail."""
    for check in momentum_sde.CHECKS:
        controls = [c for c in check.verify() if c.kind == "sanity"]
        assert controls, f"{check.name} has no negative control"
        assert all(c.passed for c in controls), "\n".join(failed_lines(controls))
    assert not momentum_sde._rejected("x.y", "a true identity", beta - beta).passed  # the control can fail


def test_weak_error_is_zero_without_momentum():
    """beta = 0 turns EMA-form SGDM into SGD exactly, so both estimators must report exactly 0 (a misaligned
    step index or a different noise stream would show up here), while beta = 0.9 gives a positive error."""
    betas = np.array([0.0, 0.9])
    exact = fig_weak_error.exact_weak_error(0.03125, betas, h=1.0, s=1.0, x0=1.0, m0=0.0, horizon=1.0)
    mc = fig_weak_error.mc_weak_error(0.03125, betas, n_paths=500, seed=3, s=1.0, x0=2.0, m0=0.0, horizon=1.0)
    for err in (exact["x"], exact["x2"], mc["err_x"], mc["err_x2"], mc["se_x"], mc["se_x2"]):
        assert err[0] == 0.0
    for err in (exact["x"], exact["x2"], mc["err_x"], mc["err_x2"]):
        assert err[1] > 1e-3


def test_weak_error_exact_matches_monte_carlo_on_the_quadratic():
    """The exact moment propagation is the law of the sampled recursion: on L = x^2/2, E x_k of SGDM from a
    Monte Carlo with many paths agrees with the propagated mean within sampling error."""
    eta, beta, steps = 0.0625, 0.8, 16
    rng = np.random.default_rng(0)
    n = 200_000
    x, m = np.ones(n), np.zeros(n)
    for _ in range(steps):
        m = beta * m + (1 - beta) * (x + eta**-0.5 * rng.standard_normal(n))
        x = x - eta * m
    # propagate the mean alone: (x, m) -> A (x, m)
    mx, mm = 1.0, 0.0
    for _ in range(steps):
        mm = beta * mm + (1 - beta) * mx
        mx = mx - eta * mm
    assert abs(x.mean() - mx) < 4 * x.std() / np.sqrt(n)


def test_beta_schedule_matches_definition():
    """1 - beta = (1 - beta_ref) (eta / eta_ref)^alpha: beta_ref at eta_ref, and fixed beta when alpha = 0."""
    f = fig_weak_error.beta_schedule
    assert f(0.0625, 0.5, 0.9, 0.0625) == pytest.approx(0.9)
    assert f(0.001, 0.0, 0.9, 0.0625) == pytest.approx(0.9)
    assert 1 - f(0.0625 / 16, 0.5, 0.9, 0.0625) == pytest.approx(0.1 / 4)


def test_slow_sde_sgd_row_is_sgd():
    """The beta = 0 row of the uv-model simulation is plain SGD; compare with an explicit SGD loop."""
    out = fig_slow_sde.simulate(
        0.1, np.array([0.0]), horizon=0.05, n_paths=8, s=1.0, u0=3.0, v0=1 / 3, n_records=1, seed=5
    )
    rng = np.random.default_rng(5)
    u, v = np.full(8, 3.0), np.full(8, 1 / 3)
    for _ in range(out["steps"]):
        r = u * v - (1.0 + rng.standard_normal(8))
        u, v = u - 0.1 * r * v, v - 0.1 * r * u
    np.testing.assert_allclose(out["mean"][-1, 0], (u * u + v * v).mean(), rtol=1e-12)
