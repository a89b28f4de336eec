"""Per-sample gradient projection with a keyed random +-1 matrix (kernel family 2; LESS, TRAK, LoGra).

The projection matrix R is implicit: R[row, col] is +-1 from a counter-based hash of (seed, row, col)
(csrc/include/counter_hash.h: SplitMix64 row keys, two lowbias32 rounds per word of 32 entries; the same
hashes in Python are in common/ops/_counter_hash.py), so CPU,
CUDA and the pure-PyTorch reference build the same matrix, and any block of it can be rebuilt exactly
(unlike TRAK's fast_jl, whose matrix depends on the GPU's SM count, or its BasicProjector, which depends
on the device's generator). Public functions:

- `random_signs(seed, rows, cols, row_offset, col_offset)`: a block of R, float32 +-1.
- `project(x, proj_dim, seed)`: x [N, D] @ R[:D, :proj_dim] / sqrt(proj_dim) (Johnson-Lindenstrauss:
  E |y|^2 = |x|^2), R hashed tile by tile inside the kernel and never materialized whole.
- `per_sample_linear_grads_projected(activations, output_grads, proj_dim, seed, adam, mode)`: the projected
  per-sample weight gradient of a linear layer, G_n = sum_t g_{n,t} a_{n,t}^T (Opacus' linear grad sampler,
  a sum of T outer products). `mode="dense"` projects vec(G_n) (row-major [d_out, d_in], as weight.grad)
  with R, optionally after LESS's Adam map G -> m' / (sqrt(v') + eps); `mode="kronecker"` is LoGra's
  P_out^T G_n P_in with two keyed sign matrices (Choe et al. 2024), proj_dim = k_out * k_in.

Each has a `_reference` twin in plain PyTorch (materialized matrix; torch.func per-sample gradients) that the
tests and benchmarks compare against. The kernels are `torch.ops.companion.{random_signs_fill, project,
grad_project_dense, grad_project_kronecker}` (csrc/cpu/grad_projection.cpp, csrc/cuda/grad_projection.cu);
they have fake kernels for torch.compile / export and no autograd (the features are data, not a loss).

Scaling: every projection divides by sqrt(proj_dim), so norms and inner products are preserved in
expectation (TRAK and LESS do not scale; cosines, which LESS uses, are the same either way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from common.ops._counter_hash import (
    MASK32,
    MASK64,
    SPLITMIX_GAMMA,
    as_int64,
    lowbias32,
    lowbias32_t,
    splitmix64,
    splitmix64_t,
    srl,
)
from common.ops._extension import dispatch, extension_available, register_not_differentiable

__all__ = [
    "COL_LIMIT",
    "KRONECKER_OUT_COL_OFFSET",
    "kronecker_dims",
    "per_sample_linear_grads_projected",
    "per_sample_linear_grads_projected_reference",
    "project",
    "project_kronecker_reference",
    "project_reference",
    "random_signs",
    "random_signs_reference",
]

FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
COL_LIMIT = 1 << 32  # columns of R are uint32 in the hash
ROW_LIMIT = 1 << 63  # rows are uint64 in the hash, int64 in the API
KRONECKER_OUT_COL_OFFSET = 1 << 31  # P_out lives in columns [2^31, 2^31 + k_out) of R, P_in in [0, k_in)


# --------------------------------------------------------------------------------------- sign matrix


def random_signs_reference(
    seed: int,
    rows: int,
    cols: int,
    row_offset: int = 0,
    col_offset: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """R[row_offset : row_offset + rows, col_offset : col_offset + cols] in plain PyTorch (int64 arithmetic
    on CPU), entry by entry the hash of csrc/include/counter_hash.h. Returns [rows, cols] of +-1."""
    _check_block(seed, rows, cols, row_offset, col_offset)
    base = as_int64(splitmix64(seed & MASK64))
    r = torch.arange(rows, dtype=torch.int64) + row_offset  # (rows,)
    keys = splitmix64_t(base + r * as_int64(SPLITMIX_GAMMA))  # (rows,) int64 bits of the uint64 row keys
    lo, hi = keys & MASK32, srl(keys, 32)
    c = torch.arange(cols, dtype=torch.int64) + col_offset  # (cols,) < 2^32
    x = lowbias32_t(lo[:, None] ^ (c >> 5)[None, :])  # (rows, cols): the word of each column
    x = lowbias32_t(x ^ hi[:, None])
    bit = (x >> (c & 31)[None, :]) & 1
    return torch.where(bit == 1, -1.0, 1.0).to(dtype)  # (rows, cols)


def random_sign_int(seed: int, row: int, col: int) -> int:
    """One entry R[row, col] in Python integers (arbitrary precision: the tests' overflow-free oracle)."""
    key = splitmix64((splitmix64(seed & MASK64) + row * SPLITMIX_GAMMA) & MASK64)
    x = lowbias32((key & MASK32) ^ (col >> 5))
    x = lowbias32(x ^ (key >> 32))
    return -1 if (x >> (col & 31)) & 1 else 1


# ------------------------------------------------------------------------------------------ validation


def _check_int(value: object, name: str, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_block(seed: int, rows: int, cols: int, row_offset: int, col_offset: int) -> None:
    _check_int(seed, "seed")
    if not -(1 << 63) <= seed < 1 << 63:
        raise ValueError(f"seed must fit in int64, got {seed}")
    _check_int(rows, "rows", 0)
    _check_int(cols, "cols", 0)
    _check_int(row_offset, "row_offset", 0)
    _check_int(col_offset, "col_offset", 0)
    if row_offset + rows > ROW_LIMIT:
        raise ValueError(f"rows must lie in [0, 2^63): row_offset={row_offset}, rows={rows}")
    if col_offset + cols > COL_LIMIT:
        raise ValueError(f"columns must lie in [0, 2^32): col_offset={col_offset}, cols={cols}")


def _check_tensor(x: object, name: str, dims: int, layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float64, bfloat16 or float16, got {x.dtype}")
    if x.dim() != dims:
        raise ValueError(f"{name} must be {dims}-D {layout}, got shape {tuple(x.shape)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be on a CPU or CUDA device, got {x.device}")


def _check_proj_dim(proj_dim: object, name: str = "proj_dim") -> None:
    _check_int(proj_dim, name)
    if proj_dim <= 0:
        raise ValueError(f"{name} must be positive, got {proj_dim}")
    if proj_dim > COL_LIMIT:
        raise ValueError(f"{name} must be at most 2^32, got {proj_dim}")


def _check_pair(activations: object, output_grads: object) -> None:
    _check_tensor(activations, "activations", 3, "[N, T, d_in]")
    _check_tensor(output_grads, "output_grads", 3, "[N, T, d_out]")
    if activations.shape[0] != output_grads.shape[0]:
        raise ValueError(
            f"activations and output_grads disagree on N: {activations.shape[0]} vs {output_grads.shape[0]}"
        )
    if activations.shape[1] != output_grads.shape[1]:
        raise ValueError(
            f"activations and output_grads disagree on T: {activations.shape[1]} vs {output_grads.shape[1]}"
        )
    if activations.device != output_grads.device:
        raise ValueError(
            f"activations ({activations.device}) and output_grads ({output_grads.device}) must share a device"
        )


def _check_adam(adam: object, d_out: int, d_in: int, device: torch.device) -> tuple:
    if not isinstance(adam, Sequence) or len(adam) != 5:
        raise TypeError("adam must be a tuple (exp_avg, exp_avg_sq, beta1, beta2, eps)")
    exp_avg, exp_avg_sq, beta1, beta2, eps = adam
    for name, state in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        _check_tensor(state, f"adam {name}", 2, f"[d_out, d_in] = [{d_out}, {d_in}]")
        if tuple(state.shape) != (d_out, d_in):
            raise ValueError(
                f"adam {name} must have the weight's shape [d_out, d_in] = [{d_out}, {d_in}], "
                f"got {tuple(state.shape)}"
            )
        if state.device != device:
            raise ValueError(f"adam {name} is on {state.device}, the gradients on {device}")
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
            raise ValueError(f"adam {name} must be a number in [0, 1), got {value!r}")
    if not isinstance(eps, int | float) or not eps >= 0.0:
        raise ValueError(f"adam eps must be a number >= 0, got {eps!r}")
    return exp_avg, exp_avg_sq, float(beta1), float(beta2), float(eps)


def kronecker_dims(proj_dim: int) -> tuple[int, int]:
    """(k_out, k_in) for LoGra's projection: the most balanced factorization with k_out <= k_in
    (1024 -> (32, 32), 8192 -> (64, 128))."""
    _check_proj_dim(proj_dim)
    k_out = max(d for d in range(1, math.isqrt(proj_dim) + 1) if proj_dim % d == 0)
    return k_out, proj_dim // k_out


def _resolve_kron_dims(proj_dim: int, kron_dims: tuple[int, int] | None) -> tuple[int, int]:
    if kron_dims is None:
        return kronecker_dims(proj_dim)
    if not isinstance(kron_dims, Sequence) or len(kron_dims) != 2:
        raise TypeError(f"kron_dims must be a pair (k_out, k_in), got {kron_dims!r}")
    k_out, k_in = kron_dims
    _check_proj_dim(k_out, "kron_dims k_out")
    _check_proj_dim(k_in, "kron_dims k_in")
    if k_out * k_in != proj_dim:
        raise ValueError(f"kron_dims {k_out} x {k_in} = {k_out * k_in} != proj_dim {proj_dim}")
    if max(k_out, k_in) > KRONECKER_OUT_COL_OFFSET:
        raise ValueError(f"kron_dims must each be at most 2^31, got {kron_dims}")
    return k_out, k_in


def _acc_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if all(t.dtype == torch.float64 for t in tensors) else torch.float32


# ------------------------------------------------------------------------------------------ references


def project_reference(x: torch.Tensor, proj_dim: int, seed: int, row_offset: int = 0) -> torch.Tensor:
    """x [N, D] @ R / sqrt(proj_dim) with R = random_signs_reference(seed, D, proj_dim, row_offset)
    materialized (float32, float64 for float64 x)."""
    acc = _acc_dtype(x)
    R = random_signs_reference(seed, x.shape[1], proj_dim, row_offset, dtype=acc).to(x.device)  # (D, k)
    return x.to(acc) @ R / math.sqrt(proj_dim)  # (N, k)


def per_sample_linear_grads_reference(activations: torch.Tensor, output_grads: torch.Tensor) -> torch.Tensor:
    """G [N, d_out, d_in]: the per-sample gradient of a linear layer's weight by torch.func, as
    vmap(grad(W -> sum(g_n * (a_n @ W^T)))) (the loss whose gradient w.r.t. the layer output is g_n)."""
    from torch.func import grad, vmap

    acc = _acc_dtype(activations, output_grads)
    a, g = activations.to(acc), output_grads.to(acc)
    W = torch.zeros(g.shape[2], a.shape[2], dtype=acc, device=a.device)  # (d_out, d_in): value unused

    def surrogate(weight: torch.Tensor, a_n: torch.Tensor, g_n: torch.Tensor) -> torch.Tensor:
        return (g_n * (a_n @ weight.T)).sum()

    return vmap(grad(surrogate), in_dims=(None, 0, 0))(W, a, g)  # (N, d_out, d_in)


def adam_direction_reference(
    G: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, beta1: float, beta2: float, eps: float
) -> torch.Tensor:
    """LESS's Adam update direction m' / (sqrt(v') + eps), m' = b1 m + (1-b1) G, v' = b2 v + (1-b2) G^2
    (no bias correction; eps outside the sqrt as in the paper's formula), per sample: G [N, d_out, d_in]."""
    m = beta1 * exp_avg.to(G.dtype) + (1 - beta1) * G
    v = beta2 * exp_avg_sq.to(G.dtype) + (1 - beta2) * G * G
    return m / (v.sqrt() + eps)


def per_sample_linear_grads_projected_reference(
    activations: torch.Tensor,
    output_grads: torch.Tensor,
    proj_dim: int,
    seed: int,
    adam: tuple | None = None,
    mode: str = "dense",
    row_offset: int = 0,
    kron_dims: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Plain-PyTorch twin of `per_sample_linear_grads_projected`: torch.func per-sample gradients, every
    sign matrix materialized from `random_signs_reference`."""
    G = per_sample_linear_grads_reference(activations, output_grads)  # (N, d_out, d_in)
    N, d_out, d_in = G.shape
    if mode == "dense":
        if adam is not None:
            exp_avg, exp_avg_sq, beta1, beta2, eps = adam
            G = adam_direction_reference(G, exp_avg, exp_avg_sq, beta1, beta2, eps)
        return project_reference(G.reshape(N, d_out * d_in), proj_dim, seed, row_offset)  # (N, k)
    return project_kronecker_reference(G, proj_dim, seed, row_offset, kron_dims)


def project_kronecker_reference(
    G: torch.Tensor, proj_dim: int, seed: int, row_offset: int = 0, kron_dims: tuple[int, int] | None = None
) -> torch.Tensor:
    """LoGra's projection of per-sample gradients G [N, d_out, d_in]: vec(P_out^T G_n P_in) / sqrt(proj_dim)
    with both sign matrices materialized from `random_signs_reference`."""
    N, d_out, d_in = G.shape
    k_out, k_in = _resolve_kron_dims(proj_dim, kron_dims)
    p_in = random_signs_reference(seed, d_in, k_in, row_offset, 0, G.dtype).to(G.device)  # (d_in, k_in)
    p_out = random_signs_reference(seed, d_out, k_out, row_offset, KRONECKER_OUT_COL_OFFSET, G.dtype).to(
        G.device
    )  # (d_out, k_out)
    Y = torch.einsum("oa,noi,ib->nab", p_out, G, p_in)  # (N, k_out, k_in)
    return Y.reshape(N, proj_dim) / math.sqrt(proj_dim)  # (N, k)


# ---------------------------------------------------------------------------------------- public ops


def random_signs(
    seed: int,
    rows: int,
    cols: int,
    row_offset: int = 0,
    col_offset: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """R[row_offset : row_offset + rows, col_offset : col_offset + cols] of the implicit +-1 matrix keyed by
    `seed`, as a [rows, cols] tensor (float32 or float64). Entry (i, j) is a function of
    (seed, row_offset + i, col_offset + j) alone, so blocks of R stitch exactly. Rows lie in [0, 2^63),
    columns in [0, 2^32)."""
    _check_block(seed, rows, cols, row_offset, col_offset)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    device = torch.device(device)

    def kernel() -> torch.Tensor:
        out = torch.empty(rows, cols, dtype=dtype, device=device)  # (rows, cols)
        torch.ops.companion.random_signs_fill(out, seed, row_offset, col_offset)
        return out

    return dispatch(
        "random_signs_fill",
        device,
        kernel=kernel,
        reference=lambda: random_signs_reference(seed, rows, cols, row_offset, col_offset, dtype).to(device),
    )


def project(x: torch.Tensor, proj_dim: int, seed: int, row_offset: int = 0) -> torch.Tensor:
    """Random projection y = x @ R[row_offset : row_offset + D, :proj_dim] / sqrt(proj_dim).

    x: [N, D] (float32/64, bfloat16, float16; CPU or CUDA). Returns [N, proj_dim] in float32 (float64 for
    float64 x). R is never materialized whole: the kernel hashes it tile by tile. `row_offset` selects the
    rows of R, so projecting column blocks of x at their offsets and summing equals projecting x whole.
    """
    _check_tensor(x, "x", 2, "[N, D]")
    _check_proj_dim(proj_dim)
    _check_block(seed, x.shape[1], proj_dim, row_offset, 0)
    return dispatch(
        "project",
        x.device,
        kernel=lambda: torch.ops.companion.project(x, proj_dim, seed, row_offset),  # (N, k)
        reference=lambda: project_reference(x, proj_dim, seed, row_offset),
    )


def per_sample_linear_grads_projected(
    activations: torch.Tensor,
    output_grads: torch.Tensor,
    proj_dim: int,
    seed: int,
    adam: tuple | None = None,
    mode: str = "dense",
    row_offset: int = 0,
    kron_dims: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Projected per-sample weight gradients of a linear layer, [N, proj_dim] float32 (float64 if both
    inputs are float64).

    activations [N, T, d_in] (the layer inputs a_t), output_grads [N, T, d_out] (dL/d output g_t); the
    per-sample gradient is G_n = sum_t g_t a_t^T, shaped like the weight [d_out, d_in].

    mode="dense": vec(G_n) @ R[row_offset : row_offset + d_out d_in, :proj_dim] / sqrt(proj_dim), i.e.
    `project(G.flatten(1), proj_dim, seed, row_offset)`, with G formed block by block (never all N at
    once). adam=(exp_avg, exp_avg_sq, beta1, beta2, eps) (state shaped like the weight) projects LESS's Adam
    direction m' / (sqrt(v') + eps) with m' = b1 m + (1-b1) G_n, v' = b2 v + (1-b2) G_n^2 instead.

    mode="kronecker": LoGra's vec(P_out^T G_n P_in) / sqrt(proj_dim) with P_in = random_signs(seed, d_in,
    k_in, row_offset), P_out = random_signs(seed, d_out, k_out, row_offset, 2^31); (k_out, k_in) =
    kron_dims or `kronecker_dims(proj_dim)`. Not with adam (the Adam map does not factor).

    `row_offset` places this layer's rows in R: GradientFeatures gives each parameter the offset of its
    slice in the concatenated gradient, so the sum over layers is the projection of the whole gradient.
    """
    _check_pair(activations, output_grads)
    _check_proj_dim(proj_dim)
    if mode not in ("dense", "kronecker"):
        raise ValueError(f"mode must be 'dense' or 'kronecker', got {mode!r}")
    N, T, d_in = activations.shape
    d_out = output_grads.shape[2]
    _check_block(seed, d_out * d_in, proj_dim, row_offset, 0)
    if mode == "kronecker":
        if adam is not None:
            raise ValueError("adam preconditioning is not available with mode='kronecker' (use mode='dense')")
        k_out, k_in = _resolve_kron_dims(proj_dim, kron_dims)
        return dispatch(
            "grad_project_kronecker",
            activations.device,
            kernel=lambda: torch.ops.companion.grad_project_kronecker(
                activations, output_grads, k_out, k_in, seed, row_offset
            ),  # (N, k)
            reference=lambda: per_sample_linear_grads_projected_reference(
                activations, output_grads, proj_dim, seed, None, mode, row_offset, (k_out, k_in)
            ),
        )
    if kron_dims is not None:
        raise ValueError("kron_dims is only used with mode='kronecker'")
    if adam is not None:
        adam = _check_adam(adam, d_out, d_in, activations.device)
    exp_avg, exp_avg_sq, beta1, beta2, eps = adam if adam is not None else (None, None, 0.0, 0.0, 0.0)
    return dispatch(
        "grad_project_dense",
        activations.device,
        kernel=lambda: torch.ops.companion.grad_project_dense(
            activations, output_grads, proj_dim, seed, row_offset, exp_avg, exp_avg_sq, beta1, beta2, eps
        ),  # (N, k)
        reference=lambda: per_sample_linear_grads_projected_reference(
            activations, output_grads, proj_dim, seed, adam, mode, row_offset
        ),
    )


# ------------------------------------------------------------------------------------- fake kernels


def _register() -> None:
    """Fake kernels for the companion family-2 ops (needs the loaded library)."""

    @torch.library.register_fake("companion::random_signs_fill")
    def _random_signs_fillfake(out: torch.Tensor, seed: int, row_offset: int, col_offset: int) -> None:
        torch._check(out.dim() == 2, lambda: f"out must be 2-D, got {out.dim()}-D")

    @torch.library.register_fake("companion::project")
    def _project_fake(x: torch.Tensor, proj_dim: int, seed: int, row_offset: int) -> torch.Tensor:
        torch._check(x.dim() == 2, lambda: f"x must be 2-D [N, D], got {x.dim()}-D")
        return x.new_empty(x.shape[0], proj_dim, dtype=_acc_dtype(x))  # (N, k)

    @torch.library.register_fake("companion::grad_project_dense")
    def _dense_fake(
        activations: torch.Tensor,
        output_grads: torch.Tensor,
        proj_dim: int,
        seed: int,
        row_offset: int,
        exp_avg: torch.Tensor | None,
        exp_avg_sq: torch.Tensor | None,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> torch.Tensor:
        torch._check(activations.dim() == 3 and output_grads.dim() == 3, lambda: "inputs must be 3-D")
        dtype = _acc_dtype(activations, output_grads)
        return activations.new_empty(activations.shape[0], proj_dim, dtype=dtype)  # (N, k)

    @torch.library.register_fake("companion::grad_project_kronecker")
    def _kronecker_fake(
        activations: torch.Tensor,
        output_grads: torch.Tensor,
        k_out: int,
        k_in: int,
        seed: int,
        row_offset: int,
    ) -> torch.Tensor:
        torch._check(activations.dim() == 3 and output_grads.dim() == 3, lambda: "inputs must be 3-D")
        dtype = _acc_dtype(activations, output_grads)
        return activations.new_empty(activations.shape[0], k_out * k_in, dtype=dtype)  # (N, k)

    # Features, not training ops: nothing differentiates through them in LESS, TRAK or LoGra, so a backward
    # is not implemented; one through them errors instead of silently returning zeros.
    why = "a feature-extraction kernel: gradients through the projection are not implemented"
    register_not_differentiable("project", why, "common.ops.project_reference")
    register_not_differentiable(
        "grad_project_dense", why, "common.ops.per_sample_linear_grads_projected_reference"
    )
    register_not_differentiable(
        "grad_project_kronecker", why, "common.ops.per_sample_linear_grads_projected_reference"
    )


if extension_available():
    _register()
