"""Deterministic batch orders for `common.train`'s `get_batch(step, micro)` contract."""

from __future__ import annotations

import torch


def cyclic_rows(n: int, steps: int, batch: int) -> torch.Tensor:
    """Row indices [steps, batch] into n examples: step s takes the consecutive rows s*batch .. s*batch +
    batch - 1, modulo n (one pass over the data every n / batch steps, no shuffling)."""
    if min(n, steps, batch) < 1:
        raise ValueError(f"n, steps and batch must be >= 1, got {n}, {steps}, {batch}")
    return (torch.arange(steps)[:, None] * batch + torch.arange(batch)) % n  # (steps, batch)


def shuffled_rows(n: int, steps: int, batch: int, seed: int) -> torch.Tensor:
    """Row indices [steps, batch] into n examples: shuffled epochs laid end to end (a fresh permutation per
    epoch from a private generator seeded with `seed`; the last epoch is cut where the steps end)."""
    if min(n, steps, batch) < 1:
        raise ValueError(f"n, steps and batch must be >= 1, got {n}, {steps}, {batch}")
    g = torch.Generator().manual_seed(seed)
    epochs = -(-steps * batch // n)
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(epochs)])  # (epochs * n,)
    return order[: steps * batch].view(steps, batch)
