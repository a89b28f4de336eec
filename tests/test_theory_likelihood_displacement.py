"""The new theory checks of proofs_checks/likelihood_displacement.py pass, and each rejects its negative
control: a perturbed formula or a setting outside the statement (Razin et al. 2025, Theorems 4-6 of App. D,
Proposition 1 of App. E.1, the fixed-embedding case of App. F.1)."""

from __future__ import annotations

import pytest

from proofs_checks import likelihood_displacement as checks
from tests.conftest import failed_lines

_CHECKS = {c.name: c for c in checks.CHECKS}
NEW = (
    "likelihood_displacement_paper_statements",
    "likelihood_displacement_fixed_hidden",
    "likelihood_displacement_theorem6_full",
    "likelihood_displacement_sft_term",
)


@pytest.mark.parametrize("name", NEW)
def test_new_checks_pass(name):
    claims = _CHECKS[name].verify()
    assert claims and not failed_lines(claims), failed_lines(claims)


def test_theorems_4_5_controls():
    exact = checks.paper_statement_errors(n=15)
    assert exact["thm4"] < 1e-10 and exact["thm5"] < 1e-10 and exact["min_m"] >= 0
    # Control: Theorem 4 with the sign of the <W+, W-> term flipped, Theorem 5 with (pi+ - pi-)||h||^2.
    assert checks.paper_statement_errors(n=15, sign_ww=-1.0)["thm4"] > 1e-2
    assert checks.paper_statement_errors(n=15, sign_h=-1.0)["thm5"] > 1e-2


def test_fixed_hidden_control():
    assert checks.fixed_hidden_rates("W", n=100)["min_rate"] >= 0.0
    # Control: with the hidden embedding trainable (only h, or h and W) the same kind of instances displace.
    assert checks.fixed_hidden_rates("h", n=100)["min_rate"] < 0.0
    assert checks.fixed_hidden_rates("hW", n=100)["min_rate"] < 0.0


def test_theorem6_control():
    err, max_alpha = checks.theorem6_error(n=10)
    assert err < 1e-10 and max_alpha <= 2.0
    # Control: the unembedding part alone (no hidden-state terms m + S) does not give the rate.
    err_w_only, _ = checks.theorem6_error(n=10, hidden_terms=False)
    assert err_w_only > 1e-2


def test_sft_term_controls():
    assert checks.sft_term_errors(n=6)["error"] < 1e-10
    # Control (perturbed formula): half the SFT term.
    assert checks.sft_term_errors(n=6, factor=0.5)["error"] > 1e-2
    # Control (outside lambda > 0): a negative coefficient lowers the rate.
    assert checks.sft_term_errors(lams=(-0.5,), n=6)["min_gain"] < 0.0
