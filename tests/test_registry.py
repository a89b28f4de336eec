"""Paper metadata lives in one place: every paper is registered once (its package, or papers/planned.py
while it has none), every `fig_*.py` module of a paper is one of its figures, and the README's paper
table matches the registry."""

from __future__ import annotations

import re
from pathlib import Path

from common import registry
from papers.planned import PLANNED

REPO = Path(__file__).resolve().parent.parent


def test_planned_papers_have_no_package_and_packages_are_not_planned():
    implemented = {p.key for p in registry.papers(include_planned=False)}
    planned = [p.key for p in PLANNED]
    assert len(planned) == len(set(planned))
    assert not implemented & set(planned), "metadata of an implemented paper is repeated in planned.py"
    assert all(p.status == "planned" for p in PLANNED)
    assert len(implemented) + len(planned) == 10


def test_every_figure_module_is_registered():
    for paper in registry.papers(include_planned=False):
        folder = REPO / "papers" / paper.key
        on_disk = {f"papers.{paper.key}.{p.stem}" for p in folder.glob("fig_*.py")}
        assert set(paper.figure_modules) == on_disk, paper.key
        names = [fig.name for fig in paper.figures()]
        assert len(names) == len(set(names)), f"{paper.key}: two figures share a name"


def test_readme_paper_table_matches_the_registry():
    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        match = re.match(r"\| `(\w+)` \| (.*?) \| (.*) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    papers = registry.papers()
    assert set(rows) == {p.key for p in papers}
    for paper in papers:
        cell, status = rows[paper.key]
        assert f"{paper.title}. {paper.venue}" in cell, (paper.key, cell)
        assert cell.startswith(paper.authors.split(",")[0]), (paper.key, cell)
        assert status.split(":")[0].split(",")[0] == paper.status, (paper.key, status)
        if paper.status == "implemented":
            assert (
                f"papers/{paper.key}/README.md" in status
                and (REPO / "papers" / paper.key / "README.md").exists()
            )
