"""Per-domain training losses with ADO's fitted scaling laws over training (Jiang et al., ICLR 2025, method
and the fitted per-domain curves): L_k(n) = eps_k + beta_k n^(-alpha_k) refitted online.

Two measurements on the ADO runs of the WIN setting (papers/ado/experiment.py):
* local accuracy: each refit's law predicts the mean training loss of the next `refit_every` steps;
* irreducible loss: the last fit's eps_k against the exact Bayes loss of the domain's held-out sequences
  (known here because the domains are Markov chains). Online fits on a run with a cosine LR decay read
  part of the decay as progress, and a law fitted to a loss that has not yet bent over is ambiguous, so
  eps is only roughly identified.
The recovery of known parameters from synthetic power laws is checked in proofs_checks/ado.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim, bootstrap_interval
from common.configs import Range
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.ado.experiment import LEARNABLE
from papers.ado.law import scaling_law
from papers.ado.runs import RUN_SCALES, RunsConfig, collect


@dataclass(frozen=True)
class Config(RunsConfig):
    # the paper calls the online fits locally accurate without a number: we ask for a median relative
    # error of the next-window prediction under 2% (a tenth of the loss drop over the second half of a run)
    max_local_error: Annotated[float, Range(0, 1)] = 0.02
    # eps within 0.15 nats of the Bayes loss on average over the learnable domains (our tolerance: ~5% of
    # a domain's loss, ~10% of its drop over training)
    max_eps_error: Annotated[float, Range(0, 10)] = 0.15


CONFIGS = {scale: Config(**kw) for scale, kw in RUN_SCALES.items()}


def local_errors(run: dict[str, Any], refit_every: int, batch: int) -> list[float]:
    """|law(next window) - observed mean training loss of the next window| / observed, per fit and domain."""
    losses = np.asarray(run["train_losses"], dtype=float)  # (steps, K), NaN where a domain was absent
    errors = []
    for fit in run["fits"]:
        t = fit["step"]
        window = np.arange(t + 1, min(t + 1 + refit_every, losses.shape[0]))
        if window.size < refit_every // 2:
            continue
        n = (window + 1.0) * batch  # sequences seen after each step of the window
        for k in range(losses.shape[1]):
            obs = losses[window, k]
            ok = np.isfinite(obs)
            if ok.sum() < 5:
                continue
            pred = scaling_law(n[ok], fit["eps"][k], fit["beta"][k], fit["alpha"][k])
            errors.append(float(abs(pred.mean() - obs[ok].mean()) / obs[ok].mean()))
    return errors


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    runs = collect(ctx, config, ("win",), ("ado",))["win"]["ado"]
    r0 = runs[0]
    return {
        "names": r0["names"],
        "bayes": [r["bayes"] for r in runs],  # (S, K)
        "final_eps": [r["fits"][-1]["eps"] if r["fits"] else [float("nan")] * 5 for r in runs],  # (S, K)
        "local_error_median": [float(np.median(local_errors(r, config.refit_every, config.batch)))
                               for r in runs],
        "fits0": r0["fits"],
        "train_losses0": r0["train_losses"],
        "batch": config.batch,
    }


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    local = np.asarray(data["local_error_median"])
    eps = np.asarray(data["final_eps"], dtype=float)[:, list(LEARNABLE)]
    bayes = np.asarray(data["bayes"], dtype=float)[:, list(LEARNABLE)]
    err = np.abs(eps - bayes).mean(1)  # (S,)
    names = [data["names"][k] for k in LEARNABLE]
    return [
        Claim.check(
            "ado.laws.local_accuracy",
            f"median relative error of each refit's prediction of the next {config.refit_every} steps' mean "
            f"training loss (all domains and refits; per seed)",
            float(local.mean()), "<=", config.max_local_error, per_seed=local.tolist(),
            interval=bootstrap_interval(local),
            paper_value="Experiments: the online fits are locally accurate",
        ),
        Claim.check(
            "ado.laws.eps_vs_bayes",
            "mean |fitted eps - exact Bayes loss| over the learnable domains at the last refit (nats)",
            float(err.mean()), "<=", config.max_eps_error, per_seed=err.tolist(),
            interval=bootstrap_interval(err),
            paper_value="(no counterpart: the Pile's irreducible losses are unknown)",
            details="seed-mean fitted eps vs Bayes: " + ", ".join(
                f"{n} {e:.3f} vs {b:.3f}" for n, e, b in zip(names, eps.mean(0), bayes.mean(0), strict=True)),
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    names = data["names"]
    fig, axes = new_figure(ncols=len(names), width=2.9)
    losses = np.asarray(data["train_losses0"], dtype=float)  # (steps, K)
    n = (np.arange(losses.shape[0]) + 1.0) * data["batch"]
    fits = data["fits0"]
    chosen = [fits[i] for i in sorted({len(fits) // 4, len(fits) // 2, len(fits) - 1})] if fits else []
    for k, ax in enumerate(axes):
        ok = np.isfinite(losses[:, k])
        ax.plot(n[ok], losses[ok, k], ".", ms=1, color="0.6", label="train loss (batch)")
        for j, fit in enumerate(chosen):
            ax.plot(n, scaling_law(n, fit["eps"][k], fit["beta"][k], fit["alpha"][k]), color=f"C{j}", lw=1,
                    label=f"law fitted at step {fit['step']}")
            ax.axvline(fit["n"], color=f"C{j}", lw=0.5, ls=":")
        ax.axhline(data["bayes"][0][k], color="k", ls="--", lw=0.8, label="Bayes loss (true eps)")
        ax.set_xscale("log")
        lo = data["bayes"][0][k] - 0.1
        ax.set_ylim(lo, max(lo + 0.5, np.nanpercentile(losses[ok, k], 99)))
        ax.set_xlabel("sequences seen n")
        ax.set_title(names[k])
    axes[0].set_ylabel("loss (nats per token), seed 0")
    axes[0].legend(fontsize=5)
    return save(fig, out_dir, "laws")


FIGURE = Figure(
    name="fig_laws",
    title="Per-domain training losses and ADO's online scaling-law fits",
    paper_ref="method (per-domain scaling law) and the fitted per-domain laws, synthetic analogue",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="The laws track each domain's loss locally; their eps lands near the Bayes loss, roughly.",
    threads=1,
    # Nothing asserted at quick: at 400 steps the local error is 0.021-0.036 (above 0.02 at 5 of 5 seeds)
    # and every learnable eps sits on the e^0.5 bound.
    asserted_at_quick=(),
)
