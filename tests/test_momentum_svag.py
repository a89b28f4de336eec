"""Momentum paper, Figure 2 analogue (SVAG, Li-Malladi-Arora 2021): the SVAG coefficients, the mean and
covariance of the SVAG gradient built through the loss, and the figure at quick scale."""

from __future__ import annotations

import math

import pytest
import torch

from papers.momentum import fig_svag


@pytest.mark.parametrize("l", [1, 1.5, 2, 3, 8, 16, 1000])
def test_svag_coefficients(l):
    r1, r2 = fig_svag.svag_coefficients(l)
    assert math.isclose(r1 + r2, 1.0, rel_tol=0, abs_tol=1e-12)
    assert math.isclose(r1**2 + r2**2, l, rel_tol=1e-12)
    assert r1 >= 1.0 and r2 <= 0.0


def test_svag_coefficients_reject_l_below_one():
    with pytest.raises(ValueError, match="l must be >= 1"):
        fig_svag.svag_coefficients(0.5)


@pytest.mark.parametrize("l", [1, 4, 8])
def test_svag_gradient_is_unbiased_with_covariance_scaled_by_l(l):
    """Least squares L_i(w) = (x_i.w - y_i)^2 / 2 on N = 37 points in d = 3; minibatches of B = 5 drawn with
    replacement. Exact reference: E g = mean_i G_i and Cov g = Cov_i(G_i) / B with G_i = x_i (x_i.w - y_i).
    D draws of the SVAG gradient, each the autograd gradient of `svag_loss` (one copy of w per draw), must
    have mean grad L and covariance l * Cov g."""
    gen = torch.Generator().manual_seed(0)
    N, d, B, D = 37, 3, 5, 40_000
    X = torch.randn(N, d, generator=gen, dtype=torch.float64)  # (N, d)
    y = torch.randn(N, generator=gen, dtype=torch.float64)  # (N,)
    w0 = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)  # (d,)
    G = X * (X @ w0 - y)[:, None]  # (N, d) per-sample gradients
    mean_ref = G.mean(0)
    cov_ref = l * torch.cov(G.T, correction=0) / B  # (d, d)

    W = w0.expand(D, d).clone().requires_grad_(True)  # (D, d)
    idx1 = torch.randint(0, N, (D, B), generator=gen)  # (D, B)
    idx2 = torch.randint(0, N, (D, B), generator=gen)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:  # (D,) loss of each draw's minibatch at its own w
        residual = (X[idx] * W[:, None, :]).sum(-1) - y[idx]  # (D, B)
        return 0.5 * (residual**2).mean(1)

    fig_svag.svag_loss(batch_loss(idx1), batch_loss(idx2), l).sum().backward()
    g = W.grad  # (D, d)
    se = torch.sqrt(torch.diagonal(cov_ref) / D)
    assert torch.all((g.mean(0) - mean_ref).abs() <= 4 * se), (g.mean(0), mean_ref, se)
    cov = torch.cov(g.T, correction=1)
    # relative Frobenius error of a sample covariance from 40k draws is ~1-2 % here; 6 % leaves room
    rel = float(torch.linalg.matrix_norm(cov - cov_ref) / torch.linalg.matrix_norm(cov_ref))
    assert rel < 0.06, (rel, cov, cov_ref)
