"""The training loop: optimizers, schedules, gradient accumulation, exact resume, determinism, helpers."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.distributed import barrier, is_distributed, rank, shard_batch, world_size
from common.models import GPT, MLP, GPTConfig
from common.train import (
    StepInfo,
    TrainConfig,
    TrainHistory,
    latest_checkpoint,
    lr_at,
    lr_multiplier,
    make_optimizer,
    make_scheduler,
    pytorch_to_sgdm_ema,
    sgdm_ema_to_pytorch,
    train,
)


def _regression(n: int = 64, d: int = 6, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(d, 1, generator=g, dtype=dtype)
    y = X @ w + 0.01 * torch.randn(n, 1, generator=g, dtype=dtype)
    return X, y


def _mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


@pytest.mark.parametrize(
    "opt, lr, extra",
    [
        ("sgd", 0.05, {}),
        ("sgd", 0.02, {"momentum": 0.9, "nesterov": True}),
        ("adamw", 0.02, {"weight_decay": 0.01}),
        ("rmsprop", 0.005, {"momentum": 0.5}),
    ],
)
def test_each_optimizer_decreases_loss(opt, lr, extra):
    X, y = _regression()
    torch.manual_seed(0)
    model = MLP(6, [16], 1)
    cfg = TrainConfig(optimizer=opt, lr=lr, steps=60, **extra)
    hist = train(model, _mse, lambda step, micro: (X, y), cfg, progress=False)
    assert hist.step == list(range(1, 61))
    assert hist.loss[-1] < 0.25 * hist.loss[0], hist.loss[::10]


def test_schedule_values():
    base = dict(lr=2.0, steps=110, warmup_steps=10, min_lr_ratio=0.1)
    cos = TrainConfig(schedule="cosine", **base)
    assert lr_at(0, cos) == pytest.approx(0.2)  # (0 + 1) / 10 of the peak: the first step already moves
    assert lr_at(4, cos) == pytest.approx(1.0)
    assert lr_at(9, cos) == 2.0 and lr_at(10, cos) == 2.0
    assert lr_at(60, cos) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # halfway: the mean of peak and floor
    assert lr_at(110, cos) == pytest.approx(0.2, abs=1e-15)
    assert lr_at(1000, cos) == pytest.approx(0.2, abs=1e-15)
    assert all(lr_at(s + 1, cos) <= lr_at(s, cos) for s in range(10, 120))

    lin = TrainConfig(schedule="linear", **base)
    assert lr_at(35, lin) == pytest.approx(2.0 * (0.1 + 0.9 * 0.75))
    assert lr_at(110, lin) == pytest.approx(0.2)

    const = TrainConfig(schedule="constant", **base)
    assert [lr_multiplier(s, const) for s in (0, 9, 10, 109, 500)] == [0.1, 1.0, 1.0, 1.0, 1.0]
    assert lr_at(0, TrainConfig(schedule="cosine", lr=1.0, steps=4, min_lr_ratio=0.0)) == 1.0

    # The LambdaLR built from the same function yields exactly lr_at, step by step.
    opt = make_optimizer([nn.Parameter(torch.zeros(1))], cos)
    sched = make_scheduler(opt, cos)
    seen = []
    for _ in range(cos.steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == [lr_at(s, cos) for s in range(cos.steps)]

    with pytest.raises(ValueError):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError):
        TrainConfig(steps=5, warmup_steps=6)


def test_history_records_schedule_lr():
    X, y = _regression()
    torch.manual_seed(0)
    cfg = TrainConfig(optimizer="sgd", lr=0.1, schedule="cosine", warmup_steps=3, steps=12, log_every=4)
    hist = train(nn.Linear(6, 1), _mse, lambda s, m: (X, y), cfg, progress=False)
    assert hist.step == [4, 8, 12]
    assert hist.lr == [lr_at(s - 1, cfg) for s in hist.step]
    assert all(math.isnan(g) for g in hist.grad_norm)


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_grad_accum_equals_one_big_batch(opt):
    X, y = _regression(n=48, dtype=torch.float64)
    B, k, steps = 16, 4, 6

    def big(step, micro):
        rows = slice(step * B % 48, step * B % 48 + B)
        return X[rows], y[rows]

    def small(step, micro):
        start = step * B % 48 + micro * (B // k)
        return X[start : start + B // k], y[start : start + B // k]

    extra = {"momentum": 0.9} if opt == "sgd" else {}
    results = []
    for get_batch, accum in ((big, 1), (small, k)):
        torch.manual_seed(0)
        model = MLP(6, [8], 1, activation="tanh").double()
        cfg = TrainConfig(optimizer=opt, lr=0.05, steps=steps, grad_accum=accum, clip_grad_norm=0.5, **extra)
        hist = train(model, _mse, get_batch, cfg, progress=False)
        results.append((hist, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (h1, p1), (h2, p2) = results
    torch.testing.assert_close(p2, p1, rtol=0, atol=1e-12)
    assert h2.loss == pytest.approx(h1.loss, rel=1e-12, abs=0)
    assert h2.grad_norm == pytest.approx(h1.grad_norm, rel=1e-12, abs=0)


# A tiny GPT with dropout: an exact resume needs the RNG state, not only the weights.
TINY = GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)


def _tiny_gpt() -> GPT:
    torch.manual_seed(123)
    return GPT(TINY)


def _lm_batch(step: int, micro: int):
    g = torch.Generator().manual_seed(1000 * step + micro)
    seq = torch.randint(0, TINY.vocab_size, (4, TINY.block_size + 1), generator=g)
    return seq[:, :-1], seq[:, 1:]


def _lm_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return model(x, y).loss


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


LM_CFG = TrainConfig(
    optimizer="adamw",
    lr=3e-3,
    schedule="cosine",
    warmup_steps=2,
    steps=10,
    grad_accum=2,
    clip_grad_norm=1.0,
    weight_decay=0.1,
    checkpoint_every=5,
    seed=7,
)


class _Kill(RuntimeError):
    pass


def test_resume_after_interruption_is_exact(tmp_path):
    reference = _tiny_gpt()
    ref_hist = train(reference, _lm_loss, _lm_batch, LM_CFG, progress=False)

    def kill_after_7(info: StepInfo) -> None:
        torch.rand(3)  # a callback drawing random numbers must not perturb the run either
        if info.step == 7:
            raise _Kill

    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Kill):
        train(
            _tiny_gpt(),
            _lm_loss,
            _lm_batch,
            LM_CFG,
            checkpoint_dir=ckpt,
            callbacks=[kill_after_7],
            progress=False,
        )
    assert latest_checkpoint(ckpt).name == "step_00000005.pt"

    torch.manual_seed(999)  # a new process starts in another RNG state and with other weights
    resumed = GPT(TINY)
    seen: list[int] = []
    hist = train(
        resumed,
        _lm_loss,
        _lm_batch,
        LM_CFG,
        checkpoint_dir=ckpt,
        callbacks=[lambda info: seen.append(info.step)],
        progress=False,
    )
    assert seen == [6, 7, 8, 9, 10]
    assert torch.equal(_flat(resumed), _flat(reference))
    assert hist == ref_hist
    assert latest_checkpoint(ckpt).name == "step_00000010.pt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_00000010.pt"]

    # Rerunning a finished run loads its final state and trains no further.
    again = GPT(TINY)
    hist2 = train(
        again,
        _lm_loss,
        _lm_batch,
        LM_CFG,
        checkpoint_dir=ckpt,
        callbacks=[lambda info: seen.append(-1)],
        progress=False,
    )
    assert hist2 == ref_hist and -1 not in seen
    assert torch.equal(_flat(again), _flat(reference))

    # A checkpoint cannot be resumed under a different trajectory-defining config...
    with pytest.raises(ValueError, match="different config"):
        train(
            GPT(TINY),
            _lm_loss,
            _lm_batch,
            dataclasses.replace(LM_CFG, lr=1e-3),
            checkpoint_dir=ckpt,
            progress=False,
        )
    # ...but logging and checkpoint frequency may change.
    train(
        GPT(TINY),
        _lm_loss,
        _lm_batch,
        dataclasses.replace(LM_CFG, checkpoint_every=3, log_every=2),
        checkpoint_dir=ckpt,
        progress=False,
    )


def test_callback_can_stop_training_early(tmp_path):
    """A callback that sets info.stop ends the run after that step: the parameters and history are those of
    an uninterrupted run at that step, the stopping step is logged, and its checkpoint is final."""
    cfg = dataclasses.replace(LM_CFG, log_every=4)
    at_7: dict[str, torch.Tensor] = {}

    def snapshot_at_7(info: StepInfo) -> None:
        assert info.stop is False  # the default
        if info.step == 7:
            at_7["params"] = _flat(info.model).clone()

    full = train(
        _tiny_gpt(),
        _lm_loss,
        _lm_batch,
        dataclasses.replace(cfg, log_every=1),
        callbacks=[snapshot_at_7],
        progress=False,
    )
    seen: list[int] = []

    def stop_at_7(info: StepInfo) -> None:
        seen.append(info.step)
        info.stop = info.step == 7

    ckpt = tmp_path / "ckpt"
    model = _tiny_gpt()
    hist = train(model, _lm_loss, _lm_batch, cfg, checkpoint_dir=ckpt, callbacks=[stop_at_7], progress=False)
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert hist.step == [4, 7] and hist.loss == [full.loss[3], full.loss[6]]
    assert torch.equal(_flat(model), at_7["params"])
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_00000007.pt"]
    # A rerun finds the run finished: it loads the stopped state and trains no further.
    again = GPT(TINY)
    hist2 = train(
        again,
        _lm_loss,
        _lm_batch,
        cfg,
        checkpoint_dir=ckpt,
        callbacks=[lambda info: seen.append(-1)],
        progress=False,
    )
    assert hist2 == hist and -1 not in seen
    assert torch.equal(_flat(again), at_7["params"])


def test_same_seed_same_numbers():
    runs = []
    for seed in (7, 7, 8):
        model = _tiny_gpt()
        hist = train(
            model, _lm_loss, _lm_batch, dataclasses.replace(LM_CFG, seed=seed, steps=4), progress=False
        )
        runs.append((hist, _flat(model)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    # The seed drives the dropout masks, so another seed gives another trajectory.
    assert runs[2][0].loss != runs[0][0].loss


def test_history_roundtrip_and_callback_records():
    X, y = _regression()

    def record(info: StepInfo) -> None:
        info.history.record("w_norm", info.step, info.model.weight.norm().item())

    torch.manual_seed(0)
    hist = train(
        nn.Linear(6, 1),
        _mse,
        lambda s, m: (X, y),
        TrainConfig(optimizer="sgd", lr=0.1, steps=3),
        callbacks=[record],
        progress=False,
    )
    assert [s for s, _ in hist.extra["w_norm"]] == [1, 2, 3]
    assert TrainHistory.from_dict(hist.to_dict()) == hist


def test_sgdm_ema_conversion_is_exact():
    """EMA-form momentum (Wang et al. 2024) equals torch SGD with lr = eta (1 - beta), from the first step."""
    eta, beta = 0.3, 0.8
    A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)

    def grad(x):
        return A @ x

    x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    m = torch.zeros(2, dtype=torch.float64)
    ema = []
    for _ in range(20):
        m = beta * m + (1 - beta) * grad(x)
        x = x - eta * m
        ema.append(x.clone())

    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = torch.optim.SGD([p], **sgdm_ema_to_pytorch(eta, beta))
    for k in range(20):
        opt.zero_grad()
        p.grad = grad(p.detach())
        opt.step()
        torch.testing.assert_close(p.detach(), ema[k], rtol=1e-13, atol=1e-13)
    settings = sgdm_ema_to_pytorch(eta, beta)
    back = pytorch_to_sgdm_ema(lr=settings["lr"], momentum=settings["momentum"])
    assert back == pytest.approx({"eta": eta, "beta": beta})
    cfg = dataclasses.replace(TrainConfig(optimizer="sgd"), **sgdm_ema_to_pytorch(eta, beta))
    assert cfg.lr == pytest.approx(eta * (1 - beta)) and cfg.momentum == beta


def test_shard_batch_and_single_process_helpers():
    x = torch.arange(12).reshape(6, 2)
    batch = {"x": x, "pair": (x[:, 0], x[:, 1])}
    shard = shard_batch(batch, 1, 3)
    torch.testing.assert_close(shard["x"], x[2:4])
    torch.testing.assert_close(shard["pair"][1], x[2:4, 1])
    with pytest.raises(ValueError, match="divisible"):
        shard_batch(x, 0, 4)
    with pytest.raises(ValueError, match="disagree"):
        shard_batch((x, x[:3]), 0, 3)
    assert (world_size(), rank(), is_distributed()) == (1, 0, False)
    barrier()  # a no-op without a process group


def test_progress_bar_runs(capsys):
    X, y = _regression()
    train(nn.Linear(6, 1), _mse, lambda s, m: (X, y), TrainConfig(steps=3), progress=True)
    assert "train" in capsys.readouterr().err
