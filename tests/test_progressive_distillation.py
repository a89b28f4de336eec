"""Progressive distillation (Panigrahi et al., ICLR 2025): the exact-enumeration gradient check, the quick
figures (claims that hold robustly at quick scale), config validation and the distillation schedules."""

from __future__ import annotations

import pytest

from common.configs import ConfigError, Scale, apply_overrides
from common.experiment import load_done, run_figure
from papers.progressive_distillation import (
    PAPER,
    fig_checkpoint_selection,
    fig_implicit_curriculum,
    fig_parity_acceleration,
)
from papers.progressive_distillation.parity import (
    ParitySetup,
    StudentSpec,
    censored_median,
    labels_only,
    lockstep,
    one_shot,
    train_students,
    train_teachers,
    two_shot,
)
from proofs_checks import progressive_distillation as check_module

# Claims asserted at quick scale (the others are reported; see README for their measured values). Figures 1
# and 2 train students for 10-14k steps (~1-2 min on 2 shared cores), over budget here, so the test runs
# figure 3 only (which trains the quick teacher) and checks figure 2's bookkeeping on synthetic runs.
ROBUST_AT_QUICK = {
    "progressive_distillation.fig3.falls_back_d1",
    "progressive_distillation.fig3.spike_d2",
    "progressive_distillation.fig3.falls_back_d2",
}


def _failed(claims) -> list[str]:
    return [c.line() + f"  [{c.details}]" for c in claims if not c.passed]


@pytest.mark.parametrize("check", check_module.CHECKS, ids=lambda c: c.name)
def test_population_gradient_check_passes(check):
    claims = check.verify()
    assert len(claims) == 5
    assert not _failed(claims), "\n".join(_failed(claims))


def test_quick_curriculum_figure_and_robust_claims(tmp_path):
    claims = []
    for module in (fig_implicit_curriculum,):
        result = run_figure(PAPER, module.FIGURE, Scale.QUICK, results=tmp_path, show_progress=False)
        done = load_done(result.out_dir)
        assert done is not None and all((result.out_dir / f).exists() for f in done["files"])
        claims += result.claims
    assert {c.id for c in claims} >= ROBUST_AT_QUICK
    robust = [c for c in claims if c.id in ROBUST_AT_QUICK]
    assert not _failed(robust), "\n".join(_failed(robust))
    # the teachers were trained once and shared by both figures
    assert len(list((tmp_path / PAPER.key / "_teachers").glob("teachers-*.pt"))) == 1


def test_invalid_configs_fail_fast():
    cfg = fig_parity_acceleration.CONFIGS[Scale.QUICK]
    with pytest.raises(ConfigError, match="unknown config key"):
        apply_overrides(cfg, ["widht=3"])
    with pytest.raises(ConfigError, match="k must be <= n"):
        apply_overrides(cfg, ["k=40"])
    with pytest.raises(ConfigError, match="multiple of ckpt_every"):
        apply_overrides(cfg, ["teacher_steps=1001"])
    with pytest.raises(ConfigError, match="positive int"):
        apply_overrides(cfg, ["student_width=0"])
    with pytest.raises(ConfigError, match="lr"):
        apply_overrides(cfg, ["lr=-1"])
    with pytest.raises(ConfigError, match="probe_samples"):
        apply_overrides(fig_implicit_curriculum.CONFIGS[Scale.QUICK], ["probe_samples=10"])
    fig2 = fig_checkpoint_selection.CONFIGS[Scale.QUICK]
    with pytest.raises(ConfigError, match="candidate_steps must be multiples"):
        apply_overrides(fig2, ["candidate_steps=2000,2001"])
    with pytest.raises(ConfigError, match="candidate_steps must be multiples"):
        apply_overrides(fig2, [f"candidate_steps={fig2.teacher_steps + fig2.ckpt_every}"])
    with pytest.raises(ConfigError, match="first_steps"):
        apply_overrides(fig2, [f"first_steps={fig2.student_steps}"])
    with pytest.raises(ConfigError, match="before_acc"):
        apply_overrides(fig2, ["before_acc=0.995"])


def test_checkpoint_phases_and_claims_from_synthetic_runs():
    """Figure 2's bookkeeping: phases from the candidate's teacher accuracy, the fastest student per phase
    (failures at the budget), and the during / before and during / after ratios."""
    cfg = fig_checkpoint_selection.CONFIGS[Scale.QUICK]
    data = {
        "n": 30,
        "k": 6,
        "student_width": 50,
        "student_steps": 10_000,
        "first_steps": 2000,
        "candidate_steps": [1000, 2000, 3000, 4000],
        "candidate_accuracy": [[0.5, 0.7, 0.9, 1.0], [0.52, 0.6, 0.99, 1.0]],
        "students": {"steps_to_target": [None, 4000.0, 3000.0, 9000.0, 8000.0, 2000.0, 10_000.0, None]},
    }
    phases = [fig_checkpoint_selection.phase_of(a, cfg) for a in (0.5, 0.7, 0.99)]
    assert phases == ["before", "during", "after"]
    fast = fig_checkpoint_selection.fastest_by_phase(data, cfg)
    assert fast == {"before": [10_000.0, 8000.0], "during": [3000.0, 2000.0], "after": [9000.0, 10_000.0]}
    before, after = fig_checkpoint_selection.claims(data, cfg)
    assert before.measured == pytest.approx((0.3 + 0.25) / 2) and before.passed
    assert after.measured == pytest.approx((3 / 9 + 0.2) / 2) and after.passed


def test_schedules_and_student_pairing():
    setup = ParitySetup(
        n=8,
        k=2,
        teacher_width=16,
        student_width=4,
        teacher_steps=40,
        ckpt_every=10,
        eval_size=64,
        eval_every=5,
        seeds=2,
    )
    teachers = train_teachers(setup)
    assert teachers.ckpt_steps == [0, 10, 20, 30, 40] and teachers.weight1.shape == (5, 2, 8, 16)
    prog, last, two = lockstep(teachers), one_shot(teachers), two_shot(teachers, 2, first_steps=7)
    assert [prog(t) for t in (0, 9, 10, 25, 39, 100)] == [1, 1, 2, 3, 4, 4]  # first checkpoint >= t + 1
    assert {last(t) for t in range(50)} == {4}
    assert [two(t) for t in (0, 6, 7)] == [2, 2, 4]
    assert labels_only()(3) is None
    specs = [
        StudentSpec("a", 0, labels_only()),
        StudentSpec("b", 0, one_shot(teachers), 0.0),
        StudentSpec("c", 1, prog, 1.0),
    ]
    out = train_students(setup, teachers, specs, steps=20, stop_when_all_reach=None)
    assert out["eval_steps"] == [0, 5, 10, 15, 20] and len(out["accuracy"]) == 3
    assert out["accuracy"][0][0] == out["accuracy"][1][0]  # same seed index: same init, same accuracy at 0
    with pytest.raises(ValueError, match="StudentSpec.seed"):
        train_students(setup, teachers, [StudentSpec("x", 5, labels_only())], steps=5)
    assert censored_median([100.0, None, float("nan")], budget=1000) == 1000.0


def test_acceleration_claims_count_failures_at_the_budget():
    """Figure 1's claims from synthetic runs, a teacher that never reached 95% (None after JSON) included."""
    cfg = fig_parity_acceleration.CONFIGS[Scale.QUICK]
    methods = fig_parity_acceleration.METHODS
    steps = {"labels": [None, 9000.0], "one-shot tau=0": [None, None], "progressive tau=0": [3000.0, 5000.0]}
    names = [m for _ in range(2) for m in methods]
    data = {
        "setup": {"n": 30, "k": 5, "student_width": 50},
        "student_steps": 10_000,
        "teacher": {"steps_to_target": [4000.0, None]},
        "students": {
            "names": names,
            "steps_to_target": [steps.get(m, [None, None])[i // 5] for i, m in enumerate(names)],
        },
    }
    labels, one = fig_parity_acceleration.claims(data, cfg)
    assert labels.measured == pytest.approx(4000 / 9500) and labels.passed
    assert one.measured == pytest.approx(0.4) and one.passed
    assert "teacher: [4000, 'fail']" in labels.details
