"""Jiang, Zhou, Feng, Malladi, Kolter. "Adaptive Data Optimization: Dynamic Sample Selection with Scaling
Laws". ICLR 2025, arXiv 2410.11820. Official code: yidingjiang/ado (JAX); the algorithm here follows its
`AdoSelector` (see sampler.py for the formulas and where we rescale them to a CPU toy).

Public API: `fit_scaling_law(n, loss) -> (eps, beta, alpha)` (law.py) and `AdoSampler` (sampler.py), a
mixture policy any training loop can use: draw each sequence's domain from `sampler.weights`, then call
`sampler.observe(step, domains, losses)`.
"""

from common.experiment import Paper
from papers.ado.law import FitBounds, fit_scaling_law
from papers.ado.sampler import AdoConfig, AdoSampler, StaticSampler

__all__ = ["PAPER", "fit_scaling_law", "FitBounds", "AdoSampler", "AdoConfig", "StaticSampler"]

PAPER = Paper(
    key="ado",
    title="Adaptive Data Optimization: Dynamic Sample Selection with Scaling Laws",
    authors="Jiang, Zhou, Feng, Malladi, Kolter",
    venue="ICLR 2025",
    arxiv="2410.11820",
    figure_modules=(
        "papers.ado.fig_laws",
        "papers.ado.fig_weights",
        "papers.ado.fig_heldout",
    ),
)
