"""ADO's mixture weights over training (Jiang et al., ICLR 2025, experiments: the learned mixtures over
time; reviewers asked for the trajectories): the noise domain falls toward the floor, the saturated easy
domain gives way to the data-hungry Zipf domains, and the sharpened-prior case (identical laws give a
policy proportional to mu^2 at s = 0.5) holds for our implementation of the policy.

Both natural priors of fig_heldout (papers/ado/experiment.py): WIN (noise 0.05) and NOISE_HEAVY (noise
0.40), where the creeping noise loss is fitted at the eps bound with a tiny alpha that the 0.05 alpha floor
inflates, and the mu^2 sharpening of a large prior keeps noise sampled.
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
from papers.ado.experiment import NOISE, WIN_PRIOR
from papers.ado.runs import RUN_SCALES, RunsConfig, collect
from papers.ado.sampler import AdoConfig, AdoSampler

SETTINGS = ("win", "noise_heavy")


@dataclass(frozen=True)
class Config(RunsConfig):
    # "near the floor": the final noise weight at most 2x the floor delta_min (our reading of the method)
    noise_floor_factor: Annotated[float, Range(1, 100)] = 2.0
    # the saturated easy domain: final weight at most half of its natural weight
    max_easy_ratio: Annotated[float, Range(0, 1)] = 0.5
    sharpened_steps: Annotated[int, Range(100, 10_000_000)] = 20_000


CONFIGS = {scale: Config(**kw) for scale, kw in RUN_SCALES.items()}


def sharpened_prior_error(prior: tuple[float, ...], steps: int) -> tuple[list[float], list[float]]:
    """The policy after `steps` steps with identical laws and expected counts (floor 0), and mu^2
    normalised."""
    mu = np.asarray(prior)
    sampler = AdoSampler(mu, 1, AdoConfig(start_step=0, floor=0.0))
    K = mu.shape[0]
    sampler.set_laws(np.full(K, 2.0), np.full(K, 5.0), np.full(K, 0.3))
    sampler.seen = 1000
    for t in range(steps):
        sampler.step_policy(t, sampler.weights)
    return sampler.weights.tolist(), (mu**2 / (mu**2).sum()).tolist()


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    runs = collect(ctx, config, SETTINGS, ("ado",))
    data: dict[str, Any] = {"names": runs["win"]["ado"][0]["names"], "floor": config.floor}
    for st in SETTINGS:
        rs = runs[st]["ado"]
        data[f"{st}/prior"] = rs[0]["prior"]
        data[f"{st}/weights"] = [r["weights"] for r in rs]  # (S, steps, K)
        data[f"{st}/rho"] = [r["rho"] for r in rs]  # (S, steps, K)
    pi, target = sharpened_prior_error(WIN_PRIOR, config.sharpened_steps)
    data["sharpened/pi"], data["sharpened/mu2"] = pi, target
    return data


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    out = []
    floor = data["floor"]
    for st in SETTINGS:
        w = np.asarray(data[f"{st}/weights"])[:, -1, :]  # (S, K) final mixture
        rho = np.asarray(data[f"{st}/rho"])[:, -1, NOISE]
        prior = data[f"{st}/prior"]
        noise = w[:, NOISE]
        out.append(Claim.check(
            f"ado.weights.{st}_noise_near_floor",
            f"{st} prior (noise mu = {prior[NOISE]:.2f}): ADO's final noise weight, in units of the floor "
            f"delta_min = {floor}",
            float(noise.mean() / floor), "<=", config.noise_floor_factor,
            per_seed=(noise / floor).tolist(), interval=bootstrap_interval(noise / floor),
            paper_value="Method: a domain with no learning potential is sampled at about delta_min",
            details=f"final weights (seed mean) {np.round(w.mean(0), 3).tolist()}; final preference rho of "
                    f"noise {np.round(rho, 4).tolist()}",
        ))
    rho = np.asarray(data["win/rho"])[:, -1, NOISE] / floor  # (S,)
    out.append(Claim.check(
        "ado.weights.win_noise_preference_at_floor",
        "WIN prior: ADO's final preference rho for noise (before the time average), in units of the floor",
        float(rho.mean()), "<=", config.noise_floor_factor, per_seed=rho.tolist(),
        interval=bootstrap_interval(rho),
        paper_value="Method: the learning potential of an unlearnable domain is ~0, so rho sits at the floor",
    ))
    w = np.asarray(data["win/weights"])[:, -1, 1]
    ratio = w / data["win/prior"][1]
    out.append(Claim.check(
        "ado.weights.win_easy_down",
        "WIN prior: ADO's final weight on the early-saturating easy domain over its natural weight 0.45",
        float(ratio.mean()), "<=", config.max_easy_ratio, per_seed=ratio.tolist(),
        interval=bootstrap_interval(ratio),
        paper_value="Method: the learning potential moves weight off domains whose loss has saturated "
                    "(identical laws would give mu^2: 0.67 for this domain)",
    ))
    err = float(np.abs(np.asarray(data["sharpened/pi"]) - np.asarray(data["sharpened/mu2"])).max())
    out.append(Claim.check(
        "ado.weights.sharpened_prior",
        f"identical laws, WIN prior: max |pi - mu^2 normalised| after {config.sharpened_steps} policy steps",
        err, "<=", 0.01, kind="sanity",
        paper_value="a property of s = 0.5 (the fixed point of rho ∝ mu h^0.5 with h -> rho is mu^2)",
        details=f"pi {np.round(data['sharpened/pi'], 4).tolist()} vs mu^2 "
                f"{np.round(data['sharpened/mu2'], 4).tolist()}",
    ))
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2)
    names = data["names"]
    for ax, st in zip(axes, SETTINGS, strict=True):
        w = np.asarray(data[f"{st}/weights"])  # (S, steps, K)
        steps = np.arange(1, w.shape[1] + 1)
        for k, name in enumerate(names):
            mean = w[:, :, k].mean(0)
            ax.plot(steps, mean, color=f"C{k}", label=f"{name} (mu {data[f'{st}/prior'][k]:.2f})")
            ax.fill_between(steps, w[:, :, k].min(0), w[:, :, k].max(0), color=f"C{k}", alpha=0.15, lw=0)
        ax.axhline(data["floor"], color="k", ls=":", lw=0.8, label="floor")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("ADO weight pi (mean, min-max)")
        ax.set_title({"win": "prior noise .05, easy .45", "noise_heavy": "prior noise .40"}[st])
        ax.legend(fontsize=6)
    return save(fig, out_dir, "weights")


FIGURE = Figure(
    name="fig_weights",
    title="ADO's mixture weights over training: noise falls to the floor (unless it dominates the prior)",
    paper_ref="learned mixtures and the method's policy (floor, s = 0.5)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="WIN prior: noise near the floor, easy well below its prior; noise-heavy prior: noise stays "
             "high.",
    threads=1,
    # Asserted at quick: the sharpened-prior sanity check only (seed-independent; error 0.0021 vs 0.01 at
    # seeds 0-4, margin 0.0079). At quick (400 steps) the noise weight is still 3.8-6.4x the floor and the
    # noise preference 1.17-1.86x (margin 0.14 of 2 over 5 seeds: too thin), so they are reported only.
    asserted_at_quick=("ado.weights.sharpened_prior",),
)
