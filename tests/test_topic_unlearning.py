"""Topic-model unlearning (Wei, Malladi, Arora, Sanyal, ICLR 2025): the API (`cooccurrence`, `learn_topics`,
`unlearn`) against hand-computed values and exact retraining, its input errors, the Gaussian mechanism, the
theory checks and their negative controls, the configs, and the real gensim corpus. The figures' quick
claims run in tests/test_quick_claims.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.configs import ConfigError, Scale, apply_overrides, validate_config
from common.data.topic_models import sample_documents, separable_topic_model
from papers.topic_unlearning import (
    PAPER,
    calibrate_sensitivity,
    cooccurrence,
    fig_capacity,
    fig_cost,
    fig_head,
    fig_recovery,
    learn_topics,
    retrain,
    unlearn,
)
from papers.topic_unlearning.learner import fit_from_cooccurrence
from papers.topic_unlearning.unlearning import (
    frobenius_error,
    gaussian_delta,
    gaussian_sigma,
    random_forget_set,
)
from proofs_checks import topic_deletion_capacity as theory
from tests.conftest import failed_lines


@pytest.fixture(scope="module")
def small():
    """n = 30, r = 3, 50k two-word documents, learned and calibrated."""
    rng = np.random.default_rng(0)
    model = separable_topic_model(30, 3, 0.1, 0.1, rng)
    docs = sample_documents(model, 50_000, 2, rng)
    state = learn_topics(docs, 3, vocab_size=30, candidate_min_marginal=0.1 / 6)
    kappa, _, _ = calibrate_sensitivity(state, rng)
    return model, docs, dataclasses.replace(state, sensitivity=kappa)


# --------------------------------------------------------------------------------------------------------
# cooccurrence
# --------------------------------------------------------------------------------------------------------
def test_cooccurrence_by_hand():
    """(0, 1) gives (e0 e1^T + e1 e0^T) / 2; (2, 2) gives e2 e2^T; (0, 1, 1): (h h^T - diag h) / 6 with
    h = (1, 2, 0); Q-hat is their mean, entries sum to 1."""
    Q = cooccurrence([[0, 1], [2, 2], [0, 1, 1]], 3)
    W1 = np.array([[0, 0.5, 0], [0.5, 0, 0], [0, 0, 0]])
    W2 = np.diag([0.0, 0.0, 1.0])
    W3 = np.array([[0, 2, 0], [2, 2, 0], [0, 0, 0]]) / 6.0
    np.testing.assert_allclose(Q, (W1 + W2 + W3) / 3, atol=1e-15)
    assert Q.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(cooccurrence(np.array([[0, 1], [2, 2]]), 3), (W1 + W2) / 2, atol=1e-15)


@pytest.mark.parametrize(
    "docs, vocab, match",
    [
        ([], 3, "empty"),
        ([[0, 1], [2]], 3, "at least 2 words"),
        ([[0, 3]], 3, r"\[0, vocab_size=3\)"),
        ([[0, -1]], 3, "vocab_size"),
        ([[0.5, 1.0]], 3, "integer word ids"),
        ("ab", 3, "sequence of word-id sequences"),
        (np.zeros((2, 2)), 3, "2-D integer"),
        ([[0, 1]], 0, "positive integer"),
        ([[0, 1]], None, "positive integer"),
    ],
)
def test_cooccurrence_rejects_bad_input(docs, vocab, match):
    with pytest.raises(ValueError, match=match):
        cooccurrence(docs, vocab)


# --------------------------------------------------------------------------------------------------------
# learn_topics
# --------------------------------------------------------------------------------------------------------
def test_exact_q_recovers_a_exactly():
    """From the population Q = A R A^T the anchors are the planted ones and A is recovered to ~1e-12."""
    model = separable_topic_model(40, 4, 0.1, 0.2, np.random.default_rng(1))
    fit = fit_from_cooccurrence(model.Q, 4, 0.1 / 8)
    assert set(fit.anchors.tolist()) == set(model.anchors.tolist())
    assert frobenius_error(fit.A, model.A) < 1e-10


def test_recover_kl_agrees_with_recover_l2():
    """RecoverKL (method="kl", SLSQP per word) recovers A from the exact Q as RecoverL2 does."""
    model = separable_topic_model(20, 3, 0.15, 0.3, np.random.default_rng(4))
    fit = fit_from_cooccurrence(model.Q, 3, 0.15 / 6, method="kl")
    assert frobenius_error(fit.A, model.A) < 1e-4


def test_recovery_error_falls_with_m():
    rng = np.random.default_rng(2)
    model = separable_topic_model(50, 3, 0.1, 0.1, rng)
    errs = [
        frobenius_error(
            learn_topics(
                sample_documents(model, m, 2, rng), 3, vocab_size=50, candidate_min_marginal=0.1 / 6
            ).A,
            model.A,
        )
        for m in (20_000, 320_000)
    ]
    assert errs[1] < errs[0] / 2  # ~ m^-1/2: a factor 4 expected


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"r": 1}, "r \\(number of topics\\)"),
        ({"r": 40}, "larger than r"),
        ({"r": 3, "method": "svd"}, "method must be one of"),
        ({"r": 3, "candidate_min_marginal": 1.5}, "candidate_min_marginal"),
        ({"r": 3, "candidate_min_marginal": 0.9}, "candidate anchor words"),
    ],
)
def test_learn_topics_rejects_bad_input(small, kwargs, match):
    _, docs, _ = small
    with pytest.raises(ValueError, match=match):
        learn_topics(docs[:2000], vocab_size=30, **kwargs)


# --------------------------------------------------------------------------------------------------------
# unlearn
# --------------------------------------------------------------------------------------------------------
def test_unlearn_before_noise_equals_retraining(small):
    """Algorithm 1's update with the updated Hessian: exact on the face, so A_pre = A(S \\ F) when the
    anchors do not change; sequential deletions compose."""
    _, _, state = small
    rng = np.random.default_rng(3)
    first, second = random_forget_set(state, 40, rng), None
    out = unlearn(state, first, 1.0, 1e-5, rng=rng)
    assert frobenius_error(out.A_pre, retrain(state, first).A) < 1e-10
    second = random_forget_set(out.state, 25, rng)
    out2 = unlearn(out.state, second, 1.0, 1e-5, rng=rng)
    both = retrain(state, np.concatenate([first, second]))
    assert frobenius_error(out2.A_pre, both.A) < 1e-10
    assert out2.state.m == state.m - 65
    np.testing.assert_allclose(out2.state.q_sum, both.q_sum, atol=1e-9)


def test_unlearn_noise_scale_and_release(small):
    _, _, state = small
    out = unlearn(state, [0, 1, 2, 3], 1.0, 1e-5, rng=np.random.default_rng(0))
    assert out.Delta == pytest.approx(state.sensitivity * 2 * 4 / state.m)
    assert out.sigma == pytest.approx(gaussian_sigma(out.Delta, 1.0, 1e-5))
    assert np.all(out.A >= 0) and np.allclose(out.A.sum(0), 1.0)
    zero = unlearn(state, [0, 1], 1.0, 1e-5, sensitivity=0.0, rng=np.random.default_rng(0))
    assert zero.sigma == 0.0 and np.allclose(zero.A, zero.A_pre)


@pytest.mark.parametrize(
    "ids, eps, delta, kwargs, match",
    [
        ([0, 0], 1.0, 1e-5, {}, "repeated"),
        ([10**9], 1.0, 1e-5, {}, "must lie in"),
        ([-1], 1.0, 1e-5, {}, "must lie in"),
        ([[0, 1]], 1.0, 1e-5, {}, "1-D sequence"),
        ([0.5], 1.0, 1e-5, {}, "integer document ids"),
        ([0], 0.0, 1e-5, {}, "epsilon"),
        ([0], 1.0, 1.0, {}, "delta"),
        ([0], 1.0, 1e-5, {"hessian": "exact"}, "hessian must be one of"),
        ([0], 1.0, 1e-5, {"sensitivity": -1.0}, "sensitivity"),
    ],
)
def test_unlearn_rejects_bad_input(small, ids, eps, delta, kwargs, match):
    _, _, state = small
    with pytest.raises(ValueError, match=match):
        unlearn(state, ids, eps, delta, **kwargs)


def test_unlearn_refuses_forgotten_documents_and_missing_sensitivity(small):
    _, _, state = small
    out = unlearn(state, [5, 6], 1.0, 1e-5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="already forgotten"):
        unlearn(out.state, [6], 1.0, 1e-5)
    with pytest.raises(ValueError, match="calibrate_sensitivity"):
        unlearn(dataclasses.replace(state, sensitivity=None), [1], 1.0, 1e-5)
    with pytest.raises(ValueError, match="TopicState"):
        unlearn({"A": 1}, [1], 1.0, 1e-5)
    with pytest.raises(ValueError, match="method='l2'"):
        unlearn(dataclasses.replace(state, method="kl"), [1], 1.0, 1e-5)
    tiny = learn_topics([[0, 1], [1, 2], [2, 0], [0, 0], [3, 1]], 2, vocab_size=4, candidate_min_marginal=0.0)
    with pytest.raises(ValueError, match="at least one must stay"):
        unlearn(tiny, [0, 1, 2, 3, 4], 1.0, 1e-5, sensitivity=1.0)


# --------------------------------------------------------------------------------------------------------
# Gaussian mechanism
# --------------------------------------------------------------------------------------------------------
def test_gaussian_sigma_dwork_roth_value_and_exact_profile():
    """sigma / Delta = sqrt(2 ln(1.25e5)) = 4.845 at eps = 1, delta = 1e-5 (Dwork-Roth Theorem A.1), whose
    exact delta is ~4e-8; at eps = 8 the Dwork-Roth value is not enough and is raised to meet delta."""
    assert gaussian_sigma(1.0, 1.0, 1e-5) == pytest.approx(4.845, abs=1e-3)
    assert gaussian_delta(1.0, 4.845, 1.0) == pytest.approx(4.1e-8, rel=0.05)
    for eps in (0.5, 1.0, 8.0, 20.0):
        assert gaussian_delta(eps, gaussian_sigma(2.0, eps, 1e-6), 2.0) <= 1e-6
    with pytest.raises(ValueError, match="sensitivity"):
        gaussian_sigma(float("nan"), 1.0, 1e-5)


# --------------------------------------------------------------------------------------------------------
# Theory checks and their negative controls
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check", theory.CHECKS, ids=lambda c: c.name)
def test_theory_check_passes(check):
    claims = check.verify()
    assert claims
    assert not failed_lines(claims), "\n".join(failed_lines(claims))


@pytest.mark.parametrize("check", theory.CHECKS, ids=lambda c: c.name)
def test_theory_check_rejects_its_negative_control(check):
    claims = check.verify(**theory.NEGATIVE_CONTROLS[check.name])
    assert failed_lines(claims), f"{check.name}: the negative control passed"


# --------------------------------------------------------------------------------------------------------
# Configs, registry, real corpus
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module, overrides, match",
    [
        (fig_recovery, ["deleted=(10, 20, 300000)"], "under half"),
        (fig_recovery, ["r=200"], "r < n"),
        (fig_recovery, ["forget=worst"], "one of"),
        (fig_capacity, ["ms=(100000, 200000)"], "at least 3"),
        (fig_capacity, ["delta=1.5"], "out of range"),
        (fig_cost, ["deleted=400000"], "under half"),
        (fig_head, ["head_sizes=(1, 9)"], "<= r"),
        (fig_head, ["no_such_key=1"], "no_such_key"),
    ],
)
def test_invalid_configs_fail_fast(module, overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(module.CONFIGS[Scale.QUICK], overrides)


def test_configs_validate_and_paper_lists_figures():
    for module in (fig_recovery, fig_capacity, fig_cost, fig_head):
        for config in module.CONFIGS.values():
            validate_config(config)
    assert [f.name for f in PAPER.figures()] == ["fig_recovery", "fig_capacity", "fig_cost", "fig_head"]


def test_real_gensim_corpus_learns_and_unlearns():
    """250 Wikipedia articles (gensim's head500), 1000 words, r = 10: unlearning 5 articles before noise
    equals retraining (the anchors stay) and doing nothing does not."""
    pytest.importorskip("gensim")
    from papers.topic_unlearning.real_corpus import gensim_bag_of_words, top_words

    docs, vocab = gensim_bag_of_words("head500", 1000)
    assert len(docs) == 250 and len(vocab) == 1000
    state = learn_topics(docs, 10, vocab_size=1000)
    assert len(top_words(state.A, vocab, 5)) == 10
    out = unlearn(state, np.arange(5), 1.0, 1e-5, sensitivity=1.0, rng=np.random.default_rng(0))
    ret = retrain(state, np.arange(5))
    assert set(ret.anchors.tolist()) == set(state.anchors.tolist())
    assert frobenius_error(out.A_pre, ret.A) < 1e-10 < frobenius_error(state.A, ret.A)
