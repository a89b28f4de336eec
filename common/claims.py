"""A Claim is one of a paper's qualitative statements, measured by running code.

`Claim.check` computes `passed` from the measured value; nothing else may set it. A failed claim is a result,
not an exception: the run goes on and the report shows it red.

Beyond the point estimate a claim may carry (all optional, so every existing call keeps working):

- `kind`: "claim" (a statement of the paper, measured on our runs, that could come out either way) or
  "sanity" (an identity, a property of our own construction, a theorem checked on its own exactly solvable
  model). The report's headline counts kind "claim" only; sanity checks are shown apart.
- `per_seed` values and an `interval` (low, high) around the measurement, computed once with
  `bootstrap_interval(values)` (a statistic over seeds) or `slope_interval(x, y)` (a fitted slope). The
  claim's `state` is "pass" or "fail" by the point estimate, or "unresolved" when the interval straddles the
  threshold (the comparison holds at one end and not at the other). `passed` stays the boolean of the point
  estimate, so code that counts `not c.passed` keeps its meaning.
- The paper's value as a number: `paper_number`, `paper_unit`, `paper_source` (e.g. "Table 2"), beside the
  free-text `paper_value`; the report plots paper vs ours for claims that have one.
"""

from __future__ import annotations

import inspect
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

COMPARISONS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
KINDS = ("claim", "sanity")
STATES = ("pass", "fail", "unresolved")


@dataclass(frozen=True)
class Claim:
    """One measured statement: `measured <comparison> threshold` decides `passed`.

    `paper_value` quotes what the paper reports (with its scale), so the report can put the two side by side;
    `paper_number` / `paper_unit` / `paper_source` give it as a number where the paper has one.
    """

    id: str
    statement: str
    measured: float
    comparison: str
    threshold: float
    passed: bool
    paper_value: str = ""
    details: str = ""
    kind: str = "claim"  # "claim" or "sanity" (see the module docstring)
    per_seed: tuple[float, ...] | None = None  # the measurement on each seed, when it is a statistic of seeds
    interval: tuple[float, float] | None = None  # (low, high) around `measured`, e.g. a 95% bootstrap CI
    paper_number: float | None = None  # the paper's value of the same quantity, when it gives one
    paper_unit: str = ""  # the unit of `measured` and `paper_number` ("%", "x", "nats", ...)
    paper_source: str = ""  # where the paper states it ("Table 2", "Fig. 3", "Sec. 5.1")

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
        *,
        kind: str = "claim",
        per_seed: Sequence[float] | None = None,
        interval: Sequence[float] | None = None,
        paper_number: float | None = None,
        paper_unit: str = "",
        paper_source: str = "",
    ) -> Claim:
        """Build a claim; `passed` is computed here. A NaN measurement fails.

        `interval` is (low, high) with low <= high (compute it with `bootstrap_interval` or
        `slope_interval`); `per_seed` is kept for the record and the report.
        """
        if comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {sorted(COMPARISONS)}, got {comparison!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        measured = float(measured)
        passed = bool(math.isfinite(measured) and COMPARISONS[comparison](measured, float(threshold)))
        return cls(
            id,
            statement,
            measured,
            comparison,
            float(threshold),
            passed,
            paper_value,
            details,
            kind=kind,
            per_seed=_floats(per_seed),
            interval=_interval(interval),
            paper_number=None if paper_number is None else float(paper_number),
            paper_unit=paper_unit,
            paper_source=paper_source,
        )

    @property
    def state(self) -> str:
        """'pass' or 'fail' by the point estimate; 'unresolved' when `interval` straddles the threshold (the
        comparison holds at one of its ends, or at the point, and not at another). NaN measured: 'fail'."""
        if not math.isfinite(self.measured):
            return "fail"
        if self.interval is not None:
            holds = {self._holds(v) for v in (self.interval[0], self.measured, self.interval[1])}
            if len(holds) > 1:
                return "unresolved"
        return "pass" if self.passed else "fail"

    def _holds(self, value: float) -> bool:
        return bool(math.isfinite(value) and COMPARISONS[self.comparison](value, self.threshold))

    def to_dict(self) -> dict[str, Any]:
        """Every field (tuples as lists) and the derived `state` (for readers); `from_dict` inverts it."""
        d = asdict(self)
        d["per_seed"] = None if self.per_seed is None else list(self.per_seed)
        d["interval"] = None if self.interval is None else list(self.interval)
        d["state"] = self.state
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        """Inverse of `to_dict`; records written before the optional fields existed read with their defaults.
        A None number (how strict JSON stores NaN) reads as NaN. `state` is recomputed, never read."""
        return cls(
            id=d["id"],
            statement=d["statement"],
            measured=_float(d["measured"]),
            comparison=d["comparison"],
            threshold=float(d["threshold"]),
            passed=bool(d["passed"]),
            paper_value=d.get("paper_value", ""),
            details=d.get("details", ""),
            kind=d.get("kind", "claim"),
            per_seed=_floats(d.get("per_seed")),
            interval=None if d.get("interval") is None else tuple(_float(v) for v in d["interval"]),
            paper_number=None if d.get("paper_number") is None else float(d["paper_number"]),
            paper_unit=d.get("paper_unit", ""),
            paper_source=d.get("paper_source", ""),
        )

    def line(self) -> str:
        """One line for terminals: PASS/FAIL/UNRESOLVED, id, measured [interval] vs threshold."""
        mark = self.state.upper()
        ci = f" [{self.interval[0]:.4g}, {self.interval[1]:.4g}]" if self.interval is not None else ""
        sanity = " (sanity)" if self.kind == "sanity" else ""
        test = f"{self.measured:.4g}{ci} {self.comparison} {self.threshold:.4g}"
        return f"[{mark}] {self.id}{sanity}: {test}  ({self.statement})"


def negative_control(id: str, statement: str, rejected: bool, details: str = "") -> Claim:
    """A negative control of a theory check: a wrong formula or a parameter outside the statement that the
    check must reject. Kind "sanity"; passes (measured 1.0) iff it was rejected, so it shows the check can
    fail."""
    return Claim.check(
        id,
        f"negative control: {statement}",
        1.0 if rejected else 0.0,
        ">=",
        1.0,
        kind="sanity",
        details=details,
    )


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _floats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(_float(v) for v in np.asarray(values, dtype=object).ravel())


def _interval(interval: Sequence[float] | None) -> tuple[float, float] | None:
    if interval is None:
        return None
    values = tuple(_float(v) for v in interval)
    if len(values) != 2:
        raise ValueError(f"interval must be (low, high), got {interval!r}")
    low, high = values
    if low > high:  # NaN compares False: a NaN end is kept (and makes a passing claim unresolved)
        raise ValueError(f"interval must have low <= high, got ({low:g}, {high:g})")
    return values


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[..., float] = np.mean,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 9999,
) -> tuple[float, float]:
    """A `confidence` bootstrap interval (scipy.stats.bootstrap, BCa; percentile when BCa is degenerate) of
    `statistic` over `values` (one value per seed), seeded so that it gives the same bits every time.

    One value, or values that are all identical, give (v, v): there is no spread to resample. With very
    few seeds (3 to 5) a bootstrap interval is narrower than the truth; say so in the claim's details.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    if x.size == 1 or (np.all(np.isfinite(x)) and np.all(x == x[0])):
        v = float(statistic(x))
        return v, v
    if not np.all(np.isfinite(x)):
        return float("nan"), float("nan")
    seed_arg = (
        {"rng": np.random.default_rng(seed)}
        if "rng" in inspect.signature(stats.bootstrap).parameters
        else {"random_state": np.random.default_rng(seed)}
    )
    low = high = float("nan")
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the fallback below
            result = stats.bootstrap(
                (x,),
                statistic,
                confidence_level=confidence,
                n_resamples=n_resamples,
                method=method,
                **seed_arg,
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
        seed_arg = {k: np.random.default_rng(seed) for k in seed_arg}
    return low, high


def over_seeds(
    values: Sequence[float], statistic: Callable[..., float] = np.mean, seed: int = 0
) -> dict[str, Any]:
    """`per_seed=` and `interval=` for `Claim.check` from one value per seed: `Claim.check(..., measured,
    ..., **over_seeds(values))`, the interval being `bootstrap_interval(values, statistic)`. The claim's
    `measured` should be `statistic(values)` (or the same quantity computed from the pooled runs)."""
    x = np.asarray(values, dtype=float).ravel()
    return {"per_seed": tuple(float(v) for v in x), "interval": bootstrap_interval(x, statistic, seed=seed)}


def correlation_interval(
    r: float, n: int, rank: bool = True, confidence: float = 0.95
) -> tuple[float, float]:
    """The `confidence` interval of a correlation r over n pairs by Fisher's z = atanh(r): tanh(z +- z_q se)
    with se = sqrt(1.06 / (n - 3)) for Spearman's rho (Fieller, Hartley & Pearson 1957; `rank=True`) or
    1 / sqrt(n - 3) for Pearson's r. Needs n >= 4."""
    from scipy import stats

    if n < 4:
        raise ValueError(f"correlation_interval needs n >= 4 pairs, got {n}")
    if not math.isfinite(r):
        return float("nan"), float("nan")
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    se = math.sqrt((1.06 if rank else 1.0) / (n - 3))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return math.tanh(z - half), math.tanh(z + half)


def difference_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """The `confidence` interval of mean(a) - mean(b) for two independent samples (Welch's t,
    scipy.stats.ttest_ind with equal_var=False). Each sample needs at least 2 values."""
    from scipy import stats

    xa, xb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"difference_interval needs >= 2 values per sample, got {xa.size} and {xb.size}")
    ci = stats.ttest_ind(xa, xb, equal_var=False).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def slope_interval(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The `confidence` interval of the least-squares slope of y on x (scipy.stats.linregress): slope +-
    t_{n-2} * stderr. The slope itself is the interval's midpoint (`linregress(x, y).slope`).

    Use it for claims about a rate (an exponent on log-log axes, an order of convergence). Needs at least
    3 points: with 2 the line fits exactly and there is no error estimate.
    """
    from scipy import stats

    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.size != ys.size:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    if xs.size < 3:
        raise ValueError(f"slope_interval needs at least 3 points (got {xs.size}): 2 fit exactly")
    fit = stats.linregress(xs, ys)
    half = float(stats.t.ppf(0.5 + confidence / 2, xs.size - 2)) * float(fit.stderr)
    return float(fit.slope) - half, float(fit.slope) + half
