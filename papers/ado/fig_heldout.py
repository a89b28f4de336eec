"""Held-out loss and downstream score vs steps for ADO, the natural mixture and uniform, in a setting where
ADO wins and in a noise-heavy one where it loses (Jiang et al., ICLR 2025, main results:
ADO has the best average downstream accuracy at 124M and 1.3B on the Pile, at ~0.4% overhead).

Our analogue (papers/ado/experiment.py): five synthetic domains, a 172k-parameter GPT, the same seeds for
every method. Metrics: the uniform average of held-out loss over the four learnable domains (the paper's
"unweighted Pile" analogue), and top-1 next-token accuracy on a held-out target mixture weighted toward the
data-hungry Zipf domains (the downstream analogue). Overhead: the time ADO spends in its fits and policy as
a fraction of its training time per step (measured while other jobs shared the 2 cores).

The WIN prior (noise 0.05, an over-weighted easy domain) and the NOISE_HEAVY prior (noise 0.40) were
chosen after two earlier CPU tries of this toy had shown ADO winning with the first and losing to uniform
with the second; both are shown so that the failure mode is as visible as the win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim, bootstrap_interval
from common.configs import Range
from common.experiment import Figure, RunContext
from common.plotting import band, new_figure, save
from papers.ado.experiment import DOWNSTREAM_WEIGHTS
from papers.ado.runs import RUN_SCALES, RunsConfig, collect, downstream_score, learnable_loss

SETTINGS = ("win", "noise_heavy")
METHODS = ("ado", "natural", "uniform")


@dataclass(frozen=True)
class Config(RunsConfig):
    # ADO's learnable held-out loss minus the better baseline's, paired per seed: <= 0 ("at least matches")
    max_loss_gap: Annotated[float, Range(-1, 1)] = 0.0
    # ADO's overhead per step; 5% is where it stays cheaper than any proxy-model method (a proxy run costs
    # a full extra training run); the paper measures ~0.4% at 1.3B
    max_overhead: Annotated[float, Range(0, 1)] = 0.05


CONFIGS = {scale: Config(**kw) for scale, kw in RUN_SCALES.items()}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    runs = collect(ctx, config, SETTINGS, METHODS)
    data: dict[str, Any] = {"steps": runs["win"]["ado"][0]["curves"]["step"], "seeds": config.seeds,
                            "names": runs["win"]["ado"][0]["names"], "bayes": runs["win"]["ado"][0]["bayes"]}
    for st in SETTINGS:
        for m in METHODS:
            rs = runs[st][m]
            data[f"{st}/{m}/loss"] = np.stack([learnable_loss(r) for r in rs]).tolist()  # (S, E)
            scores = [downstream_score(r, DOWNSTREAM_WEIGHTS) for r in rs]
            data[f"{st}/{m}/downstream"] = np.stack(scores).tolist()  # (S, E)
            data[f"{st}/{m}/final_domain_loss"] = [r["curves"]["loss"][-1] for r in rs]  # (S, K)
            data[f"{st}/{m}/overlap"] = [r["overlap"] for r in rs]
            data[f"{st}/{m}/step_seconds"] = [r["step_seconds"] for r in rs]
            data[f"{st}/{m}/overhead_fraction"] = [r["overhead_fraction"] for r in rs]
            data[f"{st}/{m}/fit_seconds"] = [r["fit_seconds"] for r in rs]
            data[f"{st}/{m}/final_weights"] = [r["weights"][-1] for r in rs]
    data["held_out_sequences"] = runs["win"]["ado"][0]["held_out_sequences"]
    return data


def _final(data: dict[str, Any], key: str) -> np.ndarray:
    return np.asarray(data[key], dtype=float)[:, -1]  # (S,)


def _gap_claim(data: dict[str, Any], config: Config, st: str) -> Claim:
    ado, nat, uni = (_final(data, f"{st}/{m}/loss") for m in METHODS)
    gap = ado - np.minimum(nat, uni)  # (S,) paired by seed
    label = {"win": "WIN prior (noise 0.05, easy 0.45)", "noise_heavy": "NOISE-HEAVY prior (noise 0.40)"}[st]
    return Claim.check(
        f"ado.heldout.{st}_vs_best_baseline",
        f"{label}: ADO's final learnable held-out loss minus the better of natural and uniform (nats, "
        f"paired per seed)",
        float(gap.mean()), "<=", config.max_loss_gap,
        per_seed=gap.tolist(), interval=bootstrap_interval(gap),
        paper_value="Main results: ADO beats Natural and Balanced on SlimPajama/FineWeb validation loss",
        paper_unit="nats",
        details=f"final means: ADO {ado.mean():.4f}, natural {nat.mean():.4f}, uniform {uni.mean():.4f}; "
                f"{len(gap)} seeds (a bootstrap over so few seeds is narrower than the truth)",
    )


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = [_gap_claim(data, config, st) for st in SETTINGS]
    ado, nat, uni = (_final(data, f"win/{m}/downstream") for m in METHODS)
    gap = ado - np.maximum(nat, uni)
    out.append(Claim.check(
        "ado.downstream.win_vs_best_baseline",
        "WIN prior: ADO's final downstream score (top-1 accuracy on the target mixture) minus the better "
        "baseline's (paired per seed)",
        float(gap.mean()), ">=", 0.0, per_seed=gap.tolist(), interval=bootstrap_interval(gap),
        paper_value="Main results: ADO has the best average downstream accuracy at 124M and 1.3B",
        details=f"final means: ADO {ado.mean():.4f}, natural {nat.mean():.4f}, uniform {uni.mean():.4f}",
    ))
    overhead = np.asarray(data["win/ado/overhead_fraction"] + data["noise_heavy/ado/overhead_fraction"])
    fit_s = np.mean(data["win/ado/fit_seconds"] + data["noise_heavy/ado/fit_seconds"])
    step_ms = 1000 * np.mean(data["win/ado/step_seconds"])
    out.append(Claim.check(
        "ado.overhead_fraction",
        f"ADO's fits and policy as a fraction of its training time (refit every {config.refit_every} steps)",
        float(overhead.mean()), "<=", config.max_overhead, per_seed=overhead.tolist(),
        interval=bootstrap_interval(overhead),
        paper_value="Experiments: about 20 minutes of a 3.5-day 1.3B run (~0.4%), independent of model size",
        paper_number=0.004, paper_unit="fraction",
        paper_source="experiments (overhead, from a secondary summary)",
        details=f"{step_ms:.1f} ms per ADO step, {fit_s:.2f} s of fits per run (timings inflated by other "
                f"jobs on the 2 cores); our model is tiny, so the fixed cost of the fits weighs more",
    ))
    overlap = sum(sum(data[f"{st}/{m}/overlap"]) for st in SETTINGS for m in METHODS)
    out.append(Claim.check(
        "ado.heldout.eval_disjoint",
        f"training sequences that equal one of the {data['held_out_sequences']} held-out sequences, all runs",
        float(overlap), "<=", 0.0, kind="sanity",
    ))
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=3)
    steps = data["steps"]
    colors = {"ado": "C0", "natural": "C1", "uniform": "C2"}
    bayes = float(np.mean(data["bayes"][1:]))  # the learnable domains' mean Bayes loss
    for ax, st in zip(axes[:2], SETTINGS, strict=True):
        for m in METHODS:
            y = np.asarray(data[f"{st}/{m}/loss"])[:, 1:] - bayes  # (S, E - 1): excess over Bayes
            band(ax, steps[1:], y.mean(0), y.std(0), m, color=colors[m], marker=None)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"learnable held-out loss - {bayes:.3f} (Bayes)")
        ax.set_title({"win": "prior noise .05, easy .45", "noise_heavy": "prior noise .40"}[st])
        ax.legend(fontsize=7)
    for m in METHODS:
        y = np.asarray(data[f"win/{m}/downstream"])
        band(axes[2], steps[1:], y.mean(0)[1:], y.std(0)[1:], m, color=colors[m], marker=None)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("downstream top-1 accuracy")
    axes[2].set_title("WIN prior, downstream")
    axes[2].legend(fontsize=7)
    return save(fig, out_dir, "heldout")


FIGURE = Figure(
    name="fig_heldout",
    title="ADO vs natural vs uniform: held-out loss and downstream score over training",
    paper_ref="Main results and overhead (124M/1.3B on the Pile), synthetic analogue",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="With the WIN prior ADO ends below both baselines; with the noise-heavy prior it beats natural "
             "but not uniform.",
    threads=1,
    # Asserted at quick: the held-out overlap (0 at seeds 0-4). The overhead held at seeds 0-4 (0.031-0.036
    # vs 0.05, margin 0.014) but is a timing ratio that another CPU can move; the loss and downstream gaps
    # are not resolved at 400 steps (ADO behind by 0.02-0.05 nats at 4 of 5 seeds). Reported only.
    asserted_at_quick=("ado.heldout.eval_disjoint",),
)
