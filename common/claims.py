"""A Claim is one of a paper's qualitative statements, measured by running code.

`Claim.check` computes `passed` from the measured value; nothing else may set it. A failed claim is a result,
not an exception: the run goes on and the report shows it red.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Any

COMPARISONS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Claim:
    """One measured statement: `measured <comparison> threshold` decides `passed`.

    `paper_value` quotes what the paper reports (with its scale), so the report can put the two side by side.
    """

    id: str
    statement: str
    measured: float
    comparison: str
    threshold: float
    passed: bool
    paper_value: str = ""
    details: str = ""

    @classmethod
    def check(
        cls,
        id: str,
        statement: str,
        measured: float,
        comparison: str,
        threshold: float,
        paper_value: str = "",
        details: str = "",
    ) -> Claim:
        """Build a claim; `passed` is computed here. A NaN measurement fails."""
        if comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {sorted(COMPARISONS)}, got {comparison!r}")
        measured = float(measured)
        passed = bool(math.isfinite(measured) and COMPARISONS[comparison](measured, float(threshold)))
        return cls(id, statement, measured, comparison, float(threshold), passed, paper_value, details)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        measured = d["measured"]
        return cls(
            id=d["id"],
            statement=d["statement"],
            measured=float("nan") if measured is None else float(measured),
            comparison=d["comparison"],
            threshold=float(d["threshold"]),
            passed=bool(d["passed"]),
            paper_value=d.get("paper_value", ""),
            details=d.get("details", ""),
        )

    def line(self) -> str:
        """One line for terminals: PASS/FAIL, id, measured vs threshold."""
        mark = "PASS" if self.passed else "FAIL"
        test = f"{self.measured:.4g} {self.comparison} {self.threshold:.4g}"
        return f"[{mark}] {self.id}: {test}  ({self.statement})"
