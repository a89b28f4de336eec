"""The pieces the stress-test and per-template figures share: their common config fields, the chart set and
the trained CNNs, both through the shared-artifact cache (results/charxiv/_shared/), so the second figure
reuses what the first built when their configs agree (the CONFIGS of both figures are kept equal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import torch

from common.configs import Count, Index, OneOf, Positive
from common.experiment import RunContext
from papers.charxiv.chartset import ChartSetSpec, build_chart_set
from papers.charxiv.cnn import CNNSpec, load_cnn, train_cnn
from papers.charxiv.synthetic import PERTURBATIONS

Style = Annotated[str, OneOf(*PERTURBATIONS)]


@dataclass(frozen=True)
class SuiteConfig:
    """Chart-set and CNN fields common to fig_stress_test and fig_per_template."""

    styles: tuple[Style, ...]  # perturbed styles of the stress test (synthetic.PERTURBATIONS)
    n_train: Count = 1200  # training charts (style A)
    n_test: Count = 120  # test charts, each drawn in style A and in every perturbed style
    size: Count = 64  # pixels per side
    epochs: Count = 12
    batch: Count = 64
    lr: Positive = 3e-3
    width: Count = 8  # channels of the first conv layer (then 2x, 4x)
    seeds: Count = 3  # CNN seeds (initialisation and batch order); the baselines use the same seeds
    seed: Index = 0  # first seed; also the data seed of the chart streams
    shift: Index = 0  # training augmentation: random translation by up to this many pixels (0: off)

    def validate(self) -> None:
        if self.size % 8 or not 16 <= self.size <= 256:
            raise ValueError(f"size must be a multiple of 8 in [16, 256], got {self.size}")
        if self.batch > self.n_train:
            raise ValueError(f"batch ({self.batch}) must not exceed n_train ({self.n_train})")
        if len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles repeat an entry: {self.styles}")


@dataclass(frozen=True)
class CNNArtifactSpec:
    """What one trained CNN depends on: its training charts (n_train, size, data_seed) and training."""

    n_train: int
    size: int
    data_seed: int
    epochs: int
    batch: int
    lr: float
    width: int
    seed: int
    shift: int


def chart_set(ctx: RunContext, cfg: Any) -> dict[str, Any]:
    spec = ChartSetSpec(cfg.n_train, cfg.n_test, cfg.size, tuple(cfg.styles), cfg.seed)
    return ctx.shared("charts", spec, lambda: build_chart_set(spec, ctx.progress))


def cnn_states(ctx: RunContext, cfg: Any, charts: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """One trained state dict per seed cfg.seed .. cfg.seed + cfg.seeds - 1."""
    states = []
    for s in ctx.progress(range(cfg.seeds), desc="cnn seeds"):
        seed = cfg.seed + s
        spec = CNNArtifactSpec(
            cfg.n_train, cfg.size, cfg.seed, cfg.epochs, cfg.batch, cfg.lr, cfg.width, seed, cfg.shift
        )
        cnn = CNNSpec(cfg.epochs, cfg.batch, cfg.lr, cfg.width, seed, cfg.shift)
        states.append(
            ctx.shared(
                "cnn", spec, lambda cnn=cnn: train_cnn(charts["train_images"], charts["train_labels"], cnn)
            )
        )
    return states


def cnn_models(ctx: RunContext, cfg: Any, charts: dict[str, Any]):
    return [load_cnn(state, cfg.size, cfg.width) for state in cnn_states(ctx, cfg, charts)]
