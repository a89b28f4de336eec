"""The census of the five implemented papers' checkable results (`RESULTS` in proofs_checks/<paper>.py):
every theory check cites a listed result, every listed result names existing checks or says why none, and
every check has a negative control (`CONTROLS`) that passes, i.e. the check's test rejected a wrong formula or
a parameter outside the statement. `companion verify` prints the census per paper."""

from __future__ import annotations

import json

import pytest

from common import registry
from common.claims import negative_control
from common.report import census_line, theory_census
from proofs_checks import (
    less,
    likelihood_displacement,
    momentum_sde,
    progressive_distillation,
    ranking_accuracy,
)
from tests.conftest import failed_lines

MODULES = (less, likelihood_displacement, momentum_sde, progressive_distillation, ranking_accuracy)
ALL_CHECKS = [pytest.param(m, c, id=c.name) for m in MODULES for c in m.CHECKS]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.PAPER)
def test_every_result_names_existing_checks_or_a_reason(module):
    names = {c.name for c in module.CHECKS}
    ids = [r["id"] for r in module.RESULTS]
    assert len(ids) == len(set(ids)), f"duplicate result ids: {ids}"
    for r in module.RESULTS:
        assert r["statement"] and r["source"] and r["refs"], r["id"]
        assert set(r["checks"]) <= names, (r["id"], set(r["checks"]) - names)
        if not r["checks"]:
            assert r.get("why_not"), f"{r['id']} names no check and no reason"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.PAPER)
def test_every_check_cites_a_result_that_lists_it(module):
    for check in module.CHECKS:
        listing = [r for r in module.RESULTS if check.name in r["checks"]]
        assert listing, f"{check.name} is in no result of the census"
        assert any(ref in check.statement_ref for r in listing for ref in r["refs"]), (
            f"{check.name}: statement_ref {check.statement_ref!r} names none of {[r['id'] for r in listing]}"
        )


def test_census_counts():
    census = theory_census()
    counts = {m.PAPER: (census[m.PAPER]["covered"], census[m.PAPER]["admitting"]) for m in MODULES}
    assert counts == {
        "less": (4, 5),
        "likelihood_displacement": (7, 7),
        "momentum": (5, 5),
        "progressive_distillation": (3, 3),
        "ranking_accuracy": (7, 7),
    }
    assert "5 of 5" in census_line(census["momentum"])


@pytest.mark.parametrize(("module", "check"), ALL_CHECKS)
def test_every_check_has_a_negative_control_that_passes(module, check):
    assert check.name in module.CONTROLS, f"{check.name} has no negative control"
    controls = module.CONTROLS[check.name]()
    assert controls and all(c.kind == "sanity" for c in controls), check.name
    assert not failed_lines(controls), "\n".join(failed_lines(controls))


def test_a_control_can_fail():
    """The control helper reports failure when the check did not reject the wrong input."""
    assert not negative_control("x", "accepted", False, "").passed


def test_verify_prints_the_census(tmp_path, capfd):
    from common import cli

    code = cli.main(["verify", "momentum_svag", "--json", "--out", str(tmp_path)])
    doc = json.loads(capfd.readouterr().out)
    assert code == 0 and doc["census"] == {"momentum": {"covered": 5, "admitting": 5}}
    assert {c.paper for c in registry.checks()} >= {m.PAPER for m in MODULES}
