"""The base learner that the paper unlearns: the anchor-word algorithm of Arora, Ge, Halpern, Mimno, Moitra,
Sontag, Wu, Zhu (ICML 2013, "A practical algorithm for topic modeling with provable guarantees"), which is
Algorithms 3-5 of Wei, Malladi, Arora, Sanyal (ICLR 2025): build the word co-occurrence estimate Q-hat, find
r anchor words (FastAnchorWords, "Recover Anchors"), and express every word's row of the row-normalised
Q-bar as a convex combination of the anchor rows (RecoverL2 or RecoverKL, "Recover Topics").

* Q-hat: for a document with word-count vector h (n,) and length L, W_d = (h h^T - diag(h)) / (L (L - 1))
  (entrywise >= 0, sums to 1), Q-hat = (1/m) sum_d W_d; E[Q-hat] = A R A^T exactly (the reference
  implementation's estimator; see proofs_checks/topic_deletion_capacity.py for the exact check).
* FastAnchorWords: among candidate words (word marginal Q-hat 1 >= `candidate_min_marginal`; rare words'
  rows are too noisy to be anchors, as the reference code's document-count threshold says), pick the row of
  Q-bar farthest from the origin, then the row farthest from it, then repeatedly the row farthest from the
  affine span of those picked (stabilised Gram-Schmidt). Each pick maximises a convex function over the
  convex hull of the rows, so it is a vertex: an anchor when Q-bar is exact.
* RecoverL2: C_i = argmin_{c in simplex} ||Q-bar_i - c Q-bar_S||^2, solved exactly (scipy NNLS with the
  sum constraint as a heavily weighted row, then the KKT system on the support, checked); A' = diag(p_w) C
  with p_w = Q-hat 1 (Bayes' rule), columns normalised to give A; R = A^+ Q-hat A^+T.
* RecoverKL: the same with KL(Q-bar_i || c Q-bar_S), by scipy SLSQP per word (slower; for comparison).

The stored statistics T(S) of Sekhari et al. (NeurIPS 2021), on which unlearning runs (unlearning.py):
the per-document count matrix (to look up forget ids), the unnormalised sum of W_d, the anchors, the
coefficients C and the Gram matrix G = Q-bar_S Q-bar_S^T (the Hessian of RecoverL2's objective, up to 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse as sp

RECOVER_METHODS = ("l2", "kl")
KKT_TOL = 1e-10  # relative tolerance of the KKT optimality check of the exact simplex solve


@dataclass(frozen=True)
class TopicState:
    """A learned topic model and the statistics T(S) that unlearning needs (shapes in comments)."""

    counts: sp.csr_matrix  # (m_total, n) word counts of the training documents, forgotten ones included
    alive: np.ndarray  # (m_total,) bool: documents not yet forgotten
    q_sum: np.ndarray  # (n, n) sum of W_d over alive documents
    m: int  # number of alive documents (the documents the model stands for)
    r: int
    anchors: np.ndarray  # (r,) anchor word of each topic (column order of A)
    C: np.ndarray  # (n, r) RecoverL2 coefficients, rows in the simplex
    A: np.ndarray  # (n, r) topic-word matrix, columns sum to 1
    R: np.ndarray  # (r, r) topic co-occurrence A^+ Q A^+T
    hessian: np.ndarray  # (r, r) G = Q-bar_S Q-bar_S^T at learning time (Sekhari's stored Hessian)
    candidate_min_marginal: float
    method: str = "l2"
    sensitivity: float | None = None  # kappa: l2 change of A per unit l1 change of Q-hat (unlearning.py)

    @property
    def n(self) -> int:
        return int(self.q_sum.shape[0])

    @property
    def Q(self) -> np.ndarray:
        """Q-hat (n, n) of the alive documents."""
        return self.q_sum / self.m


def _is_int_array(x: np.ndarray) -> bool:
    return np.issubdtype(x.dtype, np.integer)


def document_counts(docs: Sequence[Sequence[int]] | np.ndarray, vocab_size: int | None) -> sp.csr_matrix:
    """Word-count matrix H (m, n) of `docs` (an (m, L) int array or a sequence of int sequences, word ids in
    [0, vocab_size); vocab_size None: 1 + the largest id), validated: at least one document, every document
    at least 2 words (W_d needs two distinct positions), ids in range."""
    if vocab_size is not None and (
        not isinstance(vocab_size, int | np.integer) or isinstance(vocab_size, bool) or vocab_size < 1
    ):
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if isinstance(docs, np.ndarray):
        if docs.ndim != 2 or not _is_int_array(docs):
            raise ValueError(f"docs as an array must be 2-D integer (m, L), got {docs.dtype} {docs.shape}")
        lengths = np.full(docs.shape[0], docs.shape[1], dtype=np.int64)
        flat = docs.reshape(-1)
    else:
        if isinstance(docs, str | bytes) or not isinstance(docs, Sequence):
            raise ValueError(
                f"docs must be an (m, L) int array or a sequence of word-id sequences, got "
                f"{type(docs).__name__}"
            )
        arrays = []
        for i, doc in enumerate(docs):
            a = np.asarray(doc)
            if a.ndim != 1 or (a.size and not _is_int_array(a)):
                raise ValueError(
                    f"docs[{i}] must be a 1-D sequence of integer word ids, got {a.dtype} {a.shape}"
                )
            arrays.append(a.astype(np.int64))
        lengths = np.array([a.size for a in arrays], dtype=np.int64)
        flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    m = lengths.size
    if m == 0:
        raise ValueError("docs is empty: need at least one document")
    if np.any(lengths < 2):
        bad = np.flatnonzero(lengths < 2)[:5].tolist()
        raise ValueError(
            f"every document needs at least 2 words (co-occurrence of two positions); "
            f"documents {bad} have fewer"
        )
    if vocab_size is None:
        vocab_size = int(flat.max()) + 1 if flat.min() >= 0 else 1
    if flat.min() < 0 or flat.max() >= vocab_size:
        raise ValueError(
            f"word ids must lie in [0, vocab_size={vocab_size}), got range "
            f"[{int(flat.min())}, {int(flat.max())}]"
        )
    rows = np.repeat(np.arange(m), lengths)
    H = sp.csr_matrix((np.ones(flat.size), (rows, flat)), shape=(m, vocab_size))
    H.sum_duplicates()
    return H


def cooccurrence_sum(H: sp.csr_matrix) -> np.ndarray:
    """sum_d W_d (n, n) for the documents (rows) of H: H^T D H - diag(H^T D 1), D = diag(1/(L_d (L_d-1)))."""
    lengths = np.asarray(H.sum(axis=1)).ravel()  # (m,)
    weights = 1.0 / (lengths * (lengths - 1.0))  # (m,)
    HD = sp.diags(weights) @ H  # (m, n)
    total = (H.T @ HD).toarray()  # (n, n)
    total[np.diag_indices_from(total)] -= np.asarray(HD.sum(axis=0)).ravel()
    return total


def cooccurrence(docs: Sequence[Sequence[int]] | np.ndarray, vocab_size: int) -> np.ndarray:
    """The word co-occurrence estimate Q-hat = (1/m) sum_d (h_d h_d^T - diag h_d) / (L_d (L_d - 1)) (n, n)
    of AGHMMSWZ 2013 (the estimator behind Algorithm 3 of Wei et al. 2025); unbiased for A R A^T."""
    if vocab_size is None:
        raise ValueError("vocab_size must be a positive integer (the number n of words), got None")
    H = document_counts(docs, vocab_size)
    return cooccurrence_sum(H) / H.shape[0]


def row_normalise(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q-bar, p_w): rows of Q divided by the word marginals p_w = Q 1 (zero rows stay zero)."""
    p_w = Q.sum(axis=1)  # (n,)
    safe = np.where(p_w > 0, p_w, 1.0)
    return Q / safe[:, None], p_w


def fast_anchor_words(Qbar: np.ndarray, r: int, candidates: np.ndarray) -> np.ndarray:
    """FastAnchorWords (AGHMMSWZ 2013, Algorithm 4; "Recover Anchors" in Wei et al. 2025): r rows of Qbar
    among `candidates`, farthest from the origin, then from the first, then from the affine span so far."""
    if candidates.size < r:
        raise ValueError(
            f"only {candidates.size} candidate anchor words for r={r} topics: lower "
            "candidate_min_marginal or use more documents"
        )
    X = Qbar[candidates].copy()  # (c, n)
    first = int(np.argmax(np.einsum("ij,ij->i", X, X)))
    picks = [first]
    Y = X - X[first]  # (c, n): translate so the first anchor is the origin
    for _ in range(r - 1):
        norms = np.einsum("ij,ij->i", Y, Y)
        norms[picks] = -1.0
        i = int(np.argmax(norms))
        if norms[i] <= 0:
            raise ValueError(
                f"FastAnchorWords found only {len(picks)} affinely independent candidate rows for r={r}"
            )
        b = Y[i] / np.sqrt(norms[i])  # (n,)
        picks.append(i)
        Y -= np.outer(Y @ b, b)  # project out b (Gram-Schmidt)
    return candidates[np.array(picks)]


def face_solve(G: np.ndarray, b: np.ndarray, support: np.ndarray) -> np.ndarray:
    """argmin c^T G c - 2 b^T c over {c : sum c = 1, c_k = 0 off `support`} (KKT system of the face),
    for many right-hand sides at once: b (w, r) -> c (w, r)."""
    S = np.flatnonzero(support)
    s = S.size
    K = np.zeros((s + 1, s + 1))
    K[:s, :s] = 2.0 * G[np.ix_(S, S)]
    K[:s, s] = 1.0
    K[s, :s] = 1.0
    rhs = np.zeros((b.shape[0], s + 1))
    rhs[:, :s] = 2.0 * b[:, S]
    rhs[:, s] = 1.0
    sol = np.linalg.solve(K, rhs.T).T  # (w, s + 1)
    c = np.zeros((b.shape[0], G.shape[0]))
    c[:, S] = sol[:, :s]
    return c


def kkt_ok(G: np.ndarray, b: np.ndarray, c: np.ndarray, tol: float = KKT_TOL) -> np.ndarray:
    """Per row: is c (w, r) optimal for min c^T G c - 2 b^T c on the simplex? c >= 0 and the gradient is
    minimal (equal) on the support and no smaller off it."""
    grad = 2.0 * (c @ G - b)  # (w, r)
    scale = tol * (1.0 + np.abs(grad).max(axis=1))
    on = c > 0
    nu = np.where(on, grad, np.inf).min(axis=1)
    nu_max = np.where(on, grad, -np.inf).max(axis=1)
    return (
        (c.min(axis=1) >= 0) & (nu_max - nu <= scale) & (np.where(on, np.inf, grad).min(axis=1) >= nu - scale)
    )


def simplex_qp(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact argmin_{c in simplex} c^T G c - 2 b^T c for each row of b (w, r): NNLS with the sum constraint
    as a weighted row gives the support; the face's KKT system gives the exact solution, checked by KKT."""
    r = G.shape[0]
    L = np.linalg.cholesky(G + 1e-14 * np.trace(G) / r * np.eye(r))  # G = L L^T
    lam = 1e4 * np.sqrt(np.trace(G) / r)
    M = np.vstack([L.T, lam * np.ones((1, r))])  # (r + 1, r): ||L^T c - y||^2 + lam^2 (1^T c - 1)^2
    y = np.linalg.solve(L, b.T).T  # (w, r): c^T G c - 2 b^T c = ||L^T c - y||^2 - ||y||^2
    c0 = np.array([scipy.optimize.nnls(M, np.append(yi, lam))[0] for yi in y])  # (w, r)
    c = np.zeros_like(c0)
    supports = c0 > 1e-12 * np.maximum(c0.max(axis=1, keepdims=True), 1e-300)
    patterns, inverse = np.unique(supports, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse.ravel() == p)
        c[rows] = face_solve(G, b[rows], pattern)
    bad = ~kkt_ok(G, b, c)
    if np.any(bad):  # the exact face solve left the simplex or is not optimal: keep the NNLS solution
        fallback = np.maximum(c0[bad], 0.0)
        c[bad] = fallback / fallback.sum(axis=1, keepdims=True)
    return c


def recover_kl(Qbar: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """RecoverKL: C_i = argmin_{c in simplex} KL(Qbar_i || c Qbar_S), per word by SLSQP (n small only)."""
    X = Qbar[anchors]  # (r, n)
    r = X.shape[0]
    C = np.zeros((Qbar.shape[0], r))
    cons = ({"type": "eq", "fun": lambda c: c.sum() - 1.0, "jac": lambda c: np.ones_like(c)},)
    for i, q in enumerate(Qbar):
        support = q > 0

        def f(c, q=q, support=support):
            mix = np.maximum(c @ X[:, support], 1e-300)
            val = float(np.sum(q[support] * (np.log(q[support]) - np.log(mix))))
            grad = -(X[:, support] @ (q[support] / mix))
            return val, grad

        res = scipy.optimize.minimize(
            f,
            np.full(r, 1.0 / r),
            jac=True,
            method="SLSQP",
            bounds=[(0, 1)] * r,
            constraints=cons,
            options={"ftol": 1e-12, "maxiter": 200},
        )
        c = np.maximum(res.x, 0.0)
        C[i] = c / c.sum()
    return C


def topics_from_coefficients(C: np.ndarray, p_w: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A = column-normalised diag(p_w) C (Bayes' rule) and R = A^+ Q A^+T (AGHMMSWZ 2013, RecoverL2)."""
    Ap = p_w[:, None] * C  # (n, r)
    A = Ap / np.maximum(Ap.sum(axis=0, keepdims=True), 1e-300)
    pinv = np.linalg.pinv(A)  # (r, n)
    return A, pinv @ Q @ pinv.T


@dataclass(frozen=True)
class Fit:
    anchors: np.ndarray
    C: np.ndarray
    A: np.ndarray
    R: np.ndarray
    hessian: np.ndarray


def fit_from_cooccurrence(Q: np.ndarray, r: int, candidate_min_marginal: float, method: str = "l2") -> Fit:
    """Anchors, C, A, R and the Gram (Hessian) G = Qbar_S Qbar_S^T learned from Q-hat alone."""
    Qbar, p_w = row_normalise(Q)
    candidates = np.flatnonzero(p_w >= candidate_min_marginal)
    anchors = fast_anchor_words(Qbar, r, candidates)
    X = Qbar[anchors]  # (r, n)
    G = X @ X.T  # (r, r)
    if method == "l2":
        C = simplex_qp(G, Qbar @ X.T)
    else:
        C = recover_kl(Qbar, anchors)
    A, R = topics_from_coefficients(C, p_w, Q)
    return Fit(anchors=anchors, C=C, A=A, R=R, hessian=G)


def learn_topics(
    docs: Sequence[Sequence[int]] | np.ndarray,
    r: int,
    *,
    vocab_size: int | None = None,
    candidate_min_marginal: float | None = None,
    method: str = "l2",
) -> TopicState:
    """Learn r topics from `docs` with the anchor-word algorithm (Wei et al. 2025, Algorithm 3: Q-hat,
    Recover Anchors, Recover Topics) and keep the statistics T(S) that `unlearn` (Algorithm 1) needs.

    docs: an (m, L) int array or a sequence of word-id sequences (each at least 2 words). vocab_size n
    defaults to 1 + the largest id. candidate_min_marginal: anchor candidates are words with marginal
    p_w >= it; default 1 / (2 n) (half a uniform word's share). On a p-separable model, p / (2 r) (half an
    anchor's marginal) is the safer choice when p is known.
    """
    if not isinstance(r, int | np.integer) or isinstance(r, bool) or r < 2:
        raise ValueError(f"r (number of topics) must be an integer >= 2, got {r!r}")
    if method not in RECOVER_METHODS:
        raise ValueError(f"method must be one of {RECOVER_METHODS}, got {method!r}")
    H = document_counts(docs, vocab_size)
    n = H.shape[1]
    if r >= n:
        raise ValueError(f"r={r} topics need a vocabulary larger than r, got vocab_size={n}")
    threshold = 1.0 / (2 * n) if candidate_min_marginal is None else float(candidate_min_marginal)
    if not 0 <= threshold < 1:
        raise ValueError(f"candidate_min_marginal must be in [0, 1), got {candidate_min_marginal!r}")
    q_sum = cooccurrence_sum(H)
    fit = fit_from_cooccurrence(q_sum / H.shape[0], r, threshold, method)
    return TopicState(
        counts=H,
        alive=np.ones(H.shape[0], dtype=bool),
        q_sum=q_sum,
        m=int(H.shape[0]),
        r=int(r),
        anchors=fit.anchors,
        C=fit.C,
        A=fit.A,
        R=fit.R,
        hessian=fit.hessian,
        candidate_min_marginal=threshold,
        method=method,
    )
