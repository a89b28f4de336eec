"""A real bag-of-words corpus for the learner: gensim's bundled Wikipedia sample (``head500``: 250 stemmed
articles) or the Lee news corpus (``lee_background``: 300 articles), loaded by
`common.data.real.load_gensim_corpus`, mapped to word ids over the `vocab_size` most frequent words
(documents keep only those words; documents left with fewer than 2 words are dropped).

250 articles are few for the anchor-word method: the co-occurrence estimate is noisy and, at r = 10, the
recovered topics mix subjects; some are clean at r = 20 (measured; see README). Used by the tests and the
README's real-corpus example, not by a figure.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from common.data.real import load_gensim_corpus


def gensim_bag_of_words(name: str = "head500", vocab_size: int = 1000) -> tuple[list[np.ndarray], list[str]]:
    """(documents as int arrays of word ids, the vocabulary: id -> word, most frequent first)."""
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    texts = load_gensim_corpus(name)
    counts = Counter(token for text in texts for token in text)
    vocab = [word for word, _ in counts.most_common(vocab_size)]
    index = {word: i for i, word in enumerate(vocab)}
    docs = [np.array([index[t] for t in text if t in index], dtype=np.int64) for text in texts]
    return [d for d in docs if d.size >= 2], vocab


def top_words(A: np.ndarray, vocab: list[str], k: int = 8) -> list[list[str]]:
    """The k most probable words of each topic (column of A (n, r))."""
    return [[vocab[i] for i in np.argsort(-A[:, j])[:k]] for j in range(A.shape[1])]
