"""Figure 1 (left panel of the paper's overview figure): progressive distillation accelerates a small
student on sparse parity.

Paper: Panigrahi et al. 2025, Fig. 1 / `figures/overview_acc.png` (MLP, n = 100, k = 6, teacher width 50k,
student width 1000, SGD batch 1): the teacher and the progressive student jump from 0.5 to 1.0 together near
1e7 steps; one-shot distillation from the final teacher stays at 0.5 through 2e7 steps; cross-entropy on the
labels starts rising only near 1.8e7. Ours: n = 30, k = 6, teacher width 2000, student width 50, batch 32,
lr 0.1 (reference notes section 3.4, where this setting was found), students on labels, one-shot from the
final teacher (tau = 1 and tau = 0), and progressive in lockstep (checkpoint at or after the student's step,
refreshed every 250 steps; tau = 1 and tau = 0 = the teacher's argmax, the paper's tau = 1e-20).

Cost (2 cores shared): default (3 seeds, 20k teacher steps, up to 24k student steps): see README; quick
(1 seed, n = 30, k = 5, 6k teacher / 14k student steps) 45 s unloaded, 150 s beside another job (load ~4),
teacher included; the ensemble ops' per-step overhead (2-5 ms a student step) dominates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Positive, Scale
from common.experiment import Figure, RunContext
from common.plotting import band, new_figure, save
from papers.progressive_distillation.parity import (
    TARGET_ACCURACY,
    ParitySetup,
    StudentSpec,
    censored_median,
    labels_only,
    lockstep,
    one_shot,
    setup_of,
    shared_teachers,
    train_students,
)

METHODS = ("labels", "one-shot tau=1", "one-shot tau=0", "progressive tau=1", "progressive tau=0")


@dataclass(frozen=True)
class Config(ParitySetup):
    student_steps: Count = 24_000  # budget; a student that never reaches 95% counts at this budget
    max_ratio: Positive = (
        0.5  # claims: progressive needs at most this fraction of the steps of labels / one-shot
    )

    def __post_init__(self) -> None:
        self.validate()
        if self.student_steps < self.eval_every:
            raise ConfigError(
                f"student_steps ({self.student_steps}) must be >= eval_every ({self.eval_every})"
            )


CONFIGS = {
    # quick: k = 5 (teacher transition 2250-5000 steps, progressive student ~6k, labels ~19.5k) and
    # a budget of 14k >= 2x the progressive time, so labels / one-shot failing within it still measures <= 0.5
    Scale.QUICK: Config(
        k=5, seeds=1, teacher_steps=6000, student_steps=14_000, eval_every=500, eval_size=2000
    ),
    # default: 20k teacher steps, at 12k one teacher of 3 had not transitioned and one plateaued at 0.92
    Scale.DEFAULT: Config(seeds=3, teacher_steps=20_000, student_steps=24_000),
    Scale.PAPER: Config(
        n=100,
        k=6,
        teacher_width=50_000,
        student_width=1000,
        batch=1,
        lr=0.005,
        teacher_steps=10_000_000,
        ckpt_every=100_000,
        student_steps=20_000_000,
        eval_every=100_000,
        seeds=2,
    ),
}


def specs_for(teachers, seeds: int) -> list[StudentSpec]:
    out = []
    for s in range(seeds):
        out += [
            StudentSpec("labels", s, labels_only()),
            StudentSpec("one-shot tau=1", s, one_shot(teachers), 1.0),
            StudentSpec("one-shot tau=0", s, one_shot(teachers), 0.0),
            StudentSpec("progressive tau=1", s, lockstep(teachers), 1.0),
            StudentSpec("progressive tau=0", s, lockstep(teachers), 0.0),
        ]
    return out


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    setup = setup_of(config)
    teachers = shared_teachers(ctx, setup)
    students = ctx.part(
        "students",
        lambda: train_students(setup, teachers, specs_for(teachers, setup.seeds), config.student_steps),
    )
    return {
        "setup": {
            "n": setup.n,
            "k": setup.k,
            "teacher_width": setup.teacher_width,
            "student_width": setup.student_width,
            "batch": setup.batch,
            "lr": setup.lr,
        },
        "student_steps": config.student_steps,
        "teacher": {
            "steps": teachers.ckpt_steps,
            "accuracy": teachers.accuracy.T.tolist(),
            "steps_to_target": teachers.steps_to(),
        },
        "students": students,
    }


def by_method(data: dict[str, Any]) -> dict[str, list]:
    st = data["students"]
    out: dict[str, list] = {m: [] for m in METHODS}
    for name, v in zip(st["names"], st["steps_to_target"], strict=True):
        out[name].append(v)
    return out


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    budget = float(data["student_steps"])
    per = by_method(data)
    med = {m: censored_median(v, budget) for m, v in per.items()}
    listing = "; ".join(f"{m}: {['fail' if x is None else int(x) for x in v]}" for m, v in per.items())
    teacher = ["fail" if x is None or x != x else int(x) for x in data["teacher"]["steps_to_target"]]
    details = (
        f"steps to 95% per seed (fail = not within {int(budget)}, counted at the budget): {listing}; "
        f"teacher: {teacher}"
    )
    s = data["setup"]
    setup = f"n={s['n']}, k={s['k']}, student width {s['student_width']}"
    prog = med["progressive tau=0"]
    return [
        Claim.check(
            "progressive_distillation.fig1.faster_than_labels",
            f"{setup}: median steps to 95% of progressive (tau=0) over that of training on labels",
            prog / med["labels"],
            "<=",
            config.max_ratio,
            paper_value="n=100: progressive ~1e7 steps; labels only start rising at ~1.8e7 (0.65 at 2e7)",
            details=details,
        ),
        Claim.check(
            "progressive_distillation.fig1.faster_than_one_shot",
            f"{setup}: median steps to 95% of progressive (tau=0) over that of one-shot distillation (tau=0)",
            prog / med["one-shot tau=0"],
            "<=",
            config.max_ratio,
            paper_value="n=100: one-shot stays at 0.5 through 2e7 steps",
            details=details,
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=4.2)
    st = data["students"]
    acc = np.asarray(st["accuracy"], dtype=float)  # (E, evals)
    steps = np.asarray(st["eval_steps"])
    t_acc = np.asarray(data["teacher"]["accuracy"], dtype=float)  # (S, C)
    band(axes[0], data["teacher"]["steps"], t_acc.mean(0), t_acc.std(0), "teacher", color="k", marker=None)
    for m in METHODS:
        rows = [i for i, name in enumerate(st["names"]) if name == m]
        band(axes[0], steps, acc[rows].mean(0), acc[rows].std(0), m, marker=None)
    axes[0].axhline(TARGET_ACCURACY, color="gray", lw=0.8, ls=":")
    s = data["setup"]
    axes[0].set_title(f"sparse parity n={s['n']}, k={s['k']}; student width {s['student_width']}")
    axes[0].set_xlabel("student (teacher) SGD steps")
    axes[0].set_ylabel("held-out accuracy (mean +- std over seeds)")
    axes[0].legend(fontsize=6, loc="upper left")
    per = by_method(data)
    budget = data["student_steps"]
    for j, m in enumerate(METHODS):
        vals = [budget if v is None else v for v in per[m]]
        fails = [v is None for v in per[m]]
        axes[1].scatter([j] * len(vals), vals, c=["C3" if f else "C0" for f in fails], s=14)
    axes[1].axhline(budget, color="C3", lw=0.8, ls="--", label="budget (red: not reached)")
    axes[1].set_xticks(range(len(METHODS)), [m.replace(" ", "\n") for m in METHODS], fontsize=6)
    axes[1].set_ylabel("steps to 95% (per seed)")
    axes[1].legend(fontsize=6)
    return save(fig, out_dir, "parity_acceleration")


FIGURE = Figure(
    name="fig_parity_acceleration",
    title="Sparse parity: progressive distillation vs one-shot vs labels (MLP students)",
    paper_ref="Fig. 1 (overview, MLP panel)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Progressive (tau=0) reaches 95% with the teacher's transition; labels "
    "and one-shot take 2-3x longer "
    "or fail within the budget.",
    threads=1,  # tiny per-step work: threads cost more than they give
    # Nothing asserted at quick: the students train for up to 14k steps (~45 s unloaded, 1-2 min on shared
    # cores), too dear for the test suite that runs every asserted figure, and the quick margin is thin (0.46
    # vs <= 0.5: one seed, failures counted at the budget). The claims are reported, and the tests check
    # their bookkeeping on synthetic runs.
    asserted_at_quick=(),
)
