"""Wang, Malladi, Wang, Lyu, Li. "The Marginal Value of Momentum for Small Learning Rate SGD". ICLR 2024,
arXiv 2307.15196. No official code; figures here follow the paper's statements (see README.md).
"""

from common.experiment import Paper

PAPER = Paper(
    key="momentum",
    title="The Marginal Value of Momentum for Small Learning Rate SGD",
    authors="Wang, Malladi, Wang, Lyu, Li",
    venue="ICLR 2024",
    arxiv="2307.15196",
    figure_modules=(
        "papers.momentum.fig_weak_error",
        "papers.momentum.fig_digits_lr_sweep",
        "papers.momentum.fig_slow_sde",
        "papers.momentum.fig_svag",
    ),
)
