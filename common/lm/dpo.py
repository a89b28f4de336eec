"""DPO and its relatives (cDPO, IPO, robust, hinge) against a frozen reference, on `common.train.train`."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from common.lm._models import IGNORE, evaluating, hidden_states, unwrap
from common.lm.batches import cyclic_rows, shuffled_rows
from common.lm.logps import PreferenceBatch, preference_logps
from common.ops import dpo_loss, fused_linear_dpo_loss
from common.ops import sequence_logps as _sequence_logps_kernel
from common.ops.dpo import LOSS_TYPES
from common.train import Callback, StepInfo, TrainConfig, TrainHistory, train

ORDERS = ("cycle", "shuffle")


@dataclass(frozen=True)
class DPOConfig:
    """One preference-optimization run against a frozen reference.

    train: optimizer, lr, steps, seed, schedule... for `common.train.train` (both papers use RMSProp, as
    Razin et al. and Chen et al. do). beta: the strength of the KL regularization. loss_type: one of
    `common.ops.dpo.LOSS_TYPES` ("sigmoid" = DPO, "ipo" = IPO on length-averaged log-probs, "robust",
    "hinge"); label_smoothing: cDPO's eps. batch_size: pairs per micro-batch (0: all of them). order:
    "cycle" (consecutive pairs, wrapping around) or "shuffle" (a fresh permutation per epoch from
    `order_seed`). concatenated: chosen and rejected rows go through one forward pass (TRL's
    concatenated_forward; the shorter side is right-padded) instead of two; fused: the loss comes straight
    from hidden states and the unembedding (`fused_linear_dpo_loss`, gradients computed in the forward
    call) instead of `sequence_logps` + `dpo_loss`. The four combinations compute the same loss and
    gradient up to rounding (tests/test_lm.py) in different summation orders: a paper keeps its choice to
    keep its bits.
    """

    train: TrainConfig = TrainConfig(optimizer="rmsprop")
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    batch_size: int = 0
    order: str = "cycle"
    order_seed: int = 0
    concatenated: bool = False
    fused: bool = True
    ignore_index: int = IGNORE

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"DPOConfig.train must be a TrainConfig, got {type(self.train).__name__}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must lie in [0, 0.5), got {self.label_smoothing}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0: every pair), got {self.batch_size}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")

    @property
    def average(self) -> bool:
        """Whether sequence log-probs are length-averaged (IPO, as TRL)."""
        return self.loss_type == "ipo"


class DPORun(NamedTuple):
    """What `dpo` returns: the trained policy (eval mode) and the training history."""

    policy: nn.Module
    history: TrainHistory


def _pad_right(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)  # (B, width)


def dpo_batch_loss(model: nn.Module, batch: Sequence[torch.Tensor], cfg: DPOConfig) -> torch.Tensor:
    """The mean loss of one micro-batch (chosen ids, chosen labels, rejected ids, rejected labels, reference
    chosen log-probs, reference rejected log-probs), along the path `cfg` chooses (see `DPOConfig`)."""
    ci, cl, ri, rl, rc, rr = batch  # (B, Tc), (B, Tc), (B, Tr), (B, Tr), (B,), (B,)
    B = ci.shape[0]
    weight = unwrap(model).unembedding  # (V, C)
    kwargs = {"beta": cfg.beta, "loss_type": cfg.loss_type, "label_smoothing": cfg.label_smoothing}
    if cfg.concatenated:
        T = max(ci.shape[1], ri.shape[1])
        ids = torch.cat([_pad_right(ci, T, 0), _pad_right(ri, T, 0)])  # (2B, T): chosen rows, then rejected
        labels = torch.cat([_pad_right(cl, T, cfg.ignore_index), _pad_right(rl, T, cfg.ignore_index)])
        hidden = hidden_states(model, ids)  # (2B, T, C)
        if cfg.fused:
            hc, hr, cl, rl = hidden[:B], hidden[B:], labels[:B], labels[B:]
        else:
            logps = _sequence_logps_kernel(hidden, weight, labels, cfg.ignore_index, cfg.average)  # (2B,)
            pc, pr = logps[:B], logps[B:]
    else:
        hc, hr = hidden_states(model, ci), hidden_states(model, ri)  # (B, Tc, C), (B, Tr, C)
        if not cfg.fused:
            pc = _sequence_logps_kernel(hc, weight, cl, cfg.ignore_index, cfg.average)  # (B,)
            pr = _sequence_logps_kernel(hr, weight, rl, cfg.ignore_index, cfg.average)  # (B,)
    if cfg.fused:
        loss, _, _ = fused_linear_dpo_loss(
            hc, hr, weight, cl, rl, rc, rr, **kwargs, ignore_index=cfg.ignore_index
        )  # scalar: the mean over the B pairs
        return loss
    losses, _, _ = dpo_loss(pc, pr, rc, rr, **kwargs)  # (B,)
    return losses.mean()


def dpo(
    reference: nn.Module,
    pairs: PreferenceBatch,
    cfg: DPOConfig,
    *,
    policy: nn.Module | None = None,
    reference_logps: tuple[torch.Tensor, torch.Tensor] | None = None,
    callbacks: Sequence[Callback] = (),
    evaluate: Callable[[int, nn.Module], None] | None = None,
    eval_steps: Iterable[int] = (),
    progress: bool = False,
) -> DPORun:
    """Train a policy on preference `pairs` against the frozen `reference` with `cfg`; returns the policy
    (eval mode) and the history of `common.train.train`.

    policy: the model to train (e.g. with LoRA adapters); None trains a copy of `reference` with every
    parameter trainable. reference_logps: (log pi_ref(y+), log pi_ref(y-)), each (B,), when the caller has
    them (length-averaged for IPO); None computes them from `reference` in eval mode. Micro-batch k (step *
    grad_accum + micro) takes the pairs of row k of `cyclic_rows` / `shuffled_rows`. evaluate(step, model)
    runs at every step of `eval_steps` (0: before the first update) with the policy in training mode;
    `callbacks` go to `train` as they are. The pairs may stay on the CPU (the reference is scored on its
    device). Under torchrun the pairs of a micro-batch are sharded over ranks and DDP averages the gradients.
    """
    pairs.validate()
    P = pairs.size
    if reference_logps is None:
        device = unwrap(reference).unembedding.device
        with evaluating(reference):
            on_device = PreferenceBatch(*(t.to(device) for t in pairs))
            ref_c, ref_r = (
                t.to(pairs.chosen_ids.device)
                for t in preference_logps(
                    reference, on_device, ignore_index=cfg.ignore_index, average=cfg.average
                )
            )  # (P,), (P,): beside the pairs; `train` moves each micro-batch to the policy's device
    else:
        ref_c, ref_r = (t.detach().to(pairs.chosen_ids.device) for t in reference_logps)
        if ref_c.shape != (P,) or ref_r.shape != (P,):
            raise ValueError(
                f"reference_logps must be two tensors of shape ({P},), got {tuple(ref_c.shape)} and "
                f"{tuple(ref_r.shape)}"
            )
    if policy is None:
        policy = copy.deepcopy(reference)
        policy.requires_grad_(True)
    policy.train()
    size = P if cfg.batch_size == 0 else min(cfg.batch_size, P)
    micro_batches = cfg.train.steps * cfg.train.grad_accum
    if cfg.order == "cycle":
        rows = cyclic_rows(P, micro_batches, size)  # (steps * grad_accum, size)
    else:
        rows = shuffled_rows(P, micro_batches, size, cfg.order_seed)
    ci, cl, ri, rl = pairs

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, ...]:
        i = rows[step * cfg.train.grad_accum + micro]  # (size,)
        return ci[i], cl[i], ri[i], rl[i], ref_c[i], ref_r[i]

    all_callbacks = list(callbacks)
    if evaluate is not None:
        at = frozenset(int(s) for s in eval_steps)
        if 0 in at:
            evaluate(0, policy)

        def scheduled(info: StepInfo) -> None:
            if info.step in at:
                evaluate(info.step, info.model)

        all_callbacks.append(scheduled)
    loss_fn = functools.partial(dpo_batch_loss, cfg=cfg)
    history = train(policy, loss_fn, get_batch, cfg.train, callbacks=all_callbacks, progress=progress)
    return DPORun(policy.eval(), history)
