"""MUSE Fig. 6 / criterion C6 (sustainability): utility (KnowMem on D_retain) after k = 1..4 sequential
unlearning requests, each unlearning the next disjoint fold Fk from the previous request's model (MUSE's
`sust/forget_1..4` and `unlearn_news_sust.sh`; that model is also NPO's and KLR's reference), with the
fixed epochs of MUSE's script per method. Seeds vary the unlearning's data order on one target model.

Cost (CPU time, one thread, on a heavily shared machine): quick ~10 s, default ~1-1.5 min (the models
come from the shared cache).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim, slope_interval
from common.experiment import Figure, RunContext
from common.lm import load_model
from common.plotting import new_figure, save
from papers.muse.fig_scalability import CONFIGS, PAPER_EPOCHS, Config
from papers.muse.pipeline import bench

# the same configuration as figure 5 (methods, unlearning hyperparameters, seeds per scale)


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    b = bench(config.setup, config.seed, ctx)
    c = b.corpus
    rows = []
    for method in ctx.progress(config.methods, desc="methods"):
        for s in config.seeds:

            def unit(method=method, s=s):
                cfg = dataclasses.replace(
                    config.unlearn, epochs=PAPER_EPOCHS[method], stop_rule=False, seed=s
                )
                model, out = b.target, []
                for k in range(1, len(c.folds) + 1):
                    model = b.run(
                        method, forget=c.forget_set(k, nested=False), start=model, **dataclasses.asdict(cfg)
                    ).model
                    model = load_model(model.config, model.state_dict())
                    out.append(b.evaluate(model, full=False))
                return {"requests": out}

            res = ctx.part(f"{method}-s{s}", unit)
            for k, m in enumerate(res["requests"], start=1):
                rows.append({"method": method, "seed": s, "k": k, "metrics": m})
    return {"rows": rows, "target": b.target_metrics, "retrain": b.ref}


def _series(rows, method):
    return np.array([(r["k"], r["metrics"]["knowmem_r"]) for r in rows if r["method"] == method], dtype=float)


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = []
    for method in config.methods:
        pts = _series(data["rows"], method)
        lo, hi = slope_interval(pts[:, 0], pts[:, 1])
        means = [pts[pts[:, 0] == k, 1].mean() for k in sorted(set(pts[:, 0]))]
        out.append(
            Claim.check(
                f"muse.fig6.{method.lower()}_utility_falls_with_requests",
                f"{method}: utility (KnowMem on D_retain) falls over sequential unlearning requests "
                "(least-squares slope per request, < 0)",
                (lo + hi) / 2,
                "<",
                0.0,
                interval=(lo, hi),
                paper_value="Fig. 6 (News): utility falls as requests accumulate",
                details=f"mean KnowMem_r after requests 1..{len(means)}: "
                + ", ".join(f"{m:.1f}" for m in means)
                + f" (target {data['target']['knowmem_r']:.1f}); {len(config.seeds)} unlearning seed(s) on "
                "one target; slope 95% CI from the regression",
            )
        )
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in data["rows"]))
    fig, axes = new_figure()
    ax = axes[0]
    for m in methods:
        pts = _series(data["rows"], m)
        ks = sorted(set(pts[:, 0]))
        ax.plot(ks, [pts[pts[:, 0] == k, 1].mean() for k in ks], marker="o", label=m)
    ax.axhline(data["target"]["knowmem_r"], color="#444444", ls=":", label="target")
    ax.axhline(data["retrain"]["knowmem_r"], color="#2ca02c", ls="--", label="retrain")
    ax.set_xlabel("unlearning requests")
    ax.set_ylabel("KnowMem on D_retain")
    ax.legend(fontsize=7)
    return save(fig, out_dir, "sustainability")


FIGURE = Figure(
    name="fig6_sustainability",
    title="Utility over sequential unlearning requests (C6)",
    paper_ref="Fig. 6 (C6 sustainability)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Utility falls as requests accumulate.",
    threads=1,
    # Nothing asserted at quick: GA_GDR's slope was < 0 at 3 of seeds 0-4 (worst +0.19 points per request).
)
