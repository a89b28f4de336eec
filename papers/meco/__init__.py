"""Gao, Wettig, He, Dong, Malladi, Chen. "Metadata Conditioning Accelerates Language Model Pre-training"
(MeCo). ICML 2025, arXiv 2501.01956. Official code: princeton-pli/MeCo (its packing step is missing; ours is
`papers.meco.pack`). See README.md for what each figure reproduces and how it differs.
"""

from common.experiment import Paper
from papers.meco.packing import Packed, labels, pack

__all__ = ["PAPER", "Packed", "labels", "pack"]

PAPER = Paper(
    key="meco",
    title="Metadata Conditioning Accelerates Language Model Pre-training",
    authors="Gao, Wettig, He, Dong, Malladi, Chen",
    venue="ICML 2025",
    arxiv="2501.01956",
    figure_modules=(
        "papers.meco.fig_acceleration",
        "papers.meco.fig_ablation",
        "papers.meco.fig_steering",
    ),
)
