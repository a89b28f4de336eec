"""One synthetic instance shared by the figures: a p-separable topic model, m documents of length L drawn
from it, the learned state T(S), and the measured sensitivities (kappa for A, kappa_w for each head).

Seeds: the model, the documents, the calibration and the unlearning noise come from one
`np.random.default_rng(seed)` stream in that order, so the method and its baselines (retraining, doing
nothing) see the same model, documents and forget sets at each seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from common.data.topic_models import TopicModel, sample_documents, separable_topic_model
from papers.topic_unlearning.learner import TopicState, learn_topics
from papers.topic_unlearning.unlearning import calibrate_sensitivity, match_columns


@dataclass(frozen=True)
class Instance:
    model: TopicModel
    docs: np.ndarray  # (m, L)
    state: TopicState  # learned, with `sensitivity` = kappa
    kappa_heads: tuple[float, ...]  # kappa_w for each head (in the true topics' order)
    perm: np.ndarray  # (r,): state.A[:, perm] ~ model.A
    rng: np.random.Generator  # the stream after building (forget sets, noise)


def learned_order(w_true: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The head w_true (r,) on the true topics, rewritten on the learned column order."""
    w = np.zeros_like(w_true)
    w[perm] = w_true
    return w


def build(
    n: int,
    r: int,
    anchor_mass: float,
    alpha: float,
    m: int,
    length: int,
    seed: int,
    heads: Sequence[np.ndarray] = (),
) -> Instance:
    """Draw the model and documents, learn (anchor candidates: marginal >= p / (2 r), half an anchor's
    marginal), and measure kappa and each head's kappa_w on random and anchor forget sets."""
    rng = np.random.default_rng(seed)
    model = separable_topic_model(n, r, anchor_mass, alpha, rng)
    docs = sample_documents(model, m, length, rng)
    state = learn_topics(docs, r, vocab_size=n, candidate_min_marginal=anchor_mass / (2 * r))
    perm = match_columns(state.A, model.A)
    kappa, kappa_w, _ = calibrate_sensitivity(
        state, rng, heads=[learned_order(np.asarray(w, float), perm) for w in heads]
    )
    return Instance(
        model=model,
        docs=docs,
        state=replace(state, sensitivity=kappa),
        kappa_heads=tuple(kappa_w),
        perm=perm,
        rng=rng,
    )
