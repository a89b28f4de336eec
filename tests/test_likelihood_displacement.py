"""Likelihood displacement (Razin et al., ICLR 2025): the theory checks, CHES against the authors' left-padded
implementation, displacement, the pretrained model's cache spec, sampling, and input validation. The quick
figures' robust claims are asserted by tests/test_quick_claims.py (each Figure's `asserted_at_quick`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from common import lm
from common.configs import ConfigError, Scale, apply_overrides, config_hash
from common.experiment import RunContext, artifact_dir
from papers.likelihood_displacement import (
    PreferenceBatch,
    ches,
    displacement,
    fig_ches,
    fig_single_token_gpt,
    fig_single_token_theory,
)
from papers.likelihood_displacement.api import edit_distance
from papers.likelihood_displacement.corpus import (
    EOS,
    PretrainConfig,
    describe_prompt,
    make_pairs,
    new_model,
    pretrain_spec,
    pretrained_model,
    sample_responses,
)
from papers.likelihood_displacement.fig_single_token_gpt import network_rates
from proofs_checks import likelihood_displacement as checks


def _failed(claims) -> list[str]:
    return [c.line() + f"  [{c.details}]" for c in claims if not c.passed]


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.name)
def test_theory_check_passes(check):
    claims = check.verify()
    assert claims
    assert not _failed(claims), "\n".join(_failed(claims))


def test_pretrained_model_is_cached_under_a_spec_of_every_pretraining_field(tmp_path):
    cfg = PretrainConfig(n_layer=1, n_embd=16, n_head=2, steps=25, batch=4)
    spec = pretrain_spec(cfg)
    # every field of PretrainConfig changes the spec (so no field can be forgotten by the cache key)
    for f in dataclasses.fields(PretrainConfig):
        value = getattr(cfg, f.name)
        special = {"describe_clauses": 2, "n_embd": 32, "n_head": 4, "refusal_consistency": 0.5}
        other = special.get(f.name, value + 1 if isinstance(value, int) else value / 2)
        changed = pretrain_spec(dataclasses.replace(cfg, **{f.name: other}))
        assert config_hash(changed) != config_hash(spec), f.name
    ctx = RunContext(tmp_path / "fig", show_progress=False)
    first = pretrained_model(cfg, ctx)
    assert (artifact_dir(ctx.shared_dir, "pretrained", spec) / "manifest.json").exists()
    again = pretrained_model(cfg, ctx)
    assert again is not first and not again.training
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in again.state_dict().items())
    assert first.lm_head.weight is not first.wte.weight  # untied, as the paper's models


def test_sample_responses_per_prompt_up_to_eos():
    model = new_model(PretrainConfig(n_layer=1, n_embd=16, n_head=2))
    prompts = [describe_prompt("cat"), describe_prompt("dog")]
    out = sample_responses(model, prompts, 3, 5, torch.Generator().manual_seed(0))
    assert len(out) == 2 and all(len(rows) == 3 for rows in out)
    assert all(len(r) <= 5 and EOS not in r for rows in out for r in rows)
    # the same draws as common.lm.generate, one prompt after the other from one generator
    g = torch.Generator().manual_seed(0)
    assert out == [lm.generate(model, [p] * 3, 5, eos=EOS, generator=g) for p in prompts]


def test_network_rates_split_as_theorem4():
    """The network's d ln pi(y+)/dt under gradient flow = the unembedding's (1 - pi+ + pi-)||h||^2 term plus
    <W+ - Wbar, K (W+ - W-)> with K the empirical NTK of h (the free-h theory with I replaced by K)."""
    torch.manual_seed(0)
    model = new_model(PretrainConfig(n_layer=1, n_embd=16, n_head=2)).double()
    prompt, pos, neg, beta = [1, 3, 4, 7], 10, 11, 0.1
    rates = network_rates(model, prompt, pos, neg, beta)
    h = model.forward_hidden(torch.tensor([prompt]))[0, -1]  # (D,)
    body = [p for n, p in model.named_parameters() if n != "lm_head.weight"]
    J = torch.stack(
        [
            torch.cat([g.flatten() for g in torch.autograd.grad(h[d], body, retain_graph=True)])
            for d in range(h.shape[0])
        ]
    )  # (D, P)
    W = model.unembedding.detach()
    h = h.detach()
    pi = torch.softmax(W @ h, 0)
    d = W[pos] - W[neg]
    own = 1 - pi[pos] + pi[neg]
    assert rates["gd_unembedding"] == pytest.approx(float(beta / 2 * own * (h @ h)), rel=1e-9)
    assert rates["gd_body"] == pytest.approx(float(beta / 2 * (W[pos] - pi @ W) @ (J @ J.T) @ d), rel=1e-9)


def _official_ches(hp, hn, lp_idx, ln_idx, length_normalize=False):
    """The authors' ches/ches.py (princeton-nlp/unintentional-unalignment), re-typed: left-padded inputs,
    positions before the last prompt token zeroed, final position dropped."""
    T = hp.shape[1]
    hp = hp * (torch.arange(T).expand(hp.shape[0], T) >= lp_idx[:, None])[..., None]
    hn = hn * (torch.arange(hn.shape[1]).expand(hn.shape[0], hn.shape[1]) >= ln_idx[:, None])[..., None]
    hp, hn = hp[:, :-1], hn[:, :-1]
    if not length_normalize:
        sp, sn = hp.sum(1), hn.sum(1)
        return (sp * sn).sum(1) - sp.norm(dim=1) ** 2
    lp, ln = hp.shape[1] - lp_idx, hn.shape[1] - ln_idx
    sp, sn = (hp / lp[:, None, None]).sum(1), (hn / ln[:, None, None]).sum(1)
    return (sp * sn).sum(1) - sp.norm(dim=1) ** 2


@pytest.mark.parametrize("length_normalized", [False, True])
def test_ches_matches_official_left_padded_code(length_normalized):
    g = torch.Generator().manual_seed(0)
    B, D = 3, 5
    lens_p, lens_n, prompt = [2, 4, 1], [3, 1, 5], [3, 2, 4]  # |y+|, |y-|, prompt lengths (odd on purpose)
    Tp, Tn = (
        max(a + b for a, b in zip(prompt, lens_p, strict=True)),
        max(a + b for a, b in zip(prompt, lens_n, strict=True)),
    )
    hp, hn = (
        torch.randn(B, Tp, D, generator=g, dtype=torch.float64),
        torch.randn(B, Tn, D, generator=g, dtype=torch.float64),
    )
    # ours: mask True on the |y| positions last-prompt-token .. second-to-last response token (left padded)
    mp, mn = torch.zeros(B, Tp, dtype=torch.bool), torch.zeros(B, Tn, dtype=torch.bool)
    for b in range(B):
        mp[b, Tp - 1 - lens_p[b] : Tp - 1] = True
        mn[b, Tn - 1 - lens_n[b] : Tn - 1] = True
    lp_idx = torch.tensor([Tp - 1 - n for n in lens_p])
    ln_idx = torch.tensor([Tn - 1 - n for n in lens_n])
    ours = ches(hp, hn, mp, mn, length_normalized=length_normalized)
    ref = _official_ches(hp, hn, lp_idx, ln_idx, length_normalize=length_normalized)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_ches_rejects_bad_inputs():
    h = torch.randn(2, 4, 3)
    m = torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="selects no position"):
        ches(h, h, m, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        ches(h[0], h, m, m)
    with pytest.raises(ValueError, match="mask_chosen"):
        ches(h, h, m[:, :3], m)
    with pytest.raises(ValueError, match="empty"):
        ches(h[:0], h[:0], m[:0], m[:0])
    with pytest.raises(ValueError, match="agree on B and D"):
        ches(h, torch.randn(2, 4, 5), m, m)


def test_displacement_zero_for_same_model_and_validates():
    model = new_model(PretrainConfig(n_layer=1, n_embd=16, n_head=2))
    batch = make_pairs([([1, 3], [10, 11], [12]), ([1, 3, 4], [13], [14, 15])])
    out = displacement(model, model, batch)
    assert out["chosen"].shape == (2,) and torch.all(out["chosen"] == 0) and torch.all(out["rejected"] == 0)
    bad = PreferenceBatch(batch.chosen_ids, torch.full_like(batch.chosen_labels, -100), *batch[2:])
    with pytest.raises(ValueError, match="no labelled token"):
        displacement(model, model, bad)
    with pytest.raises(ValueError, match="no preference pairs"):
        make_pairs([])


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0.0
    assert edit_distance([1, 2, 3], [1, 5, 3]) == pytest.approx(1 / 3)
    assert edit_distance([], [4, 4]) == 1.0


def test_configs_fail_fast():
    cfg = fig_single_token_theory.CONFIGS[Scale.QUICK]
    with pytest.raises(ConfigError, match="unknown config key"):
        apply_overrides(cfg, ["nope=1"])
    with pytest.raises(ConfigError):
        dataclasses.replace(cfg, gammas=(1.0,))
    with pytest.raises(ConfigError):
        dataclasses.replace(fig_single_token_gpt.CONFIGS[Scale.QUICK], pairs=("No>Maybee",))
    with pytest.raises(ConfigError):
        dataclasses.replace(fig_ches.CONFIGS[Scale.QUICK], n_pairs=5)
    with pytest.raises(ConfigError):
        PretrainConfig(refusal_rate=1.5)
    with pytest.raises(ConfigError, match="refusal_consistency"):
        PretrainConfig(refusal_consistency=-0.1)
    with pytest.raises(ConfigError, match="describe_clauses"):
        PretrainConfig(describe_clauses=4)
    with pytest.raises(ConfigError, match="max_new"):
        dataclasses.replace(fig_ches.CONFIGS[Scale.QUICK], max_new=30)
    with pytest.raises(ConfigError):
        dataclasses.replace(fig_single_token_gpt.CONFIGS[Scale.QUICK], gd_lr=0.0)
