"""Razin, Malladi, Bhaskar, Chen, Arora, Hanin. "Unintentional Unalignment: Likelihood Displacement in Direct
Preference Optimization". ICLR 2025, arXiv 2410.08847. Official code: princeton-nlp/unintentional-unalignment.

API: `ches` (CHES and length-normalized CHES) and `displacement` (change of ln pi(y+|x), ln pi(y-|x) across
preference training); the figures are listed in `PAPER` (see README.md).
"""

from common.experiment import Paper
from papers.likelihood_displacement.api import PreferenceBatch, ches, displacement

PAPER = Paper(
    key="likelihood_displacement",
    title="Unintentional Unalignment: Likelihood Displacement in Direct Preference Optimization",
    authors="Razin, Malladi, Bhaskar, Chen, Arora, Hanin",
    venue="ICLR 2025",
    arxiv="2410.08847",
    figure_modules=(
        "papers.likelihood_displacement.fig_single_token_theory",
        "papers.likelihood_displacement.fig_single_token_gpt",
        "papers.likelihood_displacement.fig_ches",
        "papers.likelihood_displacement.fig_unalignment",
    ),
)

__all__ = ["PAPER", "PreferenceBatch", "ches", "displacement"]
