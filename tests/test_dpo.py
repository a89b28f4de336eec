"""Fused linear log-probs and the DPO losses (common.ops.dpo) vs their plain-PyTorch references.

Outputs and every gradient over a grid: odd shapes (B=3, T=47, H=31, V=123 as in Liger-Kernel's tests),
a vocabulary that crosses the kernels' 1024-entry chunks, T=1, sequences whose labels are all ignored,
float32 and float64, every loss type, label smoothing, average_log_prob, reference_free. Extreme logits
(|z| up to 1e4) are held to the flash-attention rule against a float64 answer. opcheck on every op,
float64 gradcheck on every differentiable op, a hypothesis property test, bad inputs, torch.compile
(fullgraph), and a 50-step DPO run of a small GPT with the fused op and with the reference. The same grid
runs on CUDA (marked `cuda`) where a GPU exists.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.models.gpt import GPT, GPTConfig
from common.ops import (
    _extension,
    dpo_loss,
    dpo_loss_reference,
    fused_linear_dpo_loss,
    fused_linear_dpo_loss_reference,
    sequence_logps,
    sequence_logps_reference,
    token_logps,
    token_logps_reference,
)
from common.testing import assert_close_report, max_abs_error, tolerance
from tests.conftest import DEVICES

IGNORE = -100
DTYPES = [torch.float32, torch.float64]
# (loss_type, label_smoothing)
LOSSES = [("sigmoid", 0.0), ("sigmoid", 0.25), ("robust", 0.2), ("hinge", 0.0), ("ipo", 0.0)]


pytestmark = pytest.mark.usefixtures("kernels")  # tests/conftest.py: fail, not skip, without common._C


def _labels(B, T, V, gen, prompt=0, all_ignored=(), device="cpu"):
    """Labels [B, T] in [0, V) with the first `prompt` positions and the rows in `all_ignored` ignored."""
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[:, :prompt] = IGNORE
    for b in all_ignored:
        labels[b] = IGNORE
    return labels.to(device)


def _pair_inputs(B, T, H, V, dtype, device, seed=0, scale=1.0, all_ignored=(1,)):
    """Hidden states, weight, labels and reference log-probs of B preference pairs (rejected T + 2 long)."""
    gen = torch.Generator().manual_seed(seed)
    hc = torch.randn(B, T, H, generator=gen) * scale  # (B, T, H)
    hr = torch.randn(B, T + 2, H, generator=gen) * scale  # (B, T + 2, H)
    w = torch.randn(V, H, generator=gen) / H**0.5  # (V, H)
    lc = _labels(B, T, V, gen, prompt=min(3, T - 1), all_ignored=[b for b in all_ignored if b < B])
    lr = _labels(B, T + 2, V, gen, prompt=min(2, T - 1))
    rc, rr = -torch.rand(B, generator=gen) * T * 3, -torch.rand(B, generator=gen) * T * 3  # (B,), (B,)
    cast = {"device": device, "dtype": dtype}
    return (
        hc.to(**cast),
        hr.to(**cast),
        w.to(**cast),
        lc.to(device),
        lr.to(device),
        rc.to(**cast),
        rr.to(**cast),
    )


def _run(fn, hc, hr, w, lc, lr, rc, rr, **kw):
    """(loss, chosen_rewards, rejected_rewards, grad_hc, grad_hr, grad_w, grad_rc, grad_rr) of fn."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (hc, hr, w, rc, rr)]
    loss, cr, rj = fn(leaves[0], leaves[1], leaves[2], lc, lr, leaves[3], leaves[4], **kw)
    loss.backward()
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]
    return [loss.detach(), cr, rj, *grads]


NAMES = ["loss", "chosen_rewards", "rejected_rewards", "grad_hc", "grad_hr", "grad_w", "grad_rc", "grad_rr"]


# ------------------------------------------------------------------------------- fused DPO grid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("loss_type", "label_smoothing"), LOSSES)
@pytest.mark.parametrize("average_log_prob", [False, True])
@pytest.mark.parametrize("shape", [(3, 47, 31, 123), (2, 1, 8, 5), (2, 6, 16, 2100)], ids=str)
def test_fused_matches_reference(shape, average_log_prob, loss_type, label_smoothing, dtype, device):
    B, T, H, V = shape
    inputs = _pair_inputs(B, T, H, V, dtype, device, seed=B * T + V)
    kw = dict(
        beta=0.1, loss_type=loss_type, label_smoothing=label_smoothing, average_log_prob=average_log_prob
    )
    got = _run(fused_linear_dpo_loss, *inputs, **kw)
    want = _run(fused_linear_dpo_loss_reference, *inputs, **kw)
    tol = tolerance(dtype)
    for name, g, e in zip(NAMES, got, want, strict=True):
        assert torch.isfinite(g).all(), f"{name} is not finite"
        assert_close_report(g, e, tol.atol, tol.rtol, f"{name} {shape} {loss_type} {dtype}")
    if T > 1 or B > 1:  # the all-ignored chosen sequence 1 gets no gradient
        assert torch.equal(got[3][1], torch.zeros_like(got[3][1]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_reference_free_and_ignore_index(dtype, device):
    B, T, H, V = 3, 11, 12, 70
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(B, T, H, V, dtype, device, seed=5)
    lc[lc == IGNORE], lr[lr == IGNORE] = 0, 0  # labels 0 are now the ignored ones
    tol = tolerance(dtype)
    for refs in [(rc, rr), (None, None)]:
        kw = dict(beta=0.5, reference_free=True, ignore_index=0)

        def ours(*a, refs=refs, **k):
            return fused_linear_dpo_loss(*a[:5], *refs, **k)

        def reference(*a, refs=refs, **k):
            return fused_linear_dpo_loss_reference(*a[:5], *refs, **k)

        got = _run(ours, hc, hr, w, lc, lr, rc, rr, **kw)
        want = _run(reference, hc, hr, w, lc, lr, rc, rr, **kw)
        for name, g, e in zip(NAMES, got, want, strict=True):
            assert_close_report(g, e, tol.atol, tol.rtol, f"reference_free {name} {dtype}")
        assert torch.equal(got[6], torch.zeros_like(got[6]))  # no gradient to the ignored reference


@pytest.mark.parametrize("device", DEVICES)
def test_fused_all_labels_ignored(device):
    """Every label ignored: sequence log-probs 0, a finite loss, zero gradients, no NaN."""
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 5, 8, 33, torch.float32, device, seed=6)
    lc.fill_(IGNORE)
    lr.fill_(IGNORE)
    for avg in (False, True):
        got = _run(fused_linear_dpo_loss, hc, hr, w, lc, lr, rc, rr, average_log_prob=avg)
        want = _run(fused_linear_dpo_loss_reference, hc, hr, w, lc, lr, rc, rr, average_log_prob=avg)
        for name, g, e in zip(NAMES, got, want, strict=True):
            assert torch.isfinite(g).all(), name
            assert_close_report(g, e, 1e-6, 1e-6, f"all ignored {name}")
        assert not got[3].any() and not got[4].any() and not got[5].any()


def test_fused_no_grad_skips_the_gradient():
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 4, 8, 20, torch.float64, "cpu", seed=7)
    with torch.no_grad():
        loss, cr, rj = fused_linear_dpo_loss(hc, hr, w, lc, lr, rc, rr)
    out = torch.ops.companion.fused_linear_dpo(
        hc, hr, w, lc, lr, rc, rr, 0.1, "sigmoid", 0.0, False, False, IGNORE, False
    )
    assert out[3].numel() == out[4].numel() == out[5].numel() == 0
    ref = fused_linear_dpo_loss_reference(hc, hr, w, lc, lr, rc, rr)
    assert_close_report(loss, ref[0], 1e-12, 1e-12, "no_grad loss")


# ----------------------------------------------------------------------- token and sequence log-probs


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(47, 31, 123), (5, 7, 1), (3, 4, 2049), (1100, 9, 40), (0, 4, 6)], ids=str)
def test_token_logps(shape, dtype, device):
    """Rows beyond the 1024-row chunk, V = 1 (log-prob 0), V crossing the vocabulary chunks, N = 0."""
    N, H, V = shape
    gen = torch.Generator().manual_seed(N + V)
    h = torch.randn(N, H, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    w = torch.randn(V, H, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    t = torch.randint(0, V, (N,), generator=gen)
    t[::4] = IGNORE
    t = t.to(device)
    gout = torch.randn(N, generator=gen, dtype=dtype).to(device)
    got, want = token_logps(h, w, t), token_logps_reference(h, w, t)
    tol = tolerance(dtype)
    assert_close_report(got, want, tol.atol, tol.rtol, f"logps {shape} {dtype}")
    g_got = torch.autograd.grad((got * gout).sum(), (h, w), allow_unused=True)
    g_want = torch.autograd.grad((want * gout).sum(), (h, w), allow_unused=True)
    for name, a, b in zip(("grad_hidden", "grad_weight"), g_got, g_want, strict=True):
        b = torch.zeros_like(a) if b is None else b
        assert_close_report(a, b, tol.atol, tol.rtol, f"{name} {shape} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_token_lse_output_and_gradient(dtype, device):
    """The op's second output is the row log-sum-exp, differentiable (d lse / dz = softmax), also where
    the target is ignored."""
    gen = torch.Generator().manual_seed(11)
    h = torch.randn(13, 6, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    w = torch.randn(1500, 6, generator=gen, dtype=dtype).to(device).requires_grad_(True)
    t = torch.randint(0, 1500, (13,), generator=gen).to(device)
    t[3] = IGNORE
    g1, g2 = torch.randn(2, 13, generator=gen, dtype=dtype).to(device)
    logps, lse = torch.ops.companion.token_logps(h, w, t, IGNORE)
    lse_ref = torch.logsumexp(h @ w.T, dim=-1)
    tol = tolerance(dtype)
    assert_close_report(lse, lse_ref, tol.atol, tol.rtol, "lse")
    got = torch.autograd.grad((logps * g1 + lse * g2).sum(), (h, w))
    want = torch.autograd.grad((token_logps_reference(h, w, t) * g1 + lse_ref * g2).sum(), (h, w))
    for name, a, b in zip(("grad_hidden", "grad_weight"), got, want, strict=True):
        assert_close_report(a, b, tol.atol, tol.rtol, f"{name} {dtype}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("average", [False, True])
def test_sequence_logps(average, device):
    B, T, H, V = 3, 47, 31, 123
    gen = torch.Generator().manual_seed(12)
    h = torch.randn(B, T, H, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    w = torch.randn(V, H, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    labels = _labels(B, T, V, gen, prompt=10, all_ignored=[2], device=device)
    got, want = (
        sequence_logps(h, w, labels, average=average),
        sequence_logps_reference(h, w, labels, average=average),
    )
    assert got[2].item() == 0.0
    tol = tolerance(torch.float64)
    assert_close_report(got, want, tol.atol, tol.rtol, "sequence_logps")
    for a, b in zip(
        torch.autograd.grad(got.sum(), (h, w)), torch.autograd.grad(want.sum(), (h, w)), strict=True
    ):
        assert_close_report(a, b, tol.atol, tol.rtol, "sequence_logps grad")


# ------------------------------------------------------------------------------------------ dpo_loss


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("loss_type", "label_smoothing"), LOSSES)
@pytest.mark.parametrize("reference_free", [False, True])
def test_dpo_loss(reference_free, loss_type, label_smoothing, dtype, device):
    gen = torch.Generator().manual_seed(13)
    # log-ratios from -60 to 60: sigmoid saturates at both ends, hinge crosses its kink region
    logps = [(-torch.rand(33, generator=gen, dtype=dtype) * 100).to(device) for _ in range(4)]
    logps[0][:3] = torch.tensor([-1e3, -1.0, -5e2], dtype=dtype)  # very large |h|
    kw = dict(beta=0.2, loss_type=loss_type, label_smoothing=label_smoothing, reference_free=reference_free)

    def run(fn):
        leaves = [t.clone().requires_grad_(True) for t in logps]
        losses, cr, rj = fn(*leaves, **kw)
        grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        return [
            losses.detach(),
            cr,
            rj,
            *(torch.zeros_like(t) if g is None else g for g, t in zip(grads, logps, strict=True)),
        ]

    got, want = run(dpo_loss), run(dpo_loss_reference)
    tol = tolerance(dtype)
    for name, g, e in zip(["losses", "cr", "rr", "g_pc", "g_pr", "g_rc", "g_rr"], got, want, strict=True):
        assert torch.isfinite(g).all(), name
        assert_close_report(g, e, tol.atol, tol.rtol, f"{name} {loss_type} {dtype}")
    assert not got[1].requires_grad and not got[2].requires_grad  # rewards are detached, as TRL


def test_dpo_loss_reference_free_without_reference():
    pc, pr = torch.tensor([-3.0, -8.0]), torch.tensor([-4.0, -2.0])
    losses, cr, _ = dpo_loss(pc, pr, None, None, beta=1.0, reference_free=True)
    assert_close_report(losses, -torch.nn.functional.logsigmoid(pc - pr), 1e-6, 1e-6, "reference-free")
    assert torch.equal(cr, pc)


# ----------------------------------------------------------------------------------- extreme logits


@pytest.mark.parametrize("device", DEVICES)
def test_extreme_logits(device):
    """|logits| up to 1e4 in float32: finite, and the error vs float64 at most twice the reference's
    float32 error plus two roundings (flash-attention rule)."""
    B, T, H, V = 2, 9, 4, 300
    gen = torch.Generator().manual_seed(14)
    hc, hr = torch.randn(B, T, H, generator=gen) * 50, torch.randn(B, T, H, generator=gen) * 50
    w = torch.randn(V, H, generator=gen) * 50  # logits ~ N(0, 1e4)
    lc, lr = _labels(B, T, V, gen, prompt=2), _labels(B, T, V, gen, prompt=2)
    rc, rr = torch.full((B,), -2e4), torch.full((B,), -3e4)
    args64 = [t.double() if t.is_floating_point() else t for t in (hc, hr, w, lc, lr, rc, rr)]
    logits = hc.reshape(-1, H) @ w.T
    assert logits.abs().max() > 5e3
    for kw in (dict(), dict(average_log_prob=True, beta=1e-3), dict(loss_type="ipo", beta=10.0)):
        dev = [t.to(device) for t in (hc, hr, w, lc, lr, rc, rr)]
        got = _run(fused_linear_dpo_loss, *dev, **kw)
        ref32 = _run(fused_linear_dpo_loss_reference, hc, hr, w, lc, lr, rc, rr, **kw)
        exact = _run(fused_linear_dpo_loss_reference, *args64, **kw)
        for name, g, r, e in zip(NAMES, got, ref32, exact, strict=True):
            assert torch.isfinite(g).all(), f"{name} {kw}"
            err, err_ref = max_abs_error(g, e), max_abs_error(r, e)
            rounding = max_abs_error(e.float(), e)
            assert err <= 2 * err_ref + 2 * rounding, f"{name} {kw}: {err:.3g} > 2 x {err_ref:.3g}"
    h, t = hc.reshape(-1, H), lc.reshape(-1)  # (N, H), (N,)
    lp = token_logps(h.to(device), w.to(device), t.to(device))
    exact = token_logps_reference(h.double(), w.double(), t)
    err, err_ref = max_abs_error(lp, exact), max_abs_error(token_logps_reference(h, w, t), exact)
    rounding = max_abs_error(exact.float(), exact)
    assert torch.isfinite(lp).all() and err <= 2 * err_ref + 2 * rounding, (err, err_ref, rounding)


# ------------------------------------------------------------------------------ opcheck, gradcheck


def _op_cases(dtype, device):
    gen = torch.Generator().manual_seed(15)
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 5, 6, 1030, dtype, device, seed=15)
    h, t = hc.reshape(-1, 6), lc.reshape(-1)
    logps, lse = torch.ops.companion.token_logps(h, w, t, IGNORE)
    g1, g2 = torch.randn(2, h.shape[0], generator=gen, dtype=dtype).to(device)
    pc, pr = logps[:2] - 20, logps[2:4] - 30
    ops = torch.ops.companion
    req = [x.clone().requires_grad_(True) for x in (hc, hr, w, rc, rr)]
    cases = [
        (
            ops.token_logps.default,
            (h.clone().requires_grad_(True), w.clone().requires_grad_(True), t, IGNORE),
        ),
        (ops.token_logps_backward.default, (g1, g2, h, w, t, lse, IGNORE)),
        (ops.dpo_loss.default, (pc.clone().requires_grad_(True), pr, rc, rr, 0.1, "robust", 0.1, False)),
        (ops.dpo_loss_backward.default, (g1[:2], pc, pr, rc, rr, 0.1, "sigmoid", 0.0, False)),
    ]
    args = (*req[:3], lc, lr, *req[3:], 0.1, "sigmoid", 0.1, True, False, IGNORE, True)
    cases.append((ops.fused_linear_dpo.default, args))
    # without compute_grad only the reference log-probs may require grad
    args = (hc, hr, w, lc, lr, *req[3:], 0.1, "ipo", 0.0, False, False, IGNORE, False)
    cases.append((ops.fused_linear_dpo.default, args))
    return cases


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_opcheck(dtype, device):
    """All of opcheck's tests in float64; schema and fake-tensor tests in float32 (the autograd and AOT
    tests exercise the same Python registrations and cost ~3 s per dtype on 2 cores)."""
    utils = None if dtype == torch.float64 else ("test_schema", "test_faketensor")
    for op, args in _op_cases(dtype, device):
        if utils is None:
            torch.library.opcheck(op, args)
        else:
            torch.library.opcheck(op, args, test_utils=utils)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    """Every differentiable op (the backward ops are not twice differentiable: no double backward). V = 1030
    crosses a vocabulary chunk with a random-projection (fast_mode) check; the loss variants use V = 13 and
    the full Jacobian."""
    gen = torch.Generator().manual_seed(16)
    check = dict(eps=1e-6, atol=1e-7, rtol=1e-5)
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 4, 3, 1030, torch.float64, device, seed=16)

    def token_both(h, w_):
        return torch.ops.companion.token_logps(h, w_, lc.reshape(-1), IGNORE)

    leaves = (hc.reshape(-1, 3).clone().requires_grad_(True), (w * 3).requires_grad_(True))
    assert torch.autograd.gradcheck(token_both, leaves, fast_mode=True, **check)
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 4, 3, 13, torch.float64, device, seed=17)
    w = w * 3
    assert torch.autograd.gradcheck(
        lambda h_, w_: sequence_logps(h_, w_, lc, average=True),
        (hc.clone().requires_grad_(True), w.clone().requires_grad_(True)),
        **check,
    )
    logps = [(-torch.rand(3, generator=gen, dtype=torch.float64) * 30).to(device) for _ in range(4)]
    logps = [t.requires_grad_(True) for t in logps]
    for loss_type, ls in [("sigmoid", 0.3), ("robust", 0.2), ("ipo", 0.0), ("hinge", 0.0)]:
        for rf in (False, True):

            def op(pc, pr, rc_, rr_, loss_type=loss_type, ls=ls, rf=rf):
                return torch.ops.companion.dpo_loss(pc, pr, rc_, rr_, 2.0, loss_type, ls, rf)

            assert torch.autograd.gradcheck(op, tuple(logps), **check), (loss_type, rf)
    leaves = [t.clone().requires_grad_(True) for t in (hc, hr, w, rc, rr)]
    variants = [("sigmoid", 0.1, False), ("robust", 0.2, True), ("hinge", 0.0, False), ("ipo", 0.0, False)]
    for loss_type, ls, avg in variants:

        def fused(a, b, c, d, e, loss_type=loss_type, ls=ls, avg=avg):
            return fused_linear_dpo_loss(a, b, c, lc, lr, d, e, 0.5, loss_type, ls, avg)[0]

        assert torch.autograd.gradcheck(fused, tuple(leaves), **check), loss_type


# ------------------------------------------------------------------------------------ property test


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 9),
    H=st.integers(1, 12),
    V=st.integers(1, 1100),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    p_ignore=st.floats(0.0, 1.0),
    loss=st.sampled_from(LOSSES),
    average=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_fused_matches_reference(B, T, H, V, scale, p_ignore, loss, average, seed):
    gen = torch.Generator().manual_seed(seed)
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(
        B, T, H, V, torch.float64, "cpu", seed=seed, scale=scale, all_ignored=()
    )
    for labels in (lc, lr):
        labels[torch.rand(labels.shape, generator=gen) < p_ignore] = IGNORE
    kw = dict(beta=0.3, loss_type=loss[0], label_smoothing=loss[1], average_log_prob=average)
    got = _run(fused_linear_dpo_loss, hc, hr, w, lc, lr, rc, rr, **kw)
    want = _run(fused_linear_dpo_loss_reference, hc, hr, w, lc, lr, rc, rr, **kw)
    for name, g, e in zip(NAMES, got, want, strict=True):
        assert_close_report(g, e, 1e-7, 1e-7, name)
    # beyond the reference: token log-probs are never positive
    lp = token_logps(hc.reshape(-1, H), w, lc.reshape(-1))
    assert (lp <= 1e-12).all()


# --------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs():
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 4, 8, 20, torch.float32, "cpu")
    f = fused_linear_dpo_loss
    cases = [
        (lambda: f(hc, hr, w[:, :5], lc, lr, rc, rr), ValueError, r"weight must be \[V, H\] with H = 8"),
        (
            lambda: f(hc, hr[..., :7], w, lc, lr, rc, rr),
            ValueError,
            r"hidden_rejected must be \[B=2, T, H=8\]",
        ),
        (lambda: f(hc, hr, w, lc.float(), lr, rc, rr), TypeError, r"labels_chosen must be int64.*float32"),
        (lambda: f(hc, hr, w, lc.int(), lr, rc, rr), TypeError, r"labels_chosen must be int64.*int32"),
        (lambda: f(hc, hr, w, lc[:, :3], lr, rc, rr), ValueError, r"labels_chosen must have shape"),
        (
            lambda: f(hc, hr, w, lc, lr + 20, rc, rr),
            ValueError,
            r"labels_rejected holds .*outside \[0, V=20\)",
        ),
        (
            lambda: f(hc, hr, w, lc - 200, lr, rc, rr),
            ValueError,
            r"labels_chosen holds -\d+ at flat index 0.*ignore_index",
        ),
        (
            lambda: f(hc, hr, w, lc, lr, rc, rr, loss_type="kto"),
            ValueError,
            r"loss_type must be one of sigmoid",
        ),
        (lambda: f(hc, hr, w, lc, lr, rc, rr, beta=0.0), ValueError, r"beta must be a finite number > 0"),
        (lambda: f(hc, hr, w, lc, lr, rc, rr, beta=-1.0), ValueError, r"beta must be a finite number > 0"),
        (
            lambda: f(hc, hr, w, lc, lr, rc, rr, loss_type="robust", label_smoothing=0.5),
            ValueError,
            r"\[0, 0.5\)",
        ),
        (lambda: f(hc, hr, w, lc, lr, rc, rr, loss_type="ipo", label_smoothing=0.1), ValueError, r"only"),
        (lambda: f(hc, hr, w.double(), lc, lr, rc, rr), TypeError, r"weight has dtype torch.float64"),
        (lambda: f(hc.half(), hr, w, lc, lr, rc, rr), TypeError, r"hidden_chosen must be float32 or float64"),
        (lambda: f(hc, hr, w, lc, lr, None, rr), ValueError, r"ref_chosen_logps is None"),
        (lambda: f(hc, hr, w, lc, lr, rc[:1], rr), ValueError, r"ref_chosen_logps must have shape \(2,\)"),
        (lambda: f(hc[0], hr, w, lc, lr, rc, rr), ValueError, r"hidden_chosen must be 3-D"),
        (lambda: f(hc, hr, w.to("meta"), lc, lr, rc, rr), ValueError, r"weight is on meta but hidden_chosen"),
        (lambda: f(hc, hr, [[1.0]], lc, lr, rc, rr), TypeError, r"weight must be a torch.Tensor"),
        (lambda: f(hc, hr, w[:0], lc, lr, rc, rr), ValueError, r"V > 0"),
        (lambda: token_logps(hc[0], w[:, :3], lc[0]), ValueError, r"weight must be \[V, H\] with H = 8"),
        (lambda: token_logps(hc[0], w, lc[0] + 100), ValueError, r"targets holds 1\d\d.*outside \[0, V=20\)"),
        (lambda: sequence_logps(hc, w, lc[0]), ValueError, r"labels must have shape \[B, T\]"),
        (lambda: dpo_loss(rc, rr, rc, rr, loss_type="nope"), ValueError, r"loss_type must be one of"),
        (lambda: dpo_loss(rc, rr[:1], rc, rr), ValueError, r"policy_rejected_logps must have shape"),
        (lambda: dpo_loss(rc, rr, rc, rr, beta=float("nan")), ValueError, r"beta must be a finite"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_raw_ops_check_inputs():
    """torch.ops.companion.* bypass the Python validation; the kernels check for themselves."""
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 4, 8, 20, torch.float32, "cpu")
    ops = torch.ops.companion
    with pytest.raises(ValueError, match=r"targets holds 20 at flat index 0"):
        ops.token_logps(hc[0], w, torch.full((4,), 20), IGNORE)
    with pytest.raises(ValueError, match=r"weight must be \[V, H\] with H = 8"):
        ops.token_logps(hc[0], w[:, :2], lc[0], IGNORE)
    with pytest.raises(TypeError, match=r"targets must be int64"):
        ops.token_logps(hc[0], w, lc[0].float(), IGNORE)
    with pytest.raises(ValueError, match=r"loss_type must be one of"):
        ops.dpo_loss(rc, rr, rc, rr, 0.1, "orpo", 0.0, False)
    with pytest.raises(ValueError, match=r"beta must be > 0"):
        ops.fused_linear_dpo(hc, hr, w, lc, lr, rc, rr, -0.1, "sigmoid", 0.0, False, False, IGNORE, True)
    with pytest.raises(ValueError, match=r"labels_rejected holds 99"):
        ops.fused_linear_dpo(
            hc, hr, w, lc, lr.fill_(99), rc, rr, 0.1, "sigmoid", 0.0, False, False, IGNORE, True
        )


# ------------------------------------------------------------------------------------ torch.compile


def _compile_target(hc, hr, w, lc, lr, rc, rr):
    loss, cr, rj = fused_linear_dpo_loss(hc, hr, w, lc, lr, rc, rr, loss_type="robust", label_smoothing=0.1)
    pc, pr = sequence_logps(hc, w, lc), sequence_logps(hr, w, lr, average=True)
    losses, _, _ = dpo_loss(pc, pr, rc, rr, loss_type="sigmoid")
    return loss + losses.mean() + (cr - rj).mean()


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_torch_compile_fullgraph(backend):
    torch._dynamo.reset()
    hc, hr, w, lc, lr, rc, rr = _pair_inputs(2, 5, 8, 30, torch.float32, "cpu", seed=17)
    leaves = [t.requires_grad_(True) for t in (hc, hr, w)]
    compiled = torch.compile(_compile_target, fullgraph=True, backend=backend)
    out = compiled(*leaves, lc, lr, rc, rr)
    grads = torch.autograd.grad(out, leaves)
    want = _compile_target(*leaves, lc, lr, rc, rr)
    want_grads = torch.autograd.grad(want, leaves)
    assert_close_report(out, want, 1e-5, 1e-5, "compiled loss")
    for a, b in zip(grads, want_grads, strict=True):
        assert_close_report(a, b, 1e-5, 1e-5, "compiled grad")


# ------------------------------------------------------------------------------------- convergence


def _dpo_curve(fused: bool, steps: int = 50) -> list[float]:
    """Train a small GPT for `steps` DPO steps on fixed random preference pairs; return the loss curve."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=48, block_size=16, n_layer=2, n_head=2, n_embd=32)
    policy = GPT(cfg)
    reference = copy.deepcopy(policy).eval()
    gen = torch.Generator().manual_seed(1)
    B, P, R = 8, 6, 10  # pairs, prompt length, response length
    prompt = torch.randint(0, cfg.vocab_size, (B, P), generator=gen)
    chosen = torch.cat(
        [prompt, torch.randint(0, cfg.vocab_size // 2, (B, R), generator=gen)], 1
    )  # (B, P + R)
    rejected = torch.cat(
        [prompt, torch.randint(cfg.vocab_size // 2, cfg.vocab_size, (B, R), generator=gen)], 1
    )

    def split(seq):  # inputs and labels aligned with the positions that predict them; prompt ignored
        labels = seq[:, 1:].clone()
        labels[:, : P - 1] = IGNORE
        return seq[:, :-1], labels

    (xc, yc), (xr, yr) = split(chosen), split(rejected)
    with torch.no_grad():
        ref_c = sequence_logps_reference(reference.forward_hidden(xc), reference.unembedding, yc)
        ref_r = sequence_logps_reference(reference.forward_hidden(xr), reference.unembedding, yr)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    loss_fn = fused_linear_dpo_loss if fused else fused_linear_dpo_loss_reference
    curve = []
    for _ in range(steps):
        loss, _, _ = loss_fn(
            policy.forward_hidden(xc),
            policy.forward_hidden(xr),
            policy.unembedding,
            yc,
            yr,
            ref_c,
            ref_r,
            beta=0.5,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return curve


def test_small_gpt_dpo_convergence():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 0.1M-parameter model: one thread is fastest, and immune to a busy CPU
    try:
        fused, reference = _dpo_curve(True), _dpo_curve(False)
    finally:
        torch.set_num_threads(threads)
    # Same loss curve: float32 rounding differences compound through 50 AdamW steps; measured max
    # difference 0 .. 1e-6 on this curve (losses 0.69 -> ~0.01).
    diff = max(abs(a - b) for a, b in zip(fused, reference, strict=True))
    assert diff < 1e-4, f"curves differ by {diff:.3g}"
    assert fused[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 0: -log sigmoid(0)
    assert fused[-1] < 0.1 * fused[0], f"DPO did not converge: {fused[0]:.3f} -> {fused[-1]:.3f}"


# ------------------------------------------------------------------------------- extension switch


def test_compile_fullgraph_matches_eager_kernels():
    """torch.compile(fullgraph=True) through AOTAutograd (fake kernels, registered autograd) gives the eager
    kernels' bits, forward and backward, with no graph break in the public functions' dispatch."""
    gen = torch.Generator().manual_seed(5)
    hidden = torch.randn(6, 8, generator=gen, requires_grad=True)
    weight = torch.randn(13, 8, generator=gen, requires_grad=True)
    targets = torch.tensor([0, 12, IGNORE, 3, 7, 7])
    pairs = [torch.randn(4, generator=gen) for _ in range(4)]
    torch._dynamo.reset()
    try:
        compiled = torch.compile(token_logps, fullgraph=True, backend="aot_eager")(hidden, weight, targets)
        grads = torch.autograd.grad(compiled.sum(), (hidden, weight))
        eager = token_logps(hidden, weight, targets)
        assert torch.equal(compiled, eager)
        for got, want in zip(grads, torch.autograd.grad(eager.sum(), (hidden, weight)), strict=True):
            assert torch.equal(got, want)
        got = torch.compile(dpo_loss, fullgraph=True, backend="aot_eager")(*pairs, 0.1, "robust", 0.2)
        assert all(torch.equal(a, b) for a, b in zip(got, dpo_loss(*pairs, 0.1, "robust", 0.2), strict=True))
    finally:
        torch._dynamo.reset()


def test_reference_ops_env_is_explicit(monkeypatch):
    inputs = _pair_inputs(2, 4, 8, 20, torch.float32, "cpu")
    monkeypatch.setenv(_extension.REFERENCE_ENV, "1")
    got = fused_linear_dpo_loss(*inputs)
    want = fused_linear_dpo_loss_reference(*inputs)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_missing_extension_raises_with_build_hint(monkeypatch):
    monkeypatch.setattr(_extension, "_load", lambda: "ImportError: No module named 'common._C'")
    inputs = _pair_inputs(2, 4, 8, 20, torch.float32, "cpu")
    for call in (
        lambda: fused_linear_dpo_loss(*inputs),
        lambda: token_logps(inputs[0][0], inputs[2], inputs[3][0]),
    ):
        with pytest.raises(RuntimeError, match=r"make build.*pip install --no-build-isolation -e \."):
            call()
