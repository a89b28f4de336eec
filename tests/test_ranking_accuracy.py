"""Ranking-accuracy paper (Chen et al., NeurIPS 2024): the API against hand-computed values, input validation,
the sympy/numeric theory checks, the synthetic task, and the reference and DPO runs through the
shared-artifact cache. The quick figures' robust claims are asserted by tests/test_quick_claims.py (each
Figure's `asserted_at_quick`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from common.configs import ConfigError, Scale, apply_overrides
from common.experiment import RunContext, artifact_dir, load_done, run_figure
from papers.ranking_accuracy import (
    PAPER,
    dpo_pair_loss,
    flip_threshold,
    idealized_ranking_accuracy,
    ranking_accuracy,
)
from papers.ranking_accuracy import pipeline as pl
from proofs_checks import ranking_accuracy as theory


def _failed(claims) -> list[str]:
    return [c.line() + f"  [{c.details}]" for c in claims if not c.passed]


# --------------------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------------------
def test_ranking_accuracy_counts_ties_as_correct():
    assert ranking_accuracy([-1.0, -2.0, -3.0, -5.0], [-2.0, -1.0, -3.0, -4.0]) == 0.5
    assert ranking_accuracy(torch.tensor([-1.0]), torch.tensor([-1.0])) == 1.0


def test_idealized_matches_hand_computed_condition():
    # margins: log pi_ref(y_w) - log pi_ref(y_l) + (1/beta) log(alpha/(1-alpha))
    ref_w = np.array([-10.0, -10.0, -4.0])
    ref_l = np.array([-5.0, -9.0, -6.0])
    alpha = np.array([0.75, 0.75, 0.5])
    # beta = 1: log 3 = 1.10 -> margins -3.90, 0.10, 2.0 -> 2/3 correct
    assert idealized_ranking_accuracy(ref_w, ref_l, alpha, 1.0) == pytest.approx(2 / 3)
    # beta = 0.1: 11.0 added -> all correct
    assert idealized_ranking_accuracy(ref_w, ref_l, alpha, 0.1) == 1.0
    # beta = 10: 0.11 added -> only the third (margin 2)
    assert idealized_ranking_accuracy(ref_w, ref_l, alpha, 10.0) == pytest.approx(1 / 3)


def test_idealized_clips_alpha_and_is_strict():
    # alpha = 1 becomes 1 - 1e-3: log(999) = 6.907 nats at beta = 1
    assert idealized_ranking_accuracy([-16.9], [-10.0], [1.0], 1.0) == 1.0
    assert idealized_ranking_accuracy([-17.0], [-10.0], [1.0], 1.0) == 0.0
    # alpha = 1/2 adds nothing and a zero margin is not a strict preference
    assert idealized_ranking_accuracy([-3.0], [-3.0], [0.5], 1.0) == 0.0
    # a scalar alpha applies to every pair
    assert idealized_ranking_accuracy([-3.0, -9.0], [-4.0, -4.0], 0.75, 1.0) == 0.5


def test_idealized_length_normalization():
    # unnormalized: -12 vs -4 loses by 8 > log 3; per token: -12/6 = -2 vs -4/2 = -2, margin log 3 > 0
    args = ([-12.0], [-4.0], [0.75], 1.0)
    assert idealized_ranking_accuracy(*args) == 0.0
    assert idealized_ranking_accuracy(*args, lengths_chosen=[6], lengths_rejected=[2]) == 1.0


def test_flip_threshold_values_and_shapes():
    # the paper's examples (beta c -> threshold): 1 -> 0.313, 10 -> 4.5e-5
    assert flip_threshold(-11.0, -1.0, 1.0) == pytest.approx(4.54e-5, rel=1e-2)
    assert isinstance(flip_threshold(-2.0, -1.0, 1.0), float)
    assert flip_threshold(-2.0, -1.0, 1.0) == pytest.approx(math.log1p(math.exp(-1.0)))
    # c = 0 gives log 2; the reference ranking correctly (c < 0) gives more than log 2
    out = flip_threshold([-3.0, -1.0], [-3.0, -5.0], 0.1)
    assert out.shape == (2,) and out[0] == pytest.approx(math.log(2)) and out[1] > math.log(2)
    # no overflow for huge beta c
    assert flip_threshold(-1000.0, -1.0, 10.0) == 0.0
    assert flip_threshold(-1.0, -1000.0, 10.0) == pytest.approx(9990.0)


def test_theorem_4_1_on_random_pairs_through_the_api():
    rng = np.random.default_rng(0)
    pw, pl_, rw, rl = (-rng.uniform(0.1, 30, 5000) for _ in range(4))
    beta = 0.1
    loss = dpo_pair_loss(pw, pl_, rw, rl, beta)
    assert np.array_equal(pw >= pl_, loss <= flip_threshold(rw, rl, beta))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ranking_accuracy([], []), "empty"),
        (lambda: ranking_accuracy([-1.0, -2.0], [-1.0]), "one entry per pair"),
        (lambda: ranking_accuracy([-1.0, float("nan")], [-1.0, -1.0]), "NaN"),
        (lambda: ranking_accuracy([[-1.0]], [[-1.0]]), "1-D"),
        (lambda: ranking_accuracy([0.5], [-1.0]), "log-probabilities"),
        (lambda: ranking_accuracy(["a"], [-1.0]), "sequence of numbers"),
        (lambda: idealized_ranking_accuracy([-1.0], [-2.0], [1.5], 0.1), r"\[0, 1\]"),
        (lambda: idealized_ranking_accuracy([-1.0], [-2.0], [0.7], 0.0), "beta"),
        (lambda: idealized_ranking_accuracy([-1.0], [-2.0], [0.7], float("nan")), "beta"),
        (lambda: idealized_ranking_accuracy([-1.0], [-2.0], [0.7], 1.0, lengths_chosen=[3]), "both"),
        (lambda: idealized_ranking_accuracy([-1.0], [-2.0], [0.7], 1.0, [0], [2]), "positive"),
        (lambda: idealized_ranking_accuracy([-1.0, -2.0], [-2.0, -1.0], [0.7, 0.8, 0.9], 1.0), "per pair"),
        (lambda: flip_threshold([-1.0], [-2.0], -1.0), "beta"),
    ],
)
def test_invalid_inputs_fail_fast(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------------------------
# Theory checks
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check", theory.CHECKS, ids=lambda c: c.name)
def test_theory_check_passes(check):
    claims = check.verify()
    assert claims, f"{check.name} returned no claims"
    assert not _failed(claims), "\n".join(_failed(claims))


# --------------------------------------------------------------------------------------------------------
# Configs and the synthetic task
# --------------------------------------------------------------------------------------------------------
def test_configs_reject_bad_values_with_clear_messages():
    fig = PAPER.figure("fig_alignment_gap")
    with pytest.raises(ConfigError, match="unknown config key 'lr_sweep'"):
        fig.config_for(Scale.QUICK, overrides=["lr_sweep=0.1"])
    with pytest.raises(ConfigError, match="n_raters must be odd"):
        fig.config_for(Scale.QUICK, overrides=["n_raters=4"])
    with pytest.raises(ConfigError, match="dpo_batch"):
        fig.config_for(Scale.QUICK, overrides=["n_train_pairs=8"])
    with pytest.raises(ConfigError, match="min_len <= max_len"):
        fig.config_for(Scale.QUICK, overrides=["min_len=9"])
    with pytest.raises(ConfigError, match="lrs"):
        fig.config_for(Scale.QUICK, overrides=["lrs=0.001,-1"])
    with pytest.raises(ConfigError, match="strictly increasing"):
        PAPER.figure("fig_idealized_beta").config_for(Scale.QUICK, overrides=["betas=1,0.1"])
    with pytest.raises(ConfigError, match="eval_points"):
        PAPER.figure("fig_winrate").config_for(Scale.QUICK, overrides=["eval_points=3"])
    # every scale's config is valid and the figures share one reference model (DPO-only fields may differ)
    for scale in Scale:
        assert len({pl.reference_spec(pl.setup_of(f.config_for(scale))) for f in PAPER.figures()}) == 1


def test_task_encoding_pairs_and_log_probs():
    setup = dataclasses.replace(
        pl.Setup(), n_topics=3, n_tokens=5, corpus_size=8, ref_batch=4, n_train_pairs=50, dpo_batch=8
    )
    task = pl.make_task(setup)
    rng = np.random.default_rng(0)
    topics = np.array([0, 2])
    ys = [np.array([1, 2]), np.array([4, 0, 3, 3, 1, 2, 0, 4])]
    ids, labels = pl.encode(task, topics, ys)
    assert ids.shape == labels.shape == (2, setup.max_len + 1)
    assert ids[0, :3].tolist() == [task.topic_token(0), 1, 2] and labels[0, :3].tolist() == [1, 2, task.eos]
    assert (labels[0, 3:] == pl.IGNORE).all() and labels[1, -1] == task.eos
    # sampled responses respect the lengths and the content vocabulary
    samples = task.sample(rng.integers(0, 3, 500), rng)
    assert all(setup.min_len <= len(y) <= setup.max_len and y.max() < setup.n_tokens for y in samples)
    # pairs: the chosen response has the majority, alpha = votes / raters
    pairs = pl.make_pairs(task, 200, rng)
    assert (pairs.alpha > 0.5).all() and set(np.unique(pairs.alpha)) <= {0.6, 0.8, 1.0}
    # sequence_logp (fused op) = the sum of next-token log-probs, <eos> included
    torch.manual_seed(0)
    from common.models.gpt import GPT, GPTConfig

    model = GPT(
        GPTConfig(vocab_size=task.vocab_size, block_size=setup.max_len + 1, n_layer=1, n_head=2, n_embd=16)
    )
    got = pl.sequence_logp(model, ids, labels)
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits.double(), -1)
    want = [
        sum(float(logp[i, t, labels[i, t]]) for t in range(ids.shape[1]) if labels[i, t] != pl.IGNORE)
        for i in range(2)
    ]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # generation: content tokens only, at most max_len
    out = pl.generate(model, task, np.arange(20) % 3, seed=0)
    assert len(out) == 20 and all(len(y) <= setup.max_len and (y < setup.n_tokens).all() for y in out)


def test_override_keeps_setup_fields_typed():
    cfg = apply_overrides(PAPER.figure("fig_flip_difficulty").configs[Scale.QUICK], ["lr=0.0003", "beta=0.2"])
    assert cfg.lr == 3e-4 and cfg.beta == 0.2 and pl.setup_of(cfg).beta == 0.2


# --------------------------------------------------------------------------------------------------------
# The reference and DPO runs through the shared-artifact cache
# --------------------------------------------------------------------------------------------------------
TINY = dict(
    n_topics=3, n_tokens=5, max_len=4, corpus_size=64, ref_steps=25, ref_batch=16, n_layer=1, n_embd=16,
    n_head=2, n_train_pairs=40, n_eval_pairs=20, dpo_batch=8, n_win_prompts=12, eval_points=3,
)  # fmt: skip


def test_reference_and_dpo_runs_are_shared_artifacts(tmp_path):
    setup = pl.Setup(**TINY)
    ctx = RunContext(tmp_path / "fig", show_progress=False)
    ref = pl.reference(setup, ctx)
    assert pl.reference(setup, ctx) is ref  # rebuilt once per process and setup
    assert (artifact_dir(ctx.shared_dir, "reference", pl.reference_spec(setup)) / "manifest.json").exists()
    # another DPO-only setting reuses the cached reference model: the same log-probs
    other = pl.reference(dataclasses.replace(setup, eval_points=4), ctx)
    assert other is not ref and np.array_equal(other.ref_train[0], ref.ref_train[0])
    out = pl.dpo_run(setup, 1e-3, 4, ctx)
    spec = pl.DPORunSpec(setup, 1e-3, 4)
    assert (artifact_dir(ctx.shared_dir, "dpo", spec) / "manifest.json").exists()
    assert out["curve"]["step"] == [0, 1, 2, 4] and isinstance(out["mis_c"], np.ndarray)
    again = pl.dpo_run(setup, 1e-3, 4, ctx)
    assert again["curve"] == out["curve"]
    assert all(np.array_equal(again[k], v) for k, v in out.items() if isinstance(v, np.ndarray))
    with pytest.raises(ConfigError, match="positive"):
        pl.dpo_run(setup, 0.0, 4, ctx)


def test_winrate_quick_is_measured(tmp_path):
    """The win-rate correlations use 4-5 checkpoints per phase at quick scale: not asserted (the figure
    declares no quick claim), only measured; the figure completes and a rerun is skipped."""
    fig = PAPER.figure("fig_winrate")
    result = run_figure(PAPER, fig, Scale.QUICK, results=tmp_path, show_progress=False)
    assert len(result.claims) == 2 and all(math.isfinite(c.measured) for c in result.claims)
    done = load_done(result.out_dir)
    assert done is not None and all((result.out_dir / f).exists() for f in done["files"])
    assert run_figure(PAPER, fig, Scale.QUICK, results=tmp_path, show_progress=False).skipped
