"""Chen, Malladi, Zhang, Chen, Zhang, Ranganath, Cho. "Preference Learning Algorithms Do Not Learn Preference
Rankings". NeurIPS 2024, arXiv 2405.19534. Official code: angie-chen55/pref-learning-ranking-acc (see
README.md for where we differ from it).

API: `ranking_accuracy`, `idealized_ranking_accuracy`, `flip_threshold` (papers/ranking_accuracy/metrics.py).
"""

from common.experiment import Paper
from papers.ranking_accuracy.metrics import (
    dpo_pair_loss,
    flip_threshold,
    idealized_correct,
    idealized_ranking_accuracy,
    ranking_accuracy,
)

__all__ = [
    "PAPER",
    "dpo_pair_loss",
    "flip_threshold",
    "idealized_correct",
    "idealized_ranking_accuracy",
    "ranking_accuracy",
]

PAPER = Paper(
    key="ranking_accuracy",
    title="Preference Learning Algorithms Do Not Learn Preference Rankings",
    authors="Chen, Malladi, Zhang, Chen, Zhang, Ranganath, Cho",
    venue="NeurIPS 2024",
    arxiv="2405.19534",
    figure_modules=(
        "papers.ranking_accuracy.fig_alignment_gap",
        "papers.ranking_accuracy.fig_idealized_beta",
        "papers.ranking_accuracy.fig_flip_difficulty",
        "papers.ranking_accuracy.fig_winrate",
    ),
)
