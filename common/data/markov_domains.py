"""Synthetic token domains with known, different learnability and an exact Bayes loss: order-1 Markov
chains (Zipf-visited states, flat Dirichlet rows, uniform noise) and a tiny repeated domain.

Written for data-mixing experiments (ADO, Jiang et al., ICLR 2025, arXiv 2410.11820), where each domain's
irreducible loss eps_k must be known to judge a fitted scaling law L_k(n) = eps_k + beta_k n^(-alpha_k).

* `zipf_markov(n_states, zipf_a, concentration)`: an order-1 chain whose rows are Dirichlet(c z) with
  z_i proportional to (i + 1)^(-a), so the chain visits state i about z_i of the time and each row leans
  towards the frequent states. A model learns the frequent rows first and the rare ones later, so the
  loss falls smoothly, like a power law in the number of sequences seen, with no plateau.
* `dirichlet_markov(n_states, alpha)`: rows Dirichlet(alpha) (flat): a small one saturates early.
* `noise_domain(n_tokens)`: uniform i.i.d. tokens, eps = log V, nothing learnable.
* `RepeatedDomain`: a few fixed documents drawn uniformly and cycled (memorisable).

A sequence has `length` tokens; a model predicts tokens 1..length-1 from the ones before. For a chain the
Bayes predictor of x_t given x_<t is P[x_{t-1}, x_t], so a sequence's exact Bayes loss is the mean of
-log P[x_{t-1}, x_t] over its targets (`MarkovDomain.bayes_logloss`), and its expectation under the
stationary start is the entropy rate sum_i pi_i H(P_i) (`MarkovDomain.entropy_rate`). For a repeated
domain the Bayes predictor is the empirical next-token distribution among the documents sharing the prefix.

Every domain owns the token ids [offset, offset + n_tokens), so that several domains share one vocabulary
without sharing tokens. Cost: sampling 32 sequences of 17 tokens from a 512-state chain takes ~0.2 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MarkovDomain",
    "RepeatedDomain",
    "zipf_markov",
    "dirichlet_markov",
    "noise_domain",
    "repeated_domain",
    "stationary_distribution",
]


def _check_int(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def stationary_distribution(transition: np.ndarray, iters: int = 10_000, tol: float = 1e-13) -> np.ndarray:
    """The stationary distribution pi = pi P of a row-stochastic (S, S) matrix, by power iteration."""
    P = np.asarray(transition, dtype=np.float64)
    pi = np.full(P.shape[0], 1.0 / P.shape[0])
    for _ in range(iters):
        nxt = pi @ P
        if np.abs(nxt - pi).sum() < tol:
            return nxt / nxt.sum()
        pi = nxt
    return pi / pi.sum()


@dataclass(frozen=True, eq=False)
class MarkovDomain:
    """An order-1 Markov chain over states 0..S-1, emitted as tokens offset..offset+S-1.

    transition: (S, S) row-stochastic; the first token of a sequence is drawn from the stationary
    distribution, so every position has the same marginal and `entropy_rate` is the expected Bayes loss.
    """

    name: str
    transition: np.ndarray  # (S, S)
    offset: int = 0
    start: np.ndarray = field(init=False)  # (S,) stationary distribution
    _cdf: np.ndarray = field(init=False, repr=False)  # (S, S) row-wise cumulative sums
    _logp: np.ndarray = field(init=False, repr=False)  # (S, S) log P

    def __post_init__(self) -> None:
        P = np.asarray(self.transition, dtype=np.float64)
        if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
            raise ValueError(f"transition must be a square (S, S) matrix, got shape {P.shape}")
        if not np.all(np.isfinite(P)) or np.any(P < 0) or not np.allclose(P.sum(1), 1.0, atol=1e-9):
            raise ValueError("transition must have finite non-negative rows that sum to 1")
        _check_int("offset", self.offset, 0)
        object.__setattr__(self, "transition", P)
        object.__setattr__(self, "start", stationary_distribution(P))
        object.__setattr__(self, "_cdf", np.cumsum(P, axis=1))
        with np.errstate(divide="ignore"):
            object.__setattr__(self, "_logp", np.log(P))

    @property
    def n_tokens(self) -> int:
        return self.transition.shape[0]

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """(n, length) int64 token ids (offset included)."""
        _check_int("n", n, 1)
        _check_int("length", length, 2)
        S = self.n_tokens
        states = np.empty((n, length), dtype=np.int64)
        states[:, 0] = np.minimum(np.searchsorted(np.cumsum(self.start), rng.random(n)), S - 1)
        for t in range(1, length):
            u = rng.random(n)[:, None]  # (n, 1)
            states[:, t] = np.minimum((self._cdf[states[:, t - 1]] < u).sum(1), S - 1)
        return states + self.offset

    def bayes_logloss(self, tokens: np.ndarray) -> np.ndarray:
        """(n,) exact Bayes log-loss (nats per target) of each sequence in `tokens` (n, length)."""
        s = np.asarray(tokens, dtype=np.int64) - self.offset
        if s.ndim != 2 or s.shape[1] < 2 or s.min() < 0 or s.max() >= self.n_tokens:
            raise ValueError(f"tokens must be (n, length >= 2) ids of domain {self.name!r}, got {s.shape}")
        return -self._logp[s[:, :-1], s[:, 1:]].mean(1)

    def entropy_rate(self) -> float:
        """sum_i pi_i H(P_i) in nats: the expected Bayes loss per target."""
        P = self.transition
        with np.errstate(divide="ignore", invalid="ignore"):
            row_h = -np.where(P > 0, P * np.log(P), 0.0).sum(1)
        return float(self.start @ row_h)


def zipf_markov(name: str, n_states: int, zipf_a: float, concentration: float, rng: np.random.Generator,
                offset: int = 0) -> MarkovDomain:
    """Rows Dirichlet(concentration * z), z_i = (i + 1)^(-zipf_a) / sum: states visited in Zipf proportion
    (frequent rows are learned first, rare ones later: a smooth, power-law-like loss curve)."""
    _check_int("n_states", n_states, 2)
    if not (np.isfinite(zipf_a) and zipf_a >= 0):
        raise ValueError(f"zipf_a must be a finite number >= 0, got {zipf_a!r}")
    _check_positive("concentration", concentration)
    z = (np.arange(1, n_states + 1, dtype=np.float64)) ** (-float(zipf_a))
    z /= z.sum()
    P = rng.dirichlet(concentration * z, size=n_states)  # (S, S)
    P = np.maximum(P, 1e-300)
    return MarkovDomain(name, P / P.sum(1, keepdims=True), offset)


def dirichlet_markov(name: str, n_states: int, alpha: float, rng: np.random.Generator,
                     offset: int = 0) -> MarkovDomain:
    """Rows Dirichlet(alpha, ..., alpha): every state equally visited (a small one saturates early)."""
    _check_int("n_states", n_states, 2)
    _check_positive("alpha", alpha)
    P = np.maximum(rng.dirichlet(np.full(n_states, float(alpha)), size=n_states), 1e-300)
    return MarkovDomain(name, P / P.sum(1, keepdims=True), offset)


def noise_domain(name: str, n_tokens: int, offset: int = 0) -> MarkovDomain:
    """Uniform i.i.d. tokens: a chain with uniform rows, Bayes loss exactly log(n_tokens)."""
    _check_int("n_tokens", n_tokens, 2)
    return MarkovDomain(name, np.full((n_tokens, n_tokens), 1.0 / n_tokens), offset)


@dataclass(frozen=True, eq=False)
class RepeatedDomain:
    """A tiny domain: `docs` (n_docs, length) token ids, each sequence drawn uniformly from them.

    The Bayes predictor of x_t given the prefix x_<t is the next-token frequency among the documents that
    share the prefix (duplicates counted), so `bayes_logloss` is exact for this distribution; it goes to 0
    once prefixes identify their document, which a model that memorises the documents also reaches.
    """

    name: str
    docs: np.ndarray  # (n_docs, length)
    offset: int = 0
    n_tokens: int = 0  # the size of the token range [offset, offset + n_tokens) the documents live in

    def __post_init__(self) -> None:
        docs = np.asarray(self.docs, dtype=np.int64)
        if docs.ndim != 2 or docs.shape[0] < 1 or docs.shape[1] < 2:
            raise ValueError(f"docs must be (n_docs >= 1, length >= 2), got shape {docs.shape}")
        object.__setattr__(self, "docs", docs)
        if self.n_tokens <= 0:
            object.__setattr__(self, "n_tokens", int(docs.max() - self.offset + 1))

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        _check_int("n", n, 1)
        if length != self.docs.shape[1]:
            raise ValueError(f"length must equal the documents' length {self.docs.shape[1]}, got {length}")
        return self.docs[rng.integers(0, self.docs.shape[0], size=n)]

    def bayes_logloss(self, tokens: np.ndarray) -> np.ndarray:
        """(n,) exact Bayes log-loss per target under the uniform distribution over `docs`."""
        seqs = np.asarray(tokens, dtype=np.int64)
        if seqs.ndim != 2 or seqs.shape[1] != self.docs.shape[1]:
            raise ValueError(f"tokens must be (n, {self.docs.shape[1]}), got shape {seqs.shape}")
        out = np.empty(seqs.shape[0])
        for i, seq in enumerate(seqs):
            match = np.ones(self.docs.shape[0], dtype=bool)
            total = 0.0
            for t in range(1, seqs.shape[1]):
                match &= self.docs[:, t - 1] == seq[t - 1]
                hits = match & (self.docs[:, t] == seq[t])
                if not hits.any():
                    raise ValueError(f"sequence {i} is not one of the domain's documents")
                total -= np.log(hits.sum() / match.sum())
            out[i] = total / (seqs.shape[1] - 1)
        return out


def repeated_domain(name: str, base: MarkovDomain, n_docs: int, length: int,
                    rng: np.random.Generator) -> RepeatedDomain:
    """`n_docs` documents of `length` tokens drawn once from `base` (same token range) and cycled."""
    _check_int("n_docs", n_docs, 1)
    return RepeatedDomain(name, base.sample(n_docs, length, rng), base.offset, base.n_tokens)
