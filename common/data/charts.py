"""Synthetic scientific charts (matplotlib, Agg) with ground truth read back from the figure objects.

Built for CharXiv (Wang et al., "CharXiv: Charting Gaps in Realistic Chart Understanding in Multimodal
LLMs", NeurIPS 2024 D&B, arXiv 2406.18521), whose 19 descriptive templates ask about titles, axis labels,
tick labels, line counts, intersections, legends, colorbars, trends and subplot layouts (paper Sec. 3).
Any paper that needs charts with exact answers can use it.

Two steps, kept apart so that one chart can be drawn in several styles with the same content (the stress
test of CharXiv Sec. 2, "slightly different charts"):

* `random_chart(rng)` draws a `ChartSpec`: the grid of subplots and, per subplot, its kind (line, scatter,
  bar, heatmap), data, title, axis labels and legend. A spec is content only; its `content_hash` identifies
  it, so train and test sets can be checked for overlap.
* `render(spec, style, size)` draws the spec with a `ChartStyle` (background, palette, line width, markers,
  grid, font, aspect ratio, legend position) on a `matplotlib.figure.Figure` with an Agg canvas (no pyplot,
  no global state; 10-25 charts per second on one core at 64 px, measured on a shared machine, fewer with
  more subplots). It returns the RGB image (H, W, 3) uint8 and a `ChartTruth` read from the drawn objects
  after `canvas.draw()`: the visible tick labels of each axis (`ax.get_xticklabels()` within the view
  limits), the `Line2D` objects and their data, the legend texts in drawing order (top to bottom, then
  left to right), the colorbar's tick labels, and the layout. Intersections are computed geometrically
  from the lines' vertex data; the trend is classified from the plotted data (`classify_trend`), not
  copied from the generator's intent.

Tick and label texts are normalised as CharXiv writes answers: matplotlib's minus sign U+2212 becomes "-".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

KINDS = ("line", "scatter", "bar", "heatmap")
TRENDS = ("increases", "decreases", "increases then decreases", "decreases then increases")
LEGEND_LOCS = ("upper right", "upper left", "lower left", "lower right", "center right", "best")
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
WORDS = (
    "loss",
    "accuracy",
    "error",
    "time",
    "epoch",
    "step",
    "depth",
    "width",
    "energy",
    "density",
    "rate",
    "signal",
    "noise",
    "gain",
    "price",
    "return",
    "volume",
    "count",
    "score",
    "ratio",
    "speed",
    "power",
)
SERIES = (
    "ours",
    "baseline",
    "SGD",
    "Adam",
    "LoRA",
    "full",
    "train",
    "test",
    "model A",
    "model B",
    "GPT",
    "BERT",
    "alpha",
    "beta",
    "k=1",
    "k=2",
    "k=4",
    "lr 0.1",
    "lr 0.01",
    "CNN",
    "ViT",
    "MLP",
)
CATEGORIES = ("A", "B", "C", "D", "E", "F", "cs", "math", "bio", "phys", "econ", "stat")
MINUS = "\u2212"


@dataclass(frozen=True)
class AxesSpec:
    """The content of one subplot. `series` holds the y values of each line/scatter/bar series (bars: one
    series of heights), `x` the shared x values (categories' positions for bars), `z` the heatmap matrix."""

    kind: str
    x: tuple[float, ...] = ()
    series: tuple[tuple[float, ...], ...] = ()
    labels: tuple[str, ...] = ()  # one per series; shown in a legend when `legend`
    categories: tuple[str, ...] = ()  # bar charts: x tick labels
    z: tuple[tuple[float, ...], ...] = ()  # heatmap rows
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    legend: bool = False
    bar_values: bool = False  # write each bar's value above it (a number-in-chart reasoning target)
    trend: str = ""  # the generator's intended trend ("" for heatmaps); the truth is re-read from the data


@dataclass(frozen=True)
class ChartSpec:
    """A grid of `nrows` x `ncols` subplots, row-major, plus an optional figure title (suptitle)."""

    nrows: int
    ncols: int
    axes: tuple[AxesSpec, ...]
    suptitle: str = ""

    def __post_init__(self) -> None:
        if not (1 <= self.nrows <= 6 and 1 <= self.ncols <= 6):
            raise ValueError(f"nrows and ncols must lie in [1, 6], got {self.nrows} x {self.ncols}")
        if len(self.axes) != self.nrows * self.ncols:
            raise ValueError(
                f"a {self.nrows} x {self.ncols} grid needs {self.nrows * self.ncols} axes specs, "
                f"got {len(self.axes)}"
            )
        for a in self.axes:
            if a.kind not in KINDS:
                raise ValueError(f"axes kind must be one of {KINDS}, got {a.kind!r}")

    @property
    def content_hash(self) -> str:
        """SHA-256 of the spec's content (data rounded to 1e-9): equal hashes mean the same chart content."""
        payload = json.dumps(_rounded(asdict(self)), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ChartStyle:
    """How a spec is drawn. `palette=()` draws a random colour per series (seeded by the spec's hash, so the
    same chart gets the same colours every time); `aspect` is width / height of the canvas before it is
    resized to the requested square size."""

    name: str = "default"
    facecolor: str = "white"
    axes_facecolor: str = "white"
    text_color: str = "black"
    palette: tuple[str, ...] = TAB10
    linewidth: float = 1.6
    markers: bool = False
    grid: bool = False
    grid_color: str = "#b0b0b0"
    font_size: float = 5.0
    font_family: str = "DejaVu Sans"
    aspect: float = 1.0
    legend_loc: str = "upper right"
    cmap: str = "viridis"

    def __post_init__(self) -> None:
        if not 0.2 <= self.aspect <= 5:
            raise ValueError(f"aspect must lie in [0.2, 5], got {self.aspect}")
        if self.linewidth <= 0 or self.font_size <= 0:
            raise ValueError(f"linewidth and font_size must be > 0, got {self.linewidth}, {self.font_size}")
        if self.legend_loc not in LEGEND_LOCS:
            raise ValueError(f"legend_loc must be one of {LEGEND_LOCS}, got {self.legend_loc!r}")


@dataclass
class AxesTruth:
    """What one drawn subplot shows, read from its matplotlib objects."""

    kind: str
    title: str
    xlabel: str
    ylabel: str
    xticks: list[str]  # visible labelled x ticks, left to right
    yticks: list[str]  # visible labelled y ticks, bottom to top
    n_lines: int
    intersect: bool | None  # None without lines
    legend: list[str]  # legend texts, top to bottom then left to right ([] without a legend)
    colorbar_ticks: list[str]  # visible colorbar tick labels, bottom to top ([] without one)
    trend: str  # classify_trend of the plotted data ("" for heatmaps)
    bar_values: list[str] = field(default_factory=list)  # texts written on bars, left to right
    line_ends: list[float] = field(default_factory=list)  # each line's last y value, legend order


@dataclass
class ChartTruth:
    nrows: int
    ncols: int
    axes: list[AxesTruth]

    @property
    def n_subplots(self) -> int:
        return self.nrows * self.ncols

    @property
    def layout(self) -> str:
        """CharXiv's template 18 answer form, "n by m"."""
        return f"{self.nrows} by {self.ncols}"


# ---------------------------------------------------------------------------------------------------------
# Drawing specs
# ---------------------------------------------------------------------------------------------------------


def trend_curve(trend: str, x: np.ndarray) -> np.ndarray:
    """A smooth curve on x in [0, 1] with the given general trend, values in about [0, 1]."""
    if trend == "increases":
        return x
    if trend == "decreases":
        return 1.0 - x
    if trend == "increases then decreases":
        return 1.0 - 4.0 * (x - 0.5) ** 2
    if trend == "decreases then increases":
        return 4.0 * (x - 0.5) ** 2
    raise ValueError(f"trend must be one of {TRENDS}, got {trend!r}")


def _words(rng: np.random.Generator, k: int) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, size=k, replace=False))


def random_axes(
    rng: np.random.Generator, kind: str, *, max_lines: int = 4, p_text: float = 0.6, p_legend: float = 0.6
) -> AxesSpec:
    """One subplot's content of `kind`, drawn from `rng`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    title = _words(rng, 2).capitalize() if rng.random() < p_text else ""
    xlabel = _words(rng, 1) if rng.random() < p_text else ""
    ylabel = _words(rng, 1) if rng.random() < p_text else ""
    scale = float(rng.choice([1.0, 10.0, 100.0]))
    if kind == "heatmap":
        n = int(rng.integers(4, 9))
        z = rng.random((n, n)) * scale
        return AxesSpec(
            "heatmap",
            z=tuple(tuple(float(v) for v in row) for row in z),
            title=title,
            xlabel=xlabel,
            ylabel=ylabel,
        )
    trend = str(rng.choice(TRENDS))
    if kind == "bar":
        n = int(rng.integers(3, 7))
        x = np.linspace(0, 1, n)
        heights = scale * (0.2 + 0.8 * trend_curve(trend, x)) + scale * 0.05 * rng.random(n)
        cats = tuple(str(c) for c in rng.choice(CATEGORIES, size=n, replace=False))
        return AxesSpec(
            "bar",
            x=tuple(range(n)),
            series=(tuple(float(round(h, 1)) for h in heights),),
            categories=cats,
            title=title,
            xlabel=xlabel,
            ylabel=ylabel,
            bar_values=bool(rng.random() < 0.5),
            trend=trend,
        )
    n_series = int(rng.integers(1, max_lines + 1)) if kind == "line" else int(rng.integers(1, 3))
    n_points = 24 if kind == "line" else 30
    x0 = float(rng.choice([0.0, 1.0, 10.0]))
    span = float(rng.choice([1.0, 5.0, 10.0, 100.0]))
    xs = np.linspace(0, 1, n_points)
    base = trend_curve(trend, xs)
    crossing = rng.random() < 0.5  # lines with different slopes cross; offset parallel copies do not
    series = []
    for i in range(n_series):
        if kind == "line" and crossing:
            y = base + (0.6 * (i - (n_series - 1) / 2)) * (xs - 0.5)
        else:
            y = base + 0.45 * i
        y = y + rng.normal(0, 0.02 if kind == "line" else 0.06, size=n_points)
        series.append(tuple(float(v * scale) for v in y))
    labels = tuple(str(s) for s in rng.choice(SERIES, size=n_series, replace=False))
    legend = bool(n_series >= 2 and rng.random() < p_legend) or bool(n_series == 1 and rng.random() < 0.15)
    return AxesSpec(
        kind,
        x=tuple(float(x0 + span * v) for v in xs),
        series=tuple(series),
        labels=labels,
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
        legend=legend,
        trend=trend,
    )


def random_chart(
    rng: np.random.Generator,
    *,
    p_grid: float = 0.5,
    max_rows: int = 3,
    max_cols: int = 3,
    kind_probs: dict[str, float] | None = None,
    max_lines: int = 4,
    p_text: float = 0.6,
    p_legend: float = 0.6,
) -> ChartSpec:
    """A random chart: a single axes with probability 1 - p_grid, else a grid of up to max_rows x max_cols
    (not 1 x 1); each subplot's kind drawn from `kind_probs` (default line .55, scatter .15, bar .15,
    heatmap .15). Grids get no legends (they would cover 20-px subplots) and fewer texts."""
    if not 0 <= p_grid <= 1:
        raise ValueError(f"p_grid must lie in [0, 1], got {p_grid}")
    if not (1 <= max_rows <= 6 and 1 <= max_cols <= 6) or (p_grid > 0 and max_rows * max_cols < 2):
        raise ValueError(
            f"max_rows, max_cols must lie in [1, 6] and allow a grid, got {max_rows}, {max_cols}"
        )
    probs = kind_probs or {"line": 0.55, "scatter": 0.15, "bar": 0.15, "heatmap": 0.15}
    if set(probs) - set(KINDS) or not probs or abs(sum(probs.values()) - 1) > 1e-9:
        raise ValueError(f"kind_probs must map kinds of {KINDS} to probabilities summing to 1, got {probs}")
    kinds, p = list(probs), np.asarray(list(probs.values()), dtype=float)
    if rng.random() < p_grid:
        layouts = [(r, c) for r in range(1, max_rows + 1) for c in range(1, max_cols + 1) if r * c > 1]
        nrows, ncols = layouts[int(rng.integers(len(layouts)))]
    else:
        nrows = ncols = 1
    single = nrows * ncols == 1
    axes = tuple(
        random_axes(
            rng,
            str(rng.choice(kinds, p=p)),
            max_lines=max_lines,
            p_text=p_text if single else p_text / 3,
            p_legend=p_legend if single else 0.0,
        )
        for _ in range(nrows * ncols)
    )
    suptitle = _words(rng, 3).capitalize() if (not single and rng.random() < p_text / 2) else ""
    return ChartSpec(nrows, ncols, axes, suptitle)


# ---------------------------------------------------------------------------------------------------------
# Rendering and reading back
# ---------------------------------------------------------------------------------------------------------


def render(
    spec: ChartSpec, style: ChartStyle = ChartStyle(), size: int = 64
) -> tuple[np.ndarray, ChartTruth]:
    """Draw `spec` in `style` and return (image (size, size, 3) uint8, truth read from the figure).

    The canvas is `size * aspect` x `size` pixels (dpi 100), drawn once, read back, and resized to a square
    `size` x `size` with PIL (bilinear), so an aspect other than 1 distorts the chart as a stretched figure
    would. Larger sizes (128, 256) make the text legible to a model; the truth does not depend on size.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    if not 16 <= size <= 2048:
        raise ValueError(f"size must lie in [16, 2048] pixels, got {size}")
    dpi = 100.0
    width_px = max(16, int(round(size * style.aspect)))
    fig = Figure(figsize=(width_px / dpi, size / dpi), dpi=dpi, facecolor=style.facecolor)
    canvas = FigureCanvasAgg(fig)
    rc = {"font.size": style.font_size, "font.family": style.font_family}
    import matplotlib

    with matplotlib.rc_context(rc):
        axes = fig.subplots(spec.nrows, spec.ncols, squeeze=False).ravel()
        colour_rng = np.random.default_rng(int(spec.content_hash[:12], 16))
        handles = []
        for ax, a in zip(axes, spec.axes, strict=True):
            handles.append(_draw_axes(ax, a, style, colour_rng))
        if spec.suptitle:
            fig.suptitle(spec.suptitle, color=style.text_color)
        canvas.draw()
        truth = ChartTruth(
            spec.nrows,
            spec.ncols,
            [_read_axes(ax, a, cb) for ax, a, cb in zip(axes, spec.axes, handles, strict=True)],
        )
    rgba = np.asarray(canvas.buffer_rgba())  # (size, width_px, 4)
    image = rgba[..., :3]
    if image.shape[1] != size:
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(image), truth


def _draw_axes(ax, a: AxesSpec, style: ChartStyle, colour_rng: np.random.Generator):
    ax.set_facecolor(style.axes_facecolor)
    for spine in ax.spines.values():
        spine.set_color(style.text_color)
    ax.tick_params(colors=style.text_color, labelsize=style.font_size, length=2, width=0.5, pad=1)
    if style.grid:
        ax.grid(True, color=style.grid_color, linewidth=0.5)
        ax.set_axisbelow(True)
    n = max(1, len(a.series))
    colours = list(style.palette) if style.palette else [tuple(colour_rng.random(3) * 0.9) for _ in range(n)]
    colorbar = None
    if a.kind == "line":
        for i, y in enumerate(a.series):
            ax.plot(
                a.x,
                y,
                color=colours[i % len(colours)],
                linewidth=style.linewidth,
                marker="o" if style.markers else None,
                markersize=2,
                label=a.labels[i],
            )
    elif a.kind == "scatter":
        for i, y in enumerate(a.series):
            ax.scatter(a.x, y, color=colours[i % len(colours)], s=3, label=a.labels[i])
    elif a.kind == "bar":
        bars = ax.bar(a.x, a.series[0], color=colours[0], tick_label=list(a.categories))
        if a.bar_values:
            ax.bar_label(bars, fmt="%.1f", color=style.text_color, fontsize=style.font_size)
    else:
        image = ax.imshow(np.asarray(a.z), cmap=style.cmap, aspect="auto")
        colorbar = ax.figure.colorbar(image, ax=ax)
        colorbar.ax.tick_params(colors=style.text_color, labelsize=style.font_size, length=2, pad=1)
    if a.title:
        ax.set_title(a.title, color=style.text_color, fontsize=style.font_size, pad=2)
    if a.xlabel:
        ax.set_xlabel(a.xlabel, color=style.text_color, labelpad=1)
    if a.ylabel:
        ax.set_ylabel(a.ylabel, color=style.text_color, labelpad=1)
    if a.legend and a.kind in ("line", "scatter"):
        legend = ax.legend(loc=style.legend_loc, fontsize=style.font_size, frameon=False, handlelength=1)
        for text in legend.get_texts():
            text.set_color(style.text_color)
    return colorbar


def _clean(text: str) -> str:
    return text.replace(MINUS, "-").strip()


def _visible_ticks(axis, ticks, texts, lim) -> list[str]:
    lo, hi = min(lim), max(lim)
    eps = 1e-9 * max(1.0, abs(hi - lo))
    out = []
    for loc, text in zip(ticks, texts, strict=True):
        label = _clean(text.get_text())
        if label and lo - eps <= loc <= hi + eps and text.get_visible():
            out.append(label)
    return out


def _read_axes(ax, a: AxesSpec, colorbar) -> AxesTruth:
    xticks = _visible_ticks(ax.xaxis, ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim())
    yticks = _visible_ticks(ax.yaxis, ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())
    if a.kind == "heatmap":  # imshow puts row 0 at the top: y ticks bottom to top are the reversed order
        yticks = yticks[::-1] if ax.get_ylim()[0] > ax.get_ylim()[1] else yticks
    lines = list(ax.get_lines())
    xy = [np.asarray(line.get_xydata(), dtype=float) for line in lines]  # each (P, 2)
    legend = ax.get_legend()
    legend_texts = [_clean(t.get_text()) for t in legend.get_texts()] if legend is not None else []
    cb_ticks: list[str] = []
    if colorbar is not None:
        cax = colorbar.ax
        cb_ticks = _visible_ticks(cax.yaxis, cax.get_yticks(), cax.get_yticklabels(), cax.get_ylim())
    if a.kind in ("line", "scatter", "bar"):
        if lines:
            ys = np.mean([p[:, 1] for p in xy], axis=0)
        elif a.kind == "scatter":
            offsets = [np.asarray(c.get_offsets(), dtype=float) for c in ax.collections]
            ys = np.mean([o[:, 1] for o in offsets], axis=0)
        else:
            ys = np.asarray([p.get_height() for p in ax.patches], dtype=float)
        trend = classify_trend(ys)
    else:
        trend = ""
    bar_values = [_clean(t.get_text()) for t in ax.texts if t.get_text()] if a.kind == "bar" else []
    return AxesTruth(
        kind=a.kind,
        title=_clean(ax.get_title()),
        xlabel=_clean(ax.get_xlabel()),
        ylabel=_clean(ax.get_ylabel()),
        xticks=xticks,
        yticks=yticks,
        n_lines=len(lines),
        intersect=None if not lines else any_intersection(xy),
        legend=legend_texts,
        colorbar_ticks=cb_ticks,
        trend=trend,
        bar_values=bar_values,
        line_ends=[float(p[-1, 1]) for p in xy],
    )


def classify_trend(y: np.ndarray) -> str:
    """The general trend of a sequence, one of TRENDS, from a quadratic least-squares fit on x in [0, 1]:
    monotone when the fitted curve's extremum lies outside the middle 60% of the range or is shallow
    relative to the net change, else "increases then decreases" (a maximum) or the reverse."""
    y = np.asarray(y, dtype=float).ravel()
    if y.size < 3 or not np.all(np.isfinite(y)):
        raise ValueError(f"classify_trend needs >= 3 finite values, got {y.size}")
    x = np.linspace(0.0, 1.0, y.size)
    c2, c1, c0 = np.polyfit(x, y, 2)
    fit = c2 * x**2 + c1 * x + c0
    net = fit[-1] - fit[0]
    if abs(c2) > 1e-12:
        xv = -c1 / (2 * c2)
        if 0.2 < xv < 0.8:
            yv = c2 * xv**2 + c1 * xv + c0
            bump = min(abs(yv - fit[0]), abs(yv - fit[-1]))
            if bump > 0.25 * abs(net) and bump > 0.05 * (np.ptp(fit) + 1e-12):
                return "increases then decreases" if c2 < 0 else "decreases then increases"
    return "increases" if net > 0 else "decreases"


def any_intersection(polylines: list[np.ndarray]) -> bool:
    """True when any two polylines (each (P, 2) vertices) cross or touch: a pairwise test of all segment
    pairs by orientation signs (collinear overlaps count as touching)."""
    segs = [np.stack([p[:-1], p[1:]], axis=1) for p in polylines if len(p) >= 2]  # each (P-1, 2, 2)
    for i in range(len(segs)):
        for j in range(i + 1, len(segs)):
            if _segments_cross(segs[i], segs[j]):
                return True
    return False


def _segments_cross(s: np.ndarray, t: np.ndarray) -> bool:
    p1, p2 = s[:, None, 0], s[:, None, 1]  # (S, 1, 2)
    q1, q2 = t[None, :, 0], t[None, :, 1]  # (1, T, 2)

    def orient(a, b, c):  # (S, T) sign of the cross product (b - a) x (c - a)
        return np.sign(
            (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        )

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    proper = (d1 * d2 < 0) & (d3 * d4 < 0)
    if proper.any():
        return True

    def on_segment(a, b, c):  # c on the bounding box of a-b (used with collinearity)
        return (
            (np.minimum(a[..., 0], b[..., 0]) <= c[..., 0])
            & (c[..., 0] <= np.maximum(a[..., 0], b[..., 0]))
            & (np.minimum(a[..., 1], b[..., 1]) <= c[..., 1])
            & (c[..., 1] <= np.maximum(a[..., 1], b[..., 1]))
        )

    touch = (
        ((d1 == 0) & on_segment(q1, q2, p1))
        | ((d2 == 0) & on_segment(q1, q2, p2))
        | ((d3 == 0) & on_segment(p1, p2, q1))
        | ((d4 == 0) & on_segment(p1, p2, q2))
    )
    return bool(touch.any())


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 9)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj
