"""Checks for Xia, Malladi, Gururangan, Arora, Chen, "LESS: Selecting Influential Data for Targeted
Instruction Tuning" (ICML 2024, arXiv 2402.04333): the algebra that lets one kernel serve both Adam
variants, and the projection properties the datastore relies on.

* Adam variants (sympy). The kernel computes m' / (sqrt(v') + eps') with m' = b1 m + (1 - b1) g,
  v' = b2 v + (1 - b2) g^2. The paper's Gamma = m_hat / (sqrt(v_hat) + eps) with bias correction equals
  c * m' / (sqrt(v') + eps sqrt(1 - b2^t)), c = sqrt(1 - b2^t) / (1 - b1^t) > 0; the official code's
  m' / sqrt(v' + eps) equals the kernel's form with v -> v + eps / b2 and eps' = 0. Cosines ignore c, so
  papers/less/pipeline.py passes these substitutions (`_adam_state`).
* Projection (numeric, seeded). Cosines of projected vectors approach the true cosines as d grows
  (Johnson-Lindenstrauss), and a projection to d is the first d coordinates of the projection to D > d
  times sqrt(D / d) (the keyed sign matrix), which is how fig_ablation sweeps d from one datastore.
"""

from __future__ import annotations

import math

import sympy as sp
import torch
import torch.nn.functional as F

from common.claims import Claim
from common.experiment import Check
from common.ops import project

PAPER = "less"

m, g, eps = sp.symbols("m g epsilon", real=True)
v, b1, b2, t = sp.symbols("v beta1 beta2 t", positive=True)


def _kernel(m_: sp.Expr, v_: sp.Expr, eps_: sp.Expr) -> sp.Expr:
    """What the kernel computes from the stored state (m_, v_) and eps_."""
    return (b1 * m_ + (1 - b1) * g) / (sp.sqrt(b2 * v_ + (1 - b2) * g**2) + eps_)


def check_adam_variants() -> list[Claim]:
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g**2
    # The paper's form, with 1 - b1^t = p and 1 - b2^t = q (both in (0, 1) for t >= 1) and v' = V > 0 as
    # positive symbols so that sympy may split sqrt(V / q).
    M, V, p, q = sp.Symbol("M", real=True), *sp.symbols("V p q", positive=True)
    paper_mv = (M / p) / (sp.sqrt(V / q) + eps)
    c = sp.sqrt(q) / p
    kernel_mv = M / (sp.sqrt(V) + eps * sp.sqrt(q))  # the kernel with eps' = eps sqrt(q)
    paper_diff = sp.simplify(paper_mv - c * kernel_mv)
    official_gap = m1 / sp.sqrt(v1 + eps) - _kernel(m, v + eps / b2, 0)
    official_diff = sp.simplify(official_gap)
    # a numeric spot check of the full expressions (moment updates included) guards the substitutions
    point = {m: 0.3, g: -1.7, eps: 1e-3, v: 0.05, b1: 0.9, b2: 0.999, t: 7}
    paper = (m1 / (1 - b1**t)) / (sp.sqrt(v1 / (1 - b2**t)) + eps)
    paper_gap = paper - sp.sqrt(1 - b2**t) / (1 - b1**t) * _kernel(m, v, eps * sp.sqrt(1 - b2**t))
    spot = max(abs(float(gap.subs(point))) for gap in (paper_gap, official_gap))
    return [
        Claim.check(
            "less.theory.adam_paper_variant",
            "paper Gamma = c * kernel(m, v, eps * sqrt(1 - b2^t)), c > 0 (sympy; 1 = identity holds)",
            1.0 if paper_diff == 0 and spot < 1e-12 else 0.0,
            ">=",
            1.0,
            paper_value="Sec. 3.1: Gamma = m_hat / (sqrt(v_hat) + eps), bias-corrected moments",
            details=f"simplified difference {paper_diff}; numeric spot check {spot:.2e}",
        ),
        Claim.check(
            "less.theory.adam_official_variant",
            "official m' / sqrt(v' + eps) = kernel(m, v + eps / b2, 0) (sympy; 1 = identity holds)",
            1.0 if official_diff == 0 and spot < 1e-12 else 0.0,
            ">=",
            1.0,
            paper_value="official collect_grad_reps.py: no bias correction, eps inside the square root",
            details=f"simplified difference {official_diff}",
        ),
    ]


def check_projection() -> list[Claim]:
    gen = torch.Generator().manual_seed(0)
    D = 4096
    x = torch.randn(40, D, generator=gen, dtype=torch.float64)
    x[20:] = 0.6 * x[:20] + 0.8 * x[20:]  # pairs with cosine ~0.6, so the cosines are not all ~0
    true = F.cosine_similarity(x[:20], x[20:], dim=1)
    errors = {}
    for d in (64, 256, 1024):
        y = project(x, d, 3)
        errors[d] = float((F.cosine_similarity(y[:20], y[20:], dim=1) - true).abs().max())
    big, small = project(x, 1024, 3), project(x, 128, 3)
    prefix_error = float((small - big[:, :128] * math.sqrt(1024 / 128)).abs().max())
    return [
        Claim.check(
            "less.theory.jl_cosines",
            "max |projected cosine - cosine| at d = 1024 over 20 pairs (D = 4096)",
            errors[1024],
            "<=",
            0.1,
            paper_value="TRAK/LESS: random projections keep inner products (Johnson-Lindenstrauss)",
            details="max error by d: " + ", ".join(f"{d}: {e:.3f}" for d, e in errors.items()),
        ),
        Claim.check(
            "less.theory.projection_prefix",
            "max |project(x, 128) - project(x, 1024)[:, :128] * sqrt(1024 / 128)|",
            prefix_error,
            "<=",
            1e-9,
            paper_value="(ours) one datastore at the largest d serves every smaller d",
        ),
    ]


CHECKS = (
    Check(
        name="less_adam_variants",
        paper=PAPER,
        title="One kernel for the paper's and the official code's Adam update direction",
        statement_ref="Sec. 3.1 (Inf_Adam)",
        verify=check_adam_variants,
    ),
    Check(
        name="less_projection",
        paper=PAPER,
        title="Projected cosines approach the true cosines; smaller d is a prefix of larger d",
        statement_ref="Sec. 4.1 (random projection)",
        verify=check_projection,
    ),
)
