"""Fused linear log-probs and the DPO family of preference losses, straight from hidden states.

With hidden states h [N, H] and the unembedding W [V, H] (logits z = h @ W.T), the ops compute

    token_logps[n]   = log softmax(z[n])[y_n]                     (0 where y_n == ignore_index)
    sequence_logps[b] = sum_t token_logps[b, t]                   (or the mean over non-ignored tokens)
    dpo_loss          = TRL's DPOTrainer.dpo_loss (v0.12 .. v0.28) on sequence log-probs, with
                        h = (pc - pr) - (rc - rr):
        sigmoid  -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)     (DPO; cDPO when eps > 0)
        robust   [-(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h)] / (1 - 2 eps)
        hinge    relu(1 - beta h)
        ipo      (h - 1 / (2 beta))^2, on length-averaged log-probs
      with rewards beta (pc - rc), beta (pr - rr), detached.

The kernels (`companion::token_logps`, `token_logps_backward`, `dpo_loss`, `dpo_loss_backward`,
`fused_linear_dpo`; csrc/cpu/dpo.cpp, csrc/cuda/dpo.cu, math in csrc/include/dpo_loss.h) never hold the
[N, V] logits: rows and vocabulary are chunked, with an online log-sum-exp over the vocabulary chunks, and
the backward recomputes each chunk. `fused_linear_dpo_loss` computes its gradients in the forward call,
as Liger-Kernel's fused linear preference loss does, since the loss is a scalar. float32 and float64.

Each public function has a `_reference` twin in plain PyTorch (materialized logits, log_softmax, gather)
that the tests and benchmarks compare against. A sequence whose labels are all ignore_index has log-prob
0 (also with `average=True`, where TRL would divide 0 by 0) and receives no gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from common.ops._extension import (
    DOUBLE_BACKWARD,
    dispatch,
    extension_available,
    register_not_differentiable,
)

LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo")
SUPPORTED_DTYPES = (torch.float32, torch.float64)

__all__ = [
    "LOSS_TYPES",
    "dpo_loss",
    "dpo_loss_reference",
    "fused_linear_dpo_loss",
    "fused_linear_dpo_loss_reference",
    "sequence_logps",
    "sequence_logps_reference",
    "token_logps",
    "token_logps_reference",
]


# ------------------------------------------------------------------------------------------ validation


def _check_float(t: object, name: str, dim: int, layout: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    if t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D {layout}, got shape {tuple(t.shape)}")


def _check_labels(t: object, name: str, shape: tuple[int, ...], layout: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if t.dtype != torch.int64:
        raise TypeError(f"{name} must be int64 (class indices), got {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {layout} = {tuple(shape)}, got {tuple(t.shape)}")


def _check_same(tensors: dict[str, torch.Tensor], first: str) -> None:
    """Every tensor on the device and (floating ones) of the dtype of `tensors[first]`."""
    ref = tensors[first]
    if ref.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{first} must be on a CPU or CUDA device, got {ref.device}")
    for name, t in tensors.items():
        if t.device != ref.device:
            raise ValueError(
                f"{name} is on {t.device} but {first} is on {ref.device}; move them to one device"
            )
        if t.is_floating_point() and t.dtype != ref.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first} has {ref.dtype}; use one dtype")


def _check_weight(weight: object, H: int) -> None:
    _check_float(weight, "weight", 2, "[V, H]")
    if weight.shape[0] == 0:
        raise ValueError(f"weight must have at least one row (V > 0), got shape {tuple(weight.shape)}")
    if weight.shape[1] != H:
        raise ValueError(
            f"weight must be [V, H] with H = {H} (the last dim of hidden), got shape {tuple(weight.shape)}"
        )


def _check_loss_args(beta: float, loss_type: str, label_smoothing: float) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    if not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if loss_type == "robust" and not 0.0 <= label_smoothing < 0.5:
        raise ValueError(
            f"label_smoothing must lie in [0, 0.5) for loss_type 'robust', got {label_smoothing}"
        )
    if loss_type == "sigmoid" and not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if loss_type in ("hinge", "ipo") and label_smoothing != 0.0:
        raise ValueError(
            f"label_smoothing applies to 'sigmoid' and 'robust' only, "
            f"got {label_smoothing} with {loss_type!r}"
        )


def _check_label_values(labels: torch.Tensor, name: str, V: int, ignore_index: int) -> None:
    """Labels in [0, V) or ignore_index (the kernels check for themselves; this guards the references)."""
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= V))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(f"{name} holds {value}, outside [0, V={V}) and not ignore_index ({ignore_index})")


def _ref_or_zeros(
    ref: torch.Tensor | None, like: torch.Tensor, name: str, reference_free: bool
) -> torch.Tensor:
    if ref is None:
        if not reference_free:
            raise ValueError(f"{name} is None; it may be omitted only with reference_free=True")
        return torch.zeros_like(like)
    _check_float(ref, name, 1, "[B]")
    if ref.shape != like.shape:
        raise ValueError(f"{name} must have shape {tuple(like.shape)}, got {tuple(ref.shape)}")
    return ref


# -------------------------------------------------------------------------------------------- references


def token_logps_reference(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Plain-PyTorch token_logps: materialized logits, log_softmax, gather; 0 where ignored."""
    logits = hidden @ weight.T  # (N, V)
    logp = torch.log_softmax(logits, dim=-1)  # (N, V)
    mask = targets != ignore_index  # (N,)
    picked = logp.gather(-1, torch.where(mask, targets, 0).unsqueeze(-1)).squeeze(-1)  # (N,)
    return torch.where(mask, picked, torch.zeros_like(picked))


def sequence_logps_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    average: bool = False,
) -> torch.Tensor:
    """Plain-PyTorch sequence_logps: [B, T, H] -> [B] (sum, or mean over non-ignored tokens; 0 if none)."""
    B, T, H = hidden.shape
    logp = token_logps_reference(hidden.reshape(B * T, H), weight, labels.reshape(B * T), ignore_index)
    logp = logp.view(B, T)  # (B, T)
    total = logp.sum(-1)  # (B,)
    if average:
        total = total / (labels != ignore_index).sum(-1).clamp_min(1).to(total.dtype)
    return total


def dpo_loss_reference(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    reference_free: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TRL's DPOTrainer.dpo_loss (v0.12 .. v0.28) for sigmoid (cDPO), robust, hinge and ipo."""
    pc, pr = policy_chosen_logps, policy_rejected_logps
    rc = torch.zeros_like(pc) if ref_chosen_logps is None else ref_chosen_logps
    rr = torch.zeros_like(pr) if ref_rejected_logps is None else ref_rejected_logps
    ref_logratios = torch.zeros_like(pc) if reference_free else rc - rr
    logits = (pc - pr) - ref_logratios  # (B,): h
    eps = label_smoothing
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    elif loss_type == "robust":
        losses = (-F.logsigmoid(beta * logits) * (1 - eps) + F.logsigmoid(-beta * logits) * eps) / (
            1 - 2 * eps
        )
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2  # Azar et al. 2023, eq. 17
    else:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return losses, chosen_rewards, rejected_rewards


def fused_linear_dpo_loss_reference(
    hidden_chosen: torch.Tensor,
    hidden_rejected: torch.Tensor,
    weight: torch.Tensor,
    labels_chosen: torch.Tensor,
    labels_rejected: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    average_log_prob: bool = False,
    ignore_index: int = -100,
    reference_free: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain-PyTorch fused_linear_dpo_loss: full [B, T, V] logits of each side, then dpo_loss_reference."""
    average = average_log_prob or loss_type == "ipo"
    pc = sequence_logps_reference(hidden_chosen, weight, labels_chosen, ignore_index, average)  # (B,)
    pr = sequence_logps_reference(hidden_rejected, weight, labels_rejected, ignore_index, average)  # (B,)
    losses, chosen_rewards, rejected_rewards = dpo_loss_reference(
        pc, pr, ref_chosen_logps, ref_rejected_logps, beta, loss_type, label_smoothing, reference_free
    )
    return losses.mean(), chosen_rewards, rejected_rewards


# ------------------------------------------------------------------------------------------ public ops


def token_logps(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """log softmax(hidden @ weight.T)[targets] per row, without materializing the [N, V] logits.

    hidden [N, H] and weight [V, H] (the unembedding; float32 or float64, one dtype and device), targets
    [N] int64 in [0, V) or ignore_index. Returns [N], 0 where targets == ignore_index. Differentiable in
    hidden and weight. Targets outside [0, V) raise ValueError.
    """
    _check_float(hidden, "hidden", 2, "[N, H]")
    _check_weight(weight, hidden.shape[1])
    _check_labels(targets, "targets", (hidden.shape[0],), "[N]")
    _check_same({"hidden": hidden, "weight": weight, "targets": targets}, "hidden")

    def reference() -> torch.Tensor:
        _check_label_values(targets, "targets", weight.shape[0], ignore_index)
        return token_logps_reference(hidden, weight, targets, ignore_index)

    return dispatch(
        "token_logps",
        hidden.device,
        kernel=lambda: torch.ops.companion.token_logps(hidden, weight, targets, ignore_index)[0],  # (N,)
        reference=reference,
    )


def sequence_logps(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    average: bool = False,
) -> torch.Tensor:
    """Per-sequence log-prob: hidden [B, T, H], labels [B, T] (already aligned with the positions that
    predict them) -> [B], the sum of token log-probs over non-ignored labels, or their mean with
    `average=True` (a sequence with no labels gives 0)."""
    _check_float(hidden, "hidden", 3, "[B, T, H]")
    B, T, H = hidden.shape
    _check_weight(weight, H)
    _check_labels(labels, "labels", (B, T), "[B, T]")
    _check_same({"hidden": hidden, "weight": weight, "labels": labels}, "hidden")
    logp = token_logps(hidden.reshape(B * T, H), weight, labels.reshape(B * T), ignore_index).view(B, T)
    total = logp.sum(-1)  # (B,)
    if average:
        total = total / (labels != ignore_index).sum(-1).clamp_min(1).to(total.dtype)
    return total


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    reference_free: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses [B] and detached rewards beta (policy - ref) [B] for chosen and rejected.

    Formulas of TRL's DPOTrainer (v0.12 .. v0.28), see the module docstring; loss_type is sigmoid (cDPO
    with label_smoothing), robust, hinge or ipo (pass length-averaged log-probs for ipo, as TRL does).
    With reference_free the reference log-probs drop out of the loss (they may then be None) but, as in
    TRL, still enter the rewards. Differentiable in all four log-prob inputs.
    """
    _check_loss_args(beta, loss_type, label_smoothing)
    _check_float(policy_chosen_logps, "policy_chosen_logps", 1, "[B]")
    pc = policy_chosen_logps
    _check_float(policy_rejected_logps, "policy_rejected_logps", 1, "[B]")
    if policy_rejected_logps.shape != pc.shape:
        raise ValueError(
            f"policy_rejected_logps must have shape {tuple(pc.shape)}, "
            f"got {tuple(policy_rejected_logps.shape)}"
        )
    rc = _ref_or_zeros(ref_chosen_logps, pc, "ref_chosen_logps", reference_free)
    rr = _ref_or_zeros(ref_rejected_logps, pc, "ref_rejected_logps", reference_free)
    args = {"policy_chosen_logps": pc, "policy_rejected_logps": policy_rejected_logps}
    _check_same({**args, "ref_chosen_logps": rc, "ref_rejected_logps": rr}, "policy_chosen_logps")

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        losses, chosen_rewards, rejected_rewards = torch.ops.companion.dpo_loss(
            pc, policy_rejected_logps, rc, rr, float(beta), loss_type, float(label_smoothing), reference_free
        )
        return losses, chosen_rewards.detach(), rejected_rewards.detach()

    return dispatch(
        "dpo_loss",
        pc.device,
        kernel=kernel,
        reference=lambda: dpo_loss_reference(
            pc, policy_rejected_logps, rc, rr, beta, loss_type, label_smoothing, reference_free
        ),
    )


def fused_linear_dpo_loss(
    hidden_chosen: torch.Tensor,
    hidden_rejected: torch.Tensor,
    weight: torch.Tensor,
    labels_chosen: torch.Tensor,
    labels_rejected: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    average_log_prob: bool = False,
    ignore_index: int = -100,
    reference_free: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean DPO loss over B pairs straight from the policy's last hidden states and unembedding.

    hidden_chosen [B, Tc, H], hidden_rejected [B, Tr, H], weight [V, H], labels_chosen [B, Tc] and
    labels_rejected [B, Tr] (aligned with the positions that predict them; ignore_index masks prompt and
    padding), ref_chosen_logps / ref_rejected_logps [B] (computed the same way, e.g. sequence_logps of the
    reference model; None only with reference_free). Sequence log-probs are sums over labelled tokens, or
    means with average_log_prob; 'ipo' always uses means, as TRL. Returns (loss, chosen_rewards,
    rejected_rewards); the rewards are detached. The loss is differentiable in both hidden tensors, the
    weight and the reference log-probs; its gradients are computed in this call (when any input requires
    grad), so the [B, T, V] logits are never stored.
    """
    _check_loss_args(beta, loss_type, label_smoothing)
    _check_float(hidden_chosen, "hidden_chosen", 3, "[B, T, H]")
    B, Tc, H = hidden_chosen.shape
    _check_float(hidden_rejected, "hidden_rejected", 3, "[B, T, H]")
    if hidden_rejected.shape[0] != B or hidden_rejected.shape[2] != H:
        raise ValueError(
            f"hidden_rejected must be [B={B}, T, H={H}] like hidden_chosen, "
            f"got {tuple(hidden_rejected.shape)}"
        )
    Tr = hidden_rejected.shape[1]
    _check_weight(weight, H)
    _check_labels(labels_chosen, "labels_chosen", (B, Tc), "[B, T] of hidden_chosen")
    _check_labels(labels_rejected, "labels_rejected", (B, Tr), "[B, T] of hidden_rejected")
    like = hidden_chosen.new_empty(B)
    rc = _ref_or_zeros(ref_chosen_logps, like, "ref_chosen_logps", reference_free)
    rr = _ref_or_zeros(ref_rejected_logps, like, "ref_rejected_logps", reference_free)
    tensors = {
        "hidden_chosen": hidden_chosen,
        "hidden_rejected": hidden_rejected,
        "weight": weight,
        "labels_chosen": labels_chosen,
        "labels_rejected": labels_rejected,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }
    _check_same(tensors, "hidden_chosen")

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        compute_grad = torch.is_grad_enabled() and (
            hidden_chosen.requires_grad or hidden_rejected.requires_grad or weight.requires_grad
        )
        loss, chosen_rewards, rejected_rewards, *_ = torch.ops.companion.fused_linear_dpo(
            hidden_chosen, hidden_rejected, weight, labels_chosen, labels_rejected, rc, rr,
            float(beta), loss_type, float(label_smoothing), average_log_prob, reference_free, ignore_index,
            compute_grad,
        )  # fmt: skip
        return loss, chosen_rewards.detach(), rejected_rewards.detach()

    def reference() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        V = weight.shape[0]
        _check_label_values(labels_chosen, "labels_chosen", V, ignore_index)
        _check_label_values(labels_rejected, "labels_rejected", V, ignore_index)
        return fused_linear_dpo_loss_reference(
            hidden_chosen, hidden_rejected, weight, labels_chosen, labels_rejected, rc, rr,
            beta, loss_type, label_smoothing, average_log_prob, ignore_index, reference_free,
        )  # fmt: skip

    return dispatch("fused_linear_dpo", hidden_chosen.device, kernel=kernel, reference=reference)


# ------------------------------------------------------------------------------- fake kernels, autograd


def _register() -> None:
    """Fake kernels and autograd for the companion DPO-family ops (needs the loaded library)."""

    @torch.library.register_fake("companion::token_logps")
    def _token_logps_fake(hidden, weight, targets, ignore_index):
        torch._check(hidden.dim() == 2 and weight.dim() == 2, lambda: "hidden and weight must be 2-D")
        torch._check(hidden.shape[1] == weight.shape[1], lambda: "hidden and weight must share H")
        N = hidden.shape[0]
        return hidden.new_empty(N), hidden.new_empty(N)  # logps (N,), lse (N,)

    @torch.library.register_fake("companion::token_logps_backward")
    def _token_logps_backward_fake(grad_logps, grad_lse, hidden, weight, targets, lse, ignore_index):
        return hidden.new_empty(hidden.shape), weight.new_empty(weight.shape)  # (N, H), (V, H)

    @torch.library.register_fake("companion::dpo_loss")
    def _dpo_loss_fake(pc, pr, rc, rr, beta, loss_type, label_smoothing, reference_free):
        torch._check(pc.dim() == 1, lambda: "policy_chosen_logps must be 1-D [B]")
        return pc.new_empty(pc.shape), pc.new_empty(pc.shape), pc.new_empty(pc.shape)

    @torch.library.register_fake("companion::dpo_loss_backward")
    def _dpo_loss_backward_fake(grad, pc, pr, rc, rr, beta, loss_type, label_smoothing, reference_free):
        return pc.new_empty(pc.shape)

    @torch.library.register_fake("companion::fused_linear_dpo")
    def _fused_fake(hc, hr, w, lc, lr, rc, rr, beta, loss_type, ls, avg, rf, ignore_index, compute_grad):
        torch._check(hc.dim() == 3 and hr.dim() == 3, lambda: "hidden tensors must be 3-D [B, T, H]")
        B = hc.shape[0]
        grads = (
            (hc.new_empty(hc.shape), hr.new_empty(hr.shape), w.new_empty(w.shape))
            if compute_grad
            else (hc.new_empty(0), hc.new_empty(0), hc.new_empty(0))
        )
        return hc.new_empty(()), hc.new_empty(B), hc.new_empty(B), *grads, hc.new_empty(B)

    # token_logps: both outputs are differentiable (lse too: d lse / dz = softmax).
    def _token_setup(ctx, inputs, output):
        hidden, weight, targets, ignore_index = inputs
        _, lse = output
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.ignore_index = ignore_index

    def _token_backward(ctx, grad_logps, grad_lse):
        hidden, weight, targets, lse = ctx.saved_tensors
        grad_logps = torch.zeros_like(lse) if grad_logps is None else grad_logps
        grad_lse = torch.zeros_like(lse) if grad_lse is None else grad_lse
        grad_hidden, grad_weight = torch.ops.companion.token_logps_backward(
            grad_logps, grad_lse, hidden, weight, targets, lse, ctx.ignore_index
        )
        return grad_hidden, grad_weight, None, None

    torch.library.register_autograd("companion::token_logps", _token_backward, setup_context=_token_setup)

    # dpo_loss: losses and rewards are all differentiable at the op level (the public function detaches
    # the rewards, as TRL): d reward_c / d pc = beta, d reward_c / d rc = -beta.
    def _dpo_setup(ctx, inputs, output):
        pc, pr, rc, rr, beta, loss_type, label_smoothing, reference_free = inputs
        ctx.save_for_backward(pc, pr, rc, rr)
        ctx.args = (beta, loss_type, label_smoothing, reference_free)

    def _dpo_backward(ctx, grad_losses, grad_chosen_rewards, grad_rejected_rewards):
        pc, pr, rc, rr = ctx.saved_tensors
        beta, _, _, reference_free = ctx.args
        if grad_losses is None:
            grad_losses = torch.zeros_like(pc)
        g = torch.ops.companion.dpo_loss_backward(grad_losses, pc, pr, rc, rr, *ctx.args)  # (B,)
        ref_g = torch.zeros_like(g) if reference_free else g
        grad_pc, grad_pr, grad_rc, grad_rr = g, -g, -ref_g, ref_g
        if grad_chosen_rewards is not None:
            grad_pc = grad_pc + beta * grad_chosen_rewards
            grad_rc = grad_rc - beta * grad_chosen_rewards
        if grad_rejected_rewards is not None:
            grad_pr = grad_pr + beta * grad_rejected_rewards
            grad_rr = grad_rr - beta * grad_rejected_rewards
        return grad_pc, grad_pr, grad_rc, grad_rr, None, None, None, None

    torch.library.register_autograd("companion::dpo_loss", _dpo_backward, setup_context=_dpo_setup)

    # fused_linear_dpo: only the loss is differentiable; its gradients are outputs of the forward call.
    def _fused_setup(ctx, inputs, output):
        reference_free, compute_grad = inputs[11], inputs[13]
        _, chosen_rewards, rejected_rewards, grad_hc, grad_hr, grad_w, grad_logratio = output
        ctx.mark_non_differentiable(chosen_rewards, rejected_rewards, grad_hc, grad_hr, grad_w, grad_logratio)
        ctx.save_for_backward(grad_hc, grad_hr, grad_w, grad_logratio)
        ctx.reference_free = reference_free
        ctx.compute_grad = compute_grad

    def _fused_backward(ctx, grad_loss, *_unused):
        grad_hc, grad_hr, grad_w, grad_logratio = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if any(needs[:3]) and not ctx.compute_grad:
            raise RuntimeError(
                "companion::fused_linear_dpo was called with compute_grad=False, so the gradients of the "
                "hidden states and weight were not computed; call it with compute_grad=True "
                "(fused_linear_dpo_loss decides this from requires_grad)"
            )
        if torch.is_grad_enabled() and any(needs[:3]):  # backward(create_graph=True)
            raise RuntimeError(
                "companion::fused_linear_dpo has no second derivative: its gradients are constants computed "
                "in the forward call, so double backward (create_graph=True) would be silently wrong; use "
                "common.ops.fused_linear_dpo_loss_reference for higher-order derivatives"
            )
        out = [None] * 14
        if needs[0]:
            out[0] = grad_loss * grad_hc
        if needs[1]:
            out[1] = grad_loss * grad_hr
        if needs[2]:
            out[2] = grad_loss * grad_w
        if not ctx.reference_free:  # h = (pc - pr) - (rc - rr)
            if needs[5]:
                out[5] = -grad_loss * grad_logratio
            if needs[6]:
                out[6] = grad_loss * grad_logratio
        return tuple(out)

    torch.library.register_autograd(
        "companion::fused_linear_dpo", _fused_backward, setup_context=_fused_setup
    )
    register_not_differentiable("token_logps_backward", DOUBLE_BACKWARD, "common.ops.token_logps_reference")
    register_not_differentiable("dpo_loss_backward", DOUBLE_BACKWARD, "common.ops.dpo_loss_reference")


if extension_available():
    _register()
