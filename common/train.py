"""The one training loop of the repository: optimizers, LR schedules, gradient accumulation, resume, DDP.

Contract with the caller:

* `loss_fn(model, batch) -> scalar loss`, a *mean* over the rows of `batch` (so that averaging over
  micro-batches and over ranks gives the loss of the whole global batch).
* `get_batch(step, micro_step) -> batch` is deterministic in its arguments (no hidden iterator state), which
  is what makes a killed-and-resumed run bit-identical to an uninterrupted one. A batch is a tensor or a
  (nested) tuple / list / dict of tensors whose first dimension is the batch dimension; `train` moves it to
  the model's device.
* Under `torchrun` (WORLD_SIZE > 1) `get_batch` returns the GLOBAL micro-batch on every rank and `train`
  feeds rank r the contiguous rows [r*B/W, (r+1)*B/W) (see `shard_batch`). DDP averages gradients over the
  W ranks, so W processes with global batch B take the same step as 1 process with batch B, up to the
  order of floating-point summation. This holds exactly when every row carries equal weight in the mean; a
  token-level loss with a varying number of ignored tokens per row is a mean of per-shard means instead.

One optimizer step ("step") consumes `grad_accum` micro-batches; `cfg.steps` steps are taken in total.
Checkpoints (model, optimizer, scheduler, step, RNG states of every rank, history, config) are written by
rank 0 with `common.atomic.atomic_write_with` every `checkpoint_every` steps and at the end; `train` resumes
from the newest one in `checkpoint_dir`.

Callbacks run after every step (evaluation, in-memory snapshots, sampling). A callback may end the run early
by setting `StepInfo.stop = True` (e.g. once an evaluation reaches its target): training ends after that
step, which is logged in the history like the last step of a full run and, with a `checkpoint_dir`,
checkpointed as final, so that a rerun returns at once instead of training on.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from common.atomic import atomic_write_with, remove_stale_temporaries
from common.distributed import (
    barrier,
    init_distributed,
    is_distributed,
    map_tensors,
    rank,
    shard_batch,
    world_size,
)

__all__ = [
    "Callback",
    "TrainConfig",
    "TrainHistory",
    "StepInfo",
    "make_optimizer",
    "make_scheduler",
    "lr_multiplier",
    "lr_at",
    "weight_decay_groups",
    "train",
    "latest_checkpoint",
    "sgdm_ema_to_pytorch",
    "pytorch_to_sgdm_ema",
]

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.pt$")
# Fields that may differ between a run and its resumption without changing the trajectory.
_RESUME_FREE_FIELDS = frozenset({"log_every", "checkpoint_every"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training trajectory besides the model, the loss and the data.

    optimizer: "sgd" (heavy-ball momentum, PyTorch form), "adamw" (Loshchilov & Hutter 2019) or "rmsprop"
    (Tieleman & Hinton 2012; smoothing constant `alpha`). lr is the peak learning rate; momentum, dampening
    and nesterov go to SGD (momentum also to RMSProp); betas to AdamW; eps to AdamW and RMSProp.
    weight_decay applies to every trainable parameter unless decay_biases_and_norms=False, which exempts
    parameters with ndim < 2 (biases, LayerNorm) as GPT-2/nanoGPT do (`weight_decay_groups`).
    schedule: "constant", "cosine" or "linear" decay from lr to lr * min_lr_ratio over the steps after
    `warmup_steps` of linear warm-up (see `lr_multiplier`). grad_accum micro-batches make one step;
    clip_grad_norm clips the global gradient norm (None: no clipping). log_every: record the loss in the
    history every this many steps (1: every step). checkpoint_every: write a checkpoint every this many
    steps (0: only at the end; checkpoints need a `checkpoint_dir`). seed seeds torch/numpy/random at the
    start of a fresh run (dropout masks; rank r uses seed + r).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    decay_biases_and_norms: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    alpha: float = 0.99
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    steps: int = 100
    grad_accum: int = 1
    clip_grad_norm: float | None = None
    log_every: int = 1
    checkpoint_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.lr < 0:
            raise ValueError(f"lr must be >= 0, got {self.lr}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps={self.steps}], got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be positive or None, got {self.clip_grad_norm}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must have two entries, got {self.betas}")
        # Keep the config hashable and comparable after a JSON round trip (lists come back from JSON).
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclass
class TrainHistory:
    """What a run records: at each logged step its index (1-based count of updates done), the loss of the
    global batch averaged over micro-batches and ranks, the learning rate used, and the gradient norm
    before clipping (NaN when clipping is off). `extra` holds whatever callbacks `record`."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    extra: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def record(self, name: str, step: int, value: float) -> None:
        """Append `(step, value)` to the series `name` (e.g. an evaluation metric from a callback)."""
        self.extra.setdefault(name, []).append((int(step), float(value)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainHistory:
        """Inverse of `to_dict`."""
        extra = {k: [(int(s), float(v)) for s, v in series] for k, series in d.get("extra", {}).items()}
        return cls(
            step=list(d["step"]),
            loss=list(d["loss"]),
            lr=list(d["lr"]),
            grad_norm=list(d["grad_norm"]),
            extra=extra,
        )


@dataclass
class StepInfo:
    """Passed to each callback after every optimizer step (and after that step's checkpoint is written).

    step: the number of updates done (1..cfg.steps); model: the unwrapped model (not the DDP wrapper);
    loss: the step's global loss when the step was logged, else None. stop: a callback sets it to True to
    end training after this step (the module docstring says what that does). Under torchrun every rank must
    set the same value, as it does when it decides from what every rank sees alike (an evaluation of the
    model on fixed data); `train` does not communicate the flag, so that a step costs no extra collective.
    """

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: TrainHistory
    cfg: TrainConfig
    loss: float | None
    stop: bool = False


Callback = Callable[[StepInfo], None]


# ---------------------------------------------------------------------------------------------------------
# Optimizers and schedules
# ---------------------------------------------------------------------------------------------------------


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups as in GPT-2/nanoGPT: matrices and embeddings (ndim >= 2) decay, biases and
    LayerNorm gains (ndim < 2) do not. Only trainable parameters are included; empty groups are dropped."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer `cfg.optimizer` over `params` (tensors or param-group dicts) with `cfg`'s settings.

    SGD is PyTorch's heavy-ball form (b <- momentum * b + (1 - dampening) * g; x <- x - lr * b); see
    `sgdm_ema_to_pytorch` for the EMA form used in much of the theory. AdamW decouples weight decay
    (Loshchilov & Hutter 2019).
    """
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            dampening=cfg.dampening,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=cfg.lr,
            alpha=cfg.alpha,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")  # unreachable: TrainConfig validates


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    """The schedule as a factor of `cfg.lr` for the update that follows `step` updates (step = 0, 1, ...).

    Warm-up: (step + 1) / warmup_steps for step < warmup_steps, so the first update already moves and the
    last warm-up update uses the peak. After it, with progress p = (step - warmup) / (steps - warmup)
    clipped to [0, 1] and m = min_lr_ratio: "constant" gives 1, "linear" gives m + (1 - m)(1 - p), and
    "cosine" gives m + (1 - m)(1 + cos(pi p)) / 2 (Loshchilov & Hutter 2017, SGDR, without restarts).
    Both decays reach exactly m at step == steps (as in nanoGPT with lr_decay_iters = max_iters).
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    decay_steps = cfg.steps - cfg.warmup_steps
    p = 1.0 if decay_steps == 0 else min(1.0, (step - cfg.warmup_steps) / decay_steps)
    m = cfg.min_lr_ratio
    if cfg.schedule == "linear":
        return m + (1.0 - m) * (1.0 - p)
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * p))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of the update that follows `step` updates: `cfg.lr * lr_multiplier(step, cfg)`."""
    return cfg.lr * lr_multiplier(step, cfg)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `lr_multiplier` to every param group's initial lr (stepped once per update)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, cfg))


def sgdm_ema_to_pytorch(eta: float, beta: float) -> dict[str, float]:
    """PyTorch SGD settings equal to SGD with EMA-form momentum.

    EMA form, the normalised SGDM analysed by Wang et al. 2024, "The Marginal Value of Momentum for Small
    Learning Rate SGD" (ICLR 2024, arXiv:2307.15196), eq. 3:
        m_{k+1} = beta m_k + (1 - beta) g_k,   x_{k+1} = x_k - eta m_{k+1},   m_0 = 0.
    Heavy-ball form, their eq. 1 and what `torch.optim.SGD` implements (dampening 0):
        b_{k+1} = beta b_k + g_k,              x_{k+1} = x_k - gamma b_{k+1},  b_0 = 0.
    With b = m / (1 - beta) the two are the same sequence of iterates when gamma = eta (1 - beta), from
    the first step on. (Setting `dampening=beta, lr=eta` instead is NOT equivalent: PyTorch does not damp
    the first step, b_1 = g_0, so the first update is 1/(1 - beta) times too large.)

    Returns {"lr": eta * (1 - beta), "momentum": beta, "dampening": 0.0}: keyword arguments for
    `torch.optim.SGD` and for `dataclasses.replace(cfg, **...)` on a TrainConfig with optimizer="sgd".
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    return {"lr": eta * (1.0 - beta), "momentum": beta, "dampening": 0.0}


def pytorch_to_sgdm_ema(lr: float, momentum: float) -> dict[str, float]:
    """Inverse of `sgdm_ema_to_pytorch`: {"eta": lr / (1 - momentum), "beta": momentum}."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    return {"eta": lr / (1.0 - momentum), "beta": momentum}


# ---------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest `step_XXXXXXXX.pt` in `checkpoint_dir`, or None."""
    directory = Path(checkpoint_dir)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return max(found)[1] if found else None


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG state, in rank order (dropout masks differ per rank, so all of them are needed)."""
    own = _rng_state()
    if not is_distributed():
        return [own]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, own)
    return states


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _RESUME_FREE_FIELDS}


def _save_checkpoint(
    directory: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    history: TrainHistory,
    cfg: TrainConfig,
    stopped: bool = False,
) -> None:
    rng_states = _gather_rng_states()  # collective: every rank takes part
    if rank() == 0:
        payload = {
            "step": step,
            "stopped": stopped,  # a callback ended the run here: resuming trains no further
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states,
            "history": history.to_dict(),
            "config": dataclasses.asdict(cfg),
            "world_size": world_size(),
        }
        path = directory / f"step_{step:08d}.pt"
        atomic_write_with(path, lambda handle: torch.save(payload, handle))
        # Only after the new file is in place: older checkpoints are superseded.
        for old in directory.iterdir():
            m = CHECKPOINT_PATTERN.match(old.name)
            if m and int(m.group(1)) < step:
                old.unlink(missing_ok=True)
    barrier()


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
) -> tuple[int, TrainHistory, bool]:
    # weights_only=False: the file holds numpy/python RNG states; it is our own checkpoint, not foreign input.
    payload = torch.load(path, map_location="cpu", weights_only=False)
    saved = TrainConfig(**payload["config"])
    before, now = _comparable(saved), _comparable(cfg)
    if before != now:
        diff = {k: (v, now[k]) for k, v in before.items() if now[k] != v}
        raise ValueError(f"checkpoint {path} was written with a different config (saved, now): {diff}")
    if payload["world_size"] != world_size():
        raise ValueError(
            f"checkpoint {path} was written with world size {payload['world_size']}, now {world_size()}"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])  # also moves state to the params' device
    scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"][rank()])
    stopped = bool(payload.get("stopped", False))  # absent in checkpoints written before early stopping
    return int(payload["step"]), TrainHistory.from_dict(payload["history"]), stopped


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    get_batch: Callable[[int, int], Any],
    cfg: TrainConfig,
    checkpoint_dir: str | os.PathLike | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
) -> TrainHistory:
    """Train `model` in place for `cfg.steps` optimizer steps and return the history.

    Each step: `grad_accum` micro-batches `get_batch(step, micro)` (step = updates done so far, 0-based),
    each loss divided by `grad_accum` before backward so the gradient is the micro-batch average; then
    optional global-norm clipping, the optimizer step and the scheduler step. Trainable parameters are
    those with requires_grad (e.g. only LoRA factors after `apply_lora`).

    Resume: with `checkpoint_dir`, the newest checkpoint there is loaded first (model, optimizer, scheduler,
    RNG states, history) and training continues from its step; a run killed at any point and restarted
    with the same arguments ends with exactly the parameters of an uninterrupted run. A finished run's
    final checkpoint makes a rerun return at once. The config must match the checkpoint's (apart from
    log_every and checkpoint_every).

    Early stop: a callback that sets `info.stop = True` ends the run after that step (module docstring).

    Distributed: when launched by torchrun with WORLD_SIZE > 1, initialises the process group (gloo on CPU,
    nccl on CUDA) if needed, wraps the model in DistributedDataParallel and gives each rank its contiguous
    shard of the global batch (module docstring). Losses in the history are averaged over ranks; only rank
    0 shows progress and writes checkpoints. `loss_fn` receives the DDP wrapper, which is called like the
    model; callbacks receive the unwrapped model.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    device = params[0].device
    distributed = init_distributed(device)
    rank_, world = rank(), world_size()

    grouped = cfg.weight_decay and not cfg.decay_biases_and_norms
    optimizer = make_optimizer(weight_decay_groups(model, cfg.weight_decay) if grouped else params, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    history = TrainHistory()
    start = 0
    stopped = False
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt_dir is not None:
        if rank_ == 0:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(ckpt_dir)
        barrier()
        latest = latest_checkpoint(ckpt_dir)
        if latest is not None:
            start, history, stopped = _load_checkpoint(latest, model, optimizer, scheduler, cfg)
    if start == 0:
        _seed_everything(cfg.seed + rank_)

    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # DDP broadcasts rank 0's parameters and buffers at construction, so all ranks start equal.
        net: nn.Module = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        net = model

    end = start if stopped else cfg.steps  # a run a callback stopped is finished
    bar = None
    if progress and rank_ == 0 and start < end:
        bar = tqdm(total=cfg.steps, initial=start, desc="train", dynamic_ncols=True)

    def log(done: int, step_loss: torch.Tensor, lr_used: float, grad_norm: float) -> float:
        """Record step `done` in the history; returns its global loss (a collective under torchrun)."""
        step_loss /= cfg.grad_accum
        if distributed:
            dist.all_reduce(step_loss)
            step_loss /= world
        loss_value = float(step_loss)
        history.step.append(done)
        history.loss.append(loss_value)
        history.lr.append(float(lr_used))
        history.grad_norm.append(grad_norm)
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr_used:.3g}")
        return loss_value

    try:
        for step in range(start, end):
            net.train()
            optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=device, dtype=torch.float64)
            for micro in range(cfg.grad_accum):
                batch = get_batch(step, micro)
                if distributed:
                    batch = shard_batch(batch, rank_, world)
                batch = map_tensors(batch, lambda t: t.to(device, non_blocking=True))
                # Gradients are all-reduced only on the last micro-batch of the step.
                last = micro == cfg.grad_accum - 1
                sync = nullcontext() if (last or not distributed) else net.no_sync()
                with sync:
                    loss = loss_fn(net, batch)
                    if loss.dim() != 0:
                        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
                    (loss / cfg.grad_accum).backward()
                step_loss += loss.detach().to(torch.float64)
            grad_norm = float("nan")
            if cfg.clip_grad_norm is not None:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm))
            lr_used = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            done = step + 1

            logged = done % cfg.log_every == 0 or done == cfg.steps
            loss_value = None
            if logged:
                loss_value = log(done, step_loss, lr_used, grad_norm)
            if bar is not None:
                bar.update(1)

            if ckpt_dir is not None and (
                (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == cfg.steps
            ):
                _save_checkpoint(ckpt_dir, done, model, optimizer, scheduler, history, cfg)
            if callbacks:
                info = StepInfo(
                    step=done, model=model, optimizer=optimizer, history=history, cfg=cfg, loss=loss_value
                )
                # Callbacks (evaluation, sampling) must not move the training RNG stream, or a resumed run
                # (whose checkpoint was taken before them) would draw different dropout masks.
                saved_rng = _rng_state()
                for callback in callbacks:
                    callback(info)
                _set_rng_state(saved_rng)
                if info.stop and done < cfg.steps:
                    if not logged:
                        log(done, step_loss, lr_used, grad_norm)
                    if ckpt_dir is not None:
                        _save_checkpoint(
                            ckpt_dir, done, model, optimizer, scheduler, history, cfg, stopped=True
                        )
                    break
    finally:
        if bar is not None:
            bar.close()
    return history
