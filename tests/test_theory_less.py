"""The new theory checks of proofs_checks/less.py pass, and each rejects its negative control: the official
code's Adam direction or a step with weight decay (Gamma = -Delta theta / eta), the plain gradient in the
first-order influence estimate (residual O(eta), not O(eta^2)), and a projector with only 16 independent
directions (no 1/sqrt(d) decay)."""

from __future__ import annotations

import numpy as np
import pytest

from proofs_checks import less as theory
from tests.conftest import failed_lines

_CHECKS = {c.name: c for c in theory.CHECKS}


@pytest.mark.parametrize("name", ("less_adamw_step", "less_influence_residual", "less_projection_rate"))
def test_new_checks_pass(name):
    claims = _CHECKS[name].verify()
    assert claims and not failed_lines(claims), failed_lines(claims)


def test_adamw_gamma_controls():
    assert theory.adamw_gamma_errors()["gamma"] < 1e-10
    # Control: the official code's m' / sqrt(v' + eps) (no bias correction) is not the step AdamW takes.
    official = theory.adamw_gamma_errors("official")
    assert official["gamma"] > 0.1 and official["kernel"] > 0.1, official
    # Control (outside the statement: LESS warms up without weight decay): decoupled weight decay adds
    # -lr * wd * theta to the step.
    assert theory.adamw_gamma_errors(weight_decay=0.1)["gamma"] > 1e-3


def _slope(direction: str) -> float:
    r = theory.influence_residuals(direction)
    return float(np.polyfit(np.log(r["etas"]), np.log(r["residuals"]), 1)[0])


def test_influence_residual_controls():
    assert _slope("adam") > 1.9
    # Control: TracIn's SGD direction, or the official unscaled Adam direction, in the first-order term
    # leaves an O(eta) residual, which the check's slope >= 1.8 rejects.
    assert _slope("sgd") < 1.2
    assert _slope("official") < 1.2


def test_projection_rate_control():
    keyed = theory.jl_errors()
    assert abs(keyed["slope"] + 0.5) <= 0.1
    # A check of the rate 1/d (slope -1) would reject the measurement: the rate is 1/sqrt(d).
    assert abs(keyed["slope"] + 1.0) > 0.3
    # Control: a projector with 16 independent directions tiled to d columns does not improve with d.
    tiled = theory.jl_errors("tiled")
    assert abs(tiled["slope"] + 0.5) > 0.3, tiled["slope"]
    assert max(abs(r - 1) for r in tiled["ratio"]) > 0.15
