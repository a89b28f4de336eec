"""The one plotting helper the LESS figures share (common.plotting has the house style, not this chart)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from common.plotting import PALETTE


def seed_bars(ax: Any, summaries: Sequence[dict[str, Any]], labels: Sequence[str]) -> np.ndarray:
    """One bar per `pipeline.summary` (its mean over seeds) with a black dot per seed; returns the bar x."""
    x = np.arange(len(summaries))
    ax.bar(x, [s["mean"] for s in summaries], color=PALETTE[: len(summaries)], alpha=0.8)
    for i, s in enumerate(summaries):
        ax.scatter([i] * len(s["per_seed"]), s["per_seed"], color="black", s=10, zorder=3)
    ax.set_xticks(x, list(labels))
    return x
