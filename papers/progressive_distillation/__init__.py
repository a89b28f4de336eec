"""Panigrahi, Liu, Malladi, Risteski, Goel. "Progressive distillation induces an implicit curriculum".
ICLR 2025, arXiv 2410.05464. Official code: abhishekpanigrahi1996/ProgressiveDistillation (consulted through
the reference notes only; see README.md).
"""

from common.experiment import Paper

PAPER = Paper(
    key="progressive_distillation",
    title="Progressive distillation induces an implicit curriculum",
    authors="Panigrahi, Liu, Malladi, Risteski, Goel",
    venue="ICLR 2025",
    arxiv="2410.05464",
    figure_modules=(
        "papers.progressive_distillation.fig_parity_acceleration",
        "papers.progressive_distillation.fig_checkpoint_selection",
        "papers.progressive_distillation.fig_implicit_curriculum",
        "papers.progressive_distillation.fig_pcfg",
    ),
)
