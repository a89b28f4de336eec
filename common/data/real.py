"""Small real datasets that ship inside pip packages, so nothing is downloaded at run time.

* `load_digits_split`: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes, 64 pixel
  features with values 0..16; the UCI "optdigits" test set).
* `load_gensim_corpus`: text files from gensim's test data directory,

  - ``"lee_background"``: ``lee_background.cor``, the background corpus of Lee, Pincombe & Welsh (2005),
    "An empirical evaluation of models of text document similarity" (CogSci 2005): news articles from the
    Australian Broadcasting Corporation's news mail service, used in gensim's doc2vec and LDA tutorials.
    The shipped file holds 300 articles, one per line, raw English text (gensim's doc2vec tutorial says
    314; we count the file). We tokenize with `gensim.utils.simple_preprocess` (lowercased alphabetic
    tokens of 2-15 characters): 58,152 tokens in all, 43..607 per document.
  - ``"head500"``: ``head500.noblanks.cor``, 250 English Wikipedia articles (Anarchism, Autism, ...), one
    per line, CRLF line ends; the name says it is the head (500 lines) of a dump with the blank lines
    removed. The file is already preprocessed: lowercased, Porter-stemmed ("dictionari", "philosophi"),
    stop words and numbers removed, tokens separated by single spaces and kept in article order. So it is a
    token sequence per article, not a bag of words (a token repeats where the article repeats it). We
    split on whitespace and do not re-tokenize: 331,339 tokens in all, 98..6,610 per document.

Both loaders import their package lazily and raise an ImportError naming the pip command when it is
missing, so importing `common.data` never needs scikit-learn or gensim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

GENSIM_CORPORA: dict[str, str] = {
    "lee_background": "lee_background.cor",
    "head500": "head500.noblanks.cor",
}


def _missing(package: str, pip_name: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the '{package}' package, which is not installed; "
        f"install it with: pip install {pip_name}"
    )


def load_digits_split(
    test_fraction: float = 0.25,
    seed: int = 0,
    standardize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits, split into train and test, stratified by class.

    Args:
        test_fraction: share of the 1797 images held out (scikit-learn rounds the test count up:
            0.25 -> 450 test, 1347 train).
        seed: split seed; the same seed gives the same split on every machine.
        standardize: subtract the per-pixel train mean and divide by the train standard deviation (pixels
            that are constant on train, such as corners that are always 0, are only centred). Test data uses
            the train statistics. With False the raw pixel values 0..16 are returned as floats.

    Returns:
        x_train float32 (N_train, 64), y_train int64 (N_train,), x_test float32 (N_test, 64),
        y_test int64 (N_test,).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise _missing("scikit-learn", "scikit-learn", "load_digits_split") from err

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64)  # (1797, 64)
    y = np.asarray(data.target, dtype=np.int64)  # (1797,)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    if standardize:
        mean = x_tr.mean(axis=0)  # (64,)
        std = x_tr.std(axis=0)  # (64,)
        std = np.where(std > 0, std, 1.0)
        x_tr = (x_tr - mean) / std
        x_te = (x_te - mean) / std
    return (
        torch.from_numpy(x_tr.astype(np.float32)),
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te.astype(np.float32)),
        torch.from_numpy(y_te),
    )


def gensim_corpus_path(name: str) -> Path:
    """Where gensim keeps the file behind corpus `name` (see `GENSIM_CORPORA`)."""
    if name not in GENSIM_CORPORA:
        raise ValueError(f"unknown gensim corpus {name!r}; valid names: {sorted(GENSIM_CORPORA)}")
    try:
        from gensim.test.utils import datapath
    except ImportError as err:
        raise _missing("gensim", "gensim", "load_gensim_corpus") from err
    path = Path(datapath(GENSIM_CORPORA[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"gensim is installed but its test file {path} is missing; "
            "reinstall it with: pip install --force-reinstall gensim"
        )
    return path


def load_gensim_corpus(name: str) -> list[list[str]]:
    """The documents of a corpus shipped with gensim, each a list of tokens, in file order.

    Names: ``"lee_background"`` (300 news articles, tokenized here with `gensim.utils.simple_preprocess`)
    and ``"head500"`` (250 Wikipedia articles, already stemmed and tokenized in the file; split on
    whitespace). See the module docstring for the formats and sizes.
    """
    path = gensim_corpus_path(name)
    text = path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    if name == "lee_background":
        from gensim.utils import simple_preprocess

        return [simple_preprocess(line) for line in lines]
    return [line.split() for line in lines]
