"""LESS's influence score and selection (Xia et al. 2024, Sec. 3, Inf_Adam; official code: matching.py).

For a training example z and the validation examples of subtask j,

    Inf(z, D_val^(j)) = sum_i w_i * mean_{z' in D_val^(j)} cos(grad l(z'; theta_i), Gamma(z, theta_i))
    score(z)          = max_j Inf(z, D_val^(j))

over the warmup checkpoints theta_i, with w_i the average learning rate of epoch i (renormalized to sum to
1, as `matching.py` does; the ranking is the same either way). Gamma is the training example's
Adam-preconditioned gradient and the validation side uses plain gradients; both are projected features here.
We implement the official code's aggregation: the *mean of per-example cosines* over a subtask's validation
examples (not the cosine with the subtask's mean gradient), then the max over subtasks; `aggregation="mean"`
averages over subtasks instead (both are reported).

`similarity="inner_product"` drops the normalization: the same weighted mean over shots and max over
subtasks of <grad l(z'), Gamma(z)>, the un-normalized first-order influence of Sec. 2. Sec. 3.2 rejects it:
the gradient of a mean token loss has a larger norm for a short sequence, so inner products favour short
examples; the cosine removes the norm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["AGGREGATIONS", "SIMILARITIES", "influence_scores", "select"]

AGGREGATIONS = ("max", "mean")
SIMILARITIES = ("cosine", "inner_product")
Features = torch.Tensor | Sequence[torch.Tensor]


def _stack(features: Features, name: str) -> torch.Tensor:
    """[C, N, d] float64 from a [C, N, d] tensor or a sequence of C tensors [N, d] (one per checkpoint)."""
    if isinstance(features, torch.Tensor):
        stacked = features
    elif isinstance(features, Sequence) and not isinstance(features, str):
        if len(features) == 0:
            raise ValueError(f"{name} is empty: give one [N, d] tensor per checkpoint")
        if not all(isinstance(f, torch.Tensor) for f in features):
            raise TypeError(f"{name} must be a tensor [C, N, d] or a sequence of tensors [N, d]")
        shapes = {tuple(f.shape) for f in features}
        if len(shapes) != 1:
            raise ValueError(f"{name}: the checkpoints' features disagree in shape: {sorted(shapes)}")
        stacked = torch.stack(list(features))
    else:
        raise TypeError(
            f"{name} must be a tensor [C, N, d] or a sequence of tensors [N, d], got {type(features)}"
        )
    if stacked.dim() != 3:
        raise ValueError(
            f"{name} must be [C, N, d] (checkpoints, examples, proj_dim), got {tuple(stacked.shape)}"
        )
    if not stacked.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {stacked.dtype}")
    if 0 in stacked.shape:
        raise ValueError(f"{name} is empty: shape {tuple(stacked.shape)}")
    if not torch.isfinite(stacked).all():
        raise ValueError(f"{name} holds NaN or inf")
    return stacked.double()


def influence_scores(
    train_features: Features,
    val_features_by_subtask: Mapping[str, Features],
    checkpoint_weights: Sequence[float] | torch.Tensor,
    aggregation: str = "max",
    similarity: str = "cosine",
) -> torch.Tensor:
    """LESS scores [N] (float64) of N training examples.

    train_features: [C, N, d] or C tensors [N, d], one per warmup checkpoint (Adam-preconditioned features);
    val_features_by_subtask: subtask name -> [C, n_j, d] or C tensors [n_j, d] (plain-gradient features;
    subtasks may have different numbers of examples); checkpoint_weights: C positive numbers (LESS: each
    epoch's average learning rate). similarity "cosine" (LESS): rows are L2-normalized (a zero row has cosine
    0 with everything), so the score is a weighted sum of cosines; "inner_product": rows as given (Sec. 3.2's
    rejected alternative). aggregation: "max" over subtasks (LESS) or "mean".
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    unit = F.normalize if similarity == "cosine" else (lambda x, dim: x)
    train = _stack(train_features, "train_features")  # (C, N, d)
    C, _, d = train.shape
    if not isinstance(val_features_by_subtask, Mapping) or not val_features_by_subtask:
        raise ValueError("val_features_by_subtask must be a non-empty mapping subtask -> features")
    weights = torch.as_tensor(checkpoint_weights, dtype=torch.float64).flatten()
    if weights.numel() != C:
        raise ValueError(f"checkpoint_weights has {weights.numel()} entries for {C} checkpoints")
    if not (torch.isfinite(weights).all() and (weights > 0).all()):
        raise ValueError(f"checkpoint_weights must be finite and positive, got {weights.tolist()}")
    weights = weights / weights.sum()
    train = unit(train, dim=-1)
    per_subtask = []
    for name, feats in val_features_by_subtask.items():
        val = _stack(feats, f"val_features_by_subtask[{name!r}]")  # (C, n_j, d)
        if val.shape[0] != C or val.shape[2] != d:
            raise ValueError(
                f"val_features_by_subtask[{name!r}] has shape {tuple(val.shape)}; train_features has {C} "
                f"checkpoints of dimension {d}"
            )
        sim = torch.einsum("cnd,cmd->cnm", train, unit(val, dim=-1))  # (C, N, n_j)
        per_subtask.append(torch.einsum("c,cn->n", weights, sim.mean(-1)))  # (N,)
    stacked = torch.stack(per_subtask)  # (J, N)
    return stacked.max(0).values if aggregation == "max" else stacked.mean(0)


def select(scores: torch.Tensor | Sequence[float], fraction: float) -> torch.Tensor:
    """Indices (long) of the top `fraction` of examples by score, highest first (ties: lower index first).

    The number kept is floor(N * fraction), as LESS's write_selected_data.py (`int(N * percentage)`); it must
    be at least 1.
    """
    scores = torch.as_tensor(scores)
    if scores.dim() != 1 or scores.numel() == 0:
        raise ValueError(f"scores must be a non-empty 1-D tensor, got shape {tuple(scores.shape)}")
    if not scores.is_floating_point() or not torch.isfinite(scores).all():
        raise ValueError("scores must be finite floating-point numbers")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    k = math.floor(scores.numel() * fraction + 1e-9)
    if k < 1:
        raise ValueError(f"fraction {fraction} of {scores.numel()} examples selects nothing")
    order = torch.sort(scores.double(), descending=True, stable=True).indices
    return order[:k]
