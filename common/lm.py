"""Small language models on the repository's one training loop and its fused kernels.

What the papers that train a `common.models.gpt.GPT` share, written once:

* `pretrain(spec, batches, shared=...)`: next-token pretraining through `common.train.train` (DDP under
  torchrun), cached through the shared-artifact cache (`common.experiment.shared_artifact`) under the hash
  of a frozen `PretrainSpec` that holds everything the weights depend on; the weights come back from the
  cache when the entry is intact and are retrained (with a notice) when it is not.
* `token_logps`, `sequence_logps`, `preference_logps`: log-probabilities of the labelled tokens through the
  fused kernels `common.ops.token_logps` / `common.ops.sequence_logps`, on the final hidden states and the
  unembedding (the [B, T, V] logits are never materialized).
* `dpo(reference, pairs, DPOConfig(...))`: preference optimization against a frozen reference, through
  `common.ops.dpo_loss` or `common.ops.fused_linear_dpo_loss`, trained by `common.train.train`: DPO
  (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
  eq. 7), cDPO (label smoothing), IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand
  Learning from Human Preferences", eq. 17, on length-averaged log-probs), robust and hinge, as TRL's
  DPOTrainer defines them.
* `generate(model, prompts, max_new_tokens, ...)`: ancestral sampling at a temperature (Holtzman et al.
  2020 call it pure sampling at temperature 1) or greedy decoding (temperature 0), each row stopping at its
  end-of-sequence token, with a private seeded generator so that the global RNG is untouched.
* `cyclic_rows`, `shuffled_rows`: the deterministic batch orders of `common.train`'s `get_batch(step,
  micro)` contract (consecutive rows wrapping around; shuffled epochs laid end to end).

Conventions: token ids are right-padded [B, T] int64; labels [B, T] are aligned with the positions that
predict them (labels[b, t] is the token after ids[b, t]) and IGNORE (-100) elsewhere (prompt, padding), as
`GPT.forward`'s targets and the kernels expect. Models are called through `forward` (with
`with_logits=False` where only hidden states are needed), so a DistributedDataParallel wrapper sees every
call; `unwrap` gives the GPT inside for its unembedding.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from common.experiment import RunContext, shared_artifact
from common.models.gpt import GPT, GPTConfig
from common.ops import dpo_loss, fused_linear_dpo_loss
from common.ops import sequence_logps as _sequence_logps_kernel
from common.ops import token_logps as _token_logps_kernel
from common.ops.dpo import LOSS_TYPES
from common.train import Callback, StepInfo, TrainConfig, TrainHistory, train

IGNORE = -100
ORDERS = ("cycle", "shuffle")

__all__ = [
    "IGNORE",
    "DPOConfig",
    "DPORun",
    "PreferenceBatch",
    "PretrainSpec",
    "Pretrained",
    "cyclic_rows",
    "dpo",
    "dpo_batch_loss",
    "evaluating",
    "generate",
    "hidden_states",
    "load_model",
    "next_token_loss",
    "preference_logps",
    "preserved_rng",
    "pretrain",
    "sequence_logps",
    "shuffled_rows",
    "token_logps",
    "unwrap",
]


# ---------------------------------------------------------------------------------------------------------
# Models, modes and RNG
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Log-probabilities
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Batch orders for common.train's get_batch(step, micro)
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Pretraining, cached
# ---------------------------------------------------------------------------------------------------------
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
) -> Pretrained:
    """A GPT pretrained by next-token prediction, through the shared-artifact cache.

    `batches()` returns the `get_batch(step, micro) -> (ids, labels)` of `common.train.train` (the global
    micro-batch; under torchrun each rank gets its shard); it is called only when the weights are built, so
    an expensive corpus is made only then. The build seeds torch with `spec.init_seed`, initialises
    `GPT(spec.model)` and trains it with `spec.train`; every rank builds (DDP), rank 0 alone writes.
    `shared`: a figure's `RunContext` (its `ctx.shared`) or a shared directory
    (`common.experiment.shared_artifact`); the entry is `<name>-<hash of spec>`. Cache hit or miss, the
    global RNGs are left as they were and the model is a fresh copy, so callers may train it in place.
    """
    if not isinstance(spec, PretrainSpec):
        raise TypeError(f"spec must be a PretrainSpec, got {type(spec).__name__}")

    def build() -> dict[str, Any]:
        with preserved_rng():
            torch.manual_seed(spec.init_seed)
            model = GPT(spec.model).to(device)
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
    return Pretrained(model, list(entry["loss"]), list(entry["step"]))


# ---------------------------------------------------------------------------------------------------------
# DPO and its relatives against a frozen reference
# ---------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]] | torch.Tensor,
    max_new_tokens: int,
    *,
    eos: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | int | None = None,
    vocab_size: int | None = None,
    keep_eos: bool = False,
) -> list[list[int]]:
    """Continue every prompt by up to `max_new_tokens` tokens; returns the new tokens of each row, cut
    before its first `eos` (the eos itself is dropped; with `keep_eos` it ends the row, so a row that ran
    out of budget or of block_size is told apart from one that ended, e.g. for exact-match scoring).

    temperature > 0: ancestral sampling from softmax(logits / temperature) with `generator` (a
    torch.Generator, or an int seed for a fresh one; required, so the global RNG is never drawn from);
    temperature == 0: greedy decoding (argmax, no generator needed). Every row is drawn at every step until
    all rows are done (so the generator's stream does not depend on when the others stop); a row stops at
    its eos, after max_new_tokens, or when it fills the model's block_size. vocab_size: only the first
    vocab_size token ids may be produced (e.g. to leave out prompt-only tokens). Prompts may differ in
    length: they sit right-padded in one buffer and each row writes at its own position (causal models
    only), so positions stay 0.. for every row. The model runs in eval mode and is restored after.
    """
    gpt = unwrap(model)
    if not gpt.config.causal:
        raise ValueError("generate needs a causal model (GPTConfig(causal=True))")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    if vocab_size is not None and not 1 <= vocab_size <= gpt.config.vocab_size:
        raise ValueError(f"vocab_size must lie in [1, {gpt.config.vocab_size}], got {vocab_size}")
    rows = prompts.tolist() if isinstance(prompts, torch.Tensor) else [list(map(int, p)) for p in prompts]
    if not rows:
        return []
    if min(len(r) for r in rows) < 1:
        raise ValueError("every prompt needs at least one token")
    if max(len(r) for r in rows) > gpt.config.block_size:
        raise ValueError(f"a prompt is longer than the model's block_size {gpt.config.block_size}")
    device = gpt.unembedding.device
    gen = generator
    if temperature > 0:
        if gen is None:
            raise ValueError("sampling (temperature > 0) needs a generator or an int seed")
        if isinstance(gen, int):
            gen = torch.Generator(device=device).manual_seed(gen)
    B = len(rows)
    lengths = torch.tensor([len(r) for r in rows], device=device)  # (B,)
    budget = (gpt.config.block_size - lengths).clamp(min=0, max=max_new_tokens)  # (B,)
    width = int((lengths + budget).max())
    buf = torch.zeros((B, width), dtype=torch.long, device=device)  # (B, W): prompts, then new tokens
    for b, r in enumerate(rows):
        buf[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    cur = lengths.clone()  # (B,): where each row writes next
    done = budget == 0  # (B,)
    ar = torch.arange(B, device=device)
    with evaluating(model):
        for _ in range(int(budget.max())):
            if bool(done.all()):
                break
            logits = model(buf[:, : int(cur.max())]).logits  # (B, L, V)
            last = logits[ar, cur - 1]  # (B, V): the distribution of each row's next token
            if vocab_size is not None:
                last = last[:, :vocab_size]
            if temperature == 0:
                nxt = last.argmax(-1)  # (B,)
            else:
                if temperature != 1.0:
                    last = last / temperature
                nxt = torch.multinomial(torch.softmax(last, -1), 1, generator=gen)[:, 0]  # (B,)
            active = ~done
            buf[ar[active], cur[active]] = nxt[active]
            cur = cur + active.long()
            if eos is not None:
                done = done | (active & (nxt == eos))
            done = done | (cur - lengths >= budget)
    out = []
    for b in range(B):
        new = buf[b, int(lengths[b]) : int(cur[b])].tolist()
        if eos is not None and eos in new:
            new = new[: new.index(eos) + int(keep_eos)]
        out.append(new)
    return out
