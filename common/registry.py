"""Discovery of papers (papers/<key>/__init__.py: PAPER) and theory checks (proofs_checks/*.py: CHECKS).

Papers not yet implemented are listed in papers/planned.py and shown as "planned", never hidden.
"""

from __future__ import annotations

import importlib
import pkgutil

from common.configs import ConfigError
from common.experiment import Check, Paper


def papers(include_planned: bool = True) -> list[Paper]:
    """Every registered paper, implemented first (alphabetical), then planned ones."""
    import papers as papers_pkg
    from papers.planned import PLANNED

    implemented = []
    for info in pkgutil.iter_modules(papers_pkg.__path__):
        if info.ispkg:
            module = importlib.import_module(f"papers.{info.name}")
            implemented.append(module.PAPER)
    implemented.sort(key=lambda p: p.key)
    keys = {p.key for p in implemented}
    planned = [p for p in PLANNED if p.key not in keys] if include_planned else []
    return implemented + planned


def paper(key: str) -> Paper:
    """The paper with this key, or a ConfigError listing the valid keys."""
    everything = papers()
    for p in everything:
        if p.key == key:
            return p
    valid = ", ".join(p.key for p in everything)
    raise ConfigError(f"unknown paper {key!r}; valid papers: {valid}")


def checks() -> list[Check]:
    """Every theory check in proofs_checks/, in module order."""
    import proofs_checks

    found: list[Check] = []
    for info in sorted(pkgutil.iter_modules(proofs_checks.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"proofs_checks.{info.name}")
        found.extend(getattr(module, "CHECKS", ()))
    return found


def check(name: str) -> Check:
    everything = checks()
    for c in everything:
        if c.name == name:
            return c
    valid = ", ".join(c.name for c in everything)
    raise ConfigError(f"unknown check {name!r}; valid checks: {valid}")
