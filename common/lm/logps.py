"""Log-probabilities of labelled tokens through the fused kernels, and preference pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from common.lm._models import IGNORE, hidden_states, unwrap
from common.ops import sequence_logps as _sequence_logps_kernel
from common.ops import token_logps as _token_logps_kernel


def token_logps(
    model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = IGNORE
) -> torch.Tensor:
    """log pi(labels[b, t] | ids[b, :t+1]) per position, (B, T), 0 where labels == ignore_index, through the
    fused `common.ops.token_logps` (differentiable when autograd is on)."""
    hidden = hidden_states(model, ids)  # (B, T, C)
    B, T, C = hidden.shape
    weight = unwrap(model).unembedding  # (V, C)
    flat = _token_logps_kernel(
        hidden.reshape(B * T, C), weight, labels.reshape(B * T), ignore_index
    )  # (B*T,)
    return flat.view(B, T)


def sequence_logps(
    model: nn.Module,
    ids: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE,
    average: bool = False,
    chunk: int | None = None,
) -> torch.Tensor:
    """log pi(y | x) per row, (B,): the sum over the labelled tokens (their mean with `average`, as IPO
    uses), through the fused `common.ops.sequence_logps`. `chunk`: at most this many rows per forward pass
    (None: all at once). Differentiable when autograd is on; wrap in `evaluating(model)` to score."""
    weight = unwrap(model).unembedding  # (V, C)
    if chunk is None:
        return _sequence_logps_kernel(hidden_states(model, ids), weight, labels, ignore_index, average)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 or None, got {chunk}")
    parts = [
        _sequence_logps_kernel(
            hidden_states(model, ids[i : i + chunk]), weight, labels[i : i + chunk], ignore_index, average
        )  # (b,)
        for i in range(0, ids.shape[0], chunk)
    ]
    return torch.cat(parts)  # (B,)


class PreferenceBatch(NamedTuple):
    """B preference pairs: (prompt + y+) and (prompt + y-) as right-padded ids [B, T+] / [B, T-] with labels
    of the same shapes (the response tokens at the positions that predict them, IGNORE elsewhere)."""

    chosen_ids: torch.Tensor
    chosen_labels: torch.Tensor
    rejected_ids: torch.Tensor
    rejected_labels: torch.Tensor

    @property
    def size(self) -> int:
        """B, the number of pairs."""
        return int(self.chosen_ids.shape[0])

    def subset(self, rows: torch.Tensor | Sequence[int]) -> PreferenceBatch:
        """The pairs `rows` (indices into B), in that order."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return PreferenceBatch(*(t[rows] for t in self))

    def validate(self) -> PreferenceBatch:
        """Raise ValueError on malformed batches (shapes, dtypes, responses without tokens)."""
        for side in ("chosen", "rejected"):
            ids, labels = getattr(self, f"{side}_ids"), getattr(self, f"{side}_labels")
            if ids.dim() != 2 or ids.shape != labels.shape:
                raise ValueError(
                    f"{side}_ids and {side}_labels must both be [B, T]; got {tuple(ids.shape)} and "
                    f"{tuple(labels.shape)}"
                )
            if ids.dtype != torch.long or labels.dtype != torch.long:
                raise ValueError(f"{side} ids and labels must be int64, got {ids.dtype} and {labels.dtype}")
            if ids.shape[0] == 0:
                raise ValueError("the batch is empty (B = 0)")
            empty = ((labels != IGNORE).sum(1) == 0).nonzero().flatten()
            if empty.numel():
                raise ValueError(f"{side} responses {empty.tolist()[:8]} have no labelled token")
        if self.chosen_ids.shape[0] != self.rejected_ids.shape[0]:
            raise ValueError(
                f"chosen and rejected disagree on B: {self.chosen_ids.shape[0]} vs "
                f"{self.rejected_ids.shape[0]}"
            )
        return self


def preference_logps(
    model: nn.Module,
    pairs: PreferenceBatch,
    *,
    ignore_index: int = IGNORE,
    average: bool = False,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi(y+ | x), log pi(y- | x)), each (B,), of every pair (see `sequence_logps`)."""
    kwargs = {"ignore_index": ignore_index, "average": average, "chunk": chunk}
    return (
        sequence_logps(model, pairs.chosen_ids, pairs.chosen_labels, **kwargs),
        sequence_logps(model, pairs.rejected_ids, pairs.rejected_labels, **kwargs),
    )
