"""Next-token pretraining of a small GPT through `common.train.train`, cached as a shared artifact."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from common.experiment import RunContext, shared_artifact
from common.lm._models import IGNORE, load_model, preserved_rng
from common.models.gpt import GPT, GPTConfig
from common.train import TrainConfig, train


@dataclass(frozen=True)
class PretrainSpec:
    """Everything pretrained weights depend on, and nothing else: the key of the shared-artifact cache.

    model: the GPT's shape; train: optimizer, schedule, steps and seed for `common.train.train`; data: a
    frozen dataclass, defined by the paper, that determines the batches `pretrain` is given (corpus, batch
    size, order); init_seed: `torch.manual_seed` before the GPT is initialised; ignore_index: the label
    value that carries no loss.
    """

    model: GPTConfig
    train: TrainConfig
    data: Any
    init_seed: int = 0
    ignore_index: int = IGNORE

    def __post_init__(self) -> None:
        if not isinstance(self.model, GPTConfig) or not isinstance(self.train, TrainConfig):
            raise TypeError("PretrainSpec needs a GPTConfig (model) and a TrainConfig (train)")
        params = getattr(type(self.data), "__dataclass_params__", None)
        if not is_dataclass(self.data) or params is None or not params.frozen:
            raise TypeError(
                f"PretrainSpec.data must be a frozen dataclass describing the batches, got "
                f"{type(self.data).__name__}"
            )


class Pretrained(NamedTuple):
    """What `pretrain` returns: the model (eval mode), the logged training losses and their steps."""

    model: GPT
    loss: list[float]
    step: list[int]


def next_token_loss(model: nn.Module, batch: Any, ignore_index: int = IGNORE) -> torch.Tensor:
    """Mean next-token cross-entropy of a batch (ids [B, T], labels [B, T]) over its labelled tokens."""
    ids, labels = batch
    return model(ids, labels, ignore_index=ignore_index).loss


def pretrain(
    spec: PretrainSpec,
    batches: Callable[[], Callable[[int, int], Any]],
    *,
    shared: RunContext | str | Path,
    name: str = "pretrained",
    persist: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = False,
    init_state: dict[str, torch.Tensor] | None = None,
) -> Pretrained:
    """A GPT pretrained by next-token prediction, through the shared-artifact cache.

    `batches()` returns the `get_batch(step, micro) -> (ids, labels)` of `common.train.train` (the global
    micro-batch; under torchrun each rank gets its shard); it is called only when the weights are built, so
    an expensive corpus is made only then. The build seeds torch with `spec.init_seed`, initialises
    `GPT(spec.model)` and trains it with `spec.train`; every rank builds (DDP), rank 0 alone writes.
    `shared`: a figure's `RunContext` (its `ctx.shared`) or a shared directory
    (`common.experiment.shared_artifact`); the entry is `<name>-<hash of spec>`. Cache hit or miss, the
    global RNGs are left as they were and the model is a fresh copy, so callers may train it in place.
    `init_state`: weights to start from instead of the seeded random initialisation (fine-tuning a model
    that is itself cached); they are not hashed, so `name` and `spec.data` must identify them.
    """
    if not isinstance(spec, PretrainSpec):
        raise TypeError(f"spec must be a PretrainSpec, got {type(spec).__name__}")

    def build() -> dict[str, Any]:
        with preserved_rng():
            if init_state is None:
                torch.manual_seed(spec.init_seed)
                model = GPT(spec.model).to(device)
            else:
                model = load_model(spec.model, {k: v.clone() for k, v in init_state.items()}, device)
                model.train()
            get_batch = batches()
            loss = functools.partial(next_token_loss, ignore_index=spec.ignore_index)
            history = train(model, loss, get_batch, spec.train, progress=progress)
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return {"state_dict": state, "loss": list(history.loss), "step": list(history.step)}

    if isinstance(shared, RunContext):
        entry = shared.shared(name, spec, build, persist=persist)
    else:
        entry = shared_artifact(Path(shared), name, spec, build, persist=persist)
    model = load_model(spec.model, entry["state_dict"], device)
    # entries written by the fine-tuning path papers/muse had before it used init_state hold weights only
    return Pretrained(model, list(entry.get("loss", [])), list(entry.get("step", [])))
