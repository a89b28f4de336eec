"""Loading of the compiled kernels (`common._C`) and the explicit switch to the pure-PyTorch references.

The extension is imported once, on first use. If it is missing (not built yet) or fails to load, calling a
public op raises a RuntimeError that says how to build it; nothing falls back silently. Setting the
environment variable COMPANION_REFERENCE_OPS=1 is the one explicit opt-in that makes every public op run its
pure-PyTorch reference instead (for machines without a compiler, and for A/B checks).

Every public op makes that choice through `dispatch(op, device, kernel, reference)`. Called eagerly, it
reads the environment variable on each call. Under torch.compile the choice is made while tracing and
becomes a constant of the graph, without a graph break: the variable is read by plain Python (the reading
and the kernel check are marked `torch.compiler.assume_constant_result`, so Dynamo calls them instead of
tracing them), and the kernel path is the custom op, which has a fake kernel (register_fake). A compiled
function keeps the choice it was traced with until it is recompiled.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")

REFERENCE_ENV = "COMPANION_REFERENCE_OPS"
BUILD_HINT = "run `make build` or `pip install --no-build-isolation -e .` from the repository root"


@functools.cache
def _load() -> str | None:
    """Import common._C once; return None on success, else the import error as text."""
    try:
        importlib.import_module("common._C")
    except ImportError as err:  # not built, or built against another torch: reported when an op is called
        return f"{type(err).__name__}: {err}"
    return None


def extension_available() -> bool:
    """True when the compiled kernels (common._C) are built and loaded."""
    return _load() is None


@torch.compiler.assume_constant_result
def use_reference_ops() -> bool:
    """True when COMPANION_REFERENCE_OPS=1 asks the public ops to run their pure-PyTorch references."""
    value = os.environ.get(REFERENCE_ENV, "0")
    if value not in ("0", "1", ""):
        raise ValueError(f"{REFERENCE_ENV} must be 0 or 1, got {value!r}")
    return value == "1"


@torch.compiler.assume_constant_result
def _has_kernel(op: str, device_type: str) -> bool:
    """True when `companion::<op>` has a kernel for a `device_type` device, else a RuntimeError naming the
    fix. A plain-Python check that torch.compile runs once while tracing (its result is a graph constant)."""
    if not extension_available():
        raise RuntimeError(
            f"companion::{op} needs the compiled kernels, which are not available ({_load()}); "
            f"{BUILD_HINT}, or set {REFERENCE_ENV}=1 to use the pure-PyTorch references"
        )
    key = "CUDA" if device_type == "cuda" else "CPU"
    if not torch._C._dispatch_has_kernel_for_dispatch_key(f"companion::{op}", key):
        raise RuntimeError(
            f"companion::{op} has no {key} kernel in this build of common._C "
            f"(CUDA kernels are built only when torch has CUDA and a CUDA toolkit is found); rebuild with "
            f"{BUILD_HINT} on a CUDA machine, or set {REFERENCE_ENV}=1"
        )
    return True


def require_kernel(op: str, device: torch.device) -> None:
    """Raise a RuntimeError naming the fix unless `companion::<op>` has a kernel for `device`."""
    _has_kernel(op, device.type)


def dispatch(op: str, device: torch.device, kernel: Callable[[], T], reference: Callable[[], T]) -> T:
    """Run a public op: `reference()` when COMPANION_REFERENCE_OPS=1, else `kernel()` once `companion::<op>`
    is known to have a kernel for `device` (RuntimeError naming the fix otherwise).

    `kernel` and `reference` take no arguments (closures over the op's checked inputs). Safe to trace with
    torch.compile(fullgraph=True): see the module docstring.
    """
    if use_reference_ops():
        return reference()
    require_kernel(op, device)
    return kernel()


def register_not_differentiable(op: str, why: str, reference: str) -> None:
    """Make differentiating through `companion::<op>` raise an error that says why and what to use instead.

    Without a registration, autograd would only warn and treat the op's outputs as constants, so a gradient
    through it (for a backward kernel: `create_graph=True`, double backward) would be silently wrong. With
    it, the forward works as before and a backward through it names `reference`, the differentiable
    pure-PyTorch twin.
    """

    def _setup_context(ctx, inputs, output) -> None:
        pass

    def _backward(ctx, *grads):
        raise RuntimeError(
            f"companion::{op} has no derivative ({why}); use {reference}, the differentiable "
            "pure-PyTorch reference, to differentiate through it"
        )

    torch.library.register_autograd(f"companion::{op}", _backward, setup_context=_setup_context)


DOUBLE_BACKWARD = "it is a fused backward kernel: double backward, create_graph=True, is not implemented"
