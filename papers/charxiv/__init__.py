"""Wang, Xia, He, Chen, Liu, Zhu, Liang, Wu, Liu, Malladi, Chevalier, Arora, Chen. "CharXiv: Charting Gaps in
Realistic Chart Understanding in Multimodal LLMs". NeurIPS 2024 (Datasets & Benchmarks), arXiv 2406.18521.
Official code and data: princeton-nlp/CharXiv. Here: the evaluation suite (loader, questions, grading,
judge plumbing, model interface), a synthetic chart generator, and three figures (see README.md).
"""

from common.experiment import Paper

PAPER = Paper(
    key="charxiv",
    title="CharXiv: Charting Gaps in Realistic Chart Understanding in Multimodal LLMs",
    authors="Wang, Xia, He, Chen, Liu, Zhu, Liang, Wu, Liu, Malladi, Chevalier, Arora, Chen",
    venue="NeurIPS 2024 (D&B)",
    arxiv="2406.18521",
    figure_modules=(
        "papers.charxiv.fig_leaderboard",
        "papers.charxiv.fig_stress_test",
        "papers.charxiv.fig_per_template",
    ),
)
