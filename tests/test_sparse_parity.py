"""Sparse-parity kernels (companion::parity_*, monomial_correlations*, ensemble_mlp_*) vs the PyTorch twins.

Sampling is bit-exact against the reference hash, labels against the explicit product; correlations against
the explicit product-mean in float64 and, for n <= 20, exact values (Parseval); the fused ensemble against
E separate nn.Sequential models (outputs, gradients, optimizer steps). Odd shapes cross word and chunk
boundaries: n = 67 and 130 (two and three words), H = 45 (a partial 32-unit chunk), E up to 33.
float32 ensemble results follow the flash-attention rule (error vs a float64 reference at most twice
PyTorch's own float32 error, plus two roundings); float64 results use the repository tolerance table.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.ops import (
    EnsembleMLP,
    _extension,
    accuracy,
    all_subsets,
    cross_entropy_loss,
    distillation_loss,
    ensemble_mlp,
    ensemble_mlp_reference,
    enumerate_inputs,
    exact_monomial_correlations,
    hinge_loss,
    monomial_correlations,
    monomial_correlations_reference,
    pack,
    pack_reference,
    random_subsets,
    sample,
    sample_reference,
    subset_masks,
    teacher_targets,
    unpack,
)
from common.ops.sparse_parity import sample_packed_reference
from common.testing import assert_close_report, max_abs_error, tolerance
from tests.conftest import DEVICES

pytestmark = pytest.mark.usefixtures("kernels")  # tests/conftest.py: fail, not skip, without common._C


def _explicit_correlations(x: torch.Tensor, f: torch.Tensor, subsets) -> torch.Tensor:
    """mean_n f[n] prod_{i in S} x[n, i] in float64, one subset at a time (the definition)."""
    x64, f64 = x.double().cpu(), f.double().cpu().reshape(x.shape[0], -1)
    rows = [
        (x64[:, list(s)].prod(dim=1) if s else torch.ones(x.shape[0], dtype=torch.float64)) for s in subsets
    ]
    return torch.stack([(f64 * chi[:, None]).mean(dim=0) for chi in rows])  # (S, C)


# ------------------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [1, 7, 64, 67, 130])
def test_sample_matches_reference_and_explicit_labels(n, device):
    for k in range(1, min(8, n) + 1):
        for start in (0, 1000):
            x, y = sample(n, k, 65, seed=12345 + k, start=start, device=device)
            x_ref, y_ref = sample_reference(n, k, 65, seed=12345 + k, start=start)
            assert x.dtype == torch.float32 and x.shape == (65, n) and y.shape == (65,)
            assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref), (n, k, start)
            assert torch.equal(y.cpu(), x_ref[:, :k].prod(dim=1))  # the label is the explicit product
    support = (n - 1, 0) if n > 1 else (0,)
    x, y = sample(n, len(support), 40, seed=3, support=support, device=device)
    assert torch.equal(y, x[:, list(support)].prod(dim=1))


def test_sample_stream_is_deterministic_in_seed_and_row():
    x20, y20 = sample(67, 3, 20, seed=7)
    assert torch.equal(sample(67, 3, 10, seed=7)[0], x20[:10])  # a prefix, whatever the batch size
    assert torch.equal(sample(67, 3, 10, seed=7, start=10)[0], x20[10:])  # start continues the stream
    assert torch.equal(sample(67, 3, 20, seed=7, packed=True)[0], pack(x20))
    assert not torch.equal(sample(67, 3, 20, seed=8)[0], x20)
    big_seed = (1 << 63) - 1
    assert torch.equal(sample(67, 3, 9, big_seed, packed=True)[0], sample_packed_reference(67, 9, big_seed))


def test_sample_statistics():
    n, B = 67, 40000
    x, y = sample(n, 6, B, seed=1)
    assert x.abs().eq(1).all()
    # Coordinates are +-1 with mean 0 and uncorrelated; 5 standard errors (1 / sqrt(B) = 0.005).
    assert x.mean(dim=0).abs().max() < 5 / B**0.5
    corr = (x.T @ x / B - torch.eye(n)).abs().max()
    assert corr < 6 / B**0.5, corr
    assert y.mean().abs() < 5 / B**0.5
    # The high word of each row is not a copy of the low word (block index enters the hash).
    assert (x[:, :32] == x[:, 32:64]).float().mean().sub(0.5).abs() < 0.01


# ------------------------------------------------------------------------------------------- packing


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("n", [1, 63, 64, 65, 67, 130])
def test_pack_unpack_round_trip(n, dtype):
    x, _ = sample_reference(n, 1, 37, seed=n)
    x = x.to(dtype)
    packed = pack(x)
    assert packed.dtype == torch.int64 and packed.shape == (37, (n + 63) // 64)
    assert torch.equal(packed, pack_reference(x))
    assert torch.equal(unpack(packed, n), x.float())


def test_subset_masks_pack_like_rows():
    n = 130
    subsets = [(), (0,), (63,), (64,), (129, 0, 65), tuple(range(n))]
    masks = subset_masks(subsets, n)
    assert masks.shape == (len(subsets), 3) and masks.dtype == torch.int64
    for s, row in zip(subsets, masks, strict=True):
        indicator = torch.ones(1, n)
        indicator[0, list(s)] = -1
        assert torch.equal(row, pack(indicator)[0])
    assert subset_masks([], 5).shape == (0, 1)


def test_subset_helpers():
    assert len(all_subsets(50, 2)) == 1 + 50 + 1225
    rest = random_subsets(50, 3, 100, seed=0, avoid=range(6))
    assert len(set(rest)) == 100 and all(len(s) == 3 and not set(s) <= set(range(6)) for s in rest)
    assert rest == random_subsets(50, 3, 100, seed=0, avoid=range(6))


# -------------------------------------------------------------------------------------- correlations


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize(("n", "C"), [(5, None), (67, None), (67, 3), (130, 1), (64, 2)])
def test_correlations_equal_explicit_product_mean(n, C, dtype, device):
    N = 3000  # crosses the 1024-row blocks of the CPU kernel
    x, y = sample(n, min(n, 4), N, seed=n)
    subsets = [(), *all_subsets(n, 2, 1)[:60], *random_subsets(n, min(n, 8), 20 if n > 8 else 1, seed=1)]
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(N, *(() if C is None else (C,)), generator=gen, dtype=dtype)
    x_packed, masks = pack(x).to(device), subset_masks(subsets, n, device)
    corr = monomial_correlations(x_packed, f.to(device), masks)
    assert corr.dtype == dtype and corr.shape == (len(subsets), *(() if C is None else (C,)))
    explicit = _explicit_correlations(x, f, subsets).reshape(corr.shape)
    tol = tolerance(dtype)  # accumulated in float64: one rounding to dtype at the end
    assert_close_report(corr, explicit, tol.atol, tol.rtol, f"corr n={n} C={C}")
    ref = monomial_correlations_reference(x_packed.cpu(), f, masks.cpu())
    assert_close_report(corr, ref, tol.atol, tol.rtol, "corr vs reference")


def test_correlation_of_the_parity_itself():
    n, k = 67, 5
    x_packed, y = sample(n, k, 5000, seed=2, packed=True)
    masks = subset_masks([tuple(range(k)), tuple(range(k - 1)), (0,)], n)
    corr = monomial_correlations(x_packed, y, masks)
    assert corr[0].item() == 1.0  # E[chi_S * chi_S] = 1 exactly
    assert corr[1:].abs().max() < 0.06  # other monomials: mean 0, std 1/sqrt(5000) = 0.014


def test_exact_enumeration_and_parseval():
    n = 8
    subsets = all_subsets(n, n)
    masks = subset_masks(subsets, n)

    def fn(x):  # chi_{0,3} + 0.5 chi_{1} - 0.25
        return x[:, 0] * x[:, 3] + 0.5 * x[:, 1] - 0.25

    exact = exact_monomial_correlations(fn, n, masks)
    expected = torch.zeros(len(subsets))
    expected[subsets.index(())], expected[subsets.index((1,))], expected[subsets.index((0, 3))] = (
        -0.25,
        0.5,
        1.0,
    )
    assert torch.equal(exact, expected)
    # Parseval on a non-polynomial function: sum_S corr_S^2 = E[f^2] over all inputs.
    x_all = unpack(enumerate_inputs(n), n)
    f = torch.tanh(x_all @ torch.linspace(-1, 1, n, dtype=torch.float32) + 0.3).double()
    corr = monomial_correlations(enumerate_inputs(n), f, masks)
    assert abs(corr.pow(2).sum().item() - f.pow(2).mean().item()) < 1e-12
    with pytest.raises(ValueError, match=r"n must be in \[1, 20\]"):
        enumerate_inputs(21)


@pytest.mark.parametrize("device", DEVICES)
def test_correlations_gradient(device):
    n, N = 67, 1500
    x_packed, _ = sample(n, 3, N, seed=4, packed=True, device=device)
    masks = subset_masks([(), (1,), (3, 66), (0, 5, 64)], n, device)
    f = torch.randn(N, 2, dtype=torch.float64, device=device, requires_grad=True)
    g = torch.randn(4, 2, dtype=torch.float64, device=device)
    (monomial_correlations(x_packed, f, masks) * g).sum().backward()
    f_ref = f.detach().clone().requires_grad_(True)
    (monomial_correlations_reference(x_packed.cpu(), f_ref.cpu(), masks.cpu()) * g.cpu()).sum().backward()
    tol = tolerance(torch.float64)
    assert_close_report(f.grad, f_ref.grad, tol.atol, tol.rtol, "grad f")


def test_correlations_gradcheck_and_opcheck():
    x_packed, _ = sample(67, 3, 40, seed=5, packed=True)
    masks = subset_masks([(), (2,), (0, 66)], 67)
    f = torch.randn(40, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: monomial_correlations(x_packed, t, masks), (f,))
    op = torch.ops.companion
    torch.library.opcheck(op.monomial_correlations.default, (x_packed, f, masks))
    torch.library.opcheck(op.monomial_correlations.default, (x_packed, f.detach().float(), masks))
    torch.library.opcheck(op.monomial_correlations_backward.default, (torch.randn(3, 2), x_packed, masks))


def test_sampling_ops_opcheck():
    op = torch.ops.companion
    mask = subset_masks([(0, 66)], 67)[0]
    torch.library.opcheck(op.parity_sample.default, (67, 33, 9, 4, mask))
    x, _ = sample(67, 2, 33, seed=1)
    torch.library.opcheck(op.parity_pack.default, (x,))
    torch.library.opcheck(op.parity_unpack.default, (pack(x), 67))


# ------------------------------------------------------------------------------------ ensemble MLP


def _models(E, n, H, C, dtype, seed=0):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(n, H), nn.ReLU(), nn.Linear(H, C)).to(dtype) for _ in range(E)]


def _member_grads(models, x, g):
    """Gradients of sum_e <g[e], model_e(x_e)> for separate nn.Sequential models, stacked like EnsembleMLP."""
    for e, m in enumerate(models):
        m.zero_grad()
        (m(x if x.dim() == 2 else x[e]) * g[e]).sum().backward()
    return (
        torch.stack([m[0].weight.grad.T for m in models]),
        torch.stack([m[0].bias.grad for m in models]),
        torch.stack([m[2].weight.grad for m in models]),
        torch.stack([m[2].bias.grad for m in models]),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("E", "n", "H", "C", "B", "per_member"),
    [(1, 5, 7, 2, 9, False), (4, 67, 45, 2, 33, True), (33, 67, 40, 3, 16, False), (3, 130, 70, 1, 20, True)],
)
def test_ensemble_float64_equals_separate_models(E, n, H, C, B, per_member, device):
    models = _models(E, n, H, C, torch.float64)
    ens = EnsembleMLP.from_members(models).to(device)
    x = sample(n, 3, E * B if per_member else B, seed=E)[0].double()
    x = x.view(E, B, n) if per_member else x
    out = ens(pack(x.reshape(-1, n)).reshape(*x.shape[:-1], -1).to(device))
    assert out.shape == (E, B, C) and out.dtype == torch.float64
    expected = torch.stack([m(x if not per_member else x[e]) for e, m in enumerate(models)]).detach()
    tol = tolerance(torch.float64)
    assert_close_report(out, expected, tol.atol, tol.rtol, "logits")
    g = torch.randn(E, B, C, dtype=torch.float64)
    grads = torch.autograd.grad((out * g.to(device)).sum(), list(ens.parameters()))
    for name, got, want in zip(("w1", "b1", "w2", "b2"), grads, _member_grads(models, x, g), strict=True):
        assert_close_report(got, want, tol.atol, tol.rtol, f"grad {name}")
    for e in (0, E - 1):  # member(i) is the same model
        member = ens.member(e).cpu()
        assert_close_report(member(x if not per_member else x[e]), expected[e], tol.atol, tol.rtol, "member")


def _away_from_relu_kink(models, x, gap=1e-4):
    """Shift the bias of hidden units whose pre-activation comes within `gap` of 0 for some input: there a
    float32 rounding (~1e-7) may flip relu's branch, and the gradient then differs by a whole term, in the
    kernel and in PyTorch alike (seed 1 below has |z| = 1.04e-7 at one unit; the kernel flipped it, PyTorch
    did not)."""
    with torch.no_grad():
        for m in models:
            z = x.double() @ m[0].weight.double().T + m[0].bias.double()  # (B, H)
            near = (z.abs() < gap).any(dim=0)
            m[0].bias[near] += 10 * gap


@pytest.mark.parametrize("device", DEVICES)
def test_ensemble_float32_error_at_most_twice_pytorch(device):
    """Flash-attention rule: against a float64 reference, the kernel's float32 error (outputs and every
    gradient) is at most twice that of the E separate float32 nn.Sequential models, plus two roundings."""
    E, n, H, C, B = 5, 67, 300, 2, 64
    models = _models(E, n, H, C, torch.float32, seed=1)
    x = sample(n, 3, B, seed=0)[0]
    _away_from_relu_kink(models, x)
    ens = EnsembleMLP.from_members(models).to(device)
    ens64 = EnsembleMLP.from_members(models).double()
    g = torch.randn(E, B, C)
    out = ens(pack(x).to(device))
    out64 = ens64(pack(x))
    grads = torch.autograd.grad((out * g.to(device)).sum(), list(ens.parameters()))
    grads64 = torch.autograd.grad((out64 * g.double()).sum(), list(ens64.parameters()))
    out_torch = torch.stack([m(x) for m in models])
    grads_torch = _member_grads(models, x, g)
    pairs = [("logits", out, out_torch.detach(), out64.detach())]
    pairs += [
        (f"grad {k}", a, b, c)
        for k, a, b, c in zip(("w1", "b1", "w2", "b2"), grads, grads_torch, grads64, strict=True)
    ]
    for name, ours, theirs, exact in pairs:
        rounding = max_abs_error(exact.float(), exact)
        err, err_torch = max_abs_error(ours, exact), max_abs_error(theirs, exact)
        assert err <= 2 * err_torch + 2 * rounding, (
            f"{name}: {err:.3g} > 2 x {err_torch:.3g} + 2 x {rounding:.3g}"
        )


def test_ensemble_accepts_float_signs_and_matches_reference():
    ens = EnsembleMLP(3, 67, 45, 2, generator=torch.Generator().manual_seed(0))
    x, _ = sample(67, 2, 10, seed=1)
    out = ens(x)
    assert torch.equal(out, ens(pack(x)))
    ref = ensemble_mlp_reference(pack(x), ens.weight1, ens.bias1, ens.weight2, ens.bias2)
    tol = tolerance(torch.float32)
    assert_close_report(out, ref, tol.atol, tol.rtol, "vs reference")
    assert torch.equal(ens(torch.zeros(0, 67)), torch.zeros(3, 0, 2))


def test_ensemble_gradcheck_and_opcheck():
    E, n, H, C, B = 2, 9, 5, 2, 5  # small: gradcheck perturbs every weight (float64 grids cover n = 67)
    gen = torch.Generator().manual_seed(3)
    params = [
        torch.randn(E, n, H, generator=gen, dtype=torch.float64) * 0.3,
        torch.randn(E, H, generator=gen, dtype=torch.float64),
        torch.randn(E, C, H, generator=gen, dtype=torch.float64),
        torch.randn(E, C, generator=gen, dtype=torch.float64),
    ]
    params = [p.requires_grad_(True) for p in params]
    x_packed, _ = sample(n, 2, B, seed=3, packed=True)
    assert torch.autograd.gradcheck(lambda *p: ensemble_mlp(x_packed, *p), params)
    op = torch.ops.companion
    torch.library.opcheck(op.ensemble_mlp_forward.default, (x_packed, *params))
    torch.library.opcheck(op.ensemble_mlp_forward.default, (x_packed.expand(E, B, -1).clone(), *params))
    # the backward kernel is not differentiable (double backward raises), so its inputs do not require grad
    weights = [p.detach() for p in params[:3]]
    grad = torch.randn(E, B, C).double()
    torch.library.opcheck(op.ensemble_mlp_backward.default, (grad, x_packed, *weights))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_ensemble_training_steps_equal_separate_models(optimizer):
    """Any torch optimizer: three steps on the ensemble equal three steps on each separate model (float64)."""
    E, n, H, C, B = 3, 20, 16, 2, 32
    models = _models(E, n, H, C, torch.float64, seed=2)
    ens = EnsembleMLP.from_members(models)

    def make(params):
        return (
            torch.optim.SGD(params, lr=0.1, momentum=0.9) if optimizer == "sgd" else torch.optim.Adam(params)
        )

    opt_e, opt_m = make(ens.parameters()), make([p for m in models for p in m.parameters()])
    for step in range(3):
        x, y = sample(n, 3, B, seed=0, start=step * B)
        opt_e.zero_grad()
        cross_entropy_loss(ens(x), y).sum().backward()
        opt_e.step()
        opt_m.zero_grad()
        sum(F.cross_entropy(m(x.double()), (y < 0).long()) for m in models).backward()
        opt_m.step()
    tol = tolerance(torch.float64)
    for e, m in enumerate(models):
        assert_close_report(ens.member(e)[0].weight, m[0].weight, tol.atol, tol.rtol, f"member {e} W1")
        assert_close_report(ens.member(e)[2].bias, m[2].bias, tol.atol, tol.rtol, f"member {e} b2")


def test_ensemble_learns_a_sparse_parity():
    """Convergence: 8 students of width 64 learn (n=12, k=2) parity with Adam within 80 steps (measured:
    all 8 at accuracy 1.0 after 80 steps at lr 2e-2)."""
    ens = EnsembleMLP(8, 12, 64, 2, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(ens.parameters(), lr=2e-2)
    for step in range(80):
        x, y = sample(12, 2, 64, seed=1, start=step * 64, packed=True)
        opt.zero_grad()
        cross_entropy_loss(ens(x), y).sum().backward()
        opt.step()
    x, y = sample(12, 2, 2000, seed=2, packed=True)
    assert accuracy(ens(x), y).min() > 0.95


# ------------------------------------------------------------------------------------------ losses


def test_losses_per_member():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, 2, generator=gen, requires_grad=True)
    y = torch.where(torch.rand(10, generator=gen) < 0.5, -1.0, 1.0)
    classes = (y < 0).long()
    ce = cross_entropy_loss(logits, y)
    assert ce.shape == (3,)
    torch.testing.assert_close(ce, torch.stack([F.cross_entropy(logits[e], classes) for e in range(3)]))
    torch.testing.assert_close(cross_entropy_loss(logits, classes.expand(3, 10)), ce)
    margin = (
        logits[..., 0] - logits[..., 1]
    )  # two classes: the multiclass hinge is the binary one on the margin
    torch.testing.assert_close(hinge_loss(logits, y), torch.relu(1 - y * margin).mean(dim=1))
    torch.testing.assert_close(hinge_loss(margin[..., None], y), torch.relu(1 - y * margin).mean(dim=1))
    teacher = torch.randn(10, 2, generator=gen) * 3
    soft = torch.softmax(teacher / 2.0, dim=-1)
    want = -(soft * torch.log_softmax(logits, -1)).sum(-1).mean(1)
    torch.testing.assert_close(distillation_loss(logits, teacher, temperature=2.0), want)
    hard = teacher.argmax(dim=-1)
    want_hard = torch.stack([F.cross_entropy(logits[e], hard) for e in range(3)])
    for tau in (0.0, 1e-20):  # argmax targets: tau = 0 and the paper's 1e-20 (overflow -> argmax)
        torch.testing.assert_close(distillation_loss(logits, teacher, temperature=tau), want_hard)
    assert torch.equal(teacher_targets(teacher, 0.0), F.one_hot(hard, 2).float())
    per_member_teacher = teacher.expand(3, 10, 2)
    torch.testing.assert_close(distillation_loss(logits, per_member_teacher, 2.0), want)
    teacher_req = teacher.clone().requires_grad_(True)
    distillation_loss(logits, teacher_req, 1.0).sum().backward()
    assert teacher_req.grad is None and logits.grad is not None
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        distillation_loss(logits, teacher, temperature=-1.0)


# -------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: sample(5, 6, 10, 0), ValueError, r"k must be <= n.*k=6, n=5"),
        (lambda: sample(5, 0, 10, 0), ValueError, r"k must be >= 1"),
        (
            lambda: sample(5, 2, 10, 0, support=(1, 5)),
            ValueError,
            r"support has indices out of range \[0, 5\)",
        ),
        (lambda: sample(5, 2, 10, 0, support=(1, 1)), ValueError, r"support has repeated indices"),
        (lambda: sample(5, 2, 10, 0, support=(1,)), ValueError, r"support must have k=2 indices"),
        (lambda: sample(5, 2, 10, -1), ValueError, r"seed must be in"),
        (lambda: sample(5.0, 2, 10, 0), TypeError, r"n must be an int"),
        (lambda: pack(torch.tensor([[1.0, 0.5]])), ValueError, r"only -1 and \+1"),
        (lambda: pack(torch.ones(2, 3, dtype=torch.int64)), TypeError, r"float tensor"),
        (lambda: unpack(torch.ones(2, 2, dtype=torch.int64), 5), ValueError, r"1 words per row for n=5"),
        (lambda: unpack(torch.ones(2, 1), 5), TypeError, r"x_packed must be int64"),
        (lambda: subset_masks([(0, 9)], 5), ValueError, r"subsets\[0\] has indices out of range"),
        (
            lambda: monomial_correlations(torch.ones(4, 1), torch.ones(4), subset_masks([(0,)], 5)),
            TypeError,
            r"x_packed must be int64 \(bit-packed",
        ),
        (
            lambda: monomial_correlations(
                torch.ones(4, 1, dtype=torch.int64), torch.ones(3), subset_masks([(0,)], 5)
            ),
            ValueError,
            r"f must be \[N\] or \[N, C\] with N = 4",
        ),
        (
            lambda: monomial_correlations(
                torch.ones(4, 2, dtype=torch.int64), torch.ones(4), subset_masks([(0,)], 5)
            ),
            ValueError,
            r"masks must have 2 words per row",
        ),
        (
            lambda: monomial_correlations(
                torch.ones(4, 1, dtype=torch.int64), torch.ones(4, dtype=torch.int64), subset_masks([(0,)], 5)
            ),
            TypeError,
            r"f must be float32 or float64",
        ),
        (
            lambda: EnsembleMLP(2, 5, 4, 2)(torch.ones(3, 1, dtype=torch.int32)),
            TypeError,
            r"x_packed must be int64",
        ),
        (lambda: EnsembleMLP(2, 67, 4, 2)(torch.ones(3, 1, dtype=torch.int64)), ValueError, r"\[B, 2\]"),
        (lambda: EnsembleMLP(2, 5, 4, 2)(torch.ones(3, 3, 1, dtype=torch.int64)), ValueError, r"E=2"),
        (lambda: EnsembleMLP(2, 5, 4, 2)(torch.ones(3, 4)), ValueError, r"x must be \[B, 5\]"),
        (lambda: EnsembleMLP(0, 5, 4, 2), ValueError, r"members must be a positive int"),
        (lambda: EnsembleMLP(2, 5, 4, 2).member(2), IndexError, r"member index 2"),
    ],
    ids=lambda v: None,
)
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_raw_ops_check_inputs():
    """torch.ops.companion.* bypass the Python validation; the kernels check for themselves."""
    op = torch.ops.companion
    with pytest.raises(RuntimeError, match="support_mask must have 2 words"):
        op.parity_sample(67, 4, 0, 0, torch.zeros(1, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="x_packed must be int64"):
        op.monomial_correlations(torch.ones(4, 1), torch.ones(4, 1), torch.ones(1, 1, dtype=torch.int64))
    w1, b1, w2, b2 = torch.ones(2, 5, 4), torch.ones(2, 4), torch.ones(2, 3, 4), torch.ones(2, 3)
    x = torch.zeros(6, 1, dtype=torch.int64)
    with pytest.raises(RuntimeError, match=r"bias1 must be \[2, 4\]"):
        op.ensemble_mlp_forward(x, w1, torch.ones(2, 5), w2, b2)
    with pytest.raises(RuntimeError, match="weights must share a dtype"):
        op.ensemble_mlp_forward(x, w1, b1.double(), w2, b2)
    with pytest.raises(RuntimeError, match=r"grad must be \[2, 6, 3\]"):
        op.ensemble_mlp_backward(torch.ones(2, 6, 2), x, w1, b1, w2)


# ------------------------------------------------------------------------------- extension switch


def test_reference_ops_env_is_explicit(monkeypatch):
    monkeypatch.setenv(_extension.REFERENCE_ENV, "1")
    x, y = sample(67, 3, 12, seed=1)
    assert torch.equal(x, sample_reference(67, 3, 12, seed=1)[0])
    ens = EnsembleMLP(2, 67, 5, 2)
    assert torch.equal(ens(x), ensemble_mlp_reference(pack(x), *ens.parameters()))


def test_missing_extension_raises_with_build_hint(monkeypatch):
    monkeypatch.setattr(_extension, "_load", lambda: "ImportError: No module named 'common._C'")
    for call in (
        lambda: sample(5, 2, 3, 0),
        lambda: pack(torch.ones(2, 3)),
        lambda: monomial_correlations(enumerate_inputs(3), torch.ones(8), subset_masks([(0,)], 3)),
        lambda: EnsembleMLP(2, 5, 4, 2)(torch.zeros(3, 1, dtype=torch.int64)),
    ):
        with pytest.raises(RuntimeError, match=r"make build.*pip install --no-build-isolation -e \."):
            call()


def test_exact_enumeration_matches_packed_grid():
    """enumerate_inputs is the packing of every point of {-1, +1}^n, in binary-counter order."""
    n = 4
    grid = torch.tensor(list(itertools.product([1.0, -1.0], repeat=n))).flip(1)  # bit i = x_i
    assert torch.equal(unpack(enumerate_inputs(n), n), grid)
