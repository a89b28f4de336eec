"""The paper's single-token theory in the "unconstrained features" model (Section 4.2.1; App. D, Theorems 4
and 5): logits W h with the unembedding W [V, D] and the hidden state h [D] both trained by gradient flow on
L = l(ln pi(y+) - ln pi(y-)), l convex and decreasing (DPO: l(u) = -ln sigmoid(beta (u - c))).

Flow: dh/dt = -l' (W+ - W-), dW+/dt = -l' h, dW-/dt = +l' h, dW_z/dt = 0 for every other token z (the softmax
normalizer cancels in the margin). Hence, with pi = softmax(W h) and Wbar = sum_v pi_v W_v,

    d/dt ln pi(z) = -l' [ <W_z - Wbar, W+ - W-> + (1[z=+] - pi+ - 1[z=-] + pi-) ||h||^2 ]

which for z = y+ is the paper's Theorem 4,
    -l' [ (1-pi+)||W+||^2 + pi-||W-||^2 + (1-pi+ +pi-)||h||^2 - (1-pi+ +pi-)<W+,W->
          - sum_{z != +-} pi_z <W_z, W+-W-> ]
and for z not in {y+, y-} Theorem 5: -l' [<W_z, W+ - W-> + c'] with c' the same for every such z, so the
tokens gaining most mass are those whose unembedding is most aligned with W+ - W-.
"""

from __future__ import annotations

import torch

__all__ = ["theorem4_rate", "token_rates", "displacement_margin"]


def token_rates(
    W: torch.Tensor, h: torch.Tensor, pos: int, neg: int, neg_l_prime: float | torch.Tensor = 1.0
):
    """d/dt ln pi(z) for every token z [V] under gradient flow on W and h (general closed form above).

    W [V, D], h [D]; pos/neg are the ids of y+ and y-; neg_l_prime = -l'(u) > 0 (beta/2 for DPO at the
    reference point).
    """
    _check(W, h, pos, neg)
    pi = torch.softmax(W @ h, dim=0)  # (V,)
    d = W[pos] - W[neg]  # (D,)
    wbar = pi @ W  # (D,)
    hh = h @ h
    own = -pi[pos] + pi[neg] + torch.zeros_like(pi)
    own[pos] += 1.0
    own[neg] -= 1.0
    return neg_l_prime * ((W - wbar) @ d + own * hh)  # (V,)


def theorem4_rate(
    W: torch.Tensor, h: torch.Tensor, pos: int, neg: int, neg_l_prime: float = 1.0
) -> torch.Tensor:
    """Theorem 4's expression for d/dt ln pi(y+) written term by term as in the paper (a scalar)."""
    _check(W, h, pos, neg)
    pi = torch.softmax(W @ h, dim=0)
    wp, wn = W[pos], W[neg]
    others = torch.ones_like(pi, dtype=torch.bool)
    others[pos] = others[neg] = False
    m = (1 - pi[pos]) * (wp @ wp) + pi[neg] * (wn @ wn) + (1 - pi[pos] + pi[neg]) * (h @ h)
    rest = (pi[others] * (W[others] @ (wp - wn))).sum()
    return neg_l_prime * (m - (1 - pi[pos] + pi[neg]) * (wp @ wn) - rest)


def displacement_margin(W: torch.Tensor, h: torch.Tensor, pos: int, neg: int) -> torch.Tensor:
    """<Wbar - W+, W+ - W-> - (1 - pi+ + pi-) ||h||^2: positive exactly when ln pi(y+) falls at this instant.

    When the mass sits on a third token (Wbar ~ W_yes, pi+- small) this is the condition
    W_yes . (W+ - W-) > W+ . (W+ - W-) + ||h||^2 of the paper's No > Never example (Table 1 and Sec. 3,
    explained by Theorem 4).
    """
    return -token_rates(W, h, pos, neg, 1.0)[pos]


def _check(W: torch.Tensor, h: torch.Tensor, pos: int, neg: int) -> None:
    if W.dim() != 2 or h.dim() != 1 or W.shape[1] != h.shape[0]:
        raise ValueError(f"need W [V, D] and h [D]; got {tuple(W.shape)} and {tuple(h.shape)}")
    V = W.shape[0]
    if not (0 <= pos < V and 0 <= neg < V) or pos == neg:
        raise ValueError(f"y+ = {pos} and y- = {neg} must be distinct token ids in [0, {V})")
