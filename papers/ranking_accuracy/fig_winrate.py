"""Ranking accuracy vs win rate over DPO training (Section 5).

Paper: Chen et al. 2024, Section 5: ranking accuracy and win rate (AlpacaEval, GPT-4 judge) are strongly
correlated while the model is close to the reference model and not once it has moved far from it. Here the
judge is the hidden reward r*: the win rate is the fraction of prompts on which a policy sample beats a fixed
reference sample (ties 1/2, common random numbers across checkpoints). Distance from the reference is the
sampled sequence-level KL(pi || pi_ref); checkpoints are split at the median KL into "close" and "far".

Cost: one DPO run (shared with fig_alignment_gap at quick scale): quick ~1 s extra, default ~60-100 s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Index, Positive, Range, Scale
from common.experiment import Figure, RunContext
from common.plotting import PALETTE, new_figure, save
from papers.ranking_accuracy import config as cfgs
from papers.ranking_accuracy import pipeline


@dataclass(frozen=True)
class Config(pipeline.Setup):
    lr: Positive = cfgs.HIGH_LR
    steps: Count = 250
    # world seeds (task, reference, DPO batches): one run per seed, correlations pooled over them
    seeds: tuple[Index, ...] = (0,)
    min_close_correlation: Annotated[float, Range(-1, 1)] = 0.7  # correlations lie in [-1, 1]
    max_far_correlation: Annotated[float, Range(-1, 1)] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty tuple of distinct seeds, got {self.seeds}")
        if self.eval_points < 6:
            raise ConfigError(
                f"eval_points must be >= 6 to correlate within two phases, got {self.eval_points}"
            )


CONFIGS = {
    scale: Config(
        **{**cfgs.SETUP[scale], "eval_points": cfgs.WINRATE_EVAL_POINTS[scale]},
        steps=cfgs.WINRATE_STEPS[scale],
        seeds=cfgs.WINRATE_SEEDS[scale],
    )
    for scale in Scale
}


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def compute(config: Config, ctx: RunContext) -> dict[str, Any]:
    out = pipeline.dpo_run(config, config.lr, config.steps, ctx)
    curve = out["curve"]
    kl = np.asarray(curve["kl"])
    split = float(np.median(kl))
    close = kl <= split
    acc, win = np.asarray(curve["eval_rank_acc"]), np.asarray(curve["win_rate"])
    return {
        "lr": config.lr,
        "curve": curve,
        "kl_split": split,
        "close_corr": _pearson(acc[close], win[close]),
        "far_corr": _pearson(acc[~close], win[~close]),
        "all_corr": _pearson(acc, win),
        "n_close": int(close.sum()),
        "n_far": int((~close).sum()),
    }


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    runs = []
    for seed in ctx.progress(config.seeds, desc="win-rate seeds"):
        seeded = dataclasses.replace(config, seed=seed, seeds=(seed,))
        runs.append(
            {"seed": seed, **ctx.part(f"dpo-seed{seed}-lr{config.lr:g}-steps{config.steps}",
                                      lambda c=seeded: compute(c, ctx))}
        )
    sizes = {"close": [r["n_close"] for r in runs], "far": [r["n_far"] for r in runs],
             "all": [r["n_close"] + r["n_far"] for r in runs]}
    pooled = {phase: pooled_correlation([r[f"{phase}_corr"] for r in runs], n) for phase, n in sizes.items()}
    return {"lr": config.lr, "runs": runs, "pooled": pooled,
            "n_close": sum(r["n_close"] for r in runs), "n_far": sum(r["n_far"] for r in runs)}


def pooled_correlation(rs: list[float], ns: list[int]) -> dict[str, Any]:
    """Correlations of independent runs pooled by Fisher's z with weights n_i - 3: r = tanh(sum w_i z_i /
    sum w_i), 95% interval tanh(z +- 1.96 / sqrt(sum w_i)) (the fixed-effect meta-analytic estimate).
    Runs with fewer than 4 points or an undefined r are left out; NaN when none remains."""
    keep = [(r, n) for r, n in zip(rs, ns, strict=True) if n >= 4 and np.isfinite(r)]
    if not keep:
        return {"r": float("nan"), "interval": [float("nan"), float("nan")], "per_seed": list(rs)}
    weights = np.array([n - 3 for _, n in keep], dtype=float)
    z = np.arctanh(np.clip([r for r, _ in keep], -0.999999, 0.999999))
    mean = float(np.sum(weights * z) / weights.sum())
    half = 1.96 / float(np.sqrt(weights.sum()))
    return {"r": float(np.tanh(mean)), "interval": [float(np.tanh(mean - half)), float(np.tanh(mean + half))],
            "per_seed": [float(r) for r in rs]}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    pooled = data["pooled"]
    details = (
        f"{len(data['runs'])} seeds ({', '.join(str(r['seed']) for r in data['runs'])}), each split at its "
        f"median KL; pooled r over all checkpoints {pooled['all']['r']:.2f}; per seed close / far: "
        + "; ".join(f"{r['close_corr']:.2f} / {r['far_corr']:.2f}" for r in data["runs"])
    )
    return [
        Claim.check(
            "ranking_accuracy.winrate.correlated_close",
            f"Pearson r of held-out ranking accuracy and win rate over the {data['n_close']} checkpoints "
            "closest to the reference (KL <= each run's median), pooled over seeds (Fisher z)",
            pooled["close"]["r"],
            ">=",
            config.min_close_correlation,
            per_seed=pooled["close"]["per_seed"],
            interval=pooled["close"]["interval"],
            paper_value="strongly correlated close to the reference (Sec. 5)",
            details=details,
        ),
        Claim.check(
            "ranking_accuracy.winrate.decoupled_far",
            f"Pearson r over the {data['n_far']} checkpoints farther from the reference (KL > median), "
            "pooled over seeds (Fisher z)",
            pooled["far"]["r"],
            "<=",
            config.max_far_correlation,
            per_seed=pooled["far"]["per_seed"],
            interval=pooled["far"]["interval"],
            paper_value="not / anti-correlated far from the reference (Sec. 5)",
            details=details,
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=3.9)
    first = data["runs"][0]
    curve = first["curve"]
    kl = np.asarray(curve["kl"])
    ax = axes[0]
    ax.plot(
        curve["step"], curve["eval_rank_acc"], marker="o", markersize=3, label="held-out ranking accuracy"
    )
    ax.plot(curve["step"], curve["win_rate"], marker="s", markersize=3, label="win rate vs reference (r*)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("DPO step")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"DPO, lr {data['lr']:g}, seed {first['seed']}")
    ax.legend(fontsize=7)
    ax = axes[1]
    close = kl <= first["kl_split"]
    acc, win = np.asarray(curve["eval_rank_acc"]), np.asarray(curve["win_rate"])
    ax.plot(acc, win, color="lightgray", linewidth=1, zorder=0)
    ax.scatter(acc[close], win[close], color=PALETTE[0], label=f"close (r = {first['close_corr']:.2f})")
    ax.scatter(acc[~close], win[~close], color=PALETTE[1], label=f"far (r = {first['far_corr']:.2f})")
    ax.set_xlabel("held-out ranking accuracy")
    ax.set_ylabel("win rate")
    ax.set_title("split at the median KL(pi || pi_ref)")
    ax.legend(fontsize=7)
    return save(fig, out_dir, "winrate")


FIGURE = Figure(
    name="fig_winrate",
    title="Ranking accuracy vs win rate over DPO training (judge: the hidden reward)",
    paper_ref="Sec. 5, Fig. 5",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Both rise together in the first steps; once the policy is far from the reference, the win rate "
    "saturates or falls while the ranking accuracy keeps moving.",
    threads=1,  # tiny models: threads cost more than they give
    # Nothing asserted at quick: the win-rate correlations use 4-5 checkpoints per phase there, so they are
    # reported (and checked to be measured) only.
)
