"""ADO's online mixture policy (Jiang et al., ICLR 2025, method; official `AdoSelector.update` and
`curr_dist` in `src/data_selectors/ado.py`, with the credit-assignment exponent of commit bc3d8d0).

Every step t, after the batch (each sequence's domain drawn i.i.d. from pi(t)) has been trained on:

    h_k      <- (1 - gamma1) h_k + gamma1 * (fraction of the batch from domain k)   (credit assignment)
    every R steps from `start_step`: refit L_k(n) = eps_k + beta_k n^(-alpha_k) on the Savitzky-Golay
             smoothed per-domain training losses, dropping the first `ignore_steps` and keeping every
             `subsample`-th point; n = sequences seen in total (the official use_same_step_size=True)
    rho_k    ∝ mu_k * h_k^s * max(alpha_k, 0.05) (L_k(n) - eps_k) / n                (preference)
    rho      <- clip_min_probability(rho, floor)
    pi(t+1)  = (1 - gamma2) pibar + gamma2 rho,   pibar <- (1 - 1/(t+1)) pibar + rho / (t+1)  (policy)

with mu the natural prior, h and pibar initialised to mu, and pi = mu until the first valid fit. Defaults
are the official ones (gamma1 = gamma2 = 0.1, s = 0.5, floor 0.01, alpha floor 0.05); refit cadence,
ignore, smoothing window and subsample must be rescaled to the run length (official: 1000 / 1000 / 101 /
10 in a 60k-step run). With identical laws rho ∝ mu h^s and the fixed point is rho ∝ mu^(1/(1-s)), mu^2 at
s = 0.5 (a sharpened prior; checked in proofs_checks/ado.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import savgol_filter

from papers.ado.law import FitBounds, fit_scaling_law, scaling_law

__all__ = ["AdoConfig", "AdoSampler", "StaticSampler", "clip_min_probability", "validate_distribution"]


def validate_distribution(name: str, p: np.ndarray | list[float]) -> np.ndarray:
    """`p` as a float64 vector of K >= 2 finite non-negative entries summing to 1 (within 1e-6)."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D vector of K >= 2 domain weights, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must be finite, non-negative and sum to 1, got {arr.tolist()}")
    return arr / arr.sum()


def clip_min_probability(p: np.ndarray, floor: float) -> np.ndarray:
    """The official `clip_min_probability`: raise entries below `floor` to it, then renormalise. The sum is
    1; the minimum is only >= floor / (1 + K floor) after renormalising (e.g. [0.995, 0.005] at floor 0.01
    gives [0.990, 0.00995])."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or p.shape[0] < 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"p must be a non-empty 1-D vector of finite non-negative numbers, got {p!r}")
    if not (0.0 <= floor and floor * p.shape[0] < 1.0):
        raise ValueError(f"floor must lie in [0, 1/K) = [0, {1.0 / p.shape[0]:.4g}), got {floor!r}")
    deficit = max(floor * p.shape[0] - p.sum(), 0.0)
    clipped = np.maximum(p * (1.0 - deficit) / p.sum(), floor)
    return clipped / clipped.sum()


@dataclass(frozen=True)
class AdoConfig:
    """ADO's hyperparameters (module docstring). Official values where the paper has them."""

    refit_every: int = 100
    start_step: int = 80
    ignore_steps: int = 40
    savgol_window: int = 51
    savgol_order: int = 3
    subsample: int = 5
    floor: float = 0.01
    gamma1: float = 0.1
    gamma2: float = 0.1
    s: float = 0.5
    alpha_floor: float = 0.05
    n_refine: int = 2
    bounds: FitBounds = field(default_factory=FitBounds)

    def __post_init__(self) -> None:
        for name in ("refit_every", "subsample", "savgol_window", "n_refine"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"AdoConfig.{name} must be an integer >= 1, got {v!r}")
        for name in ("start_step", "ignore_steps", "savgol_order"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"AdoConfig.{name} must be an integer >= 0, got {v!r}")
        if self.savgol_window % 2 == 0 or self.savgol_window <= self.savgol_order:
            raise ValueError(f"AdoConfig.savgol_window must be odd and > savgol_order={self.savgol_order}, "
                             f"got {self.savgol_window}")
        for name in ("gamma1", "gamma2"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"AdoConfig.{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.s < 1.0:
            raise ValueError(f"AdoConfig.s must lie in [0, 1), got {self.s!r}")
        if not 0.0 <= self.floor < 0.5:
            raise ValueError(f"AdoConfig.floor must lie in [0, 0.5), got {self.floor!r}")
        if not self.alpha_floor >= 0.0:
            raise ValueError(f"AdoConfig.alpha_floor must be >= 0, got {self.alpha_floor!r}")


class StaticSampler:
    """A fixed mixture (the natural or the uniform baseline): same interface as `AdoSampler`."""

    def __init__(self, weights: np.ndarray | list[float]) -> None:
        self.weights = validate_distribution("weights", weights)
        self.overhead_seconds = 0.0

    def observe(self, step: int, domains: np.ndarray, losses: np.ndarray) -> None:
        """Nothing to learn."""


class AdoSampler:
    """ADO over K domains with natural prior `prior` (K,) and `batch_size` sequences per step.

    Use: draw each sequence's domain of step t from `weights`, train, then call
    `observe(t, domains (B,), losses (B,))` with the per-sequence mean token losses; it updates h, refits
    every `refit_every` steps and recomputes `weights` for step t + 1. `overhead_seconds` accumulates the
    time spent in `observe` (fits and policy), for the overhead per step.
    """

    def __init__(self, prior: np.ndarray | list[float], batch_size: int,
                 config: AdoConfig | None = None) -> None:
        self.mu = validate_distribution("prior", prior)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.config = AdoConfig() if config is None else config
        if self.config.floor * self.mu.shape[0] >= 1.0:
            raise ValueError(f"floor {self.config.floor} times K = {self.mu.shape[0]} must be < 1")
        self.K = self.mu.shape[0]
        self.batch_size = batch_size
        self.weights = self.mu.copy()  # pi, the distribution of the next batch
        self.h = self.mu.copy()
        self.pi_bar = self.mu.copy()
        self.rho = self.mu.copy()
        self.laws: np.ndarray | None = None  # (K, 3): eps, beta, alpha
        self.losses: list[np.ndarray] = []  # per step (K,), imputed when a domain is absent
        self.seen = 0  # sequences seen so far
        self.first_policy_step: int | None = None
        self.fits: list[dict] = []  # {step, n, eps, beta, alpha, seconds}
        self.overhead_seconds = 0.0
        self.fit_seconds = 0.0

    # -- what a training loop calls -------------------------------------------------------------------
    def observe(self, step: int, domains: np.ndarray, losses: np.ndarray) -> None:
        start = time.perf_counter()
        domains = np.asarray(domains, dtype=np.int64)
        losses = np.asarray(losses, dtype=np.float64)
        if domains.shape != losses.shape or domains.ndim != 1 or domains.shape[0] == 0:
            raise ValueError(f"domains and losses must be 1-D of one length, got {domains.shape}, "
                             f"{losses.shape}")
        if domains.min() < 0 or domains.max() >= self.K:
            raise ValueError(f"domain ids must lie in [0, {self.K}), got {domains.min()}..{domains.max()}")
        counts = np.bincount(domains, minlength=self.K).astype(np.float64)
        sums = np.bincount(domains, weights=losses, minlength=self.K)
        prev = self.losses[-1] if self.losses else np.full(self.K, losses.mean())
        self.losses.append(np.where(counts > 0, sums / np.maximum(counts, 1.0), prev))
        self.seen += domains.shape[0]
        c = self.config
        if step >= c.start_step and step % c.refit_every == 0:
            self.refit(step)
        self.step_policy(step, counts)
        self.overhead_seconds += time.perf_counter() - start

    # -- the two halves of a step, public for the theory checks ---------------------------------------
    def refit(self, step: int) -> None:
        """Refit every domain's law on the smoothed loss history (kept only if every fit is finite)."""
        c = self.config
        L = np.asarray(self.losses)  # (T, K)
        T = L.shape[0]
        if T - c.ignore_steps < max(c.savgol_window, 3 * c.subsample) or T < c.savgol_window:
            return
        start = time.perf_counter()
        smooth = savgol_filter(L, c.savgol_window, c.savgol_order, axis=0)[c.ignore_steps::c.subsample]
        n = (np.arange(T, dtype=np.float64) + 1.0) * self.batch_size  # sequences seen after each step
        n = n[c.ignore_steps::c.subsample]
        smooth = np.maximum(smooth, 1e-6)  # the fit is in log space
        laws = np.empty((self.K, 3))
        for k in range(self.K):
            init = None if self.laws is None else tuple(self.laws[k])
            laws[k] = fit_scaling_law(n, smooth[:, k], bounds=c.bounds, n_refine=c.n_refine, init=init)
        seconds = time.perf_counter() - start
        self.fit_seconds += seconds
        if np.all(np.isfinite(laws)):
            self.laws = laws
            self.fits.append({"step": int(step), "n": float(self.seen), "eps": laws[:, 0].tolist(),
                              "beta": laws[:, 1].tolist(), "alpha": laws[:, 2].tolist(), "seconds": seconds})

    def set_laws(self, eps: np.ndarray, beta: np.ndarray, alpha: np.ndarray) -> None:
        """Impose fitted laws (K,) each (for the theory checks: identical laws, known laws)."""
        laws = np.stack([np.asarray(v, dtype=np.float64) for v in (eps, beta, alpha)], axis=1)
        if laws.shape != (self.K, 3) or not np.all(np.isfinite(laws)):
            raise ValueError(f"eps, beta, alpha must be finite vectors of length K = {self.K}")
        self.laws = laws

    def preference(self, n: float) -> np.ndarray:
        """rho before clipping: mu * h^s * max(alpha, alpha_floor) (L(n) - eps) / n, normalised."""
        eps, beta, alpha = self.laws[:, 0], self.laws[:, 1], self.laws[:, 2]
        potential = np.maximum(alpha, self.config.alpha_floor) * (scaling_law(n, eps, beta, alpha) - eps) / n
        raw = self.mu * self.h**self.config.s * potential
        total = raw.sum()
        if not (math.isfinite(total) and total > 0):
            return self.mu.copy()
        return raw / total

    def step_policy(self, step: int, counts: np.ndarray) -> None:
        """Credit assignment with this step's `counts` (K,), then the policy for step + 1 (once a law
        exists)."""
        c = self.config
        counts = np.asarray(counts, dtype=np.float64)
        self.h = (1.0 - c.gamma1) * self.h + c.gamma1 * counts / counts.sum()
        if step < c.start_step or self.laws is None:
            return
        if self.first_policy_step is None:
            self.first_policy_step = int(step)
        n = max(float(self.seen), 1.0)
        self.rho = clip_min_probability(self.preference(n), c.floor)
        self.weights = (1.0 - c.gamma2) * self.pi_bar + c.gamma2 * self.rho
        self.pi_bar = (1.0 - 1.0 / (step + 1)) * self.pi_bar + self.rho / (step + 1)
