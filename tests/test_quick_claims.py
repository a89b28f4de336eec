"""Every paper's figures at quick scale: the claims each figure lists in `asserted_at_quick` must pass (each
module says why they are robust there; `tests/quick_claims_over_seeds.py` measures the margins over
seeds), every other claim must at least be measured, every listed file must exist, and a rerun is skipped.

The figures of one paper share one results directory, so their shared artifacts (base models, teachers,
gradient datastores) are built once, as in `companion reproduce <paper>`.
"""

from __future__ import annotations

import math

import pytest

from common import registry
from common.configs import Scale
from common.experiment import load_done, run_figure
from tests.conftest import failed_lines

FIGURES = [
    pytest.param(paper, fig, id=f"{paper.key}/{fig.name}")
    for paper in registry.papers(include_planned=False)
    for fig in paper.figures()
    if fig.asserted_at_quick
]


@pytest.fixture(scope="module")
def results_by_paper(tmp_path_factory):
    dirs: dict[str, object] = {}

    def results_for(key: str):
        if key not in dirs:
            dirs[key] = tmp_path_factory.mktemp(f"quick-{key}")
        return dirs[key]

    return results_for


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize(("paper", "fig"), FIGURES)
def test_quick_figure_asserted_claims_pass(paper, fig, results_by_paper):
    results = results_by_paper(paper.key)
    result = run_figure(paper, fig, Scale.QUICK, results=results, show_progress=False)
    claims = {c.id: c for c in result.claims}
    missing = set(fig.asserted_at_quick) - set(claims)
    assert not missing, f"asserted claims not measured: {sorted(missing)}"
    failed = failed_lines([claims[k] for k in fig.asserted_at_quick])
    assert not failed, "\n".join(failed)
    for claim in claims.values():
        assert math.isfinite(claim.measured), claim.line()
    done = load_done(result.out_dir)
    assert done is not None and all((result.out_dir / f).exists() for f in done["files"])
    again = run_figure(paper, fig, Scale.QUICK, results=results, show_progress=False)
    assert again.skipped and [c.measured for c in again.claims] == [c.measured for c in result.claims]


def test_every_paper_asserts_some_quick_claim():
    for paper in registry.papers(include_planned=False):
        assert any(fig.asserted_at_quick for fig in paper.figures()), paper.key
