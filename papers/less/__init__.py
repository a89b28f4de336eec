"""Xia, Malladi, Gururangan, Arora, Chen. "LESS: Selecting Influential Data for Targeted Instruction Tuning".
ICML 2024, arXiv 2402.04333. Official code: princeton-nlp/LESS (see README.md for where we differ from it).

API: `influence_scores(train_features, val_features_by_subtask, checkpoint_weights)` and
`select(scores, fraction)` (papers/less/influence.py); the pipeline that builds the gradient datastore with
`common.ops.GradientFeatures` is papers/less/pipeline.py.
"""

from common.experiment import Paper
from papers.less.influence import influence_scores, select

__all__ = ["PAPER", "influence_scores", "select"]

PAPER = Paper(
    key="less",
    title="LESS: Selecting Influential Data for Targeted Instruction Tuning",
    authors="Xia, Malladi, Gururangan, Arora, Chen",
    venue="ICML 2024",
    arxiv="2402.04333",
    figure_modules=(
        "papers.less.fig_target",
        "papers.less.fig_composition",
        "papers.less.fig_transfer",
        "papers.less.fig_ablation",
        "papers.less.fig_warmup",
    ),
)
