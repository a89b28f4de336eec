"""ADO (Jiang et al., ICLR 2025): the scaling-law fit and the sampler against known answers and bad inputs,
the synthetic Markov domains (exact Bayes loss), the configs, and the theory checks with their negative
controls. The figures' quick claims are run by tests/test_quick_claims.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.configs import ConfigError, Scale
from common.data.markov_domains import (
    MarkovDomain,
    RepeatedDomain,
    dirichlet_markov,
    noise_domain,
    repeated_domain,
    zipf_markov,
)
from papers.ado import AdoSampler, fit_scaling_law
from papers.ado.experiment import NOISE_HEAVY_PRIOR, WIN_PRIOR, make_domains, spec_for
from papers.ado.law import FitBounds, learning_potential, scaling_law
from papers.ado.sampler import AdoConfig, StaticSampler, clip_min_probability
from proofs_checks import ado as theory
from tests.conftest import failed_lines

N = 32.0 * np.arange(40, 2000, 5)


# --------------------------------------------------------------------------------------------------------
# fit_scaling_law
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("truth", [(2.5, 12.0, 0.35), (4.0, 2.0, 0.25)])
def test_fit_recovers_a_known_law(truth):
    loss = scaling_law(N, *truth)
    eps, beta, alpha = fit_scaling_law(N, loss)
    assert abs(eps - truth[0]) < 0.02 and abs(alpha - truth[2]) < 0.02
    assert abs(math.log(beta / truth[1])) < 0.1


def test_fit_respects_the_eps_bound_and_warm_start():
    loss = scaling_law(N, 1.0, 5.0, 0.4)  # eps below the official bound e^0.5
    eps, _, _ = fit_scaling_law(N, loss)
    assert eps >= math.exp(0.5) - 1e-9
    eps_relaxed, _, alpha = fit_scaling_law(N, loss, bounds=FitBounds(e_min=-3.0), init=(1.2, 4.0, 0.3))
    assert abs(eps_relaxed - 1.0) < 0.02 and abs(alpha - 0.4) < 0.02


@pytest.mark.parametrize(
    "n, loss, match",
    [
        (np.arange(1, 5.0), np.ones(3), "same length"),
        (np.arange(1, 3.0), np.ones(2), "at least 3"),
        (np.array([1.0, 2.0, -3.0]), np.ones(3), "n must be finite and > 0"),
        (np.arange(1, 4.0), np.array([1.0, 0.0, 1.0]), "loss must be finite and > 0"),
        (np.arange(1, 4.0), np.array([1.0, np.nan, 1.0]), "loss must be finite"),
        (np.ones((2, 3)), np.ones((2, 3)), "1-D"),
    ],
)
def test_fit_rejects_bad_series(n, loss, match):
    with pytest.raises(ValueError, match=match):
        fit_scaling_law(n, loss)


def test_fit_rejects_bad_options():
    loss = scaling_law(N, 2.0, 3.0, 0.3)
    with pytest.raises(ValueError, match="n_refine"):
        fit_scaling_law(N, loss, n_refine=0)
    with pytest.raises(ValueError, match="init"):
        fit_scaling_law(N, loss, init=(-1.0, 2.0, 0.3))
    with pytest.raises(ValueError, match="alpha_min < alpha_max"):
        FitBounds(alpha_min=0.9, alpha_max=0.8)
    with pytest.raises(ValueError, match="finite"):
        FitBounds(e_min=float("nan"))


def test_learning_potential_is_minus_the_derivative():
    n, h = 5000.0, 1e-3
    numeric = -(scaling_law(n + h, 2.0, 7.0, 0.4) - scaling_law(n - h, 2.0, 7.0, 0.4)) / (2 * h)
    assert learning_potential(n, 2.0, 7.0, 0.4) == pytest.approx(float(numeric), rel=1e-6)


# --------------------------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------------------------
def test_clip_min_probability_official_example_and_errors():
    out = clip_min_probability(np.array([0.995, 0.005]), 0.01)
    np.testing.assert_allclose(out, [0.995 / 1.005, 0.01 / 1.005])
    with pytest.raises(ValueError, match="floor"):
        clip_min_probability(np.array([0.5, 0.5]), 0.6)
    with pytest.raises(ValueError, match="non-negative"):
        clip_min_probability(np.array([-0.1, 1.1]), 0.01)


def test_sampler_validates_inputs():
    with pytest.raises(ValueError, match="sum to 1"):
        AdoSampler([0.5, 0.6], 8)
    with pytest.raises(ValueError, match="K >= 2"):
        AdoSampler([1.0], 8)
    with pytest.raises(ValueError, match="batch_size"):
        AdoSampler([0.5, 0.5], 0)
    with pytest.raises(ValueError, match="floor"):
        AdoSampler([0.5, 0.5], 8, AdoConfig(floor=0.49 + 0.02))
    with pytest.raises(ValueError, match="savgol_window"):
        AdoConfig(savgol_window=50)
    with pytest.raises(ValueError, match="gamma1"):
        AdoConfig(gamma1=0.0)
    with pytest.raises(ValueError, match="s must lie"):
        AdoConfig(s=1.0)
    sampler = AdoSampler([0.5, 0.5], 4)
    with pytest.raises(ValueError, match="domain ids"):
        sampler.observe(0, np.array([0, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one length"):
        sampler.observe(0, np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError, match="length K"):
        sampler.set_laws([1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        StaticSampler([0.2, 0.2])


def test_sampler_moves_weight_off_a_saturated_domain_and_keeps_the_prior_before_start():
    """Feed known curves: domain 0 saturates fast (4.16 + 20 n^-0.8), domain 1 keeps learning (2 + 10
    n^-0.4). Before start_step the policy is the prior; after refits the saturated domain loses weight."""
    B, cfg = 8, AdoConfig(refit_every=50, start_step=100, ignore_steps=10, savgol_window=21, subsample=2)
    sampler = AdoSampler([0.6, 0.4], B, cfg)
    rng = np.random.default_rng(0)
    for t in range(600):
        if t < 100:
            np.testing.assert_allclose(sampler.weights, [0.6, 0.4])
        dom = rng.choice(2, size=B, p=sampler.weights)
        n = (t + 1) * B
        clean = np.where(dom == 0, scaling_law(n, 4.16, 20.0, 0.8), scaling_law(n, 2.0, 10.0, 0.4))
        sampler.observe(t, dom, clean + 0.01 * rng.standard_normal(B))
    assert sampler.fits[-1]["eps"][1] == pytest.approx(2.0, abs=0.05)
    assert sampler.weights[0] < 0.3 < sampler.weights[1]
    assert sampler.weights.sum() == pytest.approx(1.0)
    assert sampler.overhead_seconds > 0 and sampler.first_policy_step == 100


def test_a_domain_without_learning_potential_gets_the_floor():
    sampler = AdoSampler([0.5, 0.3, 0.2], 8, AdoConfig(start_step=0))
    sampler.seen = 1000
    sampler.set_laws([4.0, 2.0, 2.0], [1e-12, 5.0, 5.0], [0.3, 0.3, 0.3])  # domain 0: nothing left to learn
    sampler.step_policy(0, np.array([4.0, 2.0, 2.0]))
    assert sampler.rho[0] == pytest.approx(0.01 / (1 + 0.01), rel=1e-6)
    assert sampler.rho.min() >= 0.01 / (1 + 3 * 0.01)


# --------------------------------------------------------------------------------------------------------
# the domains
# --------------------------------------------------------------------------------------------------------
def test_markov_bayes_loss_matches_entropy_rate():
    rng = np.random.default_rng(0)
    d = zipf_markov("z", 64, 1.0, 10.0, rng, offset=100)
    seqs = d.sample(4000, 17, rng)
    assert seqs.shape == (4000, 17) and seqs.min() >= 100 and seqs.max() < 164
    assert d.bayes_logloss(seqs).mean() == pytest.approx(d.entropy_rate(), abs=0.03)
    counts = np.bincount(seqs.ravel() - 100, minlength=64)
    assert counts[:4].sum() > counts[-32:].sum()  # Zipf-visited: the first states dominate
    noise = noise_domain("noise", 64)
    assert noise.entropy_rate() == pytest.approx(math.log(64))
    easy = dirichlet_markov("easy", 16, 0.5, rng)
    assert 0 < easy.entropy_rate() < math.log(16)


def test_repeated_domain_bayes_loss_is_exact():
    docs = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 2]])
    d = RepeatedDomain("tiny", docs)
    # doc 0: P(1 | 0) = 2/3, P(2 | 0, 1) = 1/2
    assert d.bayes_logloss(docs[:1])[0] == pytest.approx(-(math.log(2 / 3) + math.log(1 / 2)) / 2)
    assert d.bayes_logloss(docs[2:])[0] == pytest.approx(-math.log(1 / 3) / 2)
    with pytest.raises(ValueError, match="not one of"):
        d.bayes_logloss(np.array([[0, 3, 3]]))
    rng = np.random.default_rng(0)
    r = repeated_domain("r", noise_domain("n", 8, offset=5), 4, 6, rng)
    assert r.sample(10, 6, rng).shape == (10, 6) and r.n_tokens == 8


def test_domains_reject_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        MarkovDomain("x", np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        MarkovDomain("x", np.ones((2, 2)))
    with pytest.raises(ValueError, match="n_states"):
        zipf_markov("z", 1, 1.0, 10.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="concentration"):
        zipf_markov("z", 4, 1.0, 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="length"):
        noise_domain("n", 4).sample(3, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tokens must be"):
        noise_domain("n", 4, offset=10).bayes_logloss(np.zeros((2, 3), dtype=int))


def test_toy_domains_have_disjoint_tokens_and_priors_sum_to_one():
    domains = make_domains(0)
    ranges = [(d.offset, d.offset + d.n_tokens) for d in domains]
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert ranges[-1][1] == 1104
    assert sum(WIN_PRIOR) == pytest.approx(1.0) and sum(NOISE_HEAVY_PRIOR) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="method"):
        spec_for("doremi", WIN_PRIOR, 0, 10, None)


# --------------------------------------------------------------------------------------------------------
# configs and theory checks
# --------------------------------------------------------------------------------------------------------
def test_configs_fail_fast():
    from papers.ado import PAPER

    for fig in PAPER.figures():
        assert set(fig.configs) == {Scale.QUICK, Scale.DEFAULT, Scale.PAPER}
        with pytest.raises(ConfigError):
            fig.config_for(Scale.QUICK, overrides=["no_such_key=1"])
        with pytest.raises((ConfigError, ValueError)):
            fig.config_for(Scale.QUICK, overrides=["steps=0"])
        with pytest.raises((ConfigError, ValueError)):
            fig.config_for(Scale.QUICK, overrides=["eval_every=100000"])
        with pytest.raises((ConfigError, ValueError)):
            fig.config_for(Scale.QUICK, overrides=["floor=0.5"])


@pytest.mark.parametrize("check", theory.CHECKS, ids=lambda c: c.name)
def test_theory_checks_and_their_negative_controls(check):
    claims = check.verify()
    assert len(claims) == 2 and claims[1].id.endswith("_control")
    assert not failed_lines(claims), failed_lines(claims)


def test_negative_controls_are_real_rejections():
    import sympy as sp

    n, _, alpha, eps, L = theory._potential_symbols()
    assert theory.potential_identity_holds(alpha / n * (L - eps))
    assert not theory.potential_identity_holds(alpha / n * L)
    fitted = fit_scaling_law(N, scaling_law(N, 2.5, 12.0, 0.35))
    assert theory.recovered((2.5, 12.0, 0.35), fitted)
    assert not theory.recovered((2.6, 12.0, 0.35), fitted)
    assert sp.simplify(theory.fixed_point_exponent() - 2) != 0  # 1/(1-s), not a constant
