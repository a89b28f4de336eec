"""Sparse-parity teachers and students for Panigrahi et al. 2025 (arXiv 2410.05464, section 3), on the shared
ensemble-MLP kernels (common/ops/ensemble_mlp.py): every teacher seed, and every (seed, method) student, is
one member of an `EnsembleMLP`, trained with plain SGD at a constant lr on fresh batches (one pass, as in the
official scripts; our batch 32 and lr 0.1 replace their batch 1 and lr 0.005, reference notes section 3.4).

- `train_teachers`: one wide teacher per seed, with checkpoints every `ckpt_every` steps kept in memory.
- `train_students`: students whose target at each step is chosen by a `schedule` per member: the labels
  (cross-entropy), or a teacher checkpoint at a temperature (0 = the teacher's argmax, the paper's
  tau = 1e-20). Progressive distillation in lockstep uses, at student step t, the first checkpoint at or after
  t (the official `ckpt_multiplier` m = 1); one-shot uses the final checkpoint throughout.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_write_with
from common.configs import ConfigError, Count, Index, Positive, config_to_dict
from common.ops.ensemble_mlp import (
    EnsembleMLP,
    accuracy,
    cross_entropy_loss,
    distillation_loss,
    ensemble_mlp,
)
from common.ops.sparse_parity import sample

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


def _teacher_cache_key(setup: ParitySetup) -> str:
    fields = {k: v for k, v in config_to_dict(setup).items() if k not in ("student_width", "eval_every")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def train_teachers(setup: ParitySetup, cache_dir: Path | None = None) -> Teachers:
    """Train one teacher per seed (one ensemble), checkpointing every `ckpt_every` steps.

    With `cache_dir`, the checkpoints are stored as teachers-<hash of the teacher's config>.pt, so figures 1-3
    (and a resumed run) train the same teachers once.
    """
    path = None if cache_dir is None else Path(cache_dir) / f"teachers-{_teacher_cache_key(setup)}.pt"
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        return Teachers(**state)
    S = setup.seeds
    gen = torch.Generator().manual_seed(_data_seed(setup, 1))
    model = EnsembleMLP(S, setup.n, setup.teacher_width, 2, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=setup.lr)
    x_eval, y_eval = eval_set(setup)
    snaps: list[list[torch.Tensor]] = []
    accs: list[np.ndarray] = []
    steps: list[int] = []

    def snapshot(step: int) -> None:
        with torch.no_grad():
            snaps.append(
                [p.detach().clone() for p in (model.weight1, model.bias1, model.weight2, model.bias2)]
            )
            accs.append(accuracy(model(x_eval), y_eval).numpy().astype(float))
        steps.append(step)

    snapshot(0)
    for step in range(setup.teacher_steps):
        x, y = _batches(setup, stream=2, members=S, step=step)
        loss = cross_entropy_loss(model(x), y).sum()  # members are independent: sum = per-member gradients
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % setup.ckpt_every == 0:
            snapshot(step + 1)
    teachers = Teachers(
        ckpt_steps=steps,
        weight1=torch.stack([s[0] for s in snaps]),
        bias1=torch.stack([s[1] for s in snaps]),
        weight2=torch.stack([s[2] for s in snaps]),
        bias2=torch.stack([s[3] for s in snaps]),
        accuracy=np.stack(accs),
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_with(path, lambda h: torch.save(teachers.__dict__, h))
    return teachers


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
    stops early once every member has reached `stop_when_all_reach` held-out accuracy.
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
    opt = torch.optim.SGD(model.parameters(), lr=setup.lr)
    x_eval, y_eval = eval_set(setup)
    temps = sorted({sp.temperature for sp in specs})
    eval_steps: list[int] = []
    curves: list[np.ndarray] = []
    reached = np.zeros(E, dtype=bool)
    cached_idx: tuple[int, ...] | None = None
    w: tuple[torch.Tensor, ...] = ()
    sd = back = torch.zeros(0, dtype=torch.long)
    for step in range(steps + 1):
        if step % setup.eval_every == 0 or step == steps:
            with torch.no_grad():
                acc = accuracy(model(x_eval), y_eval).numpy().astype(float)  # (E,)
            eval_steps.append(step)
            curves.append(acc)
            reached |= acc >= (stop_when_all_reach or 2.0)
            if stop_when_all_reach is not None and reached.all():
                break
        if step == steps:
            break
        x_s, y_s = _batches(setup, stream=4, members=S, step=step)  # (S, B, W), (S, B)
        x, y = x_s[seed_of], y_s[seed_of]  # (E, B, W), (E, B)
        idx = [sp.schedule(step) for sp in specs]
        logits = model(x)  # (E, B, 2)
        loss = logits.new_zeros(())
        is_label = [i is None for i in idx]
        if any(is_label):
            rows = torch.tensor([e for e in range(E) if is_label[e]])
            loss = loss + cross_entropy_loss(logits[rows], y[rows]).sum()
        if not all(is_label):
            assert teachers is not None, "a distillation schedule needs teachers"
            key = tuple(-1 if i is None else i for i in idx)
            if key != cached_idx:  # teacher weights change only when some member moves to a new checkpoint
                # members that share (checkpoint, seed) see the same batch: run each distinct teacher once
                pairs = sorted({(max(i, 0), sp.seed) for i, sp in zip(key, specs, strict=True)})
                ck = torch.tensor([c for c, _ in pairs])
                sd = torch.tensor([s for _, s in pairs])
                back = torch.tensor(
                    [pairs.index((max(i, 0), sp.seed)) for i, sp in zip(key, specs, strict=True)]
                )
                w = (
                    teachers.weight1[ck, sd],
                    teachers.bias1[ck, sd],
                    teachers.weight2[ck, sd],
                    teachers.bias2[ck, sd],
                )
                cached_idx = key
            with torch.no_grad():
                t_logits = ensemble_mlp(x_s[sd], *w)[back]  # (U, B, 2) distinct teachers -> (E, B, 2)
            for tau in temps:
                rows_l = [e for e in range(E) if not is_label[e] and specs[e].temperature == tau]
                if rows_l:
                    rows = torch.tensor(rows_l)
                    loss = loss + distillation_loss(logits[rows], t_logits[rows], tau).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
