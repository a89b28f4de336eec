"""The warmup length (LESS step 1) at the tuned setting and at two others: composition and target claims.

Our warmup batch (1 at quick, 2 at default, so 200 / 300 warmup steps) was chosen after seeing results: with
batch 8 the selection took the `bad` family at some seeds (README, "The warmup must be long enough"). Here the
same pipeline runs with the tuned batch and with two other batches (default: 4 and 1, i.e. 152 and 600 steps,
half and double the tuned length; quick: 2 and 4, i.e. 100 and 50 steps, the tuned batch 1 being the
smallest), the other settings unchanged (4 epochs, so 4 checkpoints each). For each length: the share of the
target family and of `bad` in the LESS 5% (fig_composition's two claims) and LESS minus random 5% after
fine-tuning at fig_target's seeds (fig_target's claim). The fine-tuning does not depend on the warmup, so the
random runs and the tuned length's LESS runs are fig_target's.

Cost: per other length one warmup and one datastore (4 blocks of the pool's gradients) and `seeds` LESS
fine-tuning runs. Measured wall on 2 cores shared with other jobs: quick 26 s (1 seed), default 96 s (3
seeds; mostly the 8 datastore blocks at proj_dim 8192).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Positive, Range, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.less import config as cfgs
from papers.less import pipeline as pl


@dataclass(frozen=True)
class Config(pl.Setup):
    seeds: Count = 2  # fine-tuning seeds 0..seeds-1, the same as fig_target's
    other_warmup_batches: tuple[Count, ...] = (2, 4)  # warmup batches besides the tuned `warmup_batch`
    min_enrichment: Positive = 5.0  # as fig_composition
    min_margin_random: Annotated[float, Range(-1, 1)] = 0.10  # as fig_target

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.other_warmup_batches or any(b < 1 for b in self.other_warmup_batches):
            raise ConfigError(f"other_warmup_batches must be positive, got {self.other_warmup_batches}")
        if self.warmup_batch in self.other_warmup_batches or len(set(self.other_warmup_batches)) != len(
            self.other_warmup_batches
        ):
            raise ConfigError(
                f"other_warmup_batches {self.other_warmup_batches} must be distinct and differ from the "
                f"tuned warmup_batch={self.warmup_batch}"
            )


OTHER_BATCHES = {Scale.QUICK: (2, 4), Scale.DEFAULT: (4, 1), Scale.PAPER: (16, 4)}
SEEDS = {**cfgs.SEEDS, Scale.QUICK: 1}  # quick: a smoke test of the sweep, one seed (nothing asserted)
CONFIGS = {
    scale: Config(**cfgs.SETUP[scale], seeds=SEEDS[scale], other_warmup_batches=OTHER_BATCHES[scale])
    for scale in Scale
}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    setup = pl.setup_of(config)
    cache = ctx.shared_dir
    size = pl.size_of(setup)
    pool = pl.composition(setup, np.arange(setup.pool_size))
    randoms = [pl.finetune_part(ctx, setup, "random", pl.random_selection(setup, s), s, cache)
               for s in range(config.seeds)]  # fmt: skip
    rows = []
    for batch in (setup.warmup_batch, *config.other_warmup_batches):
        s = dataclasses.replace(setup, warmup_batch=batch)
        index = pl.less_selection(s, size, cache)
        # the fine-tuning reads no warmup setting: `setup` (not `s`) shares fig_target's runs
        key = "less" if batch == setup.warmup_batch else f"less-warmup-batch{batch}"
        runs = [pl.finetune_part(ctx, setup, key, index, seed, cache) for seed in range(config.seeds)]
        rows.append({
            "warmup_batch": batch, "warmup_steps": pl.warmup_steps(s), "tuned": batch == setup.warmup_batch,
            "composition": pl.composition(setup, index), "less": pl.summary(runs), "n_selected": len(index),
        })  # fmt: skip
    return {"rows": rows, "random": pl.summary(randoms), "pool": pool, "pool_size": setup.pool_size}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    pool, rand, N = data["pool"], data["random"], data["pool_size"]

    def describe(r: dict[str, Any]) -> str:
        c = r["composition"]
        tuned = " (tuned)" if r["tuned"] else ""
        return (f"batch {r['warmup_batch']}{tuned}, {r['warmup_steps']} steps: add {c['add']:.3f}, bad "
                f"{c['bad']:.3f}, LESS {r['less']['mean']:.3f} (seeds "
                f"{', '.join(f'{a:.2f}' for a in r['less']['per_seed'])})")

    details = (
        "; ".join(describe(r) for r in data["rows"])
        + f"; random 5% {rand['mean']:.3f}; pool add {pool['add']:.3f}, bad {pool['bad']:.3f}"
    )
    out = []
    for r in data["rows"]:
        if r["tuned"]:
            continue  # the tuned length's claims are fig_composition's and fig_target's
        b, steps, c = r["warmup_batch"], r["warmup_steps"], r["composition"]
        at = f" (warmup batch {b}: {steps} steps, instead of the tuned {config.warmup_batch})"
        out += [
            Claim.check(
                f"less.warmup.batch{b}.target_family_overrepresented",
                "share of the target-skill family in LESS 5% over its share in the pool" + at,
                c["add"] / pool["add"] if pool["add"] > 0 else float("nan"),
                ">=",
                config.min_enrichment,
                paper_value="LESS selects examples that share the target's skill (qualitative analysis)",
                details=details,
            ),
            Claim.check(
                f"less.warmup.batch{b}.adversarial_underrepresented",
                "excess share of the buggy-addition family in LESS 5% over the pool, in standard deviations "
                "of a random selection of the same size" + at,
                pl.excess_sd(c["bad"], pool["bad"], r["n_selected"], N),
                "<=",
                2.0,
                paper_value="LESS goes beyond surface form cues (abstract, qualitative analysis)",
                details=details,
            ),
            Claim.check(
                f"less.warmup.batch{b}.beats_random",
                "LESS 5% minus random 5%: target accuracy" + at,
                r["less"]["mean"] - rand["mean"],
                ">=",
                config.min_margin_random,
                **pl.paired_difference(r["less"], rand),
                paper_value="Llama-2-7B LESS 5%: MMLU 50.2, TydiQA 56.2, BBH 41.5; random 5% 2-5 points "
                "lower",
                details=details,
            ),
        ]
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=3.8)
    rows = sorted(data["rows"], key=lambda r: r["warmup_steps"])
    steps = [r["warmup_steps"] for r in rows]
    ax = axes[0]
    for fam in ("add", "bad"):
        ax.plot(steps, [r["composition"][fam] for r in rows], marker="o", label=f"{fam} in LESS 5%")
        ax.axhline(data["pool"][fam], lw=0.8, ls=":", color="gray")
    tuned = [r["warmup_steps"] for r in rows if r["tuned"]]
    for ax_ in axes:
        for t in tuned:
            ax_.axvline(t, lw=0.8, ls="--", color="black")
    ax.set_xlabel("warmup steps (dashed: tuned)")
    ax.set_ylabel("share of the selection")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("composition (dotted: pool)")
    ax = axes[1]
    ax.plot(steps, [r["less"]["mean"] for r in rows], marker="o", label="LESS 5%")
    for r in rows:
        seeds = r["less"]["per_seed"]
        ax.scatter([r["warmup_steps"]] * len(seeds), seeds, s=10, color="black", zorder=3)
    ax.axhline(data["random"]["mean"], ls=":", color="gray", label="random 5%")
    ax.set_xlabel("warmup steps (dashed: tuned)")
    ax.set_ylabel("target exact match")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("target accuracy; dots: seeds")
    return save(fig, out_dir, "warmup")


FIGURE = Figure(
    name="fig_warmup",
    title="The warmup length: LESS's composition and target claims at the tuned and two other lengths",
    paper_ref="Sec. 4 step 1 (warmup); our tuned setting",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Unless the tuning made the result, enrichment and the margin over random hold at each length.",
    threads=1,  # small models: threads cost more than they give
    # Nothing asserted at quick: these claims exist to show how the result depends on a setting we tuned.
)
