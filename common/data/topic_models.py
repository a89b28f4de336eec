"""Separable topic models (Arora, Ge, Moitra, FOCS 2012, "Learning topic models - going beyond SVD") and
bag-of-words documents drawn from them.

Notation (AGM 2012, used by Wei, Malladi, Arora, Sanyal, ICLR 2025, arXiv 2411.12600): n words, r topics,
m documents. A (n, r) is the topic-word matrix (column k is the word distribution of topic k); each
document d has topic proportions theta_d ~ Dirichlet(alpha 1_r) and each of its L words is drawn by first
drawing a topic z ~ theta_d and then a word w ~ A[:, z]. The model is p-separable: topic k has an anchor
word s_k with A[s_k, k] = p and A[s_k, k'] = 0 for k' != k.

The word-word co-occurrence matrix of two distinct word positions of one document is Q = A R A^T with
R = E[theta theta^T] (r, r); for a symmetric Dirichlet, R = (diag(alpha) + alpha alpha^T) / (a0 (a0 + 1)),
a0 = sum(alpha) (the Dirichlet second moment). Documents of length L = 2 are the setting of the unlearning
paper (its footnote on p. 4, as quoted by a reviewer); any L >= 2 is supported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TopicModel:
    """A p-separable topic model: A (n, r) column-stochastic, anchors (r,) with A[anchors[k], k] = p."""

    A: np.ndarray  # (n, r)
    anchors: np.ndarray  # (r,) word index of each topic's anchor
    alpha: float  # symmetric Dirichlet concentration of the topic proportions

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def r(self) -> int:
        return int(self.A.shape[1])

    @property
    def R(self) -> np.ndarray:
        """E[theta theta^T] (r, r) of theta ~ Dirichlet(alpha 1_r)."""
        return dirichlet_second_moment(np.full(self.r, self.alpha))

    @property
    def Q(self) -> np.ndarray:
        """The population co-occurrence A R A^T (n, n); its entries sum to 1."""
        return self.A @ self.R @ self.A.T


def dirichlet_second_moment(alpha: np.ndarray) -> np.ndarray:
    """E[theta theta^T] for theta ~ Dirichlet(alpha): (diag(alpha) + alpha alpha^T) / (a0 (a0 + 1))."""
    alpha = np.asarray(alpha, dtype=float)
    if alpha.ndim != 1 or alpha.size < 1 or not np.all(alpha > 0):
        raise ValueError(f"alpha must be a non-empty vector of positive numbers, got {alpha!r}")
    a0 = alpha.sum()
    return (np.diag(alpha) + np.outer(alpha, alpha)) / (a0 * (a0 + 1.0))


def separable_topic_model(
    n: int,
    r: int,
    anchor_mass: float,
    alpha: float,
    rng: np.random.Generator,
    word_concentration: float = 1.0,
) -> TopicModel:
    """A random p-separable model: r anchor words at random positions, A[s_k, k] = anchor_mass (= p), and
    the rest of each column, 1 - p, spread over the n - r non-anchor words by Dirichlet(word_concentration).
    """
    if not (isinstance(n, int | np.integer) and isinstance(r, int | np.integer)) or r < 1 or n <= r:
        raise ValueError(f"need integers 1 <= r < n (r topics, n words), got n={n!r}, r={r!r}")
    if not 0 < anchor_mass <= 1:
        raise ValueError(f"anchor_mass (p) must be in (0, 1], got {anchor_mass!r}")
    if not alpha > 0 or not word_concentration > 0:
        raise ValueError(f"alpha and word_concentration must be > 0, got {alpha!r}, {word_concentration!r}")
    words = rng.permutation(n)
    anchors, others = words[:r], words[r:]
    A = np.zeros((n, r))
    A[anchors, np.arange(r)] = anchor_mass
    A[others, :] = (1.0 - anchor_mass) * rng.dirichlet(np.full(n - r, word_concentration), size=r).T
    return TopicModel(A=A, anchors=np.asarray(anchors), alpha=float(alpha))


def sample_documents(model: TopicModel, m: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """m documents of `length` words each, as an (m, length) int array of word ids.

    theta_d ~ Dirichlet(alpha 1_r), z ~ theta_d, w ~ A[:, z] independently for each position (LDA's
    generative process). Vectorised by inverse-CDF sampling: 10^6 two-word documents take about 1.5 s.
    """
    return topic_proportions_and_documents(model, m, length, rng)[1]


def topic_proportions_and_documents(
    model: TopicModel, m: int, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Like `sample_documents`, also returning each document's topic proportions theta (m, r) (the
    ground truth that a downstream label is computed from)."""
    if m < 1 or length < 2:
        raise ValueError(f"need m >= 1 documents of length >= 2, got m={m!r}, length={length!r}")
    theta = rng.dirichlet(np.full(model.r, model.alpha), size=m)  # (m, r)
    cum_theta = np.cumsum(theta, axis=1)
    u = rng.random((m, length))
    z = np.minimum((u[:, :, None] > cum_theta[:, None, :]).sum(2), model.r - 1)
    cum_A = np.cumsum(model.A, axis=0)
    cum_A[-1, :] = 1.0
    v = rng.random((m, length))
    words = np.empty((m, length), dtype=np.int64)
    for k in range(model.r):
        mask = z == k
        words[mask] = np.searchsorted(cum_A[:, k], v[mask], side="right")
    return theta, np.minimum(words, model.n - 1)
