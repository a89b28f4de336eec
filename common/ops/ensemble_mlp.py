"""E independent one-hidden-layer ReLU MLPs on {-1, +1}^n as one module, with fused forward and backward.

The students of Panigrahi et al. 2025 (arXiv 2410.05464, section 3: sparse parity, 1 hidden ReLU layer,
cross-entropy or distillation from a teacher's logits at a temperature), trained many at once: seeds,
teacher checkpoints and temperatures become the member axis E of stacked weights

    out[e, b] = W2[e] relu(W1[e] x_b + b1[e]) + b2[e]          x_b in {-1, +1}^n, packed (sparse_parity.pack)

`EnsembleMLP` holds weight1 [E, n, H] (W1 transposed: row i belongs to input coordinate i), bias1 [E, H],
weight2 [E, C, H] and bias2 [E, C] as ordinary parameters, so any torch optimizer trains it; `member(i)`
returns the equivalent `nn.Sequential(Linear, ReLU, Linear)`. The forward and backward are the custom ops
`companion::ensemble_mlp_forward|backward` (csrc/cpu/sparse_parity.cpp, csrc/cuda/sparse_parity.cu): the
hidden layer is never stored, the backward recomputes it, and on CPU the first layer is a sum of table rows
(the inputs are +-1), see csrc/include/popcount_parity.h. `ensemble_mlp_reference` is the PyTorch twin.

Losses return one value per member, [E]: sum them before `.backward()` so that each member receives the
gradient of its own loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.ops._extension import (
    DOUBLE_BACKWARD,
    dispatch,
    extension_available,
    register_not_differentiable,
)
from common.ops.sparse_parity import num_words, pack, unpack_reference

# ---------------------------------------------------------------------------------------------- op


def ensemble_mlp_reference(
    x_packed: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor,
    weight2: torch.Tensor,
    bias2: torch.Tensor,
) -> torch.Tensor:
    """Pure-PyTorch twin of `ensemble_mlp`: logits [E, B, C] in the weights' dtype."""
    n = weight1.shape[1]
    lead = x_packed.shape[:-1]
    x = unpack_reference(x_packed.reshape(-1, x_packed.shape[-1]), n).reshape(*lead, n).to(weight1.dtype)
    eq = "bi,eih->ebh" if x.dim() == 2 else "ebi,eih->ebh"
    hidden = torch.relu(torch.einsum(eq, x, weight1) + bias1[:, None, :])  # (E, B, H)
    return torch.einsum("ebh,ech->ebc", hidden, weight2) + bias2[:, None, :]  # (E, B, C)


def _check_ensemble_inputs(x_packed: object, weight1: torch.Tensor, *rest: torch.Tensor) -> None:
    if not isinstance(x_packed, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x_packed).__name__}")
    if x_packed.dtype != torch.int64:
        raise TypeError(f"x_packed must be int64 (bit-packed signs from pack()), got {x_packed.dtype}")
    E, n, _ = weight1.shape
    if x_packed.dim() not in (2, 3) or x_packed.shape[-1] != num_words(n):
        raise ValueError(
            f"x_packed must be [B, {num_words(n)}] (shared by the members) or [E, B, {num_words(n)}] for "
            f"n={n}, got shape {tuple(x_packed.shape)}"
        )
    if x_packed.dim() == 3 and x_packed.shape[0] != E:
        raise ValueError(f"x_packed [E, B, W] must have E={E} member rows, got shape {tuple(x_packed.shape)}")
    if any(t.device != x_packed.device for t in (weight1, *rest)):
        raise ValueError(f"x_packed is on {x_packed.device} but the weights are on {weight1.device}")


def ensemble_mlp(
    x_packed: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor,
    weight2: torch.Tensor,
    bias2: torch.Tensor,
) -> torch.Tensor:
    """Logits [E, B, C] of E one-hidden-layer ReLU MLPs on packed +-1 inputs ([B, W] shared or [E, B, W]).

    weight1 [E, n, H], bias1 [E, H], weight2 [E, C, H], bias2 [E, C] (float32 or float64). Differentiable in
    the four weights through the fused `companion::ensemble_mlp_backward`.
    """
    _check_ensemble_inputs(x_packed, weight1, bias1, weight2, bias2)
    weights = (weight1, bias1, weight2, bias2)
    return dispatch(
        "ensemble_mlp_forward",
        weight1.device,
        kernel=lambda: torch.ops.companion.ensemble_mlp_forward(x_packed, *weights),  # (E, B, C)
        reference=lambda: ensemble_mlp_reference(x_packed, *weights),
    )


# ------------------------------------------------------------------------------------------ module


class EnsembleMLP(nn.Module):
    """`members` independent MLPs n -> width (ReLU) -> classes, trained together (one optimizer, one step).

    Initialised like `nn.Linear` for every member (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
    biases), drawn from `generator` when given. `forward(x)` takes x packed ([B, W] or [E, B, W] int64) or
    as -1/+1 floats ([B, n] or [E, B, n], packed first) and returns logits [E, B, classes].
    """

    def __init__(
        self,
        members: int,
        n: int,
        width: int,
        classes: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("members", members), ("n", n), ("width", width), ("classes", classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.members, self.n, self.width, self.classes = members, n, width, classes

        def uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
            bound = 1.0 / math.sqrt(fan_in)
            t = torch.rand(shape, generator=generator, dtype=dtype) * (2 * bound) - bound
            return nn.Parameter(t.to(device))

        self.weight1 = uniform((members, n, width), n)  # (E, n, H): W1 transposed
        self.bias1 = uniform((members, width), n)  # (E, H)
        self.weight2 = uniform((members, classes, width), width)  # (E, C, H)
        self.bias2 = uniform((members, classes), width)  # (E, C)

    @classmethod
    def from_members(cls, models: list[nn.Sequential]) -> EnsembleMLP:
        """Stack E `nn.Sequential(Linear(n, H), ReLU(), Linear(H, C))` models (weights copied)."""
        first, last = models[0][0], models[0][2]
        ens = cls(
            len(models),
            first.in_features,
            first.out_features,
            last.out_features,
            dtype=first.weight.dtype,
            device=first.weight.device,
        )
        with torch.no_grad():
            ens.weight1.copy_(torch.stack([m[0].weight.T for m in models]))
            ens.bias1.copy_(torch.stack([m[0].bias for m in models]))
            ens.weight2.copy_(torch.stack([m[2].weight for m in models]))
            ens.bias2.copy_(torch.stack([m[2].bias for m in models]))
        return ens

    def member(self, i: int) -> nn.Sequential:
        """Member i as an ordinary `nn.Sequential(Linear(n, H), ReLU(), Linear(H, C))`, weights copied."""
        if not -self.members <= i < self.members:
            raise IndexError(f"member index {i} out of range for {self.members} members")
        dtype, device = self.weight1.dtype, self.weight1.device
        model = nn.Sequential(
            nn.Linear(self.n, self.width, dtype=dtype, device=device),
            nn.ReLU(),
            nn.Linear(self.width, self.classes, dtype=dtype, device=device),
        )
        with torch.no_grad():
            model[0].weight.copy_(self.weight1[i].T)
            model[0].bias.copy_(self.bias1[i])
            model[2].weight.copy_(self.weight2[i])
            model[2].bias.copy_(self.bias2[i])
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [E, B, C] for x packed ([B, W] / [E, B, W] int64) or -1/+1 floats ([B, n] / [E, B, n])."""
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            if x.shape[-1] != self.n or x.dim() not in (2, 3):
                raise ValueError(f"x must be [B, {self.n}] or [E, B, {self.n}], got shape {tuple(x.shape)}")
            x = pack(x.reshape(-1, self.n)).reshape(*x.shape[:-1], num_words(self.n))
        return ensemble_mlp(x, self.weight1, self.bias1, self.weight2, self.bias2)

    def extra_repr(self) -> str:
        return f"members={self.members}, n={self.n}, width={self.width}, classes={self.classes}"


# -------------------------------------------------------------------------------------------- losses


def labels_to_classes(y: torch.Tensor) -> torch.Tensor:
    """Parity labels in {-1, +1} -> class indices as in the paper's code: +1 -> 0, -1 -> 1 (int64)."""
    if y.is_floating_point():
        if not bool((y.abs() == 1).all()):
            raise ValueError("float labels must be -1 or +1 (or pass class indices as int64)")
        return (y < 0).to(torch.int64)
    return y.to(torch.int64)


def _per_member_targets(
    logits: torch.Tensor, target: torch.Tensor, name: str, event_dims: int = 0
) -> torch.Tensor:
    """Broadcast a per-sample target ([B] labels, or [B, C] with event_dims=1) over the members of logits
    [E, B, C]; a per-member target ([E, B] or [E, B, C]) is checked and returned as is."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be [E, B, C], got shape {tuple(logits.shape)}")
    E, B = logits.shape[:2]
    if target.dim() == 1 + event_dims and target.shape[0] == B:
        return target.unsqueeze(0).expand(E, *target.shape)
    if target.dim() == 2 + event_dims and target.shape[:2] == (E, B):
        return target
    shapes = "[B] or [E, B]" if event_dims == 0 else "[B, C] or [E, B, C]"
    raise ValueError(
        f"{name} must be {shapes} for logits of shape {tuple(logits.shape)}, got {tuple(target.shape)}"
    )


def cross_entropy_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy per member, [E], on labels y ([B] or [E, B]; -1/+1 or class indices)."""
    classes = _per_member_targets(logits, labels_to_classes(y), "y")  # (E, B)
    losses = F.cross_entropy(logits.flatten(0, 1), classes.flatten(), reduction="none")  # (E*B,)
    return losses.view(logits.shape[:2]).mean(dim=1)  # (E,)


def hinge_loss(logits: torch.Tensor, y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean hinge loss per member, [E]. One output (C = 1): max(0, margin - y f) with y in {-1, +1}.
    C >= 2: the multiclass (Crammer-Singer) hinge max(0, margin + max_{c != y} f_c - f_y)."""
    if logits.shape[-1] == 1:
        if not y.is_floating_point():
            raise ValueError("a one-output hinge loss needs -1/+1 labels")
        sign = _per_member_targets(logits, y, "y").to(logits.dtype)  # (E, B)
        return torch.relu(margin - sign * logits[..., 0]).mean(dim=1)
    classes = _per_member_targets(logits, labels_to_classes(y), "y")  # (E, B)
    true = logits.gather(-1, classes.unsqueeze(-1))[..., 0]  # (E, B)
    others = logits.scatter(-1, classes.unsqueeze(-1), float("-inf")).amax(dim=-1)  # (E, B)
    return torch.relu(margin + others - true).mean(dim=1)


def teacher_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """q = softmax(teacher_logits / temperature); temperature 0 gives the one-hot argmax (hard teacher labels,
    the paper's tau = 1e-20). Any temperature at which teacher_logits / tau overflows is also treated as 0."""
    if temperature < 0 or math.isnan(temperature):
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    scaled = teacher_logits / temperature if temperature > 0 else None
    if scaled is None or not bool(torch.isfinite(scaled).all()):
        hard = teacher_logits.argmax(dim=-1)
        return F.one_hot(hard, teacher_logits.shape[-1]).to(teacher_logits.dtype)
    return torch.softmax(scaled, dim=-1)


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Cross-entropy to the teacher per member, [E]: mean_b sum_c -q_c log p_c with q = `teacher_targets`
    (teacher_logits [B, C] shared, or [E, B, C]) and p = softmax(student_logits [E, B, C]). The teacher gets
    no gradient."""
    q = _per_member_targets(
        student_logits, teacher_targets(teacher_logits.detach(), temperature), "teacher_logits", event_dims=1
    )
    if q.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits {tuple(teacher_logits.shape)} do not match {tuple(student_logits.shape)}"
        )
    return -(q * torch.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean(dim=1)  # (E,)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions per member, [E] (C = 1: the sign of the output)."""
    if logits.shape[-1] == 1:
        sign = _per_member_targets(logits, y, "y")
        return ((logits[..., 0] >= 0) == (sign > 0)).to(torch.float32).mean(dim=1)
    classes = _per_member_targets(logits, labels_to_classes(y), "y")
    return (logits.argmax(dim=-1) == classes).to(torch.float32).mean(dim=1)


# ----------------------------------------------------------------------------- fake kernels, autograd


def _register() -> None:
    """Fake kernels and autograd for companion::ensemble_mlp_* (needs the loaded library)."""

    @torch.library.register_fake("companion::ensemble_mlp_forward")
    def _forward_fake(x_packed, weight1, bias1, weight2, bias2):
        return weight1.new_empty(weight1.shape[0], x_packed.shape[-2], weight2.shape[1])  # (E, B, C)

    @torch.library.register_fake("companion::ensemble_mlp_backward")
    def _backward_fake(grad, x_packed, weight1, bias1, weight2):
        E, C = weight1.shape[0], weight2.shape[1]
        return (
            torch.empty_like(weight1),
            torch.empty_like(bias1),
            torch.empty_like(weight2),
            weight1.new_empty(E, C),
        )

    def _setup_context(ctx, inputs, output) -> None:
        x_packed, weight1, bias1, weight2, _ = inputs
        ctx.save_for_backward(x_packed, weight1, bias1, weight2)

    def _backward(ctx, grad):
        x_packed, weight1, bias1, weight2 = ctx.saved_tensors
        grads = torch.ops.companion.ensemble_mlp_backward(grad, x_packed, weight1, bias1, weight2)
        return (None, *grads)

    torch.library.register_autograd(
        "companion::ensemble_mlp_forward", _backward, setup_context=_setup_context
    )
    register_not_differentiable("ensemble_mlp_backward", DOUBLE_BACKWARD, "common.ops.ensemble_mlp_reference")


if extension_available():
    _register()
