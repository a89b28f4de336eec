"""Row-wise log-sum-exp, lse[n] = log(sum_v exp(x[n, v])), the log-normalizer of a softmax over V.

`logsumexp(x)` runs the `companion::logsumexp` kernels (csrc/cpu/logsumexp.cpp, csrc/cuda/logsumexp.cu):
one pass over each row with the online (max, sum) state of csrc/include/online_logsumexp.h, accumulating
in float32 (float64 for float64 inputs) and returning the input dtype. It is differentiable through
`companion::logsumexp_backward`, grad_x = grad[:, None] * exp(x - lse[:, None]), registered below with
torch.library.register_autograd, and has fake kernels for torch.compile / export.

`logsumexp_reference(x)` is the pure-PyTorch twin that the tests and benchmarks compare against.
"""

from __future__ import annotations

import torch

from common.ops._extension import (
    DOUBLE_BACKWARD,
    dispatch,
    extension_available,
    register_not_differentiable,
)

SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _check_logits(x: object, name: str = "x") -> None:
    """Raise TypeError/ValueError naming `name` unless it is a non-empty 2-D float tensor on CPU or CUDA."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, V], got {type(x).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float32, float64, bfloat16 or float16, got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, V] (reduced over V), got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (V > 0), got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on a CPU or CUDA device, got {x.device}")


def logsumexp_reference(x: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch log-sum-exp over the last dim: [N, V] -> [N], computed in float32 (float64 for
    float64 inputs) and returned in x's dtype."""
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return torch.logsumexp(x.to(acc_dtype), dim=-1).to(x.dtype)  # (N,)


def logsumexp(x: torch.Tensor) -> torch.Tensor:
    """Numerically stable log(sum(exp(x), dim=-1)) for x [N, V] (float32/64, bfloat16, float16; CPU or CUDA).

    Returns lse [N] in x's dtype. Rows of all -inf give -inf; a +inf gives +inf; NaN propagates. The
    gradient is softmax(x) * grad (zero for rows whose lse is -inf). Raises RuntimeError if the kernels are
    not built, unless COMPANION_REFERENCE_OPS=1 selects `logsumexp_reference`.
    """
    _check_logits(x, "x")
    return dispatch(
        "logsumexp",
        x.device,
        kernel=lambda: torch.ops.companion.logsumexp(x),  # (N,)
        reference=lambda: logsumexp_reference(x),
    )


def _register() -> None:
    """Fake kernels and autograd for the companion::logsumexp ops (needs the loaded library)."""

    @torch.library.register_fake("companion::logsumexp")
    def _logsumexp_fake(x: torch.Tensor) -> torch.Tensor:
        torch._check(x.dim() == 2, lambda: f"x must be 2-D [N, V], got {x.dim()}-D")
        return x.new_empty(x.shape[0])  # (N,)

    @torch.library.register_fake("companion::logsumexp_backward")
    def _logsumexp_backward_fake(grad: torch.Tensor, x: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
        torch._check(x.dim() == 2, lambda: f"x must be 2-D [N, V], got {x.dim()}-D")
        torch._check(grad.shape == lse.shape == x.shape[:1], lambda: "grad and lse must have shape [N]")
        return x.new_empty(x.shape)  # (N, V), contiguous like the real kernels' output

    def _setup_context(ctx, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        (x,) = inputs
        ctx.save_for_backward(x, output)

    def _backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, lse = ctx.saved_tensors
        return torch.ops.companion.logsumexp_backward(grad, x, lse)  # (N, V)

    torch.library.register_autograd("companion::logsumexp", _backward, setup_context=_setup_context)
    register_not_differentiable("logsumexp_backward", DOUBLE_BACKWARD, "common.ops.logsumexp_reference")


if extension_available():
    _register()
