"""Models under DDP, eval mode without gradients, kept RNG state, and a GPT loaded from a state dict."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from common.models.gpt import GPT, GPTConfig

# The label of positions that carry no loss (prompt, padding), as GPT.forward and the kernels use.
IGNORE = -100


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper, or `model` itself."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def hidden_states(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Final hidden states (B, T, C) of token ids `ids` (B, T), through the model's `forward` (no logits),
    so that a DDP wrapper takes part in the call."""
    return model(ids, with_logits=False).hidden


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode and without autograd inside the block; its previous mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's, NumPy's and torch's global RNG states (CPU, and CUDA when initialised) as they were before
    the block, whatever it seeds or draws (`common.train.train` reseeds all three)."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def load_model(config: GPTConfig, state: dict[str, torch.Tensor], device: str | torch.device = "cpu") -> GPT:
    """A `GPT(config)` holding `state`, in eval mode on `device`; the global RNG is left as it was (the
    throwaway initialisation draws from it)."""
    with preserved_rng():
        model = GPT(config)
    model.load_state_dict(state)
    return model.to(device).eval()
