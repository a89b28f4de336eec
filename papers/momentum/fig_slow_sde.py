"""Theorem 4.5 of Wang et al. (ICLR 2024): near a manifold of minimizers, over O(1/eta^2) steps SGD and SGDM
follow the same slow SDE (Li, Wang, Arora 2022), so momentum leaves the implicit bias unchanged.

Toy: the uv-model L(u, v) = (u v - y)^2 / 2 with label noise y = 1 + eps, eps ~ N(0, s^2). Minimizers form
the curve u v = 1, on which the sharpness tr Hessian = u^2 + v^2 >= 2; label noise drives it down toward 2.
Starting sharp (u0 = 3, v0 = 1/3, sharpness 9.11) we run, on thousands of vectorized paths, SGD(eta) and
EMA-form SGDM (eq. 3) with the same eta, beta fixed and/or 1 - beta = eta^alpha, for K = T / eta^2 steps,
and compare the mean sharpness on the slow clock t = k eta^2. All methods share the label noise of each step
and path (common random numbers); SGD is the beta = 0 row of the same update. Both are also compared with
the limit itself, the label-noise flow on u v = 1 (`label_noise_flow`, drift -(1/4) s^2 grad_Gamma tr H),
and a flow with twice that constant is checked to be rejected (a negative control).
Cost: quick ~2 s, default ~30 s on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import AnyFloat, Count, Index, NonNegative, Positive, Range, Scale
from common.experiment import Figure, RunContext

PAPER_VALUE = "Theorem 4.5: SGD and SGDM converge to the same slow SDE on the t = k eta^2 clock"


Beta = Annotated[float, Range(0, 1, high_open=True)]  # a momentum coefficient in [0, 1)
Alpha = Annotated[float, Range(0, 1, high_open=True)]  # 1 - beta = Theta(eta^alpha), alpha in [0, 1)


@dataclass(frozen=True)
class SlowSDEConfig:
    """uv-model with label noise; etas from large to small."""

    etas: tuple[Positive, ...] = (0.04, 0.02)
    betas: tuple[Beta, ...] = (0.9,)  # SGDM with fixed beta
    alphas: tuple[Alpha, ...] = (0.5,)  # SGDM with 1 - beta = eta^alpha
    horizon: Positive = 3.0  # T on the slow clock t = k eta^2
    n_paths: Annotated[int, Range(2)] = 2_000  # >= 2: standard errors use ddof = 1
    label_noise: NonNegative = 1.0  # s
    u0: AnyFloat = 3.0
    v0: AnyFloat = 1.0 / 3.0
    n_records: Count = 30  # points of the mean-sharpness trajectory after t = 0
    seed: Index = 0


CONFIGS = {
    Scale.QUICK: SlowSDEConfig(),
    Scale.DEFAULT: SlowSDEConfig(etas=(0.04, 0.02, 0.01), horizon=4.0, n_paths=10_000, n_records=40),
    Scale.PAPER: SlowSDEConfig(etas=(0.04, 0.02, 0.01, 0.005), horizon=4.0, n_paths=100_000, n_records=80),
}

TARGET_SHARPNESS = 2.0  # min of u^2 + v^2 on u v = 1


def method_labels(config: SlowSDEConfig) -> list[str]:
    return (
        ["SGD"]
        + [f"SGDM beta={b:g}" for b in config.betas]
        + [f"SGDM 1-beta=eta^{a:g}" for a in config.alphas]
    )


def method_betas(config: SlowSDEConfig, eta: float) -> np.ndarray:
    """beta per method row: 0 for SGD (EMA form at beta = 0 is SGD), then fixed betas, then 1 - eta^alpha."""
    return np.array([0.0, *config.betas, *(1.0 - eta**a for a in config.alphas)])


def simulate(
    eta: float,
    betas: np.ndarray,
    *,
    horizon: float,
    n_paths: int,
    s: float,
    u0: float,
    v0: float,
    n_records: int,
    seed: int | np.random.SeedSequence,
) -> dict[str, np.ndarray]:
    """Run every method row for K = T/eta^2 steps on shared label noise; record on n_records + 1 slow times
    the mean sharpness per row, its standard error, and the standard error of each row's paired difference
    with row 0 (SGD)."""
    steps = int(round(horizon / eta**2))
    if steps % n_records:
        steps += n_records - steps % n_records  # record on an exact grid; T grows by < n_records eta^2
    every = steps // n_records
    rng = np.random.default_rng(seed)
    b = np.asarray(betas, dtype=float)[:, None]  # (R, 1)
    u = np.full((b.shape[0], n_paths), u0)  # (R, N)
    v = np.full((b.shape[0], n_paths), v0)
    mu, mv = np.zeros_like(u), np.zeros_like(v)  # EMA momenta
    sqrt_n = np.sqrt(n_paths)

    def record(k: int, rows: dict[str, list]) -> None:
        sharp = u * u + v * v  # tr Hessian on the manifold; (R, N)
        rows["t"].append(k * eta**2)
        rows["mean"].append(sharp.mean(axis=1))
        rows["se"].append(sharp.std(axis=1, ddof=1) / sqrt_n)
        rows["gap_se"].append((sharp - sharp[0]).std(axis=1, ddof=1) / sqrt_n)
        rows["product"].append((u * v).mean(axis=1))

    rows: dict[str, list] = {"t": [], "mean": [], "se": [], "gap_se": [], "product": []}
    record(0, rows)
    for k in range(1, steps + 1):
        y = 1.0 + s * rng.standard_normal(n_paths)  # (N,) one label per path, shared by all rows
        r = u * v - y
        gu, gv = r * v, r * u
        mu *= b
        mu += (1 - b) * gu
        mv *= b
        mv += (1 - b) * gv
        u -= eta * mu
        v -= eta * mv
        if k % every == 0:
            record(k, rows)
    return {key: np.asarray(val) for key, val in rows.items()} | {"steps": steps}


FLOW_CONSTANT = 0.25  # the slow SDE's drift -(1/4) s^2 grad_Gamma tr(Hessian) for label noise


def label_noise_flow(
    u0: float, v0: float, s: float, t: np.ndarray, constant: float = FLOW_CONSTANT
) -> np.ndarray:
    """Mean-free slow flow of label-noise SGD on the manifold u v = 1 (Li, Wang & Arora 2022, the limit that
    Theorem 4.5 says SGD and SGDM share): dtheta/dt = -constant s^2 P_tangent grad tr(Hessian), i.e. on
    v = 1/u, du/dt = -2 constant s^2 u (u^2 - u^-2) / (u^2 + u^-2). Starts at the projection of (u0, v0)
    by the loss's gradient flow (which keeps u^2 - v^2). Returns the sharpness u^2 + u^-2 at times t."""
    from scipy.integrate import solve_ivp

    c = u0 * u0 - v0 * v0
    start = np.sqrt((c + np.sqrt(c * c + 4.0)) / 2.0)

    def drift(_: float, u: np.ndarray) -> np.ndarray:
        return -2.0 * constant * s * s * u * (u**2 - u**-2) / (u**2 + u**-2)

    t = np.asarray(t, dtype=float)
    sol = solve_ivp(drift, (0.0, float(t.max())), [start], t_eval=t, rtol=1e-10, atol=1e-12)
    u = sol.y[0]
    return u * u + 1.0 / (u * u)


def flow_errors(run: dict[str, Any], config: SlowSDEConfig, constant: float = FLOW_CONSTANT):
    """Per method row: max over t of |mean sharpness - the flow's|, the standard error there, and the
    flow's total decrease over the run."""
    t = np.asarray(run["t"], float)
    flow = label_noise_flow(config.u0, config.v0, config.label_noise, t, constant)  # (n_t,)
    mean = np.asarray(run["mean"], float)  # (n_t, R)
    err = np.abs(mean - flow[:, None])
    at = err.argmax(axis=0)
    se = np.asarray(run["se"], float)[at, np.arange(mean.shape[1])]
    return err.max(axis=0), se, float(flow[0] - flow[-1])


def run(config: SlowSDEConfig, ctx: RunContext) -> dict[str, Any]:
    """One resumable part per eta (all methods together, on common label noise)."""
    results = []
    for j, eta in enumerate(ctx.progress(config.etas, desc="slow SDE")):

        def part(eta: float = eta, j: int = j) -> dict[str, Any]:
            out = simulate(
                eta,
                method_betas(config, eta),
                horizon=config.horizon,
                n_paths=config.n_paths,
                s=config.label_noise,
                u0=config.u0,
                v0=config.v0,
                n_records=config.n_records,
                seed=np.random.SeedSequence([config.seed, j]),
            )
            return {"eta": eta, "betas": method_betas(config, eta), **out}

        results.append(ctx.part(f"eta={eta:.8g}", part))
    return {
        "methods": method_labels(config),
        "runs": results,
        "u0": config.u0,
        "v0": config.v0,
        "label_noise": config.label_noise,
    }


def _gaps(run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """Per SGDM row: max over t of |mean sharpness - SGD's|, the paired standard error there, and SGD's
    total decrease of mean sharpness."""
    mean = np.asarray(run["mean"], float)  # (n_t, R)
    gap = np.abs(mean[:, 1:] - mean[:, :1])  # (n_t, R-1)
    at = gap.argmax(axis=0)
    gap_se = np.asarray(run["gap_se"], float)[at, np.arange(1, mean.shape[1])]
    decrease = float(mean[0, 0] - mean[-1, 0])
    return gap.max(axis=0), gap_se, decrease


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    """Left: mean sharpness vs t = k eta^2 per method (line style = eta). Right: max gap to SGD vs eta."""
    from matplotlib.ticker import NullFormatter

    from common.plotting import PALETTE, new_figure, save

    fig, axes = new_figure(ncols=2, width=4.2, height=3.3)
    styles = ("-", "--", ":", "-.")
    methods = data["methods"]
    for e, run in enumerate(data["runs"]):
        t = np.asarray(run["t"], float)
        mean = np.asarray(run["mean"], float)
        for r, name in enumerate(methods):
            axes[0].plot(
                t,
                mean[:, r],
                styles[e % len(styles)],
                color=PALETTE[r % len(PALETTE)],
                lw=1.2,
                label=f"{name}" if e == 0 else None,
            )
        axes[0].plot([], [], styles[e % len(styles)], color="0.4", lw=1.2, label=f"eta={run['eta']:g}")
    t_flow = np.linspace(0.0, float(np.asarray(data["runs"][-1]["t"], float).max()), 200)
    flow = label_noise_flow(data["u0"], data["v0"], data["label_noise"], t_flow)
    axes[0].plot(t_flow, flow, color="k", lw=1.6, alpha=0.6, label="label-noise flow (Thm 4.5 limit)")
    axes[0].axhline(TARGET_SHARPNESS, color="k", lw=0.8, alpha=0.5)
    axes[0].set_xlabel("t = k eta^2")
    axes[0].set_ylabel("mean sharpness u^2 + v^2")
    axes[0].set_title("uv-model with label noise: mean sharpness")
    axes[0].legend(fontsize=7)

    etas = np.array([r["eta"] for r in data["runs"]])
    gaps = np.array([_gaps(r)[0] for r in data["runs"]])  # (n_eta, R-1)
    ses = np.array([_gaps(r)[1] for r in data["runs"]])
    for r, name in enumerate(methods[1:], start=1):
        axes[1].errorbar(
            etas,
            gaps[:, r - 1],
            yerr=2 * ses[:, r - 1],
            fmt="o-",
            ms=3,
            color=PALETTE[r % len(PALETTE)],
            label=name,
        )
    axes[1].plot(etas, gaps[-1, 0] * etas / etas[-1], ":", color="k", lw=1, label="slope 1")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].xaxis.set_minor_formatter(NullFormatter())  # less than a decade: label the etas themselves
    axes[1].set_xticks(etas, [f"{e:g}" for e in etas])
    axes[1].set_xlabel("eta")
    axes[1].set_ylabel("max_t |sharpness SGDM - SGD|")
    axes[1].set_title("gap to SGD shrinks with eta")
    axes[1].legend()
    return save(fig, out_dir, "fig_slow_sde")


def _slope_text(etas: np.ndarray, errors: np.ndarray) -> str:
    if len(etas) < 2:
        return ""
    return f"; fitted log-log slope of the error in eta {np.polyfit(np.log(etas), np.log(errors), 1)[0]:.2f}"


def claims(data: dict[str, Any], config: SlowSDEConfig) -> list[Claim]:
    """Sharpness falls toward 2 for every method; the SGDM-SGD gap is small and shrinks as eta decreases."""
    methods = data["methods"]
    runs = data["runs"]
    out = []
    # 1. every method removes most of the excess sharpness, at every eta (worst case reported)
    for r, name in enumerate(methods):
        fractions = []
        for run in runs:
            mean = np.asarray(run["mean"], float)[:, r]
            fractions.append((mean[0] - mean[-1]) / (mean[0] - TARGET_SHARPNESS))
        out.append(
            Claim.check(
                f"momentum.slow_sde.{_slug(name)}.sharpness_decreases",
                f"{name}: mean sharpness falls from {config.u0**2 + config.v0**2:.2f} toward 2 "
                f"(fraction of the excess removed by t = T, worst eta)",
                min(fractions),
                ">=",
                0.5,
                paper_value=PAPER_VALUE,
                details="fractions per eta: "
                + ", ".join(
                    f"eta={run['eta']:g}: {f:.3f} (final {np.asarray(run['mean'], float)[-1, r]:.3f})"
                    for run, f in zip(runs, fractions, strict=True)
                ),
            )
        )
    # 2./3. the gap to SGD is small relative to the decrease, and shrinks with eta
    etas = np.array([run["eta"] for run in runs])
    summary = [_gaps(run) for run in runs]
    for r, name in enumerate(methods[1:]):
        gaps = np.array([g[r] for g, _, _ in summary])
        ses = np.array([s[r] for _, s, _ in summary])
        decrease = np.array([d for _, _, d in summary])
        rel = gaps / decrease
        slope = float(np.polyfit(np.log(etas), np.log(gaps), 1)[0]) if len(etas) > 1 else float("nan")
        listing = ", ".join(
            f"eta={e:g}: gap {g:.4f} +- {s:.4f} (rel {q:.4f})"
            for e, g, s, q in zip(etas, gaps, ses, rel, strict=True)
        )
        out.append(
            Claim.check(
                f"momentum.slow_sde.{_slug(name)}.gap_small",
                f"{name}: max_t |mean sharpness gap to SGD| / SGD's total decrease at the smallest eta",
                rel[-1],
                "<=",
                0.1,
                paper_value=PAPER_VALUE,
                # +- 1.96 standard errors of the mean gap over paths, relative to SGD's decrease
                interval=(max(0.0, (gaps[-1] - 1.96 * ses[-1]) / decrease[-1]),
                          (gaps[-1] + 1.96 * ses[-1]) / decrease[-1]),
                details=listing,
            )
        )
        out.append(
            Claim.check(
                f"momentum.slow_sde.{_slug(name)}.gap_shrinks",
                f"{name}: the gap to SGD at the smallest eta / at the largest eta < 1",
                gaps[-1] / gaps[0],
                "<",
                1.0,
                paper_value=PAPER_VALUE,
                details=f"{listing}; fitted log-log slope of gap vs eta {slope:.2f}",
            )
        )
    # 4./5. Theorem 4.5's limit itself: every method follows the label-noise flow, closer as eta shrinks;
    # the check rejects a flow with the wrong constant (a negative control, a sanity check of the check)
    errs = [flow_errors(run, config) for run in runs]
    for r, name in enumerate(methods):
        e = np.array([x[0][r] for x in errs])
        se = np.array([x[1][r] for x in errs])
        decrease = errs[-1][2]
        listing = ", ".join(
            f"eta={eta:g}: {v:.4f} +- {q:.4f}" for eta, v, q in zip(etas, e, se, strict=True)
        )
        out.append(
            Claim.check(
                f"momentum.slow_sde.{_slug(name)}.matches_flow",
                f"{name}: max_t |mean sharpness - the label-noise flow's| / the flow's total decrease, at "
                "the smallest eta",
                e[-1] / decrease,
                "<=",
                0.1,
                paper_value=PAPER_VALUE,
                interval=(max(0.0, e[-1] - 1.96 * se[-1]) / decrease, (e[-1] + 1.96 * se[-1]) / decrease),
                details=f"max error per eta: {listing}; flow decrease {decrease:.3f}",
            )
        )
        out.append(
            Claim.check(
                f"momentum.slow_sde.{_slug(name)}.flow_error_shrinks",
                f"{name}: the error to the flow at the smallest eta over that at the largest",
                e[-1] / e[0],
                "<",
                1.0,
                paper_value=PAPER_VALUE,
                details=listing + _slope_text(etas, e),
            )
        )
    wrong = flow_errors(runs[-1], config, constant=2 * FLOW_CONSTANT)  # the smallest eta only
    out.append(
        Claim.check(
            "momentum.slow_sde.flow_check_rejects_wrong_constant",
            "negative control: SGD's error to a flow with twice the constant, over the flow's decrease, at "
            "the smallest eta, exceeds the 0.1 the matches_flow claims allow",
            wrong[0][0] / wrong[2],
            ">",
            0.1,
            kind="sanity",
            details="the check can fail: a drift 2x too fast is rejected",
        )
    )
    return out


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("^", "").replace("=", "")


FIGURE = Figure(
    name="fig_slow_sde",
    title="Same implicit bias: sharpness of SGD and SGDM on the uv-model with label noise (t = k eta^2)",
    paper_ref="Theorem 4.5",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="SGD and SGDM mean sharpness curves fall from 9.1 to about 2 on the t = k eta^2 clock and "
    "overlap, with a gap that shrinks roughly linearly in eta",
    # Asserted at quick: every claim; all held at seeds 0-4. Smallest margins: sharpness falls by >= 0.994
    # of its excess (threshold 0.5), gap_small <= 0.031 (threshold 0.1), gap_shrinks <= 0.50 (threshold 1),
    # matches_flow <= 0.027 for SGD and <= 0.010 for both SGDM rows (threshold 0.1), and the wrong-constant
    # control >= 0.245 (must exceed 0.1).
    asserted_at_quick=(
        "momentum.slow_sde.sgd.sharpness_decreases",
        "momentum.slow_sde.sgdm_beta0.9.sharpness_decreases",
        "momentum.slow_sde.sgdm_beta0.9.gap_small",
        "momentum.slow_sde.sgdm_beta0.9.gap_shrinks",
        "momentum.slow_sde.sgdm_1-betaeta0.5.sharpness_decreases",
        "momentum.slow_sde.sgdm_1-betaeta0.5.gap_small",
        "momentum.slow_sde.sgdm_1-betaeta0.5.gap_shrinks",
        "momentum.slow_sde.sgd.matches_flow",
        "momentum.slow_sde.sgdm_beta0.9.matches_flow",
        "momentum.slow_sde.sgdm_1-betaeta0.5.matches_flow",
        "momentum.slow_sde.flow_check_rejects_wrong_constant",
    ),
)
