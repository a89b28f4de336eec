"""MUSE Fig. 5 / criterion C5 (scalability): utility (KnowMem on D_retain) after unlearning forget sets of
growing size, the nested folds F1, F1 u F2, ... (MUSE's `scal/forget_1..4`).

Two protocols: MUSE's (a fixed number of epochs per method, the epochs of its scalability script: GA 1,
GA_GDR 7, GA_KLR 10, NPO 1, NPO_GDR 10, NPO_KLR 10, so a k-fold set gets k times the steps) and matched
steps (every size gets the steps of those epochs on F1), which separates the size of the forget set from
the amount of training. Seeds vary the unlearning's data order on one target model.

Cost (CPU time, one thread, on a heavily shared machine): quick ~15 s, default ~6-7 min (2 methods x 2
seeds x 7 forget sets, up to 600 steps each; `--set seeds=0` halves it); the models come from the cache.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim, slope_interval
from common.configs import ConfigError, Index, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.muse.fig_main_table import CONFIGS as MAIN
from papers.muse.methods import UnlearnConfig
from papers.muse.pipeline import Setup, bench

# MUSE's baselines/scripts/unlearn_news_scal.sh / _sust.sh: epochs per method
PAPER_EPOCHS = {"GA": 1, "GA_GDR": 7, "GA_KLR": 10, "NPO": 1, "NPO_GDR": 10, "NPO_KLR": 10}
PROTOCOLS = ("muse", "matched")
PROTOCOL_NAMES = {"muse": "MUSE protocol (fixed epochs)", "matched": "matched steps"}


@dataclass(frozen=True)
class Config:
    setup: Setup
    methods: tuple[str, ...] = ("GA_GDR", "NPO_GDR")
    unlearn: UnlearnConfig = UnlearnConfig()
    seeds: tuple[Index, ...] = (0, 1)
    seed: Index = 0

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in PAPER_EPOCHS]
        if bad:
            raise ConfigError(f"methods {bad} have no fixed epochs; valid: {sorted(PAPER_EPOCHS)}")
        if not self.methods or not self.seeds:
            raise ConfigError("methods and seeds must each hold at least one entry")


CONFIGS = {
    Scale.QUICK: Config(MAIN[Scale.QUICK].setup, methods=("GA_GDR",), seeds=(0,)),
    # one unlearning seed at default (two took ~8 CPU-minutes for figs 5 and 6, over the budget); the slope
    # intervals come from the forget-set sizes (requests); the paper scale runs three seeds
    Scale.DEFAULT: Config(MAIN[Scale.DEFAULT].setup, seeds=(0,)),
    Scale.PAPER: Config(MAIN[Scale.PAPER].setup, methods=tuple(PAPER_EPOCHS), seeds=(0, 1, 2)),
}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    b = bench(config.setup, config.seed, ctx)
    c = b.corpus
    per_epoch_f1 = max(1, round(len(c.bios(c.forget)) / config.unlearn.batch))
    rows = []
    for method in ctx.progress(config.methods, desc="methods"):
        epochs = PAPER_EPOCHS[method]
        for k in range(1, len(c.folds) + 1):
            for protocol in PROTOCOLS:
                if protocol == "matched" and k == 1:
                    continue  # the same run as MUSE's protocol at k = 1
                for s in config.seeds:
                    steps = epochs * per_epoch_f1 if protocol == "matched" else None

                    def unit(method=method, k=k, s=s, steps=steps, epochs=epochs):
                        cfg = dataclasses.replace(
                            config.unlearn, epochs=epochs, steps=steps, stop_rule=False, seed=s
                        )
                        r = b.run(method, forget=c.forget_set(k, nested=True), **dataclasses.asdict(cfg))
                        return {"metrics": b.evaluate(r.model, full=False), "steps": r.steps}

                    out = ctx.part(f"{method}-{protocol}-k{k}-s{s}", unit)
                    for p in PROTOCOLS if protocol == "muse" and k == 1 else (protocol,):
                        rows.append({"method": method, "protocol": p, "k": k, "seed": s, **out})
    return {"rows": rows, "target": b.target_metrics, "retrain": b.ref, "fold_size": c.spec.n_forget}


def _series(rows, method, protocol):
    pts = [
        (r["k"], r["metrics"]["knowmem_r"])
        for r in rows
        if r["method"] == method and r["protocol"] == protocol
    ]
    return np.array(pts, dtype=float)


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = []
    for method in config.methods:
        for protocol in PROTOCOLS:
            pts = _series(data["rows"], method, protocol)
            lo, hi = slope_interval(pts[:, 0], pts[:, 1])
            means = [pts[pts[:, 0] == k, 1].mean() for k in sorted(set(pts[:, 0]))]
            steps = sorted(
                {r["steps"] for r in data["rows"] if r["method"] == method and r["protocol"] == protocol}
            )
            out.append(
                Claim.check(
                    f"muse.fig5.{method.lower()}_{protocol}_utility_falls_with_size",
                    f"{method}, {PROTOCOL_NAMES[protocol]}: utility (KnowMem on D_retain) falls as the "
                    "forget set grows (least-squares slope per fold, < 0)",
                    (lo + hi) / 2,
                    "<",
                    0.0,
                    interval=(lo, hi),
                    paper_value="Fig. 5 (News): utility falls as the forget set grows, for most methods",
                    details=f"mean KnowMem_r at 1..{len(means)} folds of {data['fold_size']} entities: "
                    + ", ".join(f"{m:.1f}" for m in means)
                    + f" (target {data['target']['knowmem_r']:.1f}); "
                    f"steps {steps}; {len(config.seeds)} unlearning seed(s) on one target; slope 95% CI "
                    "from the regression",
                )
            )
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in data["rows"]))
    fig, axes = new_figure(ncols=2, width=3.8)
    for ax, protocol in zip(axes, PROTOCOLS, strict=True):
        for m in methods:
            pts = _series(data["rows"], m, protocol)
            ks = sorted(set(pts[:, 0]))
            ax.plot(ks, [pts[pts[:, 0] == k, 1].mean() for k in ks], marker="o", label=m)
        ax.axhline(data["target"]["knowmem_r"], color="#444444", ls=":", label="target")
        ax.axhline(data["retrain"]["knowmem_r"], color="#2ca02c", ls="--", label="retrain")
        ax.set_xlabel(f"forget set size (folds of {data['fold_size']} entities)")
        ax.set_ylabel("KnowMem on D_retain")
        ax.set_title(PROTOCOL_NAMES[protocol])
    axes[0].legend(fontsize=7)
    return save(fig, out_dir, "scalability")


FIGURE = Figure(
    name="fig5_scalability",
    title="Utility vs forget-set size (C5), fixed epochs and matched steps",
    paper_ref="Fig. 5 (C5 scalability)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Utility falls as the forget set grows under MUSE's protocol.",
    threads=1,
)
