"""The synthetic chart sets of the stress test and the suite: training charts in style A, test charts drawn
in style A and in each perturbed style (the same specs, so only the drawing changes), with the labels of the
visual templates the small CNN answers.

Train and test specs come from two separate random streams (numpy SeedSequence [data_seed, 0] and
[data_seed, 1]); `overlap` counts test charts whose content hash or style-A image hash occurs in the
training set (reported as a sanity claim, expected 0, never filtered silently).

Visual templates and their answer classes (the heads of `cnn.ChartCNN`): 10 number of lines (NA, 1..4),
11 do lines intersect (NA, Yes, No), 16 trend (4 classes), 18 layout ("r by c", r, c in 1..3) and 19 number
of subplots (1..9). Labels of 10, 11 and 16 refer to the whole image, so they are defined for single-plot
charts only (-100, ignored, on grids); 16 is undefined for heatmaps.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from common.data.charts import TRENDS, ChartSpec, ChartTruth, random_chart, render
from papers.charxiv.prompts import NA
from papers.charxiv.synthetic import PERTURBATIONS, STYLE_A

HEADS: dict[int, tuple[str, ...]] = {
    10: (NA, "1", "2", "3", "4"),
    11: (NA, "Yes", "No"),
    16: TRENDS,
    18: tuple(f"{r} by {c}" for r in (1, 2, 3) for c in (1, 2, 3)),
    19: tuple(str(n) for n in range(1, 10)),
}
HEAD_QIDS = tuple(HEADS)
IGNORE = -100
MAX_LINES = 4
KIND_PROBS = {"line": 0.7, "scatter": 0.1, "bar": 0.1, "heatmap": 0.1}


@dataclass(frozen=True)
class ChartSetSpec:
    """Everything a chart set depends on (the key of its shared artifact)."""

    n_train: int
    n_test: int
    size: int
    styles: tuple[str, ...]  # perturbed styles drawn besides style A (keys of PERTURBATIONS)
    data_seed: int


def draw_spec(rng: np.random.Generator) -> ChartSpec:
    """The chart distribution: half single plots, half grids up to 2 x 3; mostly line charts (7 in 10),
    some scatter, bar and heatmap subplots; texts (titles, labels) on 40% of single plots."""
    return random_chart(
        rng,
        p_grid=0.5,
        max_rows=2,
        max_cols=3,
        kind_probs=KIND_PROBS,
        max_lines=MAX_LINES,
        p_text=0.4,
        p_legend=0.5,
    )


def labels_of(truth: ChartTruth) -> list[int]:
    """The class index of each head (HEAD_QIDS order), IGNORE where the label is undefined."""
    single = truth.n_subplots == 1
    a = truth.axes[0]
    n_lines = str(a.n_lines) if a.n_lines else NA
    intersect = NA if a.intersect is None else ("Yes" if a.intersect else "No")
    return [
        HEADS[10].index(n_lines) if single else IGNORE,
        HEADS[11].index(intersect) if single else IGNORE,
        HEADS[16].index(a.trend) if single and a.trend else IGNORE,
        HEADS[18].index(truth.layout),
        HEADS[19].index(str(truth.n_subplots)),
    ]


def _image_hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _render_all(
    specs: list[ChartSpec], style, size: int
) -> tuple[torch.Tensor, torch.Tensor, list[ChartTruth]]:
    images, labels, truths = [], [], []
    for spec in specs:
        image, truth = render(spec, style, size)
        images.append(image)
        labels.append(labels_of(truth))
        truths.append(truth)
    return (
        torch.from_numpy(np.stack(images)),  # (N, S, S, 3) uint8
        torch.tensor(labels, dtype=torch.long),
        truths,
    )  # (N, 5)


def build_chart_set(spec: ChartSetSpec, progress=lambda it, desc: it) -> dict[str, Any]:
    """Render the training set (style A) and the test set in style A and in every style of `spec.styles`."""
    unknown = set(spec.styles) - set(PERTURBATIONS)
    if unknown:
        raise ValueError(f"unknown styles {sorted(unknown)}; valid: {sorted(PERTURBATIONS)}")
    train_rng = np.random.default_rng([spec.data_seed, 0])
    test_rng = np.random.default_rng([spec.data_seed, 1])
    train_specs = [draw_spec(train_rng) for _ in range(spec.n_train)]
    test_specs = [draw_spec(test_rng) for _ in range(spec.n_test)]
    train_images, train_labels, train_truths = _render_all(
        list(progress(train_specs, "train charts")), STYLE_A, spec.size
    )
    out: dict[str, Any] = {
        "train_images": train_images,
        "train_labels": train_labels,
        "train_truths": [asdict(t) for t in train_truths],
        "test": {},
    }
    for name in ("A", *spec.styles):
        style = STYLE_A if name == "A" else PERTURBATIONS[name]
        images, labels, truths = _render_all(
            list(progress(test_specs, f"test charts ({name})")), style, spec.size
        )
        out["test"][name] = {"images": images, "labels": labels}
        if name == "A":
            out["test_truths"] = [asdict(t) for t in truths]
    train_hashes = {s.content_hash for s in train_specs}
    train_image_hashes = {_image_hash(im.numpy()) for im in train_images}
    out["overlap"] = {
        "content": sum(s.content_hash in train_hashes for s in test_specs),
        "image": sum(_image_hash(im.numpy()) in train_image_hashes for im in out["test"]["A"]["images"]),
        "n_test": spec.n_test,
        "n_train": spec.n_train,
    }
    ref = out["test"]["A"]["labels"]
    out["label_mismatches"] = {
        name: int((t["labels"] != ref).any(1).sum()) for name, t in out["test"].items()
    }
    return out


def truth_from_dict(d: dict[str, Any]) -> ChartTruth:
    """Inverse of dataclasses.asdict for a ChartTruth stored in an artifact."""
    from common.data.charts import AxesTruth

    return ChartTruth(d["nrows"], d["ncols"], [AxesTruth(**a) for a in d["axes"]])
