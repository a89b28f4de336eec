"""The theory checks of proofs_checks/ranking_accuracy.py pass, and each new one rejects its negative control:
a perturbed formula or a parameter outside the statement's range (Chen et al. 2024, Prop. 2.6, Prop. A.7,
Eq. 4, Remark 3.2)."""

from __future__ import annotations

import sympy as sp

from proofs_checks import ranking_accuracy as theory
from tests.conftest import failed_lines

_CHECKS = {c.name: c for c in theory.CHECKS}


def _run(name: str):
    claims = _CHECKS[name].verify()
    assert not failed_lines(claims), failed_lines(claims)
    return {c.id: c for c in claims}


def test_prop_2_6_monotone_and_its_control():
    claims = _run("ranking_accuracy_flip_threshold")
    assert claims["ranking_accuracy.theory.prop_2_6_monotone"].passed
    c = sp.Symbol("c", real=True)
    decreasing, _ = theory.threshold_decreasing(theory._dpo_threshold(c), c)
    assert decreasing
    # Control: with the sign of c flipped (c = log pi_ref(y_w)/pi_ref(y_l), the IPO convention) the
    # threshold increases in c, so the minimum over c <= 0 is not at 0.
    flipped, slope = theory.threshold_decreasing(theory._dpo_threshold(-c), c)
    assert not flipped, slope


def test_ipo_proposition_a7_and_its_controls():
    claims = _run("ranking_accuracy_ipo")
    assert claims["ranking_accuracy.theory.ipo_guarantee"].measured == 0
    # Control (perturbed formula): a margin 1/tau instead of 1/(2 tau) in the threshold admits wrongly
    # ranked models.
    violations, covered = theory.ipo_guarantee_violations(margin_scale=2.0)
    assert covered > 1000 and violations > 100, (violations, covered)
    # Control (outside the range): for c >= -1/(2 tau) the zero-loss model ranks correctly, so the first
    # half's "R = 0" fails there.
    assert theory.ipo_zero_loss_wrong("above") == 0.0
    assert theory.ipo_zero_loss_wrong("below") == 1.0


def test_dpo_gamma_threshold_and_its_control():
    _run("ranking_accuracy_dpo_gamma")
    assert theory.dpo_gamma_mismatches("gamma") == 0
    # Control: Theorem 4.1's unscaled threshold -log sigmoid(beta c) is wrong for L^gamma when gamma != 1.
    assert theory.dpo_gamma_mismatches("one") > 1000


def test_remark_3_2_and_its_control():
    _run("ranking_accuracy_unanimous")
    has_optimum, roots, _ = theory.finite_optimum(sp.Integer(1))
    assert not has_optimum and roots == []
    # Control (alpha < 1, outside the remark): a finite optimum exists and gradient descent converges.
    has_optimum, roots, _ = theory.finite_optimum(sp.Rational(3, 4))
    assert has_optimum and len(roots) == 1
    assert abs(theory.gd_growth_per_decade(0.9, 1.0)) < 0.05
    assert theory.gd_growth_per_decade(1.0, 1.0) > 0.9
