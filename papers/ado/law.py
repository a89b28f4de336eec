"""The per-domain scaling law of ADO and its fit (Jiang et al., ICLR 2025, method; official code
`src/data_selectors/ado.py`, `fit_scaling_law` / `loss_fn`).

    L_k(n) = eps_k + beta_k n^(-alpha_k),   fitted in log space as  log L = LSE(a - alpha log n, e),
    beta = e^a, eps = e^e,

minimising sum_t Huber_delta(LSE(a - alpha log n_t, e) - log L_t), delta = 1e-3 (a sum over points, as
the official code). The official soft box (penalties max(alpha - 0.8, 0), max(a - 6.5, 0), -min(e - 0.5, 0))
is imposed here as the hard box of L-BFGS-B (alpha in [0, 0.8], a <= 6.5, e >= 0.5: eps >= e^0.5 = 1.65
nats, beta <= e^6.5 = 665), configurable through `FitBounds`; inside the box the two objectives agree. The
official code runs L-BFGS from all 512 points of the grid a in {-2..5}, e in {-2, -1.5, .., 1.5},
alpha in {0, .1, .., .7} (starts outside the box are clipped onto it here) and keeps the best; `n_refine`
runs L-BFGS-B from the best `n_refine` grid points by objective (plus an optional warm start), which is
what makes a refit every 100 steps cheap on CPU (512 starts: `n_refine=512`).

The slope of the law, the "learning potential", is -dL/dn = (alpha / n) (L(n) - eps) (checked in sympy in
proofs_checks/ado.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

__all__ = ["FitBounds", "fit_scaling_law", "scaling_law", "learning_potential", "GRID", "DELTA"]

DELTA = 1e-3  # Huber delta of the official loss_fn


def _grid() -> np.ndarray:
    a, e, alpha = np.meshgrid(np.arange(-2.0, 6.0, 1.0), np.arange(-2.0, 2.0, 0.5), np.arange(0.0, 0.8, 0.1),
                              indexing="ij")
    return np.stack([a.ravel(), e.ravel(), alpha.ravel()], axis=1)  # (512, 3)


GRID = _grid()


@dataclass(frozen=True)
class FitBounds:
    """The box of the fit in log-space parameters: alpha in [alpha_min, alpha_max], a = log beta <= a_max,
    e = log eps in [e_min, e_max]. Defaults are the official code's (e_min = 0.5: eps >= 1.65 nats); toy
    data with a smaller irreducible loss needs a smaller e_min."""

    alpha_min: float = 0.0
    alpha_max: float = 0.8
    a_max: float = 6.5
    e_min: float = 0.5
    e_max: float = 5.0

    def __post_init__(self) -> None:
        for name in ("alpha_min", "alpha_max", "a_max", "e_min", "e_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"FitBounds.{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.alpha_min < self.alpha_max:
            raise ValueError(f"FitBounds needs 0 <= alpha_min < alpha_max, got {self.alpha_min}, "
                             f"{self.alpha_max}")
        if not self.e_min < self.e_max:
            raise ValueError(f"FitBounds needs e_min < e_max, got {self.e_min}, {self.e_max}")

    def box(self) -> list[tuple[float | None, float | None]]:
        return [(None, self.a_max), (self.e_min, self.e_max), (self.alpha_min, self.alpha_max)]

    def clip(self, theta: np.ndarray) -> np.ndarray:
        lo = np.array([-np.inf, self.e_min, self.alpha_min])
        hi = np.array([self.a_max, self.e_max, self.alpha_max])
        return np.clip(theta, lo, hi)


def scaling_law(n: np.ndarray | float, eps: float, beta: float, alpha: float) -> np.ndarray:
    """L(n) = eps + beta n^(-alpha)."""
    return eps + beta * np.asarray(n, dtype=np.float64) ** (-alpha)


def learning_potential(n: float, eps: float, beta: float, alpha: float) -> float:
    """-dL/dn at n: (alpha / n) (L(n) - eps) = alpha beta n^(-alpha - 1)."""
    return alpha / n * (float(scaling_law(n, eps, beta, alpha)) - eps)


def _objective_grid(thetas: np.ndarray, log_n: np.ndarray, log_l: np.ndarray, delta: float) -> np.ndarray:
    """(G,) Huber objective of each start in `thetas` (G, 3)."""
    a, e, alpha = thetas[:, :1], thetas[:, 1:2], thetas[:, 2:3]
    pred = np.logaddexp(a - alpha * log_n[None, :], e)  # (G, N)
    r = np.abs(pred - log_l[None, :])
    return np.where(r > delta, delta * (r - 0.5 * delta), 0.5 * r**2).sum(1)


def _objective(theta: np.ndarray, log_n: np.ndarray, log_l: np.ndarray,
               delta: float) -> tuple[float, np.ndarray]:
    a, e, alpha = theta
    u = a - alpha * log_n  # (N,)
    pred = np.logaddexp(u, e)
    r = pred - log_l
    absr = np.abs(r)
    value = np.where(absr > delta, delta * (absr - 0.5 * delta), 0.5 * r**2).sum()
    dr = np.clip(r, -delta, delta)  # dHuber / dr
    sig = np.exp(u - pred)  # d pred / da
    grad = np.array([(dr * sig).sum(), (dr * (1.0 - sig)).sum(), -(dr * sig * log_n).sum()])
    return float(value), grad


def _validate_series(n: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if n.ndim != 1 or loss.ndim != 1:
        raise ValueError(f"n and loss must be 1-D, got shapes {n.shape} and {loss.shape}")
    if n.shape != loss.shape:
        raise ValueError(f"n and loss must have the same length, got {n.shape[0]} and {loss.shape[0]}")
    if n.shape[0] < 3:
        raise ValueError(f"n and loss need at least 3 points to fit 3 parameters, got {n.shape[0]}")
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise ValueError("n must be finite and > 0 (the number of sequences seen)")
    if not (np.all(np.isfinite(loss)) and np.all(loss > 0)):
        raise ValueError("loss must be finite and > 0 (it is fitted in log space)")
    return n, loss


def fit_scaling_law(
    n: np.ndarray,
    loss: np.ndarray,
    *,
    bounds: FitBounds | None = None,
    n_refine: int = 8,
    init: tuple[float, float, float] | None = None,
    delta: float = DELTA,
) -> tuple[float, float, float]:
    """Fit L(n) = eps + beta n^(-alpha) to `loss` (T,) at `n` (T,) and return (eps, beta, alpha).

    Huber loss in log space from the official 512-point grid of starts (clipped onto `bounds`), L-BFGS-B
    (scipy, analytic gradient, tol 1e-5 and 200 iterations as jaxopt in the official code) from the best
    `n_refine` starts and from `init` (a previous fit, as (eps, beta, alpha)) when given; the best
    finite result is kept.
    """
    n, loss = _validate_series(n, loss)
    bounds = FitBounds() if bounds is None else bounds
    if isinstance(n_refine, bool) or not isinstance(n_refine, int) or not 1 <= n_refine <= GRID.shape[0]:
        raise ValueError(f"n_refine must be an integer in [1, {GRID.shape[0]}], got {n_refine!r}")
    if not (isinstance(delta, int | float) and delta > 0):
        raise ValueError(f"delta must be > 0, got {delta!r}")
    log_n, log_l = np.log(n), np.log(loss)
    grid = np.unique(bounds.clip(GRID), axis=0)
    values = _objective_grid(grid, log_n, log_l, delta)
    starts = list(grid[np.argsort(values, kind="stable")[:n_refine]])
    if init is not None:
        eps0, beta0, alpha0 = (float(v) for v in init)
        if not (eps0 > 0 and beta0 > 0 and math.isfinite(alpha0)):
            raise ValueError(f"init must be (eps > 0, beta > 0, alpha), got {init!r}")
        starts.append(bounds.clip(np.array([math.log(beta0), math.log(eps0), alpha0])))
    best, best_value = None, math.inf
    for start in starts:
        res = minimize(_objective, start, args=(log_n, log_l, delta), jac=True, method="L-BFGS-B",
                       bounds=bounds.box(), options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-5})
        if np.all(np.isfinite(res.x)) and math.isfinite(res.fun) and res.fun < best_value:
            best, best_value = res.x, float(res.fun)
    if best is None:
        raise RuntimeError("every L-BFGS-B run of the scaling-law fit gave a non-finite result")
    a, e, alpha = (float(v) for v in best)
    return math.exp(e), math.exp(a), alpha
