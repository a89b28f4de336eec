"""Sparse-parity teachers and students for Panigrahi et al. 2025 (arXiv 2410.05464, section 3), on the shared
ensemble-MLP kernels (common/ops/ensemble_mlp.py): every teacher seed, and every (seed, method) student, is
one member of an `EnsembleMLP`, trained by `common.train.train` with plain SGD at a constant lr on fresh
batches (one pass, as in the official scripts; our batch 32 and lr 0.1 replace their batch 1 and lr 0.005,
reference notes section 3.4).

- `train_teachers`: one wide teacher per seed, with checkpoints every `ckpt_every` steps kept in memory (a
  callback); `shared_teachers` keeps them in the paper's shared-artifact cache, keyed by `TeacherSpec`, so
  figures 1-3 train them once.
- `train_students`: students whose target at each step is chosen by a `schedule` per member: the labels
  (cross-entropy), or a teacher checkpoint at a temperature (0 = the teacher's argmax, the paper's
  tau = 1e-20). Progressive distillation in lockstep uses, at student step t, the first checkpoint at or after
  t (the official `ckpt_multiplier` m = 1); one-shot uses the final checkpoint throughout. An evaluation
  callback stops the run once every student has reached the target (`StepInfo.stop`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from common.configs import ConfigError, Count, Index, Positive
from common.experiment import RunContext
from common.ops.ensemble_mlp import (
    EnsembleMLP,
    accuracy,
    cross_entropy_loss,
    distillation_loss,
    ensemble_mlp,
)
from common.ops.sparse_parity import sample
from common.train import StepInfo, TrainConfig, train

TARGET_ACCURACY = 0.95
LABELS = "labels"


@dataclass(frozen=True)
class ParitySetup:
    """The sparse-parity task, the teacher and the student; shared by figures 1-3."""

    n: Count = 30  # input dimension
    k: Count = 6  # support size: y = prod of the first k coordinates (k <= n)
    teacher_width: Count = 2000
    student_width: Count = 50
    batch: Count = 32
    lr: Positive = 0.1
    teacher_steps: Count = 12_000  # a multiple of ckpt_every
    ckpt_every: Count = 250  # teacher checkpoints (and progressive refreshes) every this many steps
    eval_size: Count = 4000  # fresh held-out samples for accuracy
    eval_every: Count = 250
    seeds: Count = 3
    seed: Index = 0

    def validate(self) -> None:
        """Fail fast on sizes that cannot make a sparse-parity experiment."""
        positive = (
            "n",
            "k",
            "teacher_width",
            "student_width",
            "batch",
            "teacher_steps",
            "ckpt_every",
            "eval_size",
            "eval_every",
            "seeds",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.k > self.n:
            raise ConfigError(
                f"k must be <= n (a support of k of the n coordinates), got k={self.k}, n={self.n}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.teacher_steps % self.ckpt_every:
            raise ConfigError(
                f"teacher_steps ({self.teacher_steps}) must be a multiple of ckpt_every ({self.ckpt_every})"
            )
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


def setup_of(config: Any) -> ParitySetup:
    """The ParitySetup fields of a figure config (which repeats them flat, so `--set n=20` works)."""
    fields = ParitySetup.__dataclass_fields__
    setup = ParitySetup(**{name: getattr(config, name) for name in fields})
    setup.validate()
    return setup


def _data_seed(setup: ParitySetup, stream: int) -> int:
    return 1_000_003 * setup.seed + 7919 * stream + 17


def eval_set(setup: ParitySetup) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out (x packed [N, W], y [N]) from a stream no training batch uses."""
    return sample(setup.n, setup.k, setup.eval_size, seed=_data_seed(setup, 999), packed=True)


def _batches(setup: ParitySetup, stream: int, members: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `step` for `members` independent data streams: x [members, B, W], y [members, B]."""
    rows = members * setup.batch
    x, y = sample(setup.n, setup.k, rows, seed=_data_seed(setup, stream), start=step * rows, packed=True)
    return x.view(members, setup.batch, -1), y.view(members, setup.batch)


# ------------------------------------------------------------------------------------------- teachers


@dataclass
class Teachers:
    """Checkpoints of `seeds` teachers: weights stacked [C, S, ...] at steps `ckpt_steps` (C = 0 is init)."""

    ckpt_steps: list[int]
    weight1: torch.Tensor  # (C, S, n, H)
    bias1: torch.Tensor  # (C, S, H)
    weight2: torch.Tensor  # (C, S, 2, H)
    bias2: torch.Tensor  # (C, S, 2)
    accuracy: np.ndarray  # (C, S) held-out accuracy at each checkpoint

    def to_state(self) -> dict[str, Any]:
        """Tensors, lists and numbers only (what torch.load(weights_only=True) reads back)."""
        return {**self.__dict__, "accuracy": torch.from_numpy(self.accuracy)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Teachers:
        return cls(**{**state, "accuracy": np.array(state["accuracy"].numpy(), dtype=float)})

    def index_at_or_after(self, step: int) -> int:
        """Index of the first checkpoint at step >= `step` (the last checkpoint when none is)."""
        for i, s in enumerate(self.ckpt_steps):
            if s >= step:
                return i
        return len(self.ckpt_steps) - 1

    def steps_to(self, target: float = TARGET_ACCURACY) -> list[float]:
        """Per seed, the first checkpoint step with accuracy >= target (NaN: never)."""
        out = []
        for s in range(self.accuracy.shape[1]):
            hit = np.nonzero(self.accuracy[:, s] >= target)[0]
            out.append(float(self.ckpt_steps[hit[0]]) if hit.size else float("nan"))
        return out

    def logits(self, ckpt: torch.Tensor, seed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits [E, B, 2] of teacher (checkpoint ckpt[e], seed seed[e]) on x [E, B, W] or [B, W]."""
        with torch.no_grad():
            return ensemble_mlp(
                x,
                self.weight1[ckpt, seed],
                self.bias1[ckpt, seed],
                self.weight2[ckpt, seed],
                self.bias2[ckpt, seed],
            )


# Both loops run on `common.train.train` (SGD at the constant lr; no momentum, no weight decay). Its batches
# are rows first (train() moves and shards them along dim 0), so the ensemble's members-first tensors travel
# transposed, [B, members, ...], and the loss transposes them back: a sum over the independent members of
# each member's mean over its rows, which is linear in the rows as train()'s DDP contract asks.


def _sgd(setup: ParitySetup, steps: int, log_every: int) -> TrainConfig:
    return TrainConfig(optimizer="sgd", lr=setup.lr, steps=steps, log_every=log_every, seed=setup.seed)


def _rows_first(t: torch.Tensor) -> torch.Tensor:
    """[members, B, ...] -> [B, members, ...] (a view; `_members_first` undoes it exactly)."""
    return t.transpose(0, 1)


def _members_first(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(0, 1).contiguous()


def _labels_loss(model: EnsembleMLP, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = (_members_first(t) for t in batch)  # (S, B, W), (S, B)
    return cross_entropy_loss(model(x), y).sum()  # members are independent: sum = per-member gradients


def train_teachers(setup: ParitySetup) -> Teachers:
    """Train one teacher per seed (one ensemble), checkpointing every `ckpt_every` steps in memory.

    Figures share them through `shared_teachers` (the shared-artifact cache)."""
    S = setup.seeds
    gen = torch.Generator().manual_seed(_data_seed(setup, 1))
    model = EnsembleMLP(S, setup.n, setup.teacher_width, 2, generator=gen)
    x_eval, y_eval = eval_set(setup)
    snaps: list[list[torch.Tensor]] = []
    accs: list[np.ndarray] = []
    steps: list[int] = []

    def snapshot(step: int, m: EnsembleMLP) -> None:
        with torch.no_grad():
            snaps.append([p.detach().clone() for p in (m.weight1, m.bias1, m.weight2, m.bias2)])
            accs.append(accuracy(m(x_eval), y_eval).numpy().astype(float))
        steps.append(step)

    def checkpoint(info: StepInfo) -> None:
        if info.step % setup.ckpt_every == 0:
            snapshot(info.step, info.model)

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(_rows_first(t) for t in _batches(setup, stream=2, members=S, step=step))

    snapshot(0, model)
    cfg = _sgd(setup, setup.teacher_steps, log_every=setup.ckpt_every)
    train(model, _labels_loss, get_batch, cfg, callbacks=[checkpoint], progress=False)
    return Teachers(
        ckpt_steps=steps,
        weight1=torch.stack([s[0] for s in snaps]),
        bias1=torch.stack([s[1] for s in snaps]),
        weight2=torch.stack([s[2] for s in snaps]),
        bias2=torch.stack([s[3] for s in snaps]),
        accuracy=np.stack(accs),
    )


@dataclass(frozen=True)
class TeacherSpec:
    """Everything `train_teachers` depends on, and nothing else (not the student's width or eval cadence):
    the key of the teachers in the shared-artifact cache. The fields are ParitySetup's, by name."""

    n: int
    k: int
    teacher_width: int
    batch: int
    lr: float
    teacher_steps: int
    ckpt_every: int
    eval_size: int
    seeds: int
    seed: int

    @classmethod
    def of(cls, setup: ParitySetup) -> TeacherSpec:
        return cls(**{name: getattr(setup, name) for name in cls.__dataclass_fields__})

    def setup(self) -> ParitySetup:
        """A ParitySetup with these fields (the student's at their defaults: the teachers never read them)."""
        return ParitySetup(**dataclasses.asdict(self))


def shared_teachers(ctx: RunContext, setup: ParitySetup) -> Teachers:
    """The teachers of `setup` from the paper's shared-artifact cache (`ctx.shared`), trained once for every
    figure whose setup has the same `TeacherSpec` (figures 1-3 of one scale)."""
    spec = TeacherSpec.of(setup)
    return Teachers.from_state(
        ctx.shared("parity_teachers", spec, lambda: train_teachers(spec.setup()).to_state())
    )


# ------------------------------------------------------------------------------------------- students

# A schedule maps a student step t (0-based) to the teacher checkpoint index used at that step, or None for
# training on the labels.
Schedule = Callable[[int], int | None]


@dataclass(frozen=True)
class StudentSpec:
    """One student: which seed's teacher, data and init it pairs with, its "
    "target schedule, its temperature."""

    name: str
    seed: int  # seed index in [0, setup.seeds)
    schedule: Schedule
    temperature: float = 0.0


def lockstep(teachers: Teachers) -> Schedule:
    """Progressive distillation, m = 1: at step t the first checkpoint at step >= t + 1."""
    return lambda t: teachers.index_at_or_after(t + 1)


def one_shot(teachers: Teachers) -> Schedule:
    """Distillation from the final checkpoint only."""
    last = len(teachers.ckpt_steps) - 1
    return lambda t: last


def two_shot(teachers: Teachers, ckpt_index: int, first_steps: int) -> Schedule:
    """(2, T)-progressive: checkpoint `ckpt_index` for the first T student steps, then the final one."""
    last = len(teachers.ckpt_steps) - 1
    return lambda t: ckpt_index if t < first_steps else last


def labels_only() -> Schedule:
    return lambda t: None


def train_students(
    setup: ParitySetup,
    teachers: Teachers | None,
    specs: Sequence[StudentSpec],
    steps: int,
    stop_when_all_reach: float | None = TARGET_ACCURACY,
) -> dict[str, Any]:
    """Train every spec as one ensemble member; returns eval steps and accuracy curves [E, evals].

    Members of the same seed index share their initialisation and every batch (paired comparisons). Training
    stops early once every member has reached `stop_when_all_reach` held-out accuracy (an evaluation
    callback of `common.train.train` sets `StepInfo.stop`).
    """
    if not specs:
        raise ValueError("train_students needs at least one StudentSpec")
    if steps < 1:
        raise ConfigError(f"student steps must be >= 1, got {steps}")
    E, S = len(specs), setup.seeds
    seed_of = torch.tensor([sp.seed for sp in specs])
    if bool(((seed_of < 0) | (seed_of >= S)).any()):
        raise ValueError(f"StudentSpec.seed must lie in [0, {S}), got {seed_of.tolist()}")
    base = EnsembleMLP(
        S, setup.n, setup.student_width, 2, generator=torch.Generator().manual_seed(_data_seed(setup, 3))
    )
    model = EnsembleMLP(E, setup.n, setup.student_width, 2)
    with torch.no_grad():
        for p, q in zip(model.parameters(), base.parameters(), strict=True):
            p.copy_(q[seed_of])
    x_eval, y_eval = eval_set(setup)
    temps = sorted({sp.temperature for sp in specs})
    eval_steps: list[int] = []
    curves: list[np.ndarray] = []
    reached = np.zeros(E, dtype=bool)
    # the distinct teachers of the current step's targets, recomputed only when some member moves on
    current: dict[str, Any] = {"key": None}

    def teacher_weights(key: tuple[int, ...]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        if key != current["key"]:
            assert teachers is not None, "a distillation schedule needs teachers"
            # members that share (checkpoint, seed) see the same batch: run each distinct teacher once
            pairs = sorted({(max(i, 0), sp.seed) for i, sp in zip(key, specs, strict=True)})
            ck = torch.tensor([c for c, _ in pairs])
            sd = torch.tensor([s for _, s in pairs])
            back = torch.tensor([pairs.index((max(i, 0), sp.seed)) for i, sp in zip(key, specs, strict=True)])
            w = (
                teachers.weight1[ck, sd],
                teachers.bias1[ck, sd],
                teachers.weight2[ck, sd],
                teachers.bias2[ck, sd],
            )
            current.update(key=key, w=w, sd=sd, back=back)
        return current["w"], current["sd"], current["back"]

    def get_batch(step: int, micro: int) -> dict[str, torch.Tensor]:
        """Batch `step` with every member's target: its labels, or its teacher checkpoint's logits."""
        x_s, y_s = _batches(setup, stream=4, members=S, step=step)  # (S, B, W), (S, B)
        x, y = x_s[seed_of], y_s[seed_of]  # (E, B, W), (E, B)
        idx = [sp.schedule(step) for sp in specs]
        is_label = torch.tensor([i is None for i in idx])
        if bool(is_label.all()):
            t_logits = torch.zeros(E, setup.batch, 2)
        else:
            w, sd, back = teacher_weights(tuple(-1 if i is None else i for i in idx))
            with torch.no_grad():
                t_logits = ensemble_mlp(x_s[sd], *w)[back]  # (U, B, 2) distinct teachers -> (E, B, 2)
        return {
            "x": _rows_first(x),
            "y": _rows_first(y),
            "teacher": _rows_first(t_logits),
            "is_label": is_label.expand(setup.batch, E),  # (B, E): a row dimension for train() to shard
        }

    def loss_fn(net: EnsembleMLP, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x, y, t_logits = (_members_first(batch[k]) for k in ("x", "y", "teacher"))
        is_label = batch["is_label"][0].tolist()
        logits = net(x)  # (E, B, 2)
        loss = logits.new_zeros(())
        if any(is_label):
            rows = torch.tensor([e for e in range(E) if is_label[e]])
            loss = loss + cross_entropy_loss(logits[rows], y[rows]).sum()
        if not all(is_label):
            for tau in temps:
                rows_l = [e for e in range(E) if not is_label[e] and specs[e].temperature == tau]
                if rows_l:
                    rows = torch.tensor(rows_l)
                    loss = loss + distillation_loss(logits[rows], t_logits[rows], tau).sum()
        return loss

    def evaluate(step: int, m: EnsembleMLP) -> bool:
        """Record held-out accuracy at `step`; True once every member has reached the target."""
        with torch.no_grad():
            acc = accuracy(m(x_eval), y_eval).numpy().astype(float)  # (E,)
        eval_steps.append(step)
        curves.append(acc)
        reached[:] = reached | (acc >= (stop_when_all_reach or 2.0))
        return stop_when_all_reach is not None and bool(reached.all())

    def on_step(info: StepInfo) -> None:
        if info.step % setup.eval_every == 0 or info.step == steps:
            info.stop = evaluate(info.step, info.model)

    if not evaluate(0, model):
        cfg = _sgd(setup, steps, log_every=setup.eval_every)
        train(model, loss_fn, get_batch, cfg, callbacks=[on_step], progress=False)
    curve = np.stack(curves, axis=1)  # (E, evals)
    return {
        "names": [sp.name for sp in specs],
        "seeds": seed_of.tolist(),
        "eval_steps": eval_steps,
        "accuracy": curve.tolist(),
        "steps_to_target": steps_to_target(eval_steps, curve),
    }


def steps_to_target(eval_steps: Sequence[int], curve: np.ndarray, target: float = TARGET_ACCURACY) -> list:
    """Per row of curve [E, evals], the first eval step with accuracy >= target (None: never)."""
    out: list[float | None] = []
    for row in np.asarray(curve):
        hit = np.nonzero(row >= target)[0]
        out.append(float(eval_steps[hit[0]]) if hit.size else None)
    return out


def censored_median(values: Sequence[float | None], budget: float) -> float:
    """Median with failures (None / NaN) counted at the budget: an upper... a value that never flatters a
    method that failed (its true time is at least the budget)."""
    v = [budget if (x is None or not math.isfinite(x)) else x for x in values]
    return float(np.median(v))
