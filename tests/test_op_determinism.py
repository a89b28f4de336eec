"""Every CPU kernel is bitwise reproducible, and double backward is exact or refused, never silently wrong.

Reproducibility: the same inputs give the same bits on every call, forward and backward, with the threads
the machine has (a fused DPO backward that handed vocabulary chunks to threads first-come summed its
partials in a varying order, and float64 gradcheck caught it as "backward is not reentrant").

Double backward: `monomial_correlations` is linear in f, so its second derivative is the op itself and
gradgradcheck holds. The other fused backward kernels have no derivative; `create_graph=True` through them
raises an error that names the differentiable reference to use instead.
"""

from __future__ import annotations

import pytest
import torch

from common.ops import (
    ensemble_mlp,
    fused_linear_dpo_loss,
    logsumexp,
    monomial_correlations,
    per_sample_linear_grads_projected,
    sample,
    subset_masks,
    token_logps,
)

REPEATS = 12  # a first-come hand-out differs between calls only when thread timing does; repeat to see it


pytestmark = pytest.mark.usefixtures("kernels")  # tests/conftest.py: fail, not skip, without common._C


def _forward_backward_bits(fn, inputs):
    """Output and the gradients of every input (a fixed random cotangent), as one list of tensors."""
    inputs = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    cot = torch.Generator().manual_seed(0)
    differentiable = [o for o in outs if o.requires_grad]
    if not differentiable:  # a feature op (the projections): forward only
        return [o.detach() for o in outs]
    loss = sum((o * torch.randn(o.shape, generator=cot, dtype=o.dtype)).sum() for o in differentiable)
    grads = torch.autograd.grad(loss, [x for x in inputs if x.requires_grad])
    return [o.detach() for o in outs] + list(grads)


def _fused_dpo_case():
    gen = torch.Generator().manual_seed(1)
    B, T, H, V = 2, 9, 24, 4100  # 9 vocabulary chunks: more than threads, so a hand-out order exists
    labels = torch.randint(0, V, (B, T), generator=gen)
    inputs = [
        torch.randn(B, T, H, generator=gen),
        torch.randn(B, T, H, generator=gen),
        torch.randn(V, H, generator=gen) * 0.2,
    ]

    def fn(hc, hr, w):
        ref = torch.zeros(B, dtype=hc.dtype)
        return fused_linear_dpo_loss(hc, hr, w, labels, labels.flip(1), ref, ref)[0]

    return fn, inputs


def _token_logps_case():
    gen = torch.Generator().manual_seed(2)
    N, H, V = 70, 16, 3000
    targets = torch.randint(0, V, (N,), generator=gen)
    return (lambda h, w: token_logps(h, w, targets)), [
        torch.randn(N, H, generator=gen),
        torch.randn(V, H, generator=gen),
    ]


def _logsumexp_case():
    gen = torch.Generator().manual_seed(3)
    return logsumexp, [torch.randn(33, 5000, generator=gen)]


def _ensemble_case():
    gen = torch.Generator().manual_seed(4)
    E, n, H, C, B = 5, 67, 32, 2, 300
    x_packed, _ = sample(n, 3, B, seed=4, packed=True)
    params = [
        torch.randn(E, n, H, generator=gen) * 0.1,
        torch.randn(E, H, generator=gen),
        torch.randn(E, C, H, generator=gen) * 0.1,
        torch.randn(E, C, generator=gen),
    ]
    return (lambda *p: ensemble_mlp(x_packed, *p)), params


def _correlations_case():
    gen = torch.Generator().manual_seed(5)
    x_packed, _ = sample(67, 3, 4000, seed=5, packed=True)
    masks = subset_masks([(i,) for i in range(67)] + [(i, (i + 1) % 67) for i in range(67)], 67)
    return (lambda f: monomial_correlations(x_packed, f, masks)), [torch.randn(4000, 3, generator=gen)]


def _projection_case():
    gen = torch.Generator().manual_seed(6)
    acts, grads = torch.randn(64, 7, 48, generator=gen), torch.randn(64, 7, 40, generator=gen)

    def fn(a, g):
        return per_sample_linear_grads_projected(a.detach(), g.detach(), 256, seed=6)

    return fn, [acts, grads]


CASES = {
    "fused_linear_dpo": _fused_dpo_case,
    "token_logps": _token_logps_case,
    "logsumexp": _logsumexp_case,
    "ensemble_mlp": _ensemble_case,
    "monomial_correlations": _correlations_case,
    "grad_projection_forward": _projection_case,
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_inputs_same_bits(case):
    fn, inputs = CASES[case]()
    first = _forward_backward_bits(fn, inputs)
    for _ in range(REPEATS):
        again = _forward_backward_bits(fn, inputs)
        for a, b in zip(first, again, strict=True):
            assert torch.equal(a, b), f"{case}: a repeated call changed the result bits"


def test_monomial_correlations_gradgradcheck():
    x_packed, _ = sample(13, 2, 40, seed=7, packed=True)
    masks = subset_masks([(0,), (1, 2), (3, 4, 12), ()], 13)
    f = torch.randn(40, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda f: monomial_correlations(x_packed, f, masks), (f,))


@pytest.mark.parametrize("case", ["fused_linear_dpo", "token_logps", "logsumexp", "ensemble_mlp"])
def test_double_backward_is_refused_with_the_reference_named(case):
    """Second derivatives through a fused backward kernel raise; they are never silently zero."""
    fn, inputs = CASES[case]()
    inputs = [x.detach().double().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    with pytest.raises(RuntimeError, match="reference"):
        grads = torch.autograd.grad(out.sum(), inputs, create_graph=True)
        sum(g.square().sum() for g in grads).backward()


def test_projection_backward_is_refused_with_the_reference_named():
    acts, grads = torch.randn(3, 4, 6, requires_grad=True), torch.randn(3, 4, 5)
    with pytest.raises(RuntimeError, match="per_sample_linear_grads_projected_reference"):
        per_sample_linear_grads_projected(acts, grads, 16, seed=0).sum().backward()
