"""Deletion capacity of U_base vs m, n and r (Wei et al. 2025, Theorem 1 as summarised: m_U =
O~(m / (r^2 sqrt(n r))), i.e. linear in m, n^-1/2, r^-5/2, with epsilon, delta, p, gamma and logs hidden).

The capacity at each point is the empirical one of capacity.py (Definition 4 with 0.9 / 0.01 on the
Frobenius error of A), with noise calibrated to the measured sensitivity kappa of that instance. We fit
log m_U against log m, log n and log r (theory slopes 1, -1/2, -5/2) and compare exponents, constants aside.

Claims:
- `linear_in_m`: |fitted slope in m - 1| <= 0.2 per seed, mean over seeds (the theorem's m_U grows like m).
- `n_exponent`, `r_exponent` (default scale: quick has no n or r sweep): |fitted - theory| <= 0.5, the
  tolerance chosen before the runs for "the same power law up to logs" (a log factor over our ranges moves
  a fitted exponent by well under 0.5).

Cost (measured on 2 cores shared with other jobs, so inflated ~2x): quick 11 s (3 values of m, 2 seeds),
default 143 s (5 values of m, 3 of n, 3 of r, 3 seeds); paper scale not run (estimated ~8 min).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from common.claims import Claim, bootstrap_interval
from common.configs import Count, Index, OpenFraction, Positive, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.topic_unlearning.capacity import CapacitySpec, base_capacity
from papers.topic_unlearning.synthetic import build

THEORY = {"m": 1.0, "n": -0.5, "r": -2.5}  # exponents of m / (r^2 sqrt(n r))


@dataclass(frozen=True)
class Config:
    ms: tuple[Count, ...]  # training-set sizes of the m sweep (at n, r)
    n_grid: tuple[Count, ...] = ()  # vocabulary sizes of the n sweep (at r, m_sweep)
    r_grid: tuple[Count, ...] = ()  # topic counts of the r sweep (at n_for_r, m_sweep)
    n: Count = 50
    r: Count = 3
    n_for_r: Count = 100
    m_sweep: Count = 800_000
    anchor_mass: OpenFraction = 0.1
    alpha: Positive = 0.1
    length: Count = 2
    epsilon: Positive = 1.0
    delta: OpenFraction = 1e-5
    tolerance: Positive = 0.01  # Definition 4's 0.01
    probability: OpenFraction = 0.9  # Definition 4's 0.9
    noise_draws: Count = 40
    seeds: Count = 2
    seed: Index = 0
    max_slope_error: Positive = 0.2  # linear_in_m
    max_exponent_error: Positive = 0.5  # n_exponent, r_exponent

    def validate(self) -> None:
        if len(self.ms) < 3:
            raise ValueError("ms needs at least 3 sizes to fit a slope")
        for name, grid in (("n_grid", self.n_grid), ("r_grid", self.r_grid)):
            if 0 < len(grid) < 3:
                raise ValueError(f"{name} needs 0 or at least 3 values, got {grid}")
        if any(self.r >= n for n in (self.n, *self.n_grid)) or any(r >= self.n_for_r for r in self.r_grid):
            raise ValueError("every sweep point needs r < n")
        if min(self.ms) < 1000:
            raise ValueError(f"ms must be >= 1000 documents (capacity needs room), got {self.ms}")


CONFIGS = {
    Scale.QUICK: Config(ms=(200_000, 400_000, 800_000), seeds=2),  # 11 s
    Scale.DEFAULT: Config(
        ms=(100_000, 200_000, 400_000, 800_000, 1_600_000), n_grid=(50, 100, 200), r_grid=(3, 5, 8), seeds=3
    ),  # 143 s
    Scale.PAPER: Config(
        ms=(100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000),
        n_grid=(50, 100, 200, 400),
        r_grid=(3, 5, 8, 12),
        seeds=5,
    ),  # ~8 min, estimated
}


def capacity_at(config: Config, n: int, r: int, m: int, seed: int) -> dict[str, Any]:
    inst = build(n, r, config.anchor_mass, config.alpha, m, config.length, seed)
    spec = CapacitySpec(
        config.epsilon, config.delta, config.tolerance, config.probability, config.noise_draws
    )
    cap = base_capacity(inst.state, inst.model.A, inst.state.sensitivity, spec, inst.rng)
    return {"capacity": cap, "kappa": inst.state.sensitivity}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    seeds = [config.seed + s for s in range(config.seeds)]
    sweeps = {
        "m": [(config.n, config.r, m) for m in config.ms],
        "n": [(n, config.r, config.m_sweep) for n in config.n_grid],
        "r": [(config.n_for_r, r, config.m_sweep) for r in config.r_grid],
    }
    units = [(axis, point, s) for axis, points in sweeps.items() for point in points for s in seeds]
    out: dict[str, Any] = {
        "seeds": seeds,
        "epsilon": config.epsilon,
        "delta": config.delta,
        "n": config.n,
        "r": config.r,
        "n_for_r": config.n_for_r,
        "m_sweep": config.m_sweep,
    }
    results = {}
    for axis, (n, r, m), s in ctx.progress(units, "capacity"):
        results[(axis, n, r, m, s)] = ctx.part(
            f"{axis}-n{n}-r{r}-m{m}-seed{s}", lambda n=n, r=r, m=m, s=s: capacity_at(config, n, r, m, s)
        )
    for axis, points in sweeps.items():
        values = {"m": [p[2] for p in points], "n": [p[0] for p in points], "r": [p[1] for p in points]}[axis]
        out[f"{axis}/values"] = values
        out[f"{axis}/capacity"] = [[results[(axis, *p, s)]["capacity"] for p in points] for s in seeds]
        out[f"{axis}/kappa"] = [[results[(axis, *p, s)]["kappa"] for p in points] for s in seeds]
    return out


def fitted_exponents(values: list[float], capacity: list[list[float]]) -> np.ndarray:
    """Per seed, the least-squares slope of log m_U on log value (NaN when some capacity is 0)."""
    x = np.log(np.asarray(values, dtype=float))
    slopes = []
    for row in capacity:
        y = np.asarray(row, dtype=float)
        slopes.append(np.polyfit(x, np.log(y), 1)[0] if np.all(y > 0) else float("nan"))
    return np.asarray(slopes)


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = []
    for axis in ("m", "n", "r"):
        if not data[f"{axis}/values"]:
            continue
        slopes = fitted_exponents(data[f"{axis}/values"], data[f"{axis}/capacity"])
        dev = np.abs(slopes - THEORY[axis])
        means = np.mean(np.asarray(data[f"{axis}/capacity"], dtype=float), axis=0).round(1).tolist()
        fixed = {
            "m": f"n={config.n}, r={config.r}",
            "n": f"r={config.r}, m={config.m_sweep}",
            "r": f"n={config.n_for_r}, m={config.m_sweep}",
        }[axis]
        tol = config.max_slope_error if axis == "m" else config.max_exponent_error
        name = {"m": "linear_in_m", "n": "n_exponent", "r": "r_exponent"}[axis]
        out.append(
            Claim.check(
                f"topic_unlearning.capacity.{name}",
                f"{fixed}, eps={config.epsilon:g}: |fitted exponent of {axis} in the deletion capacity - "
                f"({THEORY[axis]:g})| (mean over seeds)",
                float(np.mean(dev)),
                "<=",
                tol,
                paper_value=f"Theorem 1 (as summarised): m_U = O~(m / (r^2 sqrt(n r))), exponent "
                f"{THEORY[axis]:g}",
                details=f"fitted exponents per seed {np.round(slopes, 3).tolist()}; {axis} = "
                f"{data[f'{axis}/values']}, mean capacity {means}",
                per_seed=dev,
                interval=bootstrap_interval(dev),
                paper_number=THEORY[axis],
                paper_unit="exponent",
                paper_source="Theorem 1 (secondary summary)",
            )
        )
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    axes_used = [a for a in ("m", "n", "r") if data[f"{a}/values"]]
    fig, axes = new_figure(ncols=len(axes_used))
    for ax, axis in zip(axes, axes_used, strict=True):
        x = np.asarray(data[f"{axis}/values"], dtype=float)
        cap = np.asarray(data[f"{axis}/capacity"], dtype=float)  # (seeds, points)
        for row in cap:
            ax.plot(x, np.maximum(row, 0.5), "o", color="C0", alpha=0.4, markersize=3)
        mean = cap.mean(0)
        ax.plot(x, np.maximum(mean, 0.5), "-", color="C0", label="empirical m_U (mean)")
        ref = mean[0] * (x / x[0]) ** THEORY[axis]
        ax.plot(x, ref, "--", color="k", label=f"theory slope {THEORY[axis]:g}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("deletion capacity m_U")
        ax.legend(fontsize=7)
    axes[0].set_title(f"n={data['n']}, r={data['r']}, eps={data['epsilon']:g}", fontsize=8)
    return save(fig, out_dir, "capacity")


FIGURE = Figure(
    name="fig_capacity",
    title="Deletion capacity vs m (linear), n and r (Theorem 1's exponents)",
    paper_ref="Theorem 1 (deletion capacity of U_base), Definition 4",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="m_U grows linearly in m; falls with n and r, less steeply in r than r^-5/2.",
    threads=1,
    # Not asserted at quick: linear_in_m passed at seeds 0-4 but with a smallest margin of 0.03 (capacities of
    # 3-10 documents at quick scale move the fitted slope by ~0.1 per document).
    asserted_at_quick=(),
)
