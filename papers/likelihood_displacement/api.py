"""The paper's two measurements: the CHES score (Definition 2, and its length-normalized variant of App. A)
and likelihood displacement (Definition 1: the change of ln pi(y+|x), and of ln pi(y-|x), across training).

CHES follows the authors' `ches/ches.py` (princeton-nlp/unintentional-unalignment): with S+ and S- the sums
of the last-layer hidden states h_{x, y<k}, k = 1..|y| (the states that *predict* the |y| response tokens:
the last prompt token up to the second-to-last response token),

    CHES(y+, y-)    = <S+, S->                 - ||S+||^2
    LN-CHES(y+, y-) = <S+, S-> / (|y+| |y-|)   - ||S+||^2 / |y+|^2

Higher means more similar preferences and, by the paper's Theorem 6, more displacement of y+.

Batches here are `PreferenceBatch`es (`common.lm.PreferenceBatch`) of right-padded token ids with
next-token labels: labels[b, t] is the token that position t predicts when that token belongs to the
response, and -100 elsewhere (prompt, padding). So `labels != -100` marks exactly the |y| positions CHES
sums over.
"""

from __future__ import annotations

import torch
from torch import nn

from common import lm
from common.lm import IGNORE, PreferenceBatch

__all__ = [
    "IGNORE",
    "PreferenceBatch",
    "ches",
    "displacement",
    "edit_distance",
    "hidden_and_mask",
    "last_hidden_inner_product",
    "response_logps",
]


def _check_hidden_mask(hidden: torch.Tensor, mask: torch.Tensor, side: str) -> None:
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
        raise ValueError(f"hidden_{side} must be a [B, T, D] tensor, got {getattr(hidden, 'shape', hidden)}")
    if not hidden.is_floating_point():
        raise ValueError(f"hidden_{side} must be floating point, got {hidden.dtype}")
    if not isinstance(mask, torch.Tensor) or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mask_{side} must be [B, T] = {tuple(hidden.shape[:2])}, got {getattr(mask, 'shape', mask)}"
        )
    if hidden.shape[0] == 0:
        raise ValueError("CHES of an empty batch (B = 0)")
    counts = mask.bool().sum(1)
    if bool((counts == 0).any()):
        bad = (counts == 0).nonzero().flatten().tolist()[:8]
        raise ValueError(f"mask_{side} selects no position in rows {bad}: every response needs |y| >= 1")


def ches(
    hidden_chosen: torch.Tensor,
    hidden_rejected: torch.Tensor,
    mask_chosen: torch.Tensor,
    mask_rejected: torch.Tensor,
    length_normalized: bool = False,
) -> torch.Tensor:
    """CHES (Razin et al. 2025, Definition 2) or its length-normalized variant (App. A), per pair.

    hidden_chosen [B, T+, D] and hidden_rejected [B, T-, D] are the last-layer hidden states (the input of
    the unembedding) of (x, y+) and (x, y-); mask_chosen [B, T+] and mask_rejected [B, T-] are True on the
    |y+| and |y-| positions h_{x, y<k}, k = 1..|y| (last prompt token .. second-to-last response token).
    Returns [B]: <S+, S-> - ||S+||^2, or <S+, S->/(|y+||y-|) - ||S+||^2/|y+|^2 with length_normalized.
    """
    _check_hidden_mask(hidden_chosen, mask_chosen, "chosen")
    _check_hidden_mask(hidden_rejected, mask_rejected, "rejected")
    if (
        hidden_chosen.shape[0] != hidden_rejected.shape[0]
        or hidden_chosen.shape[2] != hidden_rejected.shape[2]
    ):
        raise ValueError(
            f"hidden_chosen {tuple(hidden_chosen.shape)} and hidden_rejected {tuple(hidden_rejected.shape)} "
            "must agree on B and D"
        )
    mc = mask_chosen.to(hidden_chosen.dtype)  # (B, T+)
    mr = mask_rejected.to(hidden_rejected.dtype)  # (B, T-)
    s_pos = torch.einsum("bt,btd->bd", mc, hidden_chosen)  # (B, D): S+
    s_neg = torch.einsum("bt,btd->bd", mr, hidden_rejected)  # (B, D): S-
    if length_normalized:
        s_pos = s_pos / mc.sum(1, keepdim=True)  # S+/|y+|
        s_neg = s_neg / mr.sum(1, keepdim=True)  # S-/|y-|
    return (s_pos * s_neg).sum(1) - (s_pos * s_pos).sum(1)  # (B,)


def hidden_and_mask(
    model: nn.Module, ids: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final hidden states [B, T, D] of a `common.models.gpt.GPT` and the response mask `labels != -100`."""
    return model.forward_hidden(ids), labels != IGNORE


def response_logps(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ln pi(y|x) per row [B]: the sum of the response tokens' log-probs (`common.lm.sequence_logps`, the
    fused kernel, no logits)."""
    return lm.sequence_logps(model, ids, labels, ignore_index=IGNORE)


@torch.no_grad()
def displacement(
    model_before: nn.Module, model_after: nn.Module, batch: PreferenceBatch
) -> dict[str, torch.Tensor]:
    """Likelihood displacement of each pair (Definition 1): the change of ln pi(y+|x) and of ln pi(y-|x)
    from the model before preference training to the model after it, on the same batch.

    Returns {"chosen": [B], "rejected": [B]} (after minus before, in nats). Displacement is chosen < 0 while
    the margin chosen - rejected grows; it is catastrophic when the lost mass goes to worse responses.
    """
    batch.validate()
    out = {}
    for side in ("chosen", "rejected"):
        ids, labels = getattr(batch, f"{side}_ids"), getattr(batch, f"{side}_labels")
        out[side] = response_logps(model_after, ids, labels) - response_logps(model_before, ids, labels)
    return out


def edit_distance(a: list[int], b: list[int]) -> float:
    """Levenshtein distance on token ids divided by max(|a|, |b|) (the paper's baseline, Figure 2)."""
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, ta in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, tb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ta != tb))
        prev = cur
    return prev[-1] / max(len(a), len(b))


def last_hidden_inner_product(
    hidden_chosen: torch.Tensor,
    hidden_rejected: torch.Tensor,
    mask_chosen: torch.Tensor,
    mask_rejected: torch.Tensor,
) -> torch.Tensor:
    """<h_last(x, y+), h_last(x, y-)> per pair: the hidden state at the last response token of each side (one
    past the last masked position), the other baseline of Figure 2."""

    def last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        idx = mask.long().cumsum(1).argmax(1) + 1  # (B,) one past the last True position
        idx = idx.clamp_max(hidden.shape[1] - 1)
        return hidden[torch.arange(hidden.shape[0]), idx]  # (B, D)

    return (last(hidden_chosen, mask_chosen) * last(hidden_rejected, mask_rejected)).sum(1)
