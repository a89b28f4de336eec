"""The model interface and the baselines of the synthetic suite.

A model is any callable `(image, question) -> answer`: `image` an (H, W, 3) uint8 array, `question` the
full question text as CharXiv builds it (questions.py), the answer a string. `answer_split` runs a model
over a loaded split and returns responses in the official generation files' layout.

Baselines (all fitted on the training charts' answers only, never on the test split):

* `RandomModel`: a uniformly random answer among the distinct training answers of the question's template
  (reasoning: of its answer type), the analogue of the leaderboard's random row.
* `TextOnlyModel`: answers without looking at the image: the most frequent training answer of the
  template (reasoning: of the answer type). It scores what the question text alone gives away, e.g. "Not
  Applicable" on templates where NA is common.
* `CNNModel`: the small CNN (cnn.py) for its visual templates (10, 11, 16, 18, 19), recognised by the
  question's template text; every other question goes to the text-only fallback.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from papers.charxiv.chartset import HEAD_QIDS, HEADS
from papers.charxiv.cnn import ChartCNN, predict
from papers.charxiv.data import CharXivSplit
from papers.charxiv.questions import answer_type_of, descriptive_queries, identify_template, reasoning_queries

Model = Callable[[np.ndarray, str], str]


def _answer_pools(train: Iterable[CharXivSplit]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    by_qid: dict[int, list[str]] = {q: [] for q in range(1, 20)}
    by_type: dict[int, list[str]] = {t: [] for t in (1, 2, 3, 4)}
    for split in train:
        for d in split.descriptive.values():
            for q, a in zip(d["qids"], d["answers"], strict=True):
                by_qid[q].append(a)
        for r in split.reasoning.values():
            by_type[r["inst_category"]].append(r["answer"])
    return by_qid, by_type


class TextOnlyModel:
    """The most frequent training answer per template / answer type; ignores the image."""

    def __init__(self, train: CharXivSplit) -> None:
        by_qid, by_type = _answer_pools([train])
        self.by_qid = {q: Counter(v).most_common(1)[0][0] for q, v in by_qid.items() if v}
        self.by_type = {t: Counter(v).most_common(1)[0][0] for t, v in by_type.items() if v}

    def __call__(self, image: np.ndarray, question: str) -> str:
        qid = identify_template(question)
        if qid is not None:
            return self.by_qid.get(qid, "Not Applicable")
        return self.by_type.get(answer_type_of(question) or 0, "")


class RandomModel:
    """A uniformly random distinct training answer of the template / answer type, from a seeded stream."""

    def __init__(self, train: CharXivSplit, seed: int) -> None:
        by_qid, by_type = _answer_pools([train])
        self.by_qid = {q: sorted(set(v)) for q, v in by_qid.items() if v}
        self.by_type = {t: sorted(set(v)) for t, v in by_type.items() if v}
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, question: str) -> str:
        qid = identify_template(question)
        pool = self.by_qid.get(qid) if qid is not None else self.by_type.get(answer_type_of(question) or 0)
        return "" if not pool else pool[int(self.rng.integers(len(pool)))]


class CNNModel:
    """The small CNN on its visual templates, the text-only model elsewhere."""

    def __init__(self, cnn: ChartCNN, fallback: Model) -> None:
        self.cnn = cnn.eval()
        self.fallback = fallback

    def __call__(self, image: np.ndarray, question: str) -> str:
        qid = identify_template(question)
        if qid not in HEAD_QIDS:
            return self.fallback(image, question)
        pred = predict(self.cnn, torch.from_numpy(np.array(image, dtype=np.uint8))[None])[0]  # (heads,)
        k = HEAD_QIDS.index(qid)
        return HEADS[qid][int(pred[k])]


def load_image(path) -> np.ndarray:
    """An image file as (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def answer_split(
    model: Model, split: CharXivSplit, images: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Ask `model` every question of `split`; images from `images` (by figure id) or the split's image_dir.
    Returns (descriptive, reasoning) responses keyed "{fid}_{i}" and "{fid}", as the official gen files."""
    cache: dict[str, np.ndarray] = dict(images or {})

    def image_of(fid: Any) -> np.ndarray:
        key = str(fid)
        if key not in cache:
            cache[key] = load_image(split.image_path(key))
        return cache[key]

    descriptive = {}
    for key, q in descriptive_queries(split).items():
        descriptive[key] = {**q, "response": str(model(image_of(q["figure_id"]), q["question"]))}
    reasoning = {}
    for key, q in reasoning_queries(split).items():
        reasoning[key] = {**q, "response": str(model(image_of(q["figure_id"]), q["question"]))}
    return descriptive, reasoning
