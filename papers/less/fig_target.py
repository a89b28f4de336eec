"""Figure 1 / Table 2 of LESS: target-task accuracy after LoRA fine-tuning on different selections.

Selections of 5% of the pool: LESS (max over subtasks, the paper's rule), LESS with the mean over subtasks,
random 5% (several seeds), the representation-similarity baseline (RDS in the paper's Table 2), and the
full pool. Every run fine-tunes LoRA on the same base for the same number of steps (the full pool gets
`full_steps`) and is scored by exact match on every held-out one-digit addition problem, averaged over the
two subtasks (carry, no carry).

Cost (measured, 2 cores): quick ~30-45 s (base pretraining, warmup, datastore and 8 fine-tuning runs), default
~80 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Range, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.less import config as cfgs
from papers.less import data as D
from papers.less import pipeline as pl
from papers.less.plots import seed_bars


@dataclass(frozen=True)
class Config(pl.Setup):
    seeds: Count = 2
    # "beats random 5% by a clear margin" (accuracy points / 100)
    min_margin_random: Annotated[float, Range(-1, 1)] = 0.10
    min_margin_full: Annotated[float, Range(-1, 1)] = 0.0  # "matches or beats full data"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")


CONFIGS = {scale: Config(**cfgs.SETUP[scale], seeds=cfgs.SEEDS[scale]) for scale in Scale}
METHODS = ("less", "less_mean", "random", "representation", "full")
LABELS = {
    "less": "LESS 5% (max over subtasks)",
    "less_mean": "LESS 5% (mean over subtasks)",
    "random": "random 5%",
    "representation": "representation similarity 5%",
    "full": "full pool",
}


def selections(setup: pl.Setup, shared_dir: Path) -> dict[str, Any]:
    """Indices of each selection (random: one per seed, drawn inside the runs)."""
    size = pl.size_of(setup)
    return {
        "less": pl.less_selection(setup, size, shared_dir),
        "less_mean": pl.less_selection(setup, size, shared_dir, aggregation="mean"),
        "representation": pl.select(
            pl.representation_scores(setup, size, shared_dir), setup.fraction
        ).numpy(),
        "full": np.arange(setup.pool_size),
    }


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    setup = pl.setup_of(config)
    cache = ctx.shared_dir
    chosen = selections(setup, cache)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for seed in range(config.seeds):  # every method runs at the same seeds (LoRA init and batch order)
        runs["random"].append(
            pl.finetune_part(ctx, setup, "random", pl.random_selection(setup, seed), seed, cache)
        )
        for m in ("less", "less_mean", "representation"):
            runs[m].append(pl.finetune_part(ctx, setup, m, chosen[m], seed, cache))
        runs["full"].append(
            pl.finetune_part(ctx, setup, "full", chosen["full"], seed, cache, steps=setup.full_steps)
        )
    return {
        "summary": {m: pl.summary(r) for m, r in runs.items()},
        "runs": runs,
        "checkpoint_weights": pl.checkpoint_weights(setup, pl.size_of(setup), cache),
        "n_selected": len(chosen["less"]),
        "pool_size": setup.pool_size,
        "held_out_overlap": held_out_overlap(setup),
    }


def held_out_overlap(setup: pl.Setup) -> dict[str, int]:
    """Pool examples whose prompt is a validation shot's or a test problem's (0 by construction)."""
    data = pl.make_data(setup)
    return {"val": D.overlap(data.pool, data.val), "test": D.overlap(data.pool, data.test)}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    s = data["summary"]
    less, rand, full, rep, mean = (s[m] for m in ("less", "random", "full", "representation", "less_mean"))

    def fmt(x: dict[str, Any]) -> str:
        sub = ", ".join(f"{k} {v:.2f}" for k, v in x["subtask_acc"].items())
        return f"{x['mean']:.3f} (seeds {', '.join(f'{a:.2f}' for a in x['per_seed'])}; {sub})"

    details = (
        f"target exact match: LESS {fmt(less)}; random {fmt(rand)}; full {fmt(full)}; representation "
        f"{fmt(rep)}; LESS with mean aggregation {fmt(mean)}"
    )
    overlap = data["held_out_overlap"]
    return [
        Claim.check(
            "less.target.sanity_held_out",
            "sanity check (our construction): pool examples whose prompt is a validation or test problem",
            overlap["val"] + overlap["test"],
            "<=",
            0,
            paper_value="LESS's targets (MMLU, TydiQA, BBH) are disjoint from its training pool",
            kind="sanity",
            details=f"validation {overlap['val']}, test {overlap['test']}; pool of {data['pool_size']}",
        ),
        Claim.check(
            "less.target.beats_random",
            "LESS 5% minus random 5%: target accuracy (mean over seeds)",
            less["mean"] - rand["mean"],
            ">=",
            config.min_margin_random,
            **pl.paired_difference(less, rand),
            paper_value="Llama-2-7B LESS 5%: MMLU 50.2, TydiQA 56.2, BBH 41.5; random 5% 2-5 points lower",
            details=details,
        ),
        Claim.check(
            "less.target.matches_full",
            "LESS 5% minus the full pool: target accuracy",
            less["mean"] - full["mean"],
            ">=",
            config.min_margin_full,
            **pl.paired_difference(less, full),
            paper_value="LESS 5% often matches or beats training on the full pool (abstract, Table 2)",
            details=details,
        ),
        Claim.check(
            "less.target.beats_representation",
            "LESS 5% minus the representation-similarity 5%: target accuracy",
            less["mean"] - rep["mean"],
            ">=",
            0.0,
            **pl.paired_difference(less, rep),
            paper_value="RDS (representation similarity) is a Table 2 baseline; LESS is the best method",
            details=details,
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=4.2)
    s = data["summary"]
    ax = axes[0]
    ticks = ["LESS\nmax", "LESS\nmean", "random", "repr.", "full"]
    x = seed_bars(ax, [s[m] for m in METHODS], ticks)
    ax.set_ylabel("target exact match (mean of subtasks)")
    ax.set_ylim(0, 1)
    ax.set_title(f"5% of {data['pool_size']} examples; dots: seeds")
    ax = axes[1]
    width = 0.38
    for j, sub in enumerate(("carry", "no_carry")):
        ax.bar(x + (j - 0.5) * width, [s[m]["subtask_acc"][sub] for m in METHODS], width, label=sub)
    ax.set_xticks(x, ticks)
    ax.set_ylim(0, 1)
    ax.set_title("per subtask")
    ax.legend(fontsize=7)
    return save(fig, out_dir, "target")


FIGURE = Figure(
    name="fig_target",
    title="Target-task accuracy after LoRA on LESS 5%, random 5%, representation 5% and the full pool",
    paper_ref="Fig. 1, Table 2",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="LESS 5% well above random 5% and at or above the full pool, which holds the buggy additions.",
    threads=1,  # small models: threads cost more than they give
    # Asserted at quick: the held-out sanity check only. Over seeds 0-4 (tests/quick_claims_over_seeds.py)
    # LESS - random was +0.11, +0.11, -0.07, -0.01, +0.07 (threshold 0.10): the 50-example selection of a
    # 1000-example pool is too noisy at quick to assert; the default scale is where the claim is judged.
    asserted_at_quick=("less.target.sanity_held_out",),
)
