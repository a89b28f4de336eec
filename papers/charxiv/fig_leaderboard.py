"""The CharXiv leaderboard from the paper's published numbers (validation set).

Paper: Wang et al. 2024, main results table (the same numbers are in the official repository's README
and the project site's val_result.csv): reasoning and descriptive accuracy of proprietary and open
models, the random baseline ("Random (GPT-4o)") and human graduate students. The numbers ship in
leaderboard_val.json with their citation; nothing here re-measures them (the charts and models are not
available offline), so this figure carries sanity checks of the shipped numbers, not claims:

* each reasoning answer-type percentage is an integer count over the type's size (TC 440, TG 99, NC 232,
  NG 229 questions, counted from the validation data), as percentages of a fixed question set must be;
* the overall reasoning accuracy is the size-weighted mean of the four types (to rounding).

Cost: instant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import Index, OneOf, Scale
from common.experiment import Figure, RunContext
from common.plotting import PALETTE, new_figure, save

TABLE = Path(__file__).with_name("leaderboard_val.json")
Model = Annotated[
    str,
    OneOf(
        "Human",
        "Claude 3.5 Sonnet",
        "GPT-4o (2024-05-13)",
        "Gemini 1.5 Pro",
        "GPT-4V",
        "InternVL Chat V1.5",
        "Random (GPT-4o)",
    ),
]


@dataclass(frozen=True)
class Config:
    models: tuple[Model, ...] = (
        "Human",
        "Claude 3.5 Sonnet",
        "GPT-4o (2024-05-13)",
        "InternVL Chat V1.5",
        "Random (GPT-4o)",
    )
    seed: Index = 0  # unused (the table has no randomness); present so that --seed applies to every figure

    def validate(self) -> None:
        if not self.models:
            raise ValueError("models must name at least one leaderboard row")


ALL = (
    "Human",
    "Claude 3.5 Sonnet",
    "GPT-4o (2024-05-13)",
    "Gemini 1.5 Pro",
    "GPT-4V",
    "InternVL Chat V1.5",
    "Random (GPT-4o)",
)
CONFIGS = {Scale.QUICK: Config(), Scale.DEFAULT: Config(), Scale.PAPER: Config(models=ALL)}


def load_leaderboard() -> dict[str, Any]:
    """The shipped table: {"source", "columns", "answer_type_sizes", "models": {name: {column: %}}}."""
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    for key in ("source", "columns", "answer_type_sizes", "models"):
        if key not in table:
            raise ValueError(f"{TABLE.name} lacks {key!r}")
    return table


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    table = load_leaderboard()
    missing = [m for m in config.models if m not in table["models"]]
    if missing:
        raise ValueError(f"models {missing} are not in {TABLE.name}")
    sizes = table["answer_type_sizes"]
    n = sum(sizes.values())
    count_dev, mean_dev = {}, {}
    for name, row in table["models"].items():
        counts = [row[t] * k / 100 for t, k in sizes.items()]
        count_dev[name] = max(abs(c - round(c)) for c in counts)
        mean_dev[name] = abs(sum(row[t] * k for t, k in sizes.items()) / n - row["reasoning"])
    return {
        "models": list(config.models),
        "rows": {m: table["models"][m] for m in config.models},
        "source": table["source"],
        "sizes": sizes,
        "count_deviation": count_dev,
        "mean_deviation": mean_dev,
    }


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    sizes = data["sizes"]
    # a percentage rounded to 2 decimals puts the count within k * 0.005 / 100 of an integer (k <= 440: 0.022)
    count_tol = max(sizes.values()) * 0.005 / 100
    worst_count = max(data["count_deviation"].values())
    worst_mean = max(data["mean_deviation"].values())
    return [
        Claim.check(
            "charxiv.leaderboard.type_counts_are_integers",
            "every shipped answer-type percentage is an integer count over its type size (TC 440, TG 99, "
            "NC 232, NG 229)",
            worst_count,
            "<=",
            count_tol,
            kind="sanity",
            details="largest distance of a count from an integer: "
            + ", ".join(f"{m}: {v:.3f}" for m, v in data["count_deviation"].items()),
        ),
        Claim.check(
            "charxiv.leaderboard.reasoning_is_weighted_mean",
            "every shipped overall reasoning accuracy is the size-weighted mean of its answer types",
            worst_mean,
            "<=",
            0.01,
            kind="sanity",
            details=", ".join(f"{m}: {v:.4f}" for m, v in data["mean_deviation"].items()),
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=4.4)
    models = data["models"]
    x = np.arange(len(models))
    for ax, col, title in ((axes[0], "reasoning", "Reasoning"), (axes[1], "descriptive", "Descriptive")):
        vals = [data["rows"][m][col] for m in models]
        bars = ax.bar(x, vals, color=[PALETTE[i % len(PALETTE)] for i in range(len(models))])
        ax.bar_label(bars, fmt="%.1f", fontsize=6)
        ax.set_xticks(
            x, [m.replace(" (2024-05-13)", "") for m in models], rotation=35, ha="right", fontsize=7
        )
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"CharXiv val: {title} (published)")
    return save(fig, out_dir, "leaderboard")


FIGURE = Figure(
    name="fig_leaderboard",
    title="CharXiv leaderboard (published validation numbers)",
    paper_ref="main results table (validation set)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Human 80.5 / 92.1, GPT-4o 47.1 / 84.5, InternVL 29.2 / 58.5, random 10.8 / 19.9.",
    threads=1,
    asserted_at_quick=(
        "charxiv.leaderboard.type_counts_are_integers",
        "charxiv.leaderboard.reasoning_is_weighted_mean",
    ),
)
