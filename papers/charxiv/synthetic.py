"""CharXiv-format questions and answers for synthetic charts (common.data.charts), and the chart styles of
the stress test.

For each chart the ground truth of all 19 descriptive templates is derived from the `ChartTruth` read off
the drawn figure, for one subplot (`subplot_loc` [0, 0] for a single plot, else a random [row, col]):
title, axis labels, first/last visible tick labels, the constant difference of numeric ticks, the number of
lines, whether they intersect, the legend's labels and their count, the colorbar's max - min and max tick
labels, the trend, the number of labelled x and y ticks (the colorbar's are not counted), the layout and the
number of subplots. "Not Applicable" follows CharXiv's rules (no title, no legend, not a line plot...), and
4 templates per chart are sampled with about 25% NA answers, the share in the official validation data
(1000 of 4000). Template 16 (never NA in CharXiv) is not asked of heatmaps.

Reasoning questions, one per chart where the chart allows it: number-in-chart (the value written on the
tallest bar) and text-in-chart (the legend label of the line that ends highest). qa_source is set to 3
because the format requires a source; these questions are template-generated, by no human or GPT.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from common.data.charts import ChartStyle, ChartTruth
from papers.charxiv.data import CharXivSplit
from papers.charxiv.prompts import NA

# Style A (training and in-style tests) and the "slightly different" styles of the stress test (Sec. 2).
STYLE_A = ChartStyle(name="A")
PERTURBATIONS: dict[str, ChartStyle] = {
    "grey": ChartStyle(name="grey", axes_facecolor="#e5e5e5", grid=True, grid_color="white"),
    "dark": ChartStyle(
        name="dark",
        facecolor="#1e1e1e",
        axes_facecolor="#2b2b2b",
        text_color="white",
        palette=("#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462"),
    ),
    "colors": ChartStyle(name="colors", palette=()),
    "thin": ChartStyle(name="thin", linewidth=0.5),
    "aspect": ChartStyle(name="aspect", aspect=2.0),
    "font": ChartStyle(name="font", font_family="DejaVu Serif", font_size=7.0),
    "legend": ChartStyle(name="legend", legend_loc="lower left"),
    "markers": ChartStyle(name="markers", markers=True, grid=True),
}


def fmt_number(v: float) -> str:
    """A number as a CharXiv answer: an integer without ".0", else up to 10 significant decimals."""
    if not math.isfinite(v):
        raise ValueError(f"cannot format {v}")
    if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)):
        return str(int(round(v)))
    return f"{v:.10g}"


def _numbers(labels: list[str]) -> list[float] | None:
    try:
        return [float(s.replace("\u2212", "-")) for s in labels]
    except ValueError:
        return None


def _constant_step(labels: list[str]) -> str:
    values = _numbers(labels)
    if values is None or len(values) < 2:
        return NA
    steps = np.diff(values)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-12):
        return NA
    return fmt_number(abs(float(steps[0])))


def descriptive_answers(truth: ChartTruth, index: int) -> dict[int, str]:
    """The answer of every template that applies to subplot `index` (row-major) of a chart."""
    if not 0 <= index < truth.n_subplots:
        raise ValueError(f"subplot index must lie in [0, {truth.n_subplots}), got {index}")
    a = truth.axes[index]
    out: dict[int, str] = {
        1: a.title or NA,
        2: a.xlabel or NA,
        3: a.ylabel or NA,
        8: _constant_step(a.xticks),
        9: _constant_step(a.yticks),
        10: str(a.n_lines) if a.n_lines else NA,
        11: NA if a.intersect is None else ("Yes" if a.intersect else "No"),
        12: str(len(a.legend)) if a.legend else NA,
        13: ", ".join(a.legend) if a.legend else NA,
        17: str(len(a.xticks) + len(a.yticks)),
        18: truth.layout,
        19: str(truth.n_subplots),
    }
    if a.xticks:
        out[4], out[5] = a.xticks[0], a.xticks[-1]
    if a.yticks:
        out[6], out[7] = a.yticks[0], a.yticks[-1]
    cb = _numbers(a.colorbar_ticks) if a.colorbar_ticks else None
    out[14] = fmt_number(max(cb) - min(cb)) if cb else NA
    out[15] = a.colorbar_ticks[int(np.argmax(cb))] if cb else NA
    if a.trend:
        out[16] = a.trend
    return dict(sorted(out.items()))


def sample_questions(
    answers: dict[int, str], rng: np.random.Generator, n: int = 4, na_share: float = 0.25
) -> tuple[list[int], list[str]]:
    """`n` distinct templates: each slot is an NA question with probability `na_share` when one is left."""
    na = [q for q, v in answers.items() if v == NA]
    real = [q for q, v in answers.items() if v != NA]
    rng.shuffle(na)
    rng.shuffle(real)
    qids: list[int] = []
    for _ in range(min(n, len(answers))):
        pool = na if (na and (rng.random() < na_share or not real)) else real
        qids.append(pool.pop())
    return qids, [answers[q] for q in qids]


def reasoning_question_for(truth: ChartTruth, rng: np.random.Generator) -> dict[str, Any] | None:
    """A number-in-chart or text-in-chart question on one subplot, or None when the chart has neither."""
    options = []
    for i, a in enumerate(truth.axes):
        where = (
            ""
            if truth.n_subplots == 1
            else f" in the subplot at row {i // truth.ncols + 1} and column {i % truth.ncols + 1}"
        )
        values = _numbers(a.bar_values) if a.bar_values else None
        if values and len(values) >= 2 and sorted(values)[-1] > sorted(values)[-2]:
            options.append(
                {
                    "query": f"What is the value written on the tallest bar{where}?",
                    "answer": a.bar_values[int(np.argmax(values))],
                    "inst_category": 3,
                }
            )
        if len(a.legend) >= 2 and len(a.line_ends) == len(a.legend):
            ends = np.asarray(a.line_ends)
            top = np.sort(ends)[-2:]
            if top[1] - top[0] > 0.05 * (np.ptp(ends) + 1e-12):
                options.append(
                    {
                        "query": f"Which line ends with the highest value at the right end{where}?",
                        "answer": a.legend[int(np.argmax(ends))],
                        "inst_category": 1,
                    }
                )
    if not options:
        return None
    return options[int(rng.integers(len(options)))]


def build_split(name: str, truths: list[ChartTruth], seed: int, first_id: int = 0) -> CharXivSplit:
    """A CharXiv-format split of the charts (figure ids first_id, first_id + 1, ...), questions drawn with
    `seed`: 4 descriptive questions per chart and a reasoning question where one applies."""
    rng = np.random.default_rng(seed)
    descriptive: dict[str, dict[str, Any]] = {}
    reasoning: dict[str, dict[str, Any]] = {}
    for k, truth in enumerate(truths):
        fid = first_id + k
        index = 0 if truth.n_subplots == 1 else int(rng.integers(truth.n_subplots))
        loc = [0, 0] if truth.n_subplots == 1 else [index // truth.ncols + 1, index % truth.ncols + 1]
        qids, answers = sample_questions(descriptive_answers(truth, index), rng)
        descriptive[str(fid)] = {
            "figure_id": fid,
            "num_subplots": truth.n_subplots,
            "subplot_loc": loc,
            "qids": qids,
            "answers": answers,
        }
        r = reasoning_question_for(truth, rng)
        if r is not None:
            reasoning[str(fid)] = {"figure_id": fid, **r, "qa_source": 3}
    return CharXivSplit(name, descriptive, reasoning)
