"""One house style for every figure: PNG (for the report) and PDF (for papers), written atomically.

Use `new_figure(ncols)` to get (fig, axes) and `save(fig, out_dir, name)` to write both files; a figure
module's `plot()` returns the file names that `save` returns.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.atomic import atomic_write_with  # noqa: E402

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 3.6, height: float = 2.9):
    """A figure with `nrows x ncols` panels of the house size; returns (fig, flat array of axes)."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat:
        _style_axes(ax)
    return fig, axes.ravel()


def _style_axes(ax) -> None:
    for key, value in STYLE.items():
        if key.startswith("axes.spines."):
            ax.spines[key.split(".")[-1]].set_visible(value)
    ax.grid(True, alpha=STYLE["grid.alpha"])


def band(ax, x, mean, std, label: str, color: str | None = None, marker: str | None = "o") -> None:
    """A mean curve with a shaded +-1 std band (std over seeds)."""
    x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
    (line,) = ax.plot(x, mean, label=label, color=color, marker=marker, markersize=3)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)


def save(fig, out_dir: str | Path, name: str) -> list[str]:
    """Write `<name>.png` and `<name>.pdf` atomically, close the figure, return the two file names."""
    out_dir = Path(out_dir)
    with plt.rc_context(STYLE):
        fig.tight_layout()
        files = []
        for ext in ("png", "pdf"):
            atomic_write_with(out_dir / f"{name}.{ext}", lambda h, ext=ext: fig.savefig(h, format=ext))
            files.append(f"{name}.{ext}")
    plt.close(fig)
    return files
