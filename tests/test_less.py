"""LESS (Xia et al., ICML 2024): the API (`influence_scores`, `select`) against hand-computed values, bad
inputs, the Adam variants (paper vs official code) against an explicit per-example loop, the
projection-dimension slicing, the synthetic data, the configs, and the four figures at quick scale (the
claims that hold robustly there)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.configs import ConfigError, Scale
from common.ops import random_signs
from common.ops.gradient_features import GradientFeatures
from papers.less import PAPER, influence_scores, select
from papers.less import data as D
from papers.less import pipeline as pl
from proofs_checks import less as theory
from tests.conftest import failed_lines

# --------------------------------------------------------------------------------------------------------
# influence_scores and select
# --------------------------------------------------------------------------------------------------------
S = 1 / math.sqrt(2)
# two checkpoints, three training examples, d = 2
TRAIN = [
    torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]),
    torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]),
]
VAL = {
    "a": [torch.tensor([[1.0, 0.0], [0.0, 5.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])],
    "b": [torch.tensor([[-2.0, 0.0]]), torch.tensor([[1.0, 0.0]])],
}
WEIGHTS = [3.0, 1.0]  # renormalized to 0.75, 0.25


def _hand_scores(aggregation: str) -> list[float]:
    # cosines per checkpoint, then the mean over a subtask's validation examples:
    # ckpt 0, subtask a: ex0 (1, 0) -> (1 + 0) / 2; ex1 (0, 1) -> (0 + 1) / 2; ex2 (1, 1)/sqrt2 -> (S + S) / 2
    # ckpt 1, subtask a: ex0 (0, 1) -> 1; ex1 (1, 0) -> 0; ex2 (-1, 0) -> 0
    # ckpt 0, subtask b: -1, 0, -S;  ckpt 1, subtask b: 0, 1, -1
    a = [0.75 * 0.5 + 0.25 * 1, 0.75 * 0.5 + 0.25 * 0, 0.75 * S + 0.25 * 0]
    b = [0.75 * -1 + 0.25 * 0, 0.75 * 0 + 0.25 * 1, 0.75 * -S + 0.25 * -1]
    if aggregation == "max":
        return [max(x, y) for x, y in zip(a, b, strict=True)]
    return [(x + y) / 2 for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize("aggregation", ["max", "mean"])
def test_influence_scores_match_hand_computed(aggregation):
    got = influence_scores(TRAIN, VAL, WEIGHTS, aggregation=aggregation)
    assert got.shape == (3,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _hand_scores(aggregation), rtol=1e-12, atol=1e-12)
    # stacked [C, N, d] tensors give the same; weights only matter up to their sum; features up to scale
    stacked = influence_scores(torch.stack(TRAIN), {k: torch.stack(v) for k, v in VAL.items()}, [0.3, 0.1])
    if aggregation == "max":
        np.testing.assert_allclose(stacked.numpy(), got.numpy(), rtol=1e-12)
    scaled = influence_scores([7.0 * t for t in TRAIN], VAL, WEIGHTS, aggregation=aggregation)
    np.testing.assert_allclose(scaled.numpy(), got.numpy(), rtol=1e-12)


def test_inner_product_scores_match_hand_computed():
    # the same weighted mean over shots and max over subtasks, of raw inner products:
    # ckpt 0, subtask a: ex0 (1 + 0) / 2; ex1 (0 + 10) / 2; ex2 (3 + 15) / 2;  ckpt 1: ex0 1, ex1 0, ex2 0
    # ckpt 0, subtask b: -2, 0, -6;  ckpt 1, subtask b: 0, 1, -1
    a = [0.75 * 0.5 + 0.25 * 1, 0.75 * 5 + 0.25 * 0, 0.75 * 9 + 0.25 * 0]
    b = [0.75 * -2 + 0.25 * 0, 0.75 * 0 + 0.25 * 1, 0.75 * -6 + 0.25 * -1]
    got = influence_scores(TRAIN, VAL, WEIGHTS, similarity="inner_product")
    np.testing.assert_allclose(got.numpy(), [max(x, y) for x, y in zip(a, b, strict=True)], rtol=1e-12)
    # unlike the cosine, it grows with a feature's norm: a long gradient outranks a better-aligned short one
    train = [torch.tensor([[1.0, 0.0], [3.0, 3.0]])]
    val = {"a": [torch.tensor([[1.0, 0.0]])]}
    assert select(influence_scores(train, val, [1.0]), 0.5).tolist() == [0]
    assert select(influence_scores(train, val, [1.0], similarity="inner_product"), 0.5).tolist() == [1]


def test_scores_are_mean_of_cosines_not_cosine_of_mean():
    train = [torch.tensor([[1.0, 0.0]])]
    val = {"a": [torch.tensor([[1.0, 0.0], [0.0, 100.0]])]}
    # mean of cosines: (1 + 0) / 2 = 0.5; the cosine with the mean gradient (0.5, 50) would be ~0.01
    assert influence_scores(train, val, [1.0]).item() == pytest.approx(0.5)


def test_zero_feature_rows_score_zero():
    train = [torch.tensor([[0.0, 0.0], [1.0, 1.0]])]
    got = influence_scores(train, {"a": [torch.tensor([[1.0, 1.0]])]}, [1.0])
    np.testing.assert_allclose(got.numpy(), [0.0, 1.0], atol=1e-12)


def test_select_top_fraction_highest_first_ties_by_index():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9, -1.0, 0.5, 0.2, 0.0, 0.3, 0.4])
    assert select(scores, 0.3).tolist() == [1, 3, 2]  # floor(10 * 0.3) = 3; tie 0.5 at 2 and 5 -> 2
    assert select(scores, 0.05 * 20).tolist()[:2] == [1, 3]
    assert len(select(torch.rand(1000, dtype=torch.float64), 0.05)) == 50
    assert select([0.0, 2.0], 0.5).tolist() == [1]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: influence_scores([], VAL, WEIGHTS), ValueError, "empty"),
        (lambda: influence_scores(TRAIN, {}, WEIGHTS), ValueError, "non-empty mapping"),
        (lambda: influence_scores(TRAIN, VAL, [1.0]), ValueError, "1 entries for 2 checkpoints"),
        (lambda: influence_scores(TRAIN, VAL, [1.0, -1.0]), ValueError, "positive"),
        (lambda: influence_scores(TRAIN, VAL, [1.0, float("nan")]), ValueError, "positive"),
        (lambda: influence_scores(TRAIN, VAL, WEIGHTS, aggregation="sum"), ValueError, "aggregation"),
        (lambda: influence_scores(TRAIN, VAL, WEIGHTS, similarity="dot"), ValueError, "similarity"),
        (lambda: influence_scores([TRAIN[0], TRAIN[1][:2]], VAL, WEIGHTS), ValueError, "disagree in shape"),
        (lambda: influence_scores(TRAIN, {"a": [torch.ones(2, 3)] * 2}, WEIGHTS), ValueError, "dimension 2"),
        (lambda: influence_scores(TRAIN, {"a": [torch.ones(2, 2)]}, WEIGHTS), ValueError, "2 checkpoints"),
        (lambda: influence_scores([torch.full((3, 2), float("nan"))] * 2, VAL, WEIGHTS), ValueError, "NaN"),
        (lambda: influence_scores(torch.ones(3, 2), VAL, WEIGHTS), ValueError, r"\[C, N, d\]"),
        (
            lambda: influence_scores([torch.ones(3, 2, dtype=torch.long)] * 2, VAL, WEIGHTS),
            TypeError,
            "float",
        ),
        (lambda: influence_scores(torch.ones(2, 0, 2), VAL, WEIGHTS), ValueError, "empty"),
        (lambda: influence_scores("features", VAL, WEIGHTS), TypeError, "tensor"),
        (lambda: select(torch.tensor([]), 0.5), ValueError, "non-empty"),
        (lambda: select(torch.ones(2, 2), 0.5), ValueError, "1-D"),
        (lambda: select(torch.tensor([1.0, float("inf")]), 0.5), ValueError, "finite"),
        (lambda: select(torch.ones(10), 0.0), ValueError, r"\(0, 1\]"),
        (lambda: select(torch.ones(10), 1.5), ValueError, r"\(0, 1\]"),
        (lambda: select(torch.ones(10), 0.05), ValueError, "selects nothing"),
    ],
)
def test_invalid_inputs_fail_fast(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------------------
# The datastore: Adam variants and projection dimension
# --------------------------------------------------------------------------------------------------------
def _tiny_lora_gpt(seed: int = 0):
    setup = pl.Setup(n_layer=1, n_embd=16, n_head=2, lora_r=2, lora_alpha=4.0)
    torch.manual_seed(seed)
    state = pl.new_gpt(pl.size_of(setup)).state_dict()
    return pl.lora_model(pl.size_of(setup), state, setup, seed).double()


def _batch(n: int = 6):
    pool = D.make_pool(n, dict.fromkeys(D.FAMILIES, 1.0), seed=1, problems=D.pool_problems(8, 1))
    return pool.ids, pool.labels


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_adam_variants_match_explicit_formulas(variant):
    """GradientFeatures with pipeline._adam_state gives features proportional to the variant's own formula,
    computed example by example: paper m_hat / (sqrt(v_hat) + eps) with bias correction, official code
    m' / sqrt(v' + eps). A large eps makes the variants differ."""
    model = _tiny_lora_gpt()
    batch = _batch()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([p for _, p in params], lr=1e-2, eps=1e-3, weight_decay=0.0)
    for _ in range(3):
        opt.zero_grad()
        pl.batch_loss(model, batch).backward()
        opt.step()
    steps = int(opt.state[params[0][1]]["step"])
    ckpt = pl.Checkpoint(
        lora={n: p.detach().clone() for n, p in params},
        adam={n: (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]) for n, p in params},
        step=steps,
        avg_lr=1e-2,
    )
    eps, (b1, b2) = 1e-3, (0.9, 0.999)
    adam, eps_kernel = pl._adam_state(ckpt, variant, eps=eps)
    k = 48
    ours = GradientFeatures(model.eval(), k, seed=5, adam_state=adam, eps=eps_kernel)(
        batch, pl.example_losses
    )
    R = random_signs(5, sum(p.numel() for _, p in params), k, dtype=torch.float64)
    expected, other = [], []
    t = steps + 1
    for i in range(batch[0].shape[0]):
        model.zero_grad()
        pl.example_losses(model, (batch[0][i : i + 1], batch[1][i : i + 1])).sum().backward()
        paper, official = [], []
        for _, p in params:
            m, v = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]
            m1, v1 = b1 * m + (1 - b1) * p.grad, b2 * v + (1 - b2) * p.grad**2
            paper.append(((m1 / (1 - b1**t)) / ((v1 / (1 - b2**t)).sqrt() + eps)).flatten())
            official.append((m1 / (v1 + eps).sqrt()).flatten())
        mine, theirs = (paper, official) if variant == "paper" else (official, paper)
        expected.append(torch.cat(mine) @ R)
        other.append(torch.cat(theirs) @ R)
    cos = F.cosine_similarity(ours.double(), torch.stack(expected), dim=1)
    assert cos.min() > 1 - 1e-6, cos
    assert F.cosine_similarity(torch.stack(expected), torch.stack(other), dim=1).min() < 0.999


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_smaller_proj_dim_is_a_prefix_of_the_datastore():
    model = _tiny_lora_gpt().eval()
    batch = _batch(4)
    big = GradientFeatures(model, 64, seed=2)(batch, pl.example_losses)
    small = GradientFeatures(model, 16, seed=2)(batch, pl.example_losses)
    torch.testing.assert_close(small, big[:, :16] * math.sqrt(64 / 16), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("check", theory.CHECKS, ids=lambda c: c.name)
def test_theory_check_passes(check):
    claims = check.verify()
    assert claims and not failed_lines(claims), "\n".join(failed_lines(claims))


# --------------------------------------------------------------------------------------------------------
# Data, configs
# --------------------------------------------------------------------------------------------------------
def test_data_formats_and_target_split():
    rng = np.random.default_rng(0)
    assert D.add_example(7, 8) == ("add 7 8=", "51")
    problems = D.pool_problems(8, seed=0)
    for _ in range(50):
        prompt, answer = D.sample("bad", rng, problems)
        a, b = (int(x) for x in prompt.rstrip("=").split()[1:])
        assert D.is_carry(prompt) and answer == str((a + b) % 10) != str(a + b)[::-1]
    val, test = D.make_target(8, seed=0)
    assert {k: len(v) for k, v in val.items()} == {"carry": 8, "no_carry": 8}
    assert {k: len(v) for k, v in test.items()} == {"carry": (45 - 8) // 2, "no_carry": (55 - 8) // 2}
    for name in D.SUBTASKS:
        assert not set(val[name].prompts) & set(test[name].prompts)
        assert all(D.is_carry(p) == (name == "carry") for p in val[name].prompts + test[name].prompts)
    ex = D.encode(["add 7 8="], ["51"], ["add"], D.WIDTH)
    scored = ex.labels[0] != D.IGNORE
    assert D.TOKENIZER.decode(ex.labels[0][scored]) == "51" and ex.labels[0][scored][-1] == D.TOKENIZER.eos_id
    assert ex.ids[0, 0] == D.TOKENIZER.bos_id
    with pytest.raises(ValueError, match="unknown families"):
        D.make_pool(10, {"mul": 1.0}, 0)
    with pytest.raises(ValueError, match="needs the addition problems"):
        D.make_pool(10, {"add": 1.0}, 0)
    with pytest.raises(ValueError, match="fewer than 2 problems"):
        D.make_target(44, 0)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_pool_is_disjoint_from_validation_and_test(seed):
    """No validation or test problem appears in the pool, in any family (the target is held out, as LESS's
    MMLU/TydiQA/BBH are from its pool); the three problem sets partition the 100 problems."""
    split = D.split_problems(8, seed)
    for parts in split.values():
        sets = [set(parts[k]) for k in ("val", "test", "pool")]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(len(v) for parts in split.values() for v in parts.values()) == 100
    pool = D.make_pool(3000, dict.fromkeys(D.FAMILIES, 1.0), seed, D.pool_problems(8, seed))
    val, test = D.make_target(8, seed)
    assert D.overlap(pool, val) == 0 and D.overlap(pool, test) == 0
    assert (pool.family == "add").sum() > 200  # the check is not empty
    leaky = D.make_pool(300, {"add": 1.0}, seed, D.add_problems())
    assert D.overlap(leaky, test) > 0  # the measure finds a leak when there is one


def test_exact_match_of_a_model_that_copies_the_labels():
    ex = D.encode(["add 7 8=", "rev abc="], ["51", "cba"], ["add", "rev"], D.WIDTH)
    V = D.TOKENIZER.vocab_size

    class Oracle(torch.nn.Module):  # predicts the true next token at every position, except one flaw
        config = pl.gpt_config(pl.ModelSize(1, 8, 2))  # what common.lm.generate reads of a GPT
        unembedding = torch.zeros(1)

        def forward(self, ids):  # (B, L) -> logits (B, L, V)
            logits = torch.zeros(*ids.shape, V)
            target = torch.cat([ex.ids[:, 1:], ex.ids[:, -1:]], 1)[:, : ids.shape[1]]
            logits.scatter_(2, target[..., None], 1.0)
            if ids.shape[1] > 10:
                logits[1, 10, :] = 0.0
                logits[1, 10, ord("x")] = 1.0  # second example: first answer letter wrong
            return type("Out", (), {"logits": logits})()

    assert pl.exact_match(Oracle(), ex).tolist() == [True, False]


def test_configs_reject_bad_values_with_clear_messages():
    fig = PAPER.figure("fig_target")
    with pytest.raises(ConfigError, match="unknown config key 'poolsize'"):
        fig.config_for(Scale.QUICK, overrides=["poolsize=10"])
    with pytest.raises(ConfigError, match="selects no example"):
        fig.config_for(Scale.QUICK, overrides=["pool_size=10"])
    with pytest.raises(ConfigError, match="adam_variant"):
        fig.config_for(Scale.QUICK, overrides=["adam_variant=adamw"])
    with pytest.raises(ConfigError, match="aggregation"):
        fig.config_for(Scale.QUICK, overrides=["aggregation=min"])
    with pytest.raises(ConfigError, match="fraction"):
        fig.config_for(Scale.QUICK, overrides=["fraction=0"])
    with pytest.raises(ConfigError, match="expects int"):
        fig.config_for(Scale.QUICK, overrides=["proj_dim=big"])
    with pytest.raises(ConfigError, match="proj_dims"):
        PAPER.figure("fig_ablation").config_for(Scale.QUICK, overrides=["proj_dims=64,100000"])
    with pytest.raises(ConfigError, match="n_val"):
        fig.config_for(Scale.QUICK, overrides=["n_val=45"])
    with pytest.raises(ConfigError, match="'seeds' = 0 is out of range: expected an integer >= 1"):
        PAPER.figure("fig_composition").config_for(Scale.QUICK, overrides=["seeds=0"])
    with pytest.raises(ConfigError, match="differ from the tuned warmup_batch=1"):
        PAPER.figure("fig_warmup").config_for(Scale.QUICK, overrides=["other_warmup_batches=1,4"])
    # every figure of a scale shares one Setup (one base, warmup and datastore)
    for scale in Scale:
        assert len({pl.setup_of(f.config_for(scale)) for f in PAPER.figures()}) == 1
# --------------------------------------------------------------------------------------------------------
# The pipeline's shared artifacts (the figures at quick scale run in tests/test_quick_claims.py)
# --------------------------------------------------------------------------------------------------------
TINY = dict(pool_size=60, pretrain_steps=4, pretrain_batch=8, warmup_epochs=2, warmup_fraction=0.1,
            n_layer=1, n_embd=16, n_head=2, lora_r=2, proj_dim=16, feature_batch=32)  # fmt: skip


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_datastore_is_one_shared_artifact_per_checkpoint_and_reused(tmp_path):
    setup = pl.Setup(**TINY)
    size = pl.size_of(setup)
    first = pl.datastore(setup, size, tmp_path, "pool", "adam")  # (C, N, k)
    assert first.shape == (2, 60, 16)
    blocks = sorted(tmp_path.glob("features-pool-adam-ckpt*/artifact.pt"))
    assert len(blocks) == 2 and len(list(tmp_path.glob("base-*/manifest.json"))) == 1
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("artifact.pt")}
    again = pl.datastore(setup, size, tmp_path, "pool", "adam")
    assert torch.equal(first, again) and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # a selection-only field does not rebuild anything; the projection seed rebuilds the features only
    pl.datastore(dataclasses.replace(setup, ft_steps=7, fraction=0.1), size, tmp_path, "pool", "adam")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    pl.datastore(dataclasses.replace(setup, proj_seed=1), size, tmp_path, "pool", "adam")
    assert len(list(tmp_path.glob("features-pool-adam-ckpt*"))) == 4
    assert len(list(tmp_path.glob("base-*"))) == 1 and len(list(tmp_path.glob("warmup-*"))) == 1
    # the base-model (no warmup) features: one block, shared by every warmup setting
    base = pl.base_datastore(setup, size, tmp_path, "pool")
    assert base.shape == (1, 60, 16) and base.abs().sum() > 0
    pl.base_datastore(dataclasses.replace(setup, warmup_batch=1, warmup_epochs=3), size, tmp_path, "pool")
    assert len(list(tmp_path.glob("features-pool-base-*"))) == 1
    # one checkpoint of the datastore is the same as scoring with that block alone
    one = pl.less_scores(setup, size, tmp_path, checkpoints=(-1,))
    val = {n: pl.datastore(setup, size, tmp_path, f"val:{n}", "sgd")[-1:] for n in D.SUBTASKS}
    torch.testing.assert_close(one, influence_scores(first[-1:], val, [1.0]))
    assert pl.less_scores(setup, size, tmp_path, gradient="base").shape == (60,)


def _summary(values):
    return {"mean": float(np.mean(values)), "per_seed": list(values)}


def test_warmup_and_ablation_claims_are_measured_from_their_data(tmp_path):
    """fig_warmup and fig_ablation assert nothing at quick (so tests/test_quick_claims.py does not run them):
    their claims and plots on hand-made data, with values that make each claim pass or fail as computed."""
    from papers.less import fig_ablation, fig_warmup

    comp = dict.fromkeys(D.FAMILIES, 0.0)
    pool = {**comp, "add": 0.08, "bad": 0.08}
    rows = [
        {"warmup_batch": 1, "warmup_steps": 200, "tuned": True, "composition": {**comp, "add": 1.0},
         "less": _summary([0.4, 0.5]), "n_selected": 50},
        {"warmup_batch": 2, "warmup_steps": 100, "tuned": False,
         "composition": {**comp, "add": 0.5, "bad": 0.5}, "less": _summary([0.1, 0.2]), "n_selected": 50},
    ]  # fmt: skip
    data = {"rows": rows, "random": _summary([0.1, 0.1]), "pool": pool, "pool_size": 1000}
    config = fig_warmup.CONFIGS[Scale.QUICK]
    claims = {c.id: c for c in fig_warmup.claims(data, config)}
    assert set(claims) == {f"less.warmup.batch2.{k}" for k in
                           ("target_family_overrepresented", "adversarial_underrepresented", "beats_random")}
    assert claims["less.warmup.batch2.target_family_overrepresented"].measured == pytest.approx(6.25)
    assert not claims["less.warmup.batch2.adversarial_underrepresented"].passed  # 50% bad: far above 2 sd
    assert claims["less.warmup.batch2.beats_random"].measured == pytest.approx(0.05)
    assert fig_warmup.plot(data, tmp_path)

    def point(acc, length=1.0):
        extra = {"overlap": 1.0, "add_share": 0.5, "bad_share": 0.0, "response_length": length}
        return {**_summary(acc), **extra}

    data = {
        "dims": [{"proj_dim": 32, **point([0.2])}, {"proj_dim": 256, **point([0.3])}],
        "gradients": {k: point([0.3]) for k in ("adam_paper", "adam_official", "sgd")},
        "scoring": {"cosine": point([0.3], 1.5), "inner_product": point([0.1], 1.2),
                    "last_checkpoint": point([0.4]), "base_gradients": point([0.2])},
        "proj_dim": 256, "pool_response_length": 2.4, "n_checkpoints": 4,
    }  # fmt: skip
    claims = {c.id: c for c in fig_ablation.claims(data, fig_ablation.CONFIGS[Scale.QUICK])}
    assert claims["less.ablation.inner_product_selects_shorter"].measured == pytest.approx(-0.3)
    assert claims["less.ablation.inner_product_selects_shorter"].passed
    assert claims["less.ablation.cosine_beats_inner_product"].measured == pytest.approx(0.2)
    assert not claims["less.ablation.all_checkpoints_no_worse"].passed
    assert claims["less.ablation.warmup_beats_base_gradients"].paper_number == pytest.approx(3.1)
    assert fig_ablation.plot(data, tmp_path)
