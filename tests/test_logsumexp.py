"""companion::logsumexp kernels vs the pure-PyTorch reference (common.ops.logsumexp_reference).

Forward and backward over a grid of shapes (odd ones included), dtypes and memory layouts; rows of -inf,
+inf, NaN and large values; torch.library.opcheck on both ops; float64 gradcheck; input validation.
Errors are measured against an exact answer (numpy longdouble) and held to the flash-attention rule:
the kernel's error is at most twice PyTorch's error in the same precision, plus two roundings of the
exact answer to that dtype. The same grid runs on CUDA (marked `cuda`) where a GPU exists.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.ops import _extension, extension_available, logsumexp, logsumexp_reference
from common.testing import assert_close_report, max_abs_error, tolerance
from tests.conftest import DEVICES

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
SHAPES = [(3, 1), (47, 123), (1, 50257), (129, 4099), (5, 2048), (0, 7)]


pytestmark = pytest.mark.usefixtures("kernels")  # tests/conftest.py: fail, not skip, without common._C


def _logits(shape, dtype, device, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * scale).to(device=device, dtype=dtype)  # (N, V)


def _lse_exact(x: torch.Tensor) -> torch.Tensor:
    """log-sum-exp of x's values (as stored in its dtype) in numpy long double, returned as float64."""
    a = x.detach().to("cpu", torch.float64).numpy().astype(np.longdouble)  # (N, V)
    m = a.max(axis=-1, keepdims=True)
    return torch.from_numpy((m[:, 0] + np.log(np.exp(a - m).sum(axis=-1))).astype(np.float64))  # (N,)


def _grad_exact(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """d/dx sum_n w[n] lse(x)[n] = w[:, None] * softmax(x) in numpy long double, returned as float64."""
    a = x.detach().to("cpu", torch.float64).numpy().astype(np.longdouble)  # (N, V)
    wl = w.detach().to("cpu", torch.float64).numpy().astype(np.longdouble)  # (N,)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return torch.from_numpy((wl[:, None] * e / e.sum(axis=-1, keepdims=True)).astype(np.float64))  # (N, V)


# ----------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_reference(shape, dtype, device):
    x = _logits(shape, dtype, device)
    out = logsumexp(x)
    assert out.shape == (shape[0],) and out.dtype == dtype and out.device == x.device
    tol = tolerance(dtype)
    assert_close_report(out, logsumexp_reference(x), tol.atol, tol.rtol, f"lse{shape} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(47, 123), (129, 4099), (64, 50257)], ids=str)
def test_forward_error_at_most_twice_pytorch(shape, dtype, device):
    """Flash-attention rule, both errors against the exact log-sum-exp of the same stored inputs."""
    x = _logits(shape, dtype, device, seed=1)
    exact = _lse_exact(x)  # (N,) float64
    err_kernel = max_abs_error(logsumexp(x), exact)
    err_torch = max_abs_error(torch.logsumexp(x, dim=-1), exact)
    rounding = max_abs_error(exact.to(dtype), exact)  # one rounding of the exact answer to dtype
    assert err_kernel <= 2 * err_torch + 2 * rounding, (
        f"{dtype} {shape}: kernel error {err_kernel:.3g} > 2 x torch error {err_torch:.3g} "
        f"+ 2 x rounding {rounding:.3g}"
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_non_contiguous_inputs(dtype, device):
    base = _logits((300, 130), dtype, device, seed=2)
    views = {
        "transposed": base.t(),  # (130, 300), stride (1, 130): copied to unit inner stride
        "column_step": base[:, ::2],  # (300, 65), stride (130, 2)
        "row_step": base[::3],  # (100, 130), stride (390, 1): used in place
        "column_slice": base[:, 7:120],  # (300, 113), row stride 130
    }
    tol = tolerance(dtype)
    for name, x in views.items():
        assert not x.is_contiguous()
        assert_close_report(logsumexp(x), logsumexp_reference(x), tol.atol, tol.rtol, f"{name} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_special_rows(dtype, device):
    inf, nan = float("inf"), float("nan")
    V = 4099  # crosses the CPU kernel's 2048-value blocks
    rows = torch.randn(10, V, generator=torch.Generator().manual_seed(3))
    rows[0] = -inf  # no mass: -inf, never NaN
    rows[1] = -inf
    rows[1, 3000] = 2.5  # a single finite value among -inf: exactly that value
    rows[2, 17] = inf  # +inf
    rows[3, 4000] = nan  # NaN propagates
    rows[4] += 1e4  # large values: no overflow
    rows[5] -= 1e4
    rows[6, :2048] = -inf  # a whole block of -inf next to finite values
    rows[7, 1] = inf
    rows[7, 2] = -inf  # +inf and -inf in one row
    rows[8, 0] = nan
    rows[8, 1] = inf  # NaN wins over +inf
    rows[9] = 60.0  # ties everywhere: log(V) + 60
    x = rows.to(device=device, dtype=dtype)
    out = logsumexp(x)
    tol = tolerance(dtype)
    assert_close_report(out, logsumexp_reference(x), tol.atol, tol.rtol, f"special rows {dtype}")
    assert out[0].item() == -inf and out[1].item() == 2.5
    assert out[2].item() == inf and out[7].item() == inf
    assert torch.isnan(out[3]) and torch.isnan(out[8])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_single_column_is_identity(dtype):
    x = _logits((33, 1), dtype, "cpu")
    assert torch.equal(logsumexp(x), x[:, 0])  # exp then log of one value, rounded once to dtype


# ---------------------------------------------------------------------------------------- backward


def _grad(fn, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (fn(x) * w).sum().backward()
    return x.grad  # (N, V)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(3, 1), (47, 123), (129, 4099), (2, 50257)], ids=str)
def test_backward(shape, dtype, device):
    """Gradient vs the reference's autograd (float32/float64: table tolerance) and, in every dtype, vs
    the exact gradient under the flash-attention rule against PyTorch's own autograd in the same precision. In
    bfloat16/float16 the saved lse is rounded to the dtype, so exp(x - lse) carries up to ~one ulp of lse
    as relative error (measured vs exact, shapes below: up to 0.025 abs in bfloat16 and 0.0065 in float16;
    torch's own autograd: 0.025 and 0.0072)."""
    x = _logits(shape, dtype, device, seed=4)
    w = torch.randn(shape[0], generator=torch.Generator().manual_seed(5)).to(device=device, dtype=dtype)
    g_kernel = _grad(logsumexp, x, w)
    assert g_kernel.shape == x.shape and g_kernel.dtype == dtype
    g_exact = _grad_exact(x, w)
    g_torch = _grad(lambda t: torch.logsumexp(t, dim=-1), x, w)
    rounding = max_abs_error(g_exact.to(dtype), g_exact)
    err_kernel, err_torch = max_abs_error(g_kernel, g_exact), max_abs_error(g_torch, g_exact)
    assert err_kernel <= 2 * err_torch + 2 * rounding, (
        f"{dtype} {shape}: grad error {err_kernel:.3g} > 2 x torch {err_torch:.3g} "
        f"+ 2 x rounding {rounding:.3g}"
    )
    if dtype in (torch.float32, torch.float64):
        tol = tolerance(dtype)
        g_ref = _grad(logsumexp_reference, x, w)
        assert_close_report(g_kernel, g_ref, tol.atol, tol.rtol, f"grad {shape} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
def test_backward_of_empty_row_is_zero(device):
    x = torch.full((2, 5), float("-inf"), device=device)
    x[1, 2] = 0.0
    g = _grad(logsumexp, x, torch.ones(2, device=device))
    assert torch.equal(g[0], torch.zeros(5, device=device))  # no NaN from exp(-inf - -inf)
    assert torch.equal(g[1], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_with_strided_grad_and_input(device):
    """grad arrives expanded (stride 0) from .sum(); x is a transposed view."""
    x = _logits((64, 40), torch.float32, device, seed=6).t().requires_grad_(True)  # (40, 64)
    logsumexp(x).sum().backward()
    tol = tolerance(torch.float32)
    assert_close_report(x.grad, torch.softmax(x.detach(), dim=-1), tol.atol, tol.rtol, "grad of sum")


@pytest.mark.parametrize("shape", [(5, 9), (3, 1), (2, 2051)], ids=str)
def test_gradcheck_float64(shape):
    x = _logits(shape, torch.float64, "cpu", seed=7).requires_grad_(True)
    assert torch.autograd.gradcheck(logsumexp, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradcheck_float64_cuda():
    x = _logits((6, 300), torch.float64, "cuda", seed=8).requires_grad_(True)
    assert torch.autograd.gradcheck(logsumexp, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


# ---------------------------------------------------------------------------------------- opcheck


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(3, 1), (7, 2100)], ids=str)
def test_opcheck(shape, dtype, device):
    x = _logits(shape, dtype, device, seed=9)
    torch.library.opcheck(torch.ops.companion.logsumexp.default, (x,))
    torch.library.opcheck(torch.ops.companion.logsumexp.default, (x.clone().requires_grad_(True),))
    lse = torch.ops.companion.logsumexp(x)
    grad = torch.randn(shape[0], generator=torch.Generator().manual_seed(10)).to(device=device, dtype=dtype)
    torch.library.opcheck(torch.ops.companion.logsumexp_backward.default, (grad, x, lse))


# ----------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (torch.randn(7), ValueError, r"x must be 2-D \[N, V\].*\(7,\)"),
        (torch.randn(2, 3, 4), ValueError, r"x must be 2-D"),
        (torch.zeros(4, 5, dtype=torch.int64), TypeError, r"x must be float32, float64, bfloat16 or.*int64"),
        (torch.zeros(4, 5, dtype=torch.complex64), TypeError, r"x must be float32.*complex64"),
        (torch.randn(4, 0), ValueError, r"x must have at least one column \(V > 0\).*\(4, 0\)"),
        ([[1.0, 2.0]], TypeError, r"x must be a torch.Tensor.*list"),
        (torch.randn(2, 3, device="meta"), ValueError, r"x must be on a CPU or CUDA device.*meta"),
    ],
    ids=["1-D", "3-D", "int64", "complex", "zero-columns", "list", "meta"],
)
def test_bad_inputs(bad, error, message):
    with pytest.raises(error, match=message):
        logsumexp(bad)


def test_raw_op_checks_inputs():
    """torch.ops.companion.* bypass the Python validation; the kernels check for themselves."""
    with pytest.raises(RuntimeError, match="x must be 2-D"):
        torch.ops.companion.logsumexp(torch.randn(5))
    with pytest.raises(RuntimeError, match="at least one column"):
        torch.ops.companion.logsumexp(torch.randn(5, 0))
    x = torch.randn(4, 6)
    with pytest.raises(RuntimeError, match=r"lse must have shape \[4\]"):
        torch.ops.companion.logsumexp_backward(torch.ones(4), x, torch.ones(3))
    with pytest.raises(RuntimeError, match="must share a dtype"):
        torch.ops.companion.logsumexp_backward(torch.ones(4, dtype=torch.float64), x, torch.ones(4))


# ------------------------------------------------------------------------------- extension switch


def test_reference_ops_env_is_explicit(monkeypatch):
    x = _logits((4, 9), torch.float32, "cpu")
    monkeypatch.setenv(_extension.REFERENCE_ENV, "1")
    assert torch.equal(logsumexp(x), logsumexp_reference(x))
    monkeypatch.setenv(_extension.REFERENCE_ENV, "yes")
    with pytest.raises(ValueError, match="COMPANION_REFERENCE_OPS must be 0 or 1"):
        logsumexp(x)


def _companion_calls(gm: torch.fx.GraphModule) -> list[str]:
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function" and "companion" in str(n.target)]


def test_compile_fullgraph_dispatches_without_graph_break(monkeypatch):
    """torch.compile(fullgraph=True) traces the public op's kernel-or-reference choice without a graph
    break: the graph calls companion::logsumexp (its fake kernel while tracing) and gives the kernel's bits;
    with COMPANION_REFERENCE_OPS=1 when it is traced, the graph is the reference's."""
    x = _logits((6, 37), torch.float32, "cpu", seed=11)
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    kernel = torch.ops.companion.logsumexp(x)
    torch._dynamo.reset()  # the choice is a constant of the traced graph: trace afresh for each setting
    try:
        assert torch.equal(torch.compile(logsumexp, fullgraph=True)(x), kernel)  # inductor
        torch._dynamo.reset()
        assert torch.equal(torch.compile(logsumexp, fullgraph=True, backend=recording_backend)(x), kernel)
        assert _companion_calls(graphs[-1]) == ["companion.logsumexp"]
        monkeypatch.setenv(_extension.REFERENCE_ENV, "1")
        torch._dynamo.reset()
        got = torch.compile(logsumexp, fullgraph=True, backend=recording_backend)(x)
        assert torch.equal(got, logsumexp_reference(x))
        assert len(graphs) == 2 and _companion_calls(graphs[-1]) == []
    finally:
        torch._dynamo.reset()


def test_missing_extension_raises_with_build_hint(monkeypatch):
    monkeypatch.setattr(_extension, "_load", lambda: "ImportError: No module named 'common._C'")
    assert not extension_available()
    with pytest.raises(RuntimeError, match=r"make build.*pip install --no-build-isolation -e \."):
        logsumexp(torch.randn(2, 3))
    monkeypatch.setenv(_extension.REFERENCE_ENV, "1")  # the explicit opt-in still works without kernels
    assert logsumexp(torch.zeros(2, 3)).allclose(torch.full((2,), float(np.log(3.0))))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a build without CUDA kernels")
def test_cuda_kernel_missing_is_explained(monkeypatch):
    monkeypatch.setattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", lambda op, key: key != "CUDA")
    with pytest.raises(RuntimeError, match="has no CUDA kernel"):
        _extension.require_kernel("logsumexp", torch.device("cuda"))
