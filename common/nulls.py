"""Null controls for claims that select: the best checkpoint, the best learning rate, the peak over a window.

The maximum of many noisy numbers is large even when none of them carries an effect, so a claim "the best
X beats the baseline" must compare its maximum with the maximum the *same selection* finds on data where
the effect is absent by construction (labels shuffled, groups drawn at random, a constant predictor). Use:

- `max_vs_null(select, data, null, n_null, seed)`: the observed selected value, the selected values of
  `n_null` null draws, and the null's 95th percentile; the claim is `observed > quantile` (or report
  `p_value`). Whenever a claim takes a max/argmax over anything (windows, checkpoints, seeds, sweep points).
- `shuffled(key)`: the usual null, a permutation of the labels (or of one field of a dict of arrays).
- `random_groups(sizes)`: a null for claims about groups (topics, families, clusters): the same group
  sizes drawn at random from the same items.
- `balanced_accuracy(pred, truth)`: accuracy that a majority-class predictor cannot inflate (the mean of
  per-class recalls; 1/k for any constant predictor over k classes). Use it instead of plain accuracy when
  the classes are unbalanced.
- `constant_baseline(truth)`: what the best constant predictor scores (its label, accuracy and balanced
  accuracy); the floor a classifier claim must clear before it says anything.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np


class NullComparison(NamedTuple):
    """`observed`: the selection on the real data; `null_values`: the same selection on each null draw;
    `quantile`: the null's `q`-quantile (the threshold a claim compares `observed` with)."""

    observed: float
    null_values: np.ndarray
    quantile: float

    @property
    def p_value(self) -> float:
        """(1 + #{null >= observed}) / (1 + n_null): the permutation p-value, never 0."""
        return float((1 + np.sum(self.null_values >= self.observed)) / (1 + self.null_values.size))

    @property
    def exceeds(self) -> bool:
        """observed > the null's quantile (what a claim built on this comparison asserts)."""
        return bool(np.isfinite(self.observed) and self.observed > self.quantile)


def max_vs_null(
    select_fn: Callable[[Any], float],
    data: Any,
    null_fn: Callable[[Any, np.random.Generator], Any],
    n_null: int = 200,
    seed: int = 0,
    q: float = 0.95,
) -> NullComparison:
    """Apply the same selection to the data and to `n_null` null versions of it.

    `select_fn(data) -> float` must do the whole selection (e.g. the best accuracy over checkpoints, the
    peak of a curve over a window): selecting on the real data and not on the nulls is the bias this
    control removes. `null_fn(data, rng) -> data` draws one null version (see `shuffled`,
    `random_groups`, or a function that replaces predictions by a constant); it gets one generator seeded
    from `seed`, so the comparison gives the same numbers every time.

    Returns (observed, null_values, quantile) with quantile the null's `q`-quantile; a claim is then
    `Claim.check(id, ..., observed, ">", quantile, details=f"p = {result.p_value:.3g}")`.
    """
    if n_null < 1:
        raise ValueError(f"n_null must be >= 1, got {n_null}")
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    rng = np.random.default_rng(seed)
    observed = float(select_fn(data))
    null_values = np.array([float(select_fn(null_fn(data, rng))) for _ in range(n_null)])
    return NullComparison(observed, null_values, float(np.quantile(null_values, q)))


def shuffled(key: Any = None, axis: int = 0) -> Callable[[Any, np.random.Generator], Any]:
    """A `null_fn` that permutes the labels: the whole array (key=None), `data[key]` of a dict (the other
    entries kept), or element `key` of a tuple/list such as (scores, labels). Permutes along `axis`."""

    def null(data: Any, rng: np.random.Generator) -> Any:
        if key is None:
            return rng.permutation(np.asarray(data), axis=axis)
        if isinstance(data, Mapping):
            return {**data, key: rng.permutation(np.asarray(data[key]), axis=axis)}
        items = list(data)
        items[key] = rng.permutation(np.asarray(items[key]), axis=axis)
        return type(data)(items) if isinstance(data, tuple) else items

    return null


def random_groups(
    sizes: Sequence[int], n_items: int | None = None
) -> Callable[[Any, np.random.Generator], Any]:
    """A `null_fn` for group claims: returns index arrays of the given `sizes`, drawn without replacement
    from range(n_items) (default: the length of `data`). `select_fn` then scores those groups the way it
    scores the real ones."""

    def null(data: Any, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(data) if n_items is None else n_items
        if sum(sizes) > n:
            raise ValueError(f"groups of sizes {list(sizes)} do not fit in {n} items")
        order = rng.permutation(n)
        bounds = np.cumsum([0, *sizes])
        return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    return null


def balanced_accuracy(pred: Sequence[Any], truth: Sequence[Any]) -> float:
    """The mean over classes of the recall (scikit-learn's balanced_accuracy_score): 1/k for any constant
    predictor over k classes, 1 for a perfect one. Note the argument order: predictions first."""
    from sklearn.metrics import balanced_accuracy_score

    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape, got {pred.shape} and {truth.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": the score stays right
        return float(balanced_accuracy_score(truth, pred))


class ConstantBaseline(NamedTuple):
    """The best constant predictor: the majority `label`, its `accuracy` (the majority share) and its
    `balanced_accuracy` (1/k over k classes)."""

    label: Any
    accuracy: float
    balanced_accuracy: float


def constant_baseline(truth: Sequence[Any]) -> ConstantBaseline:
    """What always predicting the most frequent label scores on `truth` (ties: the smallest label). A claim
    on plain accuracy must beat `accuracy`; one on balanced accuracy must beat `balanced_accuracy`."""
    truth = np.asarray(truth)
    if truth.size == 0:
        raise ValueError("constant_baseline needs at least one label")
    labels, counts = np.unique(truth, return_counts=True)
    best = int(np.argmax(counts))
    label = labels[best].item() if hasattr(labels[best], "item") else labels[best]
    return ConstantBaseline(label, float(counts[best] / truth.size), 1.0 / labels.size)
