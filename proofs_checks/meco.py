"""Checks for Gao, Wettig, He, Dong, Malladi, Chen, "Metadata Conditioning Accelerates Language Model
Pre-training" (ICML 2025, arXiv 2501.01956): how much a document's source tells a model, exactly.

For a mixture of sources C (prior pi) each emitting an order-1 Markov chain, the Bayes-optimal next-token
loss without the metadata is H(X_t | X_<t) and with it H(X_t | X_<t, C). The gap at position t is the
conditional mutual information I(X_t; C | X_<t) >= 0, and by the chain rule the gaps sum to I(X_1..T; C)
= H(C) - H(C | X_1..T): the information the URL hands a model for free, and what the cooldown must teach
it to infer from the text instead (the paper cites Zhu, Panigrahi & Arora 2025, arXiv 2503.01821, on
context-enhanced learning, for this view). Checked by exact enumeration of every sequence (V = 3, T = 6,
K = 3 random chains):

* Chain rule: sum_t I(X_t; C | X_<t) = H(C) - H(C | X). Control: the sum of unconditional gaps
  sum_t [H(X_t) - H(X_t | C)] (the context forgotten) is rejected by the same tolerance.
* Decay: the per-position gap shrinks along the document once the source is inferable (the gap at the
  last position is below the gap at the second). Control: with all sources identical the gap is 0
  everywhere, so the same test (a strictly positive first gap) rejects it.
"""

from __future__ import annotations

import itertools

import numpy as np

from common.claims import Claim
from common.experiment import Check

PAPER = "meco"


def _mixture(seed: int, k: int = 3, v: int = 3, identical: bool = False):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(k))  # (K,)
    start = rng.dirichlet(np.ones(v), size=k)  # (K, V)
    trans = rng.dirichlet(np.ones(v) * 0.5, size=(k, v))  # (K, V, V)
    if identical:
        start[:] = start[0]
        trans[:] = trans[0]
    return pi, start, trans


def _joint(pi, start, trans, t_len: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """P(C = c, X = x) for every sequence x of length t_len: (K, V^T)."""
    k, v = start.shape
    seqs = list(itertools.product(range(v), repeat=t_len))
    p = np.empty((k, len(seqs)))
    for j, x in enumerate(seqs):
        q = pi * start[:, x[0]]
        for a, b in zip(x[:-1], x[1:], strict=False):
            q = q * trans[:, a, b]
        p[:, j] = q
    return p, seqs


def _h(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _prefix_entropy(p: np.ndarray, seqs, t: int, with_c: bool) -> float:
    """H(X_1..t) or H(C, X_1..t) from the joint over full sequences."""
    groups: dict[tuple, np.ndarray] = {}
    for j, x in enumerate(seqs):
        key = x[:t]
        groups[key] = groups.get(key, 0) + p[:, j]
    m = np.array(list(groups.values()))  # (prefixes, K)
    return _h(m.ravel()) if with_c else _h(m.sum(1))


def gaps(pi, start, trans, t_len: int) -> np.ndarray:
    """I(X_t; C | X_<t) for t = 1..T, from H(X_t | X_<t) - H(X_t | X_<t, C)."""
    p, seqs = _joint(pi, start, trans, t_len)
    hc = _h(pi)
    out = []
    for t in range(1, t_len + 1):
        h_x = _prefix_entropy(p, seqs, t, False) - _prefix_entropy(p, seqs, t - 1, False)
        h_xc = (_prefix_entropy(p, seqs, t, True) - hc) - (_prefix_entropy(p, seqs, t - 1, True) - hc)
        out.append(h_x - h_xc)
    return np.asarray(out)


def check_chain_rule() -> list[Claim]:
    t_len = 6
    pi, start, trans = _mixture(0)
    g = gaps(pi, start, trans, t_len)
    p, seqs = _joint(pi, start, trans, t_len)
    mutual = _h(pi) + _h(p.sum(0)) - _h(p.ravel())  # I(X; C) = H(C) + H(X) - H(C, X)
    err = abs(g.sum() - mutual)
    # control: unconditional per-position gaps H(X_t) - H(X_t | C)
    wrong = 0.0
    for t in range(t_len):
        marg = np.zeros((len(pi), start.shape[1]))
        for j, x in enumerate(seqs):
            marg[:, x[t]] += p[:, j]
        wrong += _h(marg.sum(0)) - (_h(marg.ravel()) - _h(pi))
    return [
        Claim.check("meco.theory.chain_rule", "sum_t I(X_t; C | X_<t) = I(X; C): the metadata's "
                    "information, position by position", err, "<=", 1e-10, kind="sanity",
                    details=f"I(X;C) = {mutual:.4f}"),
        Claim.check("meco.theory.chain_rule_control", "control: unconditional gaps do not sum to I(X; C)",
                    abs(wrong - mutual), ">", 1e-3, kind="sanity", details=f"sum = {wrong:.4f}"),
        Claim.check("meco.theory.gaps_nonnegative", "every per-position gap is >= 0", float(g.min()), ">=",
                    -1e-12, kind="sanity"),
    ]


def check_decay() -> list[Claim]:
    g = gaps(*_mixture(1), 6)
    g0 = gaps(*_mixture(1, identical=True), 6)
    return [
        Claim.check("meco.theory.gap_decays", "the gap at the last position is below the gap at the second",
                    float(g[-1] - g[1]), "<", 0.0, kind="sanity", details=f"gaps {np.round(g, 4).tolist()}"),
        Claim.check("meco.theory.gap_positive", "the first gap is > 0 for distinct sources", float(g[0]), ">",
                    1e-6, kind="sanity"),
        Claim.check("meco.theory.gap_control", "control: identical sources give a first gap of 0 "
                    "(rejected by the test above)", float(g0[0] > 1e-6), "<=", 0.0, kind="sanity",
                    details=f"gaps {np.round(g0, 12).tolist()}"),
    ]


CHECKS = (
    Check("meco_chain_rule", PAPER, "Metadata information per position sums to I(X; C)",
          "Sec. 3 (metadata conditioning); chain rule of mutual information", check_chain_rule),
    Check("meco_gap_decay", PAPER, "The metadata's per-position value decays along the document",
          "Sec. 3 (the cooldown must infer the source from the text)", check_decay),
)
