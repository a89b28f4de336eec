"""The config all three ADO figures share and the runs they read (through the shared-artifact cache, so a
run is trained once for all figures): ADO, natural and uniform in the WIN setting, ADO and natural in the
NOISE_HEAVY setting (uniform does not depend on the prior, so the two settings share its runs), the same
seeds for every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from common.configs import AnyFloat, Count, Index, Range, Scale
from common.experiment import RunContext
from papers.ado.experiment import NOISE_HEAVY_PRIOR, WIN_PRIOR, RunSpec, spec_for, train_run
from papers.ado.law import FitBounds
from papers.ado.sampler import AdoConfig

SETTINGS = {"win": WIN_PRIOR, "noise_heavy": NOISE_HEAVY_PRIOR}
METHODS_BY_SETTING = {"win": ("ado", "natural", "uniform"), "noise_heavy": ("ado", "natural", "uniform")}


@dataclass(frozen=True)
class RunsConfig:
    """The runs (steps, seeds, model data) and ADO's settings; the figures add their claim thresholds."""

    steps: Count = 2000
    seeds: Count = 3
    seed: Index = 0
    domain_seed: Index = 0
    batch: Count = 32
    eval_every: Count = 100
    n_eval: Count = 128  # held-out sequences per domain
    # ADO, rescaled to the run (official: refit every 1000 of 60k steps, ignore 1000, savgol 101, every 10)
    refit_every: Count = 100
    start_step: Index = 80
    ignore_steps: Index = 40
    savgol_window: Count = 51
    subsample: Count = 5
    floor: Annotated[float, Range(0, 0.2, high_open=True)] = 0.01  # official delta_min
    n_refine: Count = 2  # L-BFGS-B from the best 2 grid starts plus the previous fit
    e_min: AnyFloat = 0.5  # log eps >= 0.5 (official: eps >= 1.65 nats; every toy domain's eps is > 2)

    def validate(self) -> None:
        if self.eval_every > self.steps:
            raise ValueError(f"eval_every ({self.eval_every}) must be <= steps ({self.steps})")
        if self.start_step + self.savgol_window > self.steps:
            raise ValueError(f"steps ({self.steps}) must exceed start_step + savgol_window")
        if self.savgol_window % 2 == 0 or self.savgol_window < 5:
            raise ValueError(f"savgol_window must be odd and >= 5, got {self.savgol_window}")
        if self.ignore_steps >= self.steps:
            raise ValueError(f"ignore_steps ({self.ignore_steps}) must be < steps ({self.steps})")


# Cost: quick 400 steps x 1 seed x 5 runs (59 s of CPU); default 2000 steps x 3 seeds x 5 runs
# (~7 min on 2 free cores, 57 min measured with 5 other jobs on them); paper: 2500 steps, 5 seeds (not run).
RUN_SCALES = {
    Scale.QUICK: {"steps": 400, "seeds": 1, "eval_every": 50},
    Scale.DEFAULT: {"steps": 2000, "seeds": 3},
    Scale.PAPER: {"steps": 2500, "seeds": 5},
}


def ado_config(config: RunsConfig) -> AdoConfig:
    return AdoConfig(refit_every=config.refit_every, start_step=config.start_step,
                     ignore_steps=config.ignore_steps, savgol_window=config.savgol_window,
                     subsample=config.subsample, floor=config.floor, n_refine=config.n_refine,
                     bounds=FitBounds(e_min=config.e_min))


def spec(config: RunsConfig, setting: str, method: str, seed: int) -> RunSpec:
    return spec_for(method, SETTINGS[setting], seed, config.steps, ado_config(config),
                    domain_seed=config.domain_seed, batch=config.batch, eval_every=config.eval_every,
                    n_eval=config.n_eval)


def get_run(ctx: RunContext, config: RunsConfig, setting: str, method: str, seed: int) -> dict[str, Any]:
    s = spec(config, setting, method, seed)
    return ctx.shared(f"run-{method}", s, lambda: train_run(s))


def collect(ctx: RunContext, config: RunsConfig, settings: tuple[str, ...],
            methods: tuple[str, ...]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """runs[setting][method] = [run at seed config.seed + i for i < seeds]."""
    seeds = [config.seed + i for i in range(config.seeds)]
    units = [(st, m, s) for st in settings for m in methods if m in METHODS_BY_SETTING[st] for s in seeds]
    out: dict[str, dict[str, list[dict[str, Any]]]] = {st: {} for st in settings}
    for st, m, s in ctx.progress(units, desc="ado runs"):
        out[st].setdefault(m, []).append(get_run(ctx, config, st, m, s))
    return out


def learnable_loss(run: dict[str, Any]) -> np.ndarray:
    """(E,) the uniform average held-out loss over the learnable domains at each evaluation."""
    loss = np.asarray(run["curves"]["loss"])  # (E, K)
    return loss[:, 1:].mean(1)


def downstream_score(run: dict[str, Any], weights: tuple[float, ...]) -> np.ndarray:
    """(E,) top-1 next-token accuracy on the held-out target mixture `weights` (the downstream analogue)."""
    acc = np.asarray(run["curves"]["acc"])  # (E, K)
    return acc @ np.asarray(weights)
