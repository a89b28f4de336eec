"""Conditional inference: steering with a URL prefix at inference (Gao et al. 2025, Sec. 5.1; Table 2:
conditional inference +0.5 for MeCo, +0.1 for Standard; Table 3: www.factmonster.com raises zero-shot
accuracy, boards.4chan.org lowers it; the per-task URLs of Table 11 are fabricated, e.g.
www.factquizmaster.com).

The bare fact queries (`papers.meco.runs`) after `URL: <domain>\\n\\n` of a real reliable domain (the
largest wiki domain), a fabricated reliable-looking one (`wiki23.com`: a family word seen in training, an id
and a top-level domain never seen with it), a real unreliable one (the largest meme domain) and a
fabricated unreliable one, against no prefix; the same prefixes for Standard, which never saw metadata.
Runs are Standard and MeCo of fig_acceleration (same seeds, same cache).

Cost: none beyond fig_acceleration's runs (quick ~25 s and default ~4 min if run alone, shared otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim, over_seeds
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.meco.fig_acceleration import ARMS, CONFIGS, Config, collect
from papers.meco.runs import STEER


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    return collect(config, ctx, ARMS)


def shifts(data: dict[str, Any], arm: str, prefix: str, field: str = "truth") -> np.ndarray:
    """Per seed: accuracy with `prefix` minus accuracy with no prefix."""
    return np.asarray([m["steer"][prefix][field] - m["steer"]["none"][field] for m in data["runs"][arm]])


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=4.0, height=2.9)
    width = 0.38
    for ax, field in zip(axes, ("truth", "myth"), strict=True):
        for j, (arm, color) in enumerate(zip(ARMS, ("tab:gray", "tab:blue"), strict=True)):
            v = np.asarray([[m["steer"][p][field] for p in STEER] for m in data["runs"][arm]])  # (seeds, P)
            x = np.arange(len(STEER)) + (j - 0.5) * width
            ax.bar(x, v.mean(0), width, yerr=v.std(0), color=color, alpha=0.75, label=arm)
        ax.set_xticks(range(len(STEER)), [p.replace("_", "\n") for p in STEER], fontsize=6)
        ax.set_ylabel(f"answers = {field}")
        ax.set_title(f"bare fact queries: {field} rate")
    axes[0].legend(fontsize=7)
    return save(fig, out_dir, "steering")


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = []
    for prefix, cmp, paper, number in (
        ("reliable", ">", "www.factmonster.com: +1.1 to +6.2 (Table 3)", 0.035),
        ("fabricated_reliable", ">", "fabricated task URLs: +0.5 average for MeCo (Table 2)", 0.005),
        ("unreliable", "<", "boards.4chan.org: -0.6 to -2.9 (Table 3)", -0.017),
    ):
        d = shifts(data, "meco", prefix)
        out.append(Claim.check(
            f"meco.steer.{prefix}",
            f"For MeCo, a {prefix.replace('_', ' ')} URL prefix {'raises' if cmp == '>' else 'lowers'} "
            "factual accuracy against no prefix",
            float(d.mean()), cmp, 0.0, paper,
            details=f"Standard's shift {np.round(shifts(data, 'standard', prefix), 3).tolist()}",
            **over_seeds(d), paper_number=number, paper_unit="accuracy",
            paper_source=paper.split("(")[-1][:-1],
        ))
    spread = {arm: shifts(data, arm, "reliable") - shifts(data, arm, "unreliable") for arm in ARMS}
    d = spread["meco"] - spread["standard"]
    out.append(Claim.check(
        "meco.steer.more_than_standard",
        "The reliable-minus-unreliable prefix effect is larger for MeCo than for Standard",
        float(d.mean()), ">", 0.0,
        "conditional inference: +0.5 for MeCo vs +0.1 for Standard (Table 2)",
        details=f"MeCo spread {np.round(spread['meco'], 3).tolist()}, "
        f"Standard {np.round(spread['standard'], 3).tolist()}",
        **over_seeds(d), paper_number=0.004, paper_unit="accuracy", paper_source="Table 2",
    ))
    return out


FIGURE = Figure(
    name="fig_steering",
    title="Steering by URL prefix at inference: reliable, fabricated reliable, unreliable",
    paper_ref="Sec. 5.1, Tables 2, 3 and 11",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="MeCo answers more truthfully after a reliable (or reliable-looking) URL, less after an "
    "unreliable one; Standard barely moves.",
    threads=1,
    asserted_at_quick=(),  # at 80k tokens facts are not yet learned
)
