"""Shi, Lee, Huang, Malladi, Zhao, Holtzman, Liu, Zettlemoyer, Smith, Zhang. "MUSE: Machine Unlearning Six-Way
Evaluation for Language Models". ICLR 2025, arXiv 2407.06460. Official code: swj0419/muse_bench.

API: `evaluate(model, corpus, auc_retrain=None)` (MUSE's per-model metrics C1-C4: VerbMem, KnowMem on D_f and
D_retain, the Min-40% AUC and PrivLeak) and `unlearn(method, target, corpus, **hparams)` (the eight methods
with MUSE's stopping rule); the benchmark corpus is `build_corpus(CorpusSpec(...))`; figures in `PAPER`.
"""

from common.experiment import Paper
from papers.muse.corpus import CorpusSpec, MuseCorpus, build_corpus
from papers.muse.methods import METHODS, UnlearnConfig, select_checkpoint, unlearn
from papers.muse.metrics import evaluate

PAPER = Paper(
    key="muse",
    title="MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
    authors="Shi, Lee, Huang, Malladi, Zhao, Holtzman, Liu, Zettlemoyer, Smith, Zhang",
    venue="ICLR 2025",
    arxiv="2407.06460",
    figure_modules=(
        "papers.muse.fig_main_table",
        "papers.muse.fig_scalability",
        "papers.muse.fig_sustainability",
    ),
)

__all__ = [
    "METHODS",
    "PAPER",
    "CorpusSpec",
    "MuseCorpus",
    "UnlearnConfig",
    "build_corpus",
    "evaluate",
    "select_checkpoint",
    "unlearn",
]
