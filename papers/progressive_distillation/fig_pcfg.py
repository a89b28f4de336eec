"""Figure 4 (`figures/overview_acc.png` right and `figures/curr_pcfg.png`): transformers on a PCFG.

Paper (BERT masked LM on the 6-level grammar cfg3b, sentences of ~294 tokens; teacher 4 layers x 32 heads x 8,
student 4 layers x 8 heads x 8; AdamW, 2k-16k steps of 512 sentences): progressive distillation beats
one-shot distillation, which beats cross-entropy on the labels (2k steps: 0.80 / 0.77 / 0.74 top-1), and the
teacher's M_robust for 3-grams (how much its prediction changes when the neighbours of a masked token are
masked too) peaks mid-transition at checkpoint C1 and then decays: the teacher first relies on the local
n-gram, later on the longer context.

Ours: a 4-level cfg3-shaped grammar (`common.data.pcfg.PCFG.random`: 4 symbols per level, 6 terminals,
~45 tokens a sentence), the masked-LM objective with the official 30 % / 80-10-10 masking, GPT blocks run
bidirectionally (`pcfg_mlm.mlm_logits`). One teacher (2 layers, d = 64) and four students (2 layers, d = 32)
on the same batches and the same initialisation: labels; one-shot (argmax of the final teacher); progressive
(argmax of the first checkpoint at teacher step >= `speed` x the student's step, the official speed factor,
from C1 on: the official list of checkpoints starts at 1k steps, mid-transition);
(2, T)-progressive (the mid-transition checkpoint C1 for T = `first_steps` steps, then the final teacher;
C1 = the first checkpoint halfway from the plateau accuracy to the final one). The probe
(`pcfg_mlm.context_reliance`) runs at every teacher checkpoint on `probe_sentences` x `probe_positions`
masked positions.

Claims:
- progressive and (2, T)-progressive students each reach the accuracy the one-shot student ends with in at
  most `max_steps_ratio` of the steps one-shot needs for it;
- the teacher captures the short context before the long one: at C1 it has reached a larger fraction of its
  final short-window information (what the radius-`short_radius` window tells about a masked token,
  ce_close[0] - ce_close[short], nats) than of its final long-context information (what the context beyond
  radius `long_radius` adds, ce_close[long] - ce_base);
- M_robust (`short_radius`) is transient: the final teacher's is <= `max_fall_ratio` x its peak.

Cost (2 cores shared with other jobs): see the README's "Cost".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Positive, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.progressive_distillation.parity import steps_to_target
from papers.progressive_distillation.pcfg_mlm import (
    PCFGSetup,
    labels_only,
    lockstep,
    one_shot,
    setup_of,
    shared_teacher,
    teacher_probe,
    train_student,
    two_shot,
)

METHODS = ("labels", "one-shot", "progressive", "two-shot", "progressive-C0")


@dataclass(frozen=True)
class Config(PCFGSetup):
    probe_sentences: Count = 64
    probe_positions: Count = 4  # probed masked positions per sentence, spread evenly
    short_radius: Count = 1  # the 3-gram window of the official M_robust level 1
    long_radius: Count = 2  # "long" context: everything farther than this from the masked token
    # progressive: checkpoint at teacher step >= speed * student step (official speed_factor)
    speed: Count = 1
    first_steps: Count = 300  # T of (2, T)-progressive: student steps on the mid-transition checkpoint
    max_steps_ratio: Positive = 0.9  # claims: progressive steps / one-shot steps to one-shot's final accuracy
    # claim: final / peak M_robust at short_radius (paper: orders of magnitude)
    max_fall_ratio: Positive = 0.5

    def __post_init__(self) -> None:
        self.validate()
        for name in ("probe_sentences", "probe_positions", "short_radius", "long_radius"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.long_radius < self.short_radius:
            raise ConfigError(
                f"long_radius ({self.long_radius}) must be >= short_radius ({self.short_radius})"
            )
        if self.speed < 1:
            raise ConfigError(f"speed must be >= 1, got {self.speed}")
        if not 0 < self.first_steps < self.student_steps:
            raise ConfigError(
                f"first_steps must lie in (0, student_steps={self.student_steps}), got {self.first_steps}"
            )

    @property
    def radii(self) -> tuple[int, ...]:
        return tuple(sorted({0, self.short_radius, self.long_radius}))


CONFIGS = {
    # quick: exercises every part in ~20 s of CPU; too short for the teacher to leave its plateau, so its
    # claims are reported, not asserted (README)
    Scale.QUICK: Config(
        teacher_embd=32,
        student_embd=16,
        student_heads=2,
        batch=16,
        teacher_steps=200,
        student_steps=200,
        ckpt_every=25,
        eval_every=25,
        eval_sentences=200,
        first_steps=50,
        probe_sentences=32,
        probe_positions=2,
    ),
    # default: the teacher transitions at ~300-700 of 2000 steps (the paper: 0.6k-2k of 8k-16k) and learns the
    # context beyond radius 2 after that; speed 2 takes the progressive student through the teacher's whole
    # run in its 1000 steps
    Scale.DEFAULT: Config(
        teacher_steps=2000, ckpt_every=100, speed=2, eval_sentences=300, probe_sentences=48
    ),
    # paper: cfg3b's shape (6 levels, 3 symbols per level, 3 terminals; drawn, not the official pickle) and
    # the official BERT sizes, batch and step counts
    Scale.PAPER: Config(
        levels=6,
        symbols_per_level=3,
        terminals=3,
        teacher_layers=4,
        teacher_heads=32,
        teacher_embd=256,
        student_layers=4,
        student_heads=8,
        student_embd=64,
        batch=512,
        teacher_steps=8000,
        student_steps=8000,
        ckpt_every=200,
        eval_every=200,
        eval_sentences=2000,
        probe_sentences=500,
    ),
}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    setup = setup_of(config)
    teacher = shared_teacher(ctx, setup)
    candidate = transition_checkpoint(teacher.accuracy)
    schedules = {
        "labels": labels_only(),
        "one-shot": one_shot(teacher),
        "progressive": lockstep(teacher, config.speed, start=candidate),
        "two-shot": two_shot(teacher, candidate, config.first_steps),
        # progressive from the first saved checkpoint (still on the plateau): the start the C1 choice replaced
        "progressive-C0": lockstep(teacher, config.speed, start=1),
    }
    students = {
        name: ctx.part(f"student_{name}", lambda s=schedules[name]: train_student(setup, teacher, s))
        for name in METHODS
    }
    probe = ctx.part(
        "probe",
        lambda: teacher_probe(setup, teacher, config.radii, config.probe_sentences, config.probe_positions),
    )
    return {
        "setup": {
            "levels": setup.levels,
            "teacher_embd": setup.teacher_embd,
            "student_embd": setup.student_embd,
            "student_steps": setup.student_steps,
            "speed": config.speed,
            "first_steps": config.first_steps,
        },
        "candidate": {"index": candidate, "step": teacher.ckpt_steps[candidate]},
        "teacher": {"steps": teacher.ckpt_steps, "loss": teacher.loss, "accuracy": teacher.accuracy},
        "students": students,
        "probe": probe,
    }


def transition_checkpoint(accuracy: list[float]) -> int:
    """The mid-transition checkpoint (the paper's C1): the first checkpoint whose held-out accuracy is at
    least halfway from the plateau (the accuracy at the first checkpoint after initialisation) to the final
    accuracy."""
    if len(accuracy) < 3:
        raise ConfigError("the teacher needs at least 2 checkpoints after initialisation")
    plateau, final = accuracy[1], accuracy[-1]
    mid = plateau + 0.5 * (final - plateau)
    return next(i for i in range(1, len(accuracy)) if accuracy[i] >= mid)


def speed_stats(data: dict[str, Any]) -> dict[str, Any]:
    """The target (one-shot's final accuracy) and each student's first eval step reaching it."""
    st = data["students"]
    target = float(st["one-shot"]["accuracy"][-1])
    reach = {m: steps_to_target(st[m]["steps"], [st[m]["accuracy"]], target)[0] for m in METHODS}
    return {"target": target, "reach": reach}


FINAL_CHECKPOINTS = 3  # the converged teacher's level: the mean over its last checkpoints (probe noise)


def curriculum_stats(data: dict[str, Any], short_radius: int, long_radius: int) -> dict[str, Any]:
    """The short-window (radius `short_radius`) and long-context (beyond `long_radius`) information curves
    over teacher checkpoints; the fraction of its final level (mean of the last `FINAL_CHECKPOINTS`) each has
    reached at C1; and, for the record, their half-rise steps (first checkpoint at >= half the curve's
    maximum)."""
    pr = data["probe"]
    radii = pr["radii"]
    ce_close = np.asarray(pr["ce_close"], dtype=float)  # (C, R)
    ce_base = np.asarray(pr["ce_base"], dtype=float)  # (C,)
    short = ce_close[:, radii.index(0)] - ce_close[:, radii.index(short_radius)]
    long = ce_close[:, radii.index(long_radius)] - ce_base
    steps = data["teacher"]["steps"]
    half = {
        name: steps_to_target(steps, [curve], 0.5 * float(curve.max()))[0]
        for name, curve in (("short", short), ("long", long))
    }
    c1 = data["candidate"]["index"]
    final = {
        "short": float(short[-FINAL_CHECKPOINTS:].mean()),
        "long": float(long[-FINAL_CHECKPOINTS:].mean()),
    }
    # NaN (the claim fails) when the final teacher has not learned to use that context at all
    frac = {
        name: float(curve[c1] / final[name]) if final[name] > 0 else float("nan")
        for name, curve in (("short", short), ("long", long))
    }
    return {"short": short.tolist(), "long": long.tolist(), "half_rise": half, "at_c1": frac, "final": final}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    sp = speed_stats(data)
    budget = float(data["setup"]["student_steps"])
    reach = {m: budget if v is None else v for m, v in sp["reach"].items()}
    finals = {m: data["students"][m]["accuracy"][-1] for m in METHODS}
    cand = data["candidate"]
    det = (
        f"target = one-shot's final accuracy {sp['target']:.3f}; first eval step reaching it (never = not "
        f"within {int(budget)}, counted at the budget): "
        + ", ".join(f"{m} {'never' if sp['reach'][m] is None else int(sp['reach'][m])}" for m in METHODS)
        + "; final accuracy: "
        + ", ".join(f"{m} {finals[m]:.3f}" for m in METHODS)
        + f"; teacher final {data['teacher']['accuracy'][-1]:.3f}; two-shot candidate: teacher step "
        f"{cand['step']} (accuracy {data['teacher']['accuracy'][cand['index']]:.3f}) for "
        f"T={data['setup']['first_steps']} steps; progressive speed {data['setup']['speed']}"
    )
    levels = data["setup"]["levels"]
    out = []
    for method, what, paper in (
        (
            "progressive",
            "progressive student (every teacher checkpoint in turn)",
            "cfg3b, BERT: top-1 progressive 0.80 > one-shot 0.77 > labels 0.74 at 2k steps; 0.96 > 0.95 > "
            "0.925 at 16k",
        ),
        (
            "two-shot",
            "(2,T)-progressive student (the mid-transition checkpoint, then the final teacher)",
            "cfg3b, curr_pcfg.png: (2,T)-progressive from C1 (mid-transition) ~0.92 vs one-shot ~0.87-0.88",
        ),
        (
            "progressive-C0",
            "progressive student started at the first saved checkpoint C0 (plateau) instead of C1",
            "the official checkpoint list starts at 1k steps (C1); our C1 start was chosen after a C0 run "
            "came out red, so C0 is reported too",
        ),
    ):
        out.append(
            Claim.check(
                f"progressive_distillation.fig4.{method.replace('-', '_')}_faster_than_one_shot",
                f"{levels}-level PCFG, masked LM: steps for the {what} to reach the one-shot student's final "
                "accuracy, over the steps one-shot needs",
                reach[method] / max(reach["one-shot"], 1.0),
                "<=",
                config.max_steps_ratio,
                paper_value=paper,
                details=det,
            )
        )
    out.append(
        Claim.check(
            "progressive_distillation.fig4.one_shot_beats_labels",
            f"{levels}-level PCFG, masked LM: final top-1 accuracy of the one-shot student minus that of the "
            "student trained on the labels (same batches, same initialisation)",
            finals["one-shot"] - finals["labels"],
            ">",
            0.0,
            paper_value="cfg3b, BERT, 2k steps: one-shot 0.77 > labels 0.74 top-1",
            paper_number=0.03,
            paper_unit="top-1 accuracy",
            paper_source="Fig. 1 right (overview_acc.png)",
            details=det,
        )
    )
    cur = curriculum_stats(data, config.short_radius, config.long_radius)
    hs, hl = cur["half_rise"]["short"], cur["half_rise"]["long"]
    fs, fl = cur["at_c1"]["short"], cur["at_c1"]["long"]
    det2 = (
        f"at C1 (teacher step {cand['step']}) the teacher has {fs:.2f} of its final short-window (radius "
        f"{config.short_radius}) information and {fl:.2f} of its final information from beyond radius "
        f"{config.long_radius} (final = mean of the last {FINAL_CHECKPOINTS} checkpoints: "
        f"{cur['final']['short']:.3f} and {cur['final']['long']:.3f} nats); half-rise steps: short {hs}, "
        f"long {hl}; {config.probe_sentences}x{config.probe_positions} probed positions"
    )
    out.append(
        Claim.check(
            "progressive_distillation.fig4.short_context_first",
            f"{levels}-level PCFG: at the intermediate checkpoint C1, the fraction of the teacher's final "
            "long-context information over the fraction of its final short-window information",
            fl / fs if fs > 0 else float("nan"),  # NaN propagates from an unlearned context
            "<",
            1.0,
            paper_value="our own measure (the paper has none like it): cfg3b's M_robust (3-gram) peaks at C1 "
            "~1k steps mid-transition, then decays",
            details=det2
            + (
                ""
                if fs > 0 and np.isfinite(fl)
                else "; NOT MEASURABLE at this scale: the teacher has no short-window information at C1 "
                "(or none at the end), so the ratio is undefined and the claim fails"
            ),
        )
    )
    robust = np.asarray(data["probe"]["robust"], dtype=float)[
        :, data["probe"]["radii"].index(config.short_radius)
    ]
    peak = int(robust.argmax())
    steps = data["teacher"]["steps"]
    out.append(
        Claim.check(
            "progressive_distillation.fig4.m_robust_transient",
            f"{levels}-level PCFG: the teacher's final M_robust "
            f"({2 * config.short_radius + 1}-gram) over its peak",
            float(robust[-1] / robust[peak]) if robust[peak] > 0 else float("nan"),
            "<=",
            config.max_fall_ratio,
            paper_value="cfg3b: M_robust (3-gram) ~0.4-0.5 at C1 ~1k steps, then decays by orders of "
            "magnitude",
            details=f"M_robust peak {robust[peak]:.3f} at teacher step {steps[peak]} (accuracy "
            f"{data['teacher']['accuracy'][peak]:.3f}), final {robust[-1]:.3f} at step {steps[-1]}",
        )
    )
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=3, width=3.6)
    t = data["teacher"]
    axes[0].plot(t["steps"], t["accuracy"], color="k", label="teacher")
    for m, color in zip(METHODS, ("C7", "C0", "C1", "C2", "C4"), strict=True):
        s = data["students"][m]
        axes[0].plot(s["steps"], s["accuracy"], color=color, label=m)
    sp = speed_stats(data)
    axes[0].axhline(sp["target"], color="C0", lw=0.8, ls=":")
    axes[0].axvline(data["candidate"]["step"], color="C2", lw=0.8, ls=":")
    axes[0].set_xlabel("steps")
    axes[0].set_ylabel("masked-token top-1 accuracy")
    axes[0].set_title("students (dotted: one-shot final; C1)")
    axes[0].set_ylim(max(0.0, min(t["accuracy"][1:] + [0.4]) - 0.05), None)
    axes[0].legend(fontsize=7)
    pr = data["probe"]
    robust = np.asarray(pr["robust"])  # (C, R)
    for j, r in enumerate(pr["radii"]):
        if r > 0:
            axes[1].plot(t["steps"], robust[:, j], label=f"M_robust, radius {r} ({2 * r + 1}-gram)")
    axes[1].set_xlabel("teacher step")
    axes[1].set_ylabel("median L1 change of the prediction")
    axes[1].set_title("teacher: masking the neighbours")
    radii = [r for r in pr["radii"] if r > 0]  # Config.radii: 0, short_radius <= long_radius
    stats = curriculum_stats(data, min(radii), max(radii))
    cur = {k: np.asarray(stats[k]) for k in ("short", "long")}
    axes[2].plot(t["steps"], cur["short"], color="C2", label="from the short window")
    axes[2].plot(t["steps"], cur["long"], color="C3", label="from the context beyond")
    for ax in axes[1:]:
        ax.axvline(data["candidate"]["step"], color="C2", lw=0.8, ls=":", label="C1")
        ax.legend(fontsize=7)
    axes[2].set_xlabel("teacher step")
    axes[2].set_ylabel("information (nats)")
    axes[2].set_title("what the teacher uses, over training")
    return save(fig, out_dir, "pcfg")


FIGURE = Figure(
    name="fig_pcfg",
    title="Transformers on a PCFG: progressive vs one-shot distillation, and the teacher's n-gram curriculum",
    paper_ref="Fig. 1 right (overview_acc.png) and curr_pcfg.png (M_robust)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="The progressive student reaches one-shot's final accuracy early; the teacher's short-window "
    "information rises before its long-context information.",
    threads=1,  # small models: threads cost more than they give
    # Nothing asserted at quick: the 200-step quick teacher never leaves the unigram plateau, so every claim
    # is red there (README); the tests run the quick figure and check that each claim is measured.
    asserted_at_quick=(),
)
