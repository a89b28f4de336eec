"""The small-LM toolkit (common/lm/): decoding (per-row eos, greedy = the argmax chain, seeded sampling =
the plain ancestral loop), log-probs against a plain log_softmax, DPO/IPO steps against a hand-computed loss
and gradient on every path, batch orders, and pretraining through the shared-artifact cache (hit, corrupted
entry rebuilt). Also a worker for the two-process DPO check (`python tests/test_lm.py --ddp-worker`)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run by torchrun as the DDP worker
    sys.path.insert(0, str(REPO))

from common import lm  # noqa: E402
from common.experiment import ARTIFACT, MANIFEST, RunContext, artifact_dir  # noqa: E402
from common.models.gpt import GPT, GPTConfig, GPTOutput  # noqa: E402
from common.train import TrainConfig  # noqa: E402

CFG = GPTConfig(vocab_size=19, block_size=12, n_layer=2, n_head=2, n_embd=16)


def _gpt(cfg: GPTConfig = CFG, seed: int = 0, dtype: torch.dtype = torch.float32) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg).to(dtype).eval()


class NextToken(nn.Module):
    """A stand-in language model whose next token after t is (t + 1) mod V, with certainty."""

    def __init__(self, vocab_size: int = 10, block_size: int = 16) -> None:
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=1, n_head=1, n_embd=4)
        self.W = nn.Parameter(torch.zeros(vocab_size, 4))
        self.calls = 0

    @property
    def unembedding(self) -> torch.Tensor:
        return self.W

    def forward(self, ids: torch.Tensor, targets=None, ignore_index=-100, positions=None, with_logits=True):
        self.calls += 1
        V = self.config.vocab_size
        logits = 50.0 * F.one_hot((ids + 1) % V, V).float()  # (B, T, V)
        return GPTOutput(hidden=logits, logits=logits, loss=None)


# --------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generate_stops_each_row_at_its_eos(temperature):
    model = NextToken(vocab_size=10, block_size=16)
    eos = 6
    prompts = [[3], [5], [0], [1, 2], [9, 8, 7]]
    out = lm.generate(model, prompts, 5, eos=eos, temperature=temperature, generator=0)
    # 3 -> 4 5 <eos>; 5 -> <eos>; 0 -> 1..5 (budget spent); 1 2 -> 3 4 5 <eos>; 9 8 7 -> 8 9 0 1 2
    assert out == [[4, 5], [], [1, 2, 3, 4, 5], [3, 4, 5], [8, 9, 0, 1, 2]]
    assert model.calls == 5
    model.calls = 0
    assert lm.generate(model, [[3], [5]], 5, eos=eos, temperature=temperature, generator=0) == [[4, 5], []]
    assert model.calls == 3  # stops once every row is done
    # the block size caps each row: 16 - 14 = 2 new tokens; no eos: the full budget
    assert lm.generate(model, [list(range(14))], 5, temperature=0.0) == [[4, 5]]
    assert lm.generate(model, [[1]], 3, temperature=0.0) == [[2, 3, 4]]
    assert lm.generate(model, [], 3, temperature=0.0) == []
    # keep_eos tells a row that ended from one that ran out of budget (exact-match scoring)
    assert lm.generate(model, [[3], [0]], 5, eos=eos, temperature=0.0, keep_eos=True) == [
        [4, 5, 6],
        [1, 2, 3, 4, 5],
    ]


def test_greedy_is_the_argmax_chain():
    model = _gpt()
    prompts = [[1, 4, 2], [7], [3, 3, 3, 3, 5]]
    got = lm.generate(model, prompts, 6, temperature=0.0)
    for p, row in zip(prompts, got, strict=True):
        ids = torch.tensor([p])
        chain = []
        with torch.no_grad():
            for _ in range(6):
                nxt = int(model(ids).logits[0, -1].argmax())
                chain.append(nxt)
                ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
        assert row == chain
        eos = chain[2]
        assert lm.generate(model, [p], 6, eos=eos, temperature=0.0)[0] == chain[: chain.index(eos)]


def test_sampling_is_seeded_reproducible_and_the_plain_ancestral_loop():
    model = _gpt()
    prompts = [[2, 5]] * 16
    before = torch.get_rng_state()
    a = lm.generate(model, prompts, 8, eos=0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is never drawn from
    assert a == lm.generate(model, prompts, 8, eos=0, generator=3)  # an int seeds a fresh generator
    assert a != lm.generate(model, prompts, 8, eos=0, generator=4)
    # The plain loop: every row drawn at every step (finished rows too), cut at the first eos.
    g = torch.Generator().manual_seed(3)
    ids = torch.tensor(prompts)
    with torch.no_grad():
        for _ in range(8):
            probs = torch.softmax(model(ids).logits[:, -1] / 1.0, -1)  # (B, V)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=g)], 1)
    plain = [r[2:][: r[2:].index(0)] if 0 in r[2:] else r[2:] for r in ids.tolist()]
    assert a == plain
    # a vocabulary limit draws only ids below it; a temperature changes the draw
    limited = lm.generate(model, prompts, 8, generator=3, vocab_size=5)
    assert all(t < 5 for r in limited for t in r)
    assert lm.generate(model, prompts, 8, generator=3, temperature=0.5) != lm.generate(
        model, prompts, 8, generator=3
    )
    with pytest.raises(ValueError, match="generator"):
        lm.generate(model, prompts, 4)
    with pytest.raises(ValueError, match="block_size"):
        lm.generate(model, [[1] * 13], 4, temperature=0.0)
    with pytest.raises(ValueError, match="causal"):
        lm.generate(_gpt(dataclasses.replace(CFG, causal=False)), prompts, 4, temperature=0.0)


# --------------------------------------------------------------------------------------------------------
# Log-probs
# --------------------------------------------------------------------------------------------------------
def _ids_labels(B: int = 5, T: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, CFG.vocab_size, (B, T), generator=g)
    labels = torch.randint(0, CFG.vocab_size, (B, T), generator=g)
    labels[:, :3] = lm.IGNORE
    labels[1, 5:] = lm.IGNORE
    return ids, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logps_match_a_plain_log_softmax(dtype):
    model = _gpt(dtype=dtype)
    ids, labels = _ids_labels()
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits, -1)  # (B, T, V)
    mask = labels != lm.IGNORE
    want = torch.where(mask, logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0], 0.0)  # (B, T)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    with lm.evaluating(model):
        torch.testing.assert_close(lm.token_logps(model, ids, labels), want, **tol)
        torch.testing.assert_close(lm.sequence_logps(model, ids, labels), want.sum(1), **tol)
        avg = lm.sequence_logps(model, ids, labels, average=True)
        torch.testing.assert_close(avg, want.sum(1) / mask.sum(1), **tol)
        chunked = lm.sequence_logps(model, ids, labels, chunk=2)
        torch.testing.assert_close(chunked, want.sum(1), **tol)
        pairs = lm.PreferenceBatch(ids, labels, ids.flip(0), labels.flip(0))
        c, r = lm.preference_logps(model, pairs)
        torch.testing.assert_close(r, want.sum(1).flip(0), **tol)
    # differentiable outside `evaluating`
    lm.sequence_logps(model, ids, labels).sum().backward()
    assert model.lm_head.weight.grad is not None


def test_evaluating_restores_the_mode_and_disables_grad():
    model = _gpt().train()
    with lm.evaluating(model) as m:
        assert not m.training and not torch.is_grad_enabled()
    assert model.training and torch.is_grad_enabled()


# --------------------------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------------------------
def _pairs(B: int = 4, seed: int = 1) -> lm.PreferenceBatch:
    """Pairs whose chosen and rejected sides differ in length (so the concatenated path pads)."""
    g = torch.Generator().manual_seed(seed)
    ci = torch.randint(0, CFG.vocab_size, (B, 7), generator=g)
    ri = torch.randint(0, CFG.vocab_size, (B, 10), generator=g)
    cl, rl = ci.roll(-1, 1), ri.roll(-1, 1)
    cl[:, :2], rl[:, :2], cl[:, -1], rl[:, -1] = lm.IGNORE, lm.IGNORE, lm.IGNORE, lm.IGNORE
    rl[0, 5:] = lm.IGNORE  # a short response
    return lm.PreferenceBatch(ci, cl, ri, rl)


def _hand_loss(policy: GPT, reference: GPT, pairs: lm.PreferenceBatch, beta: float, loss_type: str):
    def seq(model, ids, labels):
        logp = torch.log_softmax(model(ids).logits, -1)  # (B, T, V)
        mask = labels != lm.IGNORE
        tok = torch.where(mask, logp.gather(-1, labels.clamp(min=0)[..., None])[..., 0], 0.0)  # (B, T)
        return tok.sum(1) / mask.sum(1) if loss_type == "ipo" else tok.sum(1)

    with torch.no_grad():
        rc, rr = (
            seq(reference, pairs.chosen_ids, pairs.chosen_labels),
            seq(reference, pairs.rejected_ids, pairs.rejected_labels),
        )
    h = (
        seq(policy, pairs.chosen_ids, pairs.chosen_labels)
        - seq(policy, pairs.rejected_ids, pairs.rejected_labels)
    ) - (rc - rr)  # (B,)
    if loss_type == "ipo":
        return ((h - 1 / (2 * beta)) ** 2).mean()  # Azar et al. 2023, eq. 17
    return -F.logsigmoid(beta * h).mean()  # Rafailov et al. 2023, eq. 7


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
@pytest.mark.parametrize(
    ("concatenated", "fused"), [(False, True), (True, False), (False, False), (True, True)]
)
def test_dpo_step_matches_a_hand_computed_loss_and_gradient(loss_type, concatenated, fused):
    reference = _gpt(dtype=torch.float64)
    start = _gpt(seed=5, dtype=torch.float64)  # a policy away from the reference, so the gradient is generic
    pairs = _pairs()
    beta, lr = 0.5, 0.1
    expected = copy.deepcopy(start)
    loss = _hand_loss(expected, reference, pairs, beta, loss_type)
    loss.backward()
    with torch.no_grad():
        for p in expected.parameters():
            p -= lr * p.grad
    cfg = lm.DPOConfig(
        train=TrainConfig(optimizer="sgd", lr=lr, steps=1),
        beta=beta,
        loss_type=loss_type,
        concatenated=concatenated,
        fused=fused,
    )
    run = lm.dpo(reference, pairs, cfg, policy=copy.deepcopy(start))
    assert run.history.loss[0] == pytest.approx(float(loss.detach()), rel=1e-10)
    for (name, got), want in zip(run.policy.named_parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)
    assert not run.policy.training


def test_dpo_trains_a_copy_with_given_reference_logps_and_schedule():
    reference = _gpt(dtype=torch.float64)
    for p in reference.parameters():
        p.requires_grad_(False)  # a frozen reference: the copy is made trainable
    frozen = copy.deepcopy(reference.state_dict())
    pairs = _pairs(B=6)
    with lm.evaluating(reference):
        ref_logps = lm.preference_logps(reference, pairs)
    seen = []
    cfg = lm.DPOConfig(
        train=TrainConfig(optimizer="rmsprop", lr=1e-3, steps=4), batch_size=4, order="shuffle", order_seed=3
    )
    a = lm.dpo(
        reference, pairs, cfg, evaluate=lambda step, m: seen.append((step, m.training)), eval_steps=[0, 2, 4]
    )
    assert seen == [(0, True), (2, True), (4, True)]
    b = lm.dpo(reference, pairs, cfg, reference_logps=ref_logps)
    for x, y in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(x, y)
    assert all(torch.equal(v, frozen[k]) for k, v in reference.state_dict().items())
    assert any(
        not torch.equal(x, y) for x, y in zip(a.policy.parameters(), reference.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="reference_logps"):
        lm.dpo(reference, pairs, cfg, reference_logps=(ref_logps[0][:2], ref_logps[1]))
    with pytest.raises(ValueError, match="loss_type"):
        lm.DPOConfig(loss_type="kto")
    with pytest.raises(ValueError, match="no labelled token"):
        lm.dpo(reference, lm.PreferenceBatch(pairs[0], torch.full_like(pairs[1], -100), *pairs[2:]), cfg)


def test_batch_orders():
    assert lm.cyclic_rows(5, 3, 2).tolist() == [[0, 1], [2, 3], [4, 0]]
    rows = lm.shuffled_rows(6, 5, 4, seed=1)  # 20 rows: three shuffled epochs, the last one cut
    assert rows.shape == (5, 4)
    flat = rows.flatten().tolist()
    assert sorted(flat[:6]) == sorted(flat[6:12]) == list(range(6))
    assert torch.equal(rows, lm.shuffled_rows(6, 5, 4, seed=1))
    assert not torch.equal(rows, lm.shuffled_rows(6, 5, 4, seed=2))


# --------------------------------------------------------------------------------------------------------
# Pretraining through the shared-artifact cache
# --------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CountingCorpus:
    seed: int = 0
    batch: int = 8


def _spec(steps: int = 6, positions: str = "learned") -> lm.PretrainSpec:
    model = dataclasses.replace(CFG, positions=positions)
    train = TrainConfig(optimizer="adamw", lr=3e-3, steps=steps, seed=1)
    return lm.PretrainSpec(model=model, train=train, data=CountingCorpus(), init_seed=2)


def _batches(calls: list[int]):
    def make():
        calls.append(1)
        g = torch.Generator().manual_seed(0)
        seq = torch.randint(0, CFG.vocab_size, (6, 8, CFG.block_size + 1), generator=g)  # (steps, B, T+1)
        return lambda step, micro: (seq[step, :, :-1], seq[step, :, 1:])

    return make


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_pretrain_from_init_state_fine_tunes_those_weights(tmp_path):
    """`init_state`: training starts from the given weights (a plain common.train run from them gives the
    same bits), under its own cache name."""
    from common.train import train

    base = lm.pretrain(_spec(), _batches([]), shared=tmp_path).model
    tuned = lm.pretrain(_spec(), _batches([]), shared=tmp_path, name="tuned", init_state=base.state_dict())
    plain = lm.load_model(base.config, _state(base))
    plain.train()
    train(plain, lm.next_token_loss, _batches([])(), _spec().train, progress=False)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in tuned.model.state_dict().items())
    assert not torch.equal(tuned.model.lm_head.weight, base.lm_head.weight)


def test_pretrain_caches_rebuilds_corrupted_entries_and_leaves_the_rng(tmp_path, capsys):
    calls: list[int] = []
    spec = _spec()
    rng_before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    first = lm.pretrain(spec, _batches(calls), shared=tmp_path)
    assert calls == [1] and len(first.loss) == spec.train.steps and not first.model.training
    assert torch.equal(torch.get_rng_state(), rng_before[0])
    assert np.array_equal(np.random.get_state()[1], rng_before[1]) and random.getstate() == rng_before[2]
    # the weights are those of a plain run of common.train with the spec's seeds
    torch.manual_seed(spec.init_seed)
    plain = GPT(spec.model)
    from common.train import train

    train(plain, lm.next_token_loss, _batches([])(), spec.train, progress=False)
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in first.model.state_dict().items())

    hit = lm.pretrain(spec, _batches(calls), shared=tmp_path)
    assert calls == [1] and hit.model is not first.model and hit.loss == first.loss
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in hit.model.state_dict().items())
    with torch.no_grad():
        hit.model.lm_head.weight.add_(1.0)  # a caller training its copy does not touch the cache
    again = lm.pretrain(spec, _batches(calls), shared=RunContext(tmp_path / "fig", shared_dir=tmp_path))
    assert calls == [1] and torch.equal(again.model.lm_head.weight, first.model.lm_head.weight)

    entry = artifact_dir(tmp_path, "pretrained", spec)
    (entry / ARTIFACT).write_bytes((entry / ARTIFACT).read_bytes()[:-16] + b"\0" * 16)  # corrupted
    capsys.readouterr()
    rebuilt = lm.pretrain(spec, _batches(calls), shared=tmp_path)
    assert calls == [1, 1] and "rebuilding the shared artifact" in capsys.readouterr().err
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in rebuilt.model.state_dict().items())
    (entry / MANIFEST).unlink()  # an interrupted build
    lm.pretrain(spec, _batches(calls), shared=tmp_path)
    assert calls == [1, 1, 1]
    # another spec is another entry; a rope model trains and caches the same way
    lm.pretrain(_spec(steps=5), _batches(calls), shared=tmp_path)
    rope = lm.pretrain(_spec(positions="rope"), _batches(calls), shared=tmp_path)
    assert calls == [1, 1, 1, 1, 1] and "wpe.weight" not in rope.model.state_dict()
    with pytest.raises(TypeError, match="frozen dataclass"):
        lm.PretrainSpec(model=CFG, train=TrainConfig(), data={"seed": 0})


# --------------------------------------------------------------------------------------------------------
# Two processes (DDP) take the same DPO steps as one
# --------------------------------------------------------------------------------------------------------
def _ddp_worker(out: Path, fused: bool, concatenated: bool) -> None:
    from common.distributed import rank, shutdown

    torch.set_num_threads(1)
    reference = _gpt(dtype=torch.float64)
    cfg = lm.DPOConfig(
        train=TrainConfig(optimizer="sgd", lr=0.1, steps=3, seed=0),
        beta=0.5,
        batch_size=4,
        concatenated=concatenated,
        fused=fused,
    )
    run = lm.dpo(reference, _pairs(B=6), cfg)
    if rank() == 0:
        params = {k: v.tolist() for k, v in run.policy.state_dict().items()}
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps({"loss": run.history.loss, "params": params}))
    shutdown()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(nproc: int, out: Path, *flags: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc)]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port()), __file__, "--ddp-worker"]
    proc = subprocess.run(
        [*cmd, "--out", str(out), *flags], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.distributed
@pytest.mark.parametrize("flags", [(), ("--concatenated", "--unfused")], ids=["fused", "concatenated"])
def test_dpo_under_torchrun_matches_one_process(tmp_path, flags):
    one = _launch(1, tmp_path / "one", *flags)
    two = _launch(2, tmp_path / "two", *flags)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-10)
    for k, v in one["params"].items():
        np.testing.assert_allclose(two["params"][k], v, rtol=1e-9, atol=1e-12, err_msg=k)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ddp-worker", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concatenated", action="store_true")
    parser.add_argument("--unfused", action="store_true")
    args = parser.parse_args()
    _ddp_worker(args.out, fused=not args.unfused, concatenated=args.concatenated)
