"""Data for the papers: synthetic generators, loaders of real text shipped in pip packages, a tokenizer.

Public API of the modules here (each documents its sources and sizes):

* `tokenizer`: `ByteTokenizer` (UTF-8 bytes + <pad>/<bos>/<eos> + extra specials), `pad_sequences`.
* `pcfg`: `PCFG` (layered cfg3-style grammars: `random`, `cfg3_toy`, `sample`, `sample_with_trees`,
  `inside_log_prob`, `to_dict`/`from_dict`), `ParseTree`, `Span`, `Rule`.
* `real`: `load_digits_split` (scikit-learn digits), `load_gensim_corpus` ("lee_background", "head500").

scikit-learn and gensim are imported only when a loader is called.
"""

from common.data.pcfg import PCFG, ParseTree, Rule, Span
from common.data.real import GENSIM_CORPORA, gensim_corpus_path, load_digits_split, load_gensim_corpus
from common.data.tokenizer import ByteTokenizer, pad_sequences

__all__ = [
    "GENSIM_CORPORA",
    "PCFG",
    "ByteTokenizer",
    "ParseTree",
    "Rule",
    "Span",
    "gensim_corpus_path",
    "load_digits_split",
    "load_gensim_corpus",
    "pad_sequences",
]
