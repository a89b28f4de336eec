"""Figure 1 analogue: observed vs idealized ranking accuracy after DPO, and how few mis-ranked pairs flip.

Paper: Chen et al. 2024, Table 1 / Figure 1 (observed ranking accuracy < 60% vs idealized 93-98%, the
"alignment gap") and Section 4.1 (at the lowest-validation-loss checkpoint DPO flips < 10% of the training
pairs that the reference model ranks wrongly). Here: a synthetic preference task whose preferred responses are
mostly *less* likely under the reference (pipeline.py), DPO from a small GPT reference with RMSProp at a sweep
of learning rates; each run is read at its lowest held-out DPO loss, as in the paper.

Cost: quick ~25 s (3 learning rates x 100 steps), default ~3 min (3 x 250 steps) on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Count, Fraction, Positive, Range, Scale
from common.experiment import Figure, RunContext
from common.plotting import PALETTE, new_figure, save
from papers.ranking_accuracy import config as cfgs
from papers.ranking_accuracy import pipeline
from papers.ranking_accuracy.metrics import idealized_ranking_accuracy, ranking_accuracy


@dataclass(frozen=True)
class Config(pipeline.Setup):
    lrs: tuple[Positive, ...] = (1e-5, 1e-4, 1e-3)
    steps: Count = 250
    min_gap: Annotated[float, Range(-1, 1)] = 0.15  # idealized - observed held-out accuracy, at the best lr
    max_flip_rate: Fraction = 0.10  # the paper's "< 10% of mis-ranked pairs flip"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ConfigError(f"lrs must be a non-empty tuple of positive learning rates, got {self.lrs}")
        if len(set(self.lrs)) != len(self.lrs):
            raise ConfigError(f"lrs has duplicates: {self.lrs}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


CONFIGS = {
    scale: Config(**cfgs.SETUP[scale], lrs=cfgs.LRS[scale], steps=cfgs.DPO_STEPS[scale]) for scale in Scale
}


def reference_summary(config: Config, ctx: RunContext) -> dict[str, Any]:
    ref = pipeline.reference(pipeline.setup_of(config), ctx)
    ev = ref.eval
    return {
        "ref_eval_rank_acc": ranking_accuracy(*ref.ref_eval),
        "ref_train_rank_acc": ranking_accuracy(*ref.ref_train),
        "ideal_eval": idealized_ranking_accuracy(*ref.ref_eval, ev.alpha, config.beta),
        "ideal_eval_norm": idealized_ranking_accuracy(
            *ref.ref_eval, ev.alpha, config.beta, ev.len_chosen, ev.len_rejected
        ),
        "sft_loss": ref.sft_loss,
        "reference_seconds": ref.seconds,
        "n_params": ref.model.num_parameters(),
        "alpha_values": np.unique(ev.alpha).tolist(),
        "alpha_counts": np.unique(ev.alpha, return_counts=True)[1].tolist(),
    }


def run_summary(config: Config, lr: float, ctx: RunContext) -> dict[str, Any]:
    out = pipeline.dpo_run(config, lr, config.steps, ctx)
    bins = pipeline.flip_rate_by_c(out["mis_c"], out["best_flipped"])
    return {
        "lr": lr,
        "curve": out["curve"],
        "best_step": out["best_step"],
        "best_eval_loss": out["best_eval_loss"],
        "best_eval_rank_acc": out["best_eval_rank_acc"],
        "best_flip_rate": out["best_flip_rate"],
        "final_flip_rate": float(np.mean(out["final_flipped"])),
        "n_misranked": int(len(out["mis_c"])),
        "flip_by_c": bins,
    }


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    data: dict[str, Any] = {"reference": ctx.part("reference", lambda: reference_summary(config, ctx))}
    data["runs"] = [
        ctx.part(f"dpo-lr{lr:g}-steps{config.steps}", lambda lr=lr: run_summary(config, lr, ctx))
        for lr in ctx.progress(config.lrs, desc="DPO lr sweep")
    ]
    data["beta"] = config.beta
    return data


def _at_best(run: dict[str, Any], key: str) -> float:
    """A curve's value at the run's lowest-held-out-loss checkpoint (its `best_step`)."""
    return float(run["curve"][key][run["curve"]["step"].index(run["best_step"])])


def _flip_rate_at_loss(run: dict[str, Any], loss: float) -> float:
    """The flip rate at the first evaluated step whose held-out DPO loss is <= `loss` (NaN if none)."""
    for l_value, rate in zip(run["curve"]["eval_loss"], run["curve"]["flip_rate"], strict=True):
        if l_value <= loss:
            return float(rate)
    return float("nan")


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    ref, runs = data["reference"], data["runs"]
    best = max(runs, key=lambda r: r["best_eval_rank_acc"])
    best_norm = max(_at_best(r, "eval_rank_acc_norm") for r in runs)
    lowest = min(runs, key=lambda r: r["best_eval_loss"])
    # Flips at a matched decrease of the held-out DPO loss: the first checkpoint of each run at or below the
    # loss that every run reaches (a small lr that barely trains flips little for that reason alone).
    matched_loss = max(r["best_eval_loss"] for r in runs)
    matched = ", ".join(f"lr {r['lr']:g}: {_flip_rate_at_loss(r, matched_loss):.1%}" for r in runs)
    falling = [r["flip_by_c"]["rate"][0] - r["flip_by_c"]["rate"][-1] for r in runs]
    sweep = ", ".join(
        f"lr {r['lr']:g}: {r['best_flip_rate']:.1%} (loss {r['best_eval_loss']:.4f})" for r in runs
    )
    return [
        Claim.check(
            "ranking_accuracy.gap.alignment_gap",
            f"held-out idealized accuracy (beta {config.beta:g}) minus the best observed DPO ranking "
            "accuracy over the lr sweep (each at its lowest held-out DPO loss)",
            ref["ideal_eval"] - best["best_eval_rank_acc"],
            ">=",
            config.min_gap,
            paper_value="gaps of 19-59 points (observed < 60%, idealized 93-98%)",
            details=f"idealized {ref['ideal_eval']:.3f}; observed {best['best_eval_rank_acc']:.3f} at lr "
            f"{best['lr']:g}; reference {ref['ref_eval_rank_acc']:.3f}",
        ),
        Claim.check(
            "ranking_accuracy.gap.alignment_gap_normalized",
            f"the same gap for the length-normalized accuracies: held-out idealized R-tilde* (beta "
            f"{config.beta:g}) minus the best observed length-normalized ranking accuracy over the lr sweep "
            "(each run at its lowest held-out DPO loss)",
            ref["ideal_eval_norm"] - best_norm,
            ">=",
            config.min_gap,
            paper_value="Table 1 / Fig. 1: the gap also holds for length-normalized ranking accuracy",
            details=f"idealized R-tilde* {ref['ideal_eval_norm']:.3f}; observed R-tilde at each lr's lowest "
            "loss: " + ", ".join(f"lr {r['lr']:g}: {_at_best(r, 'eval_rank_acc_norm'):.3f}" for r in runs),
        ),
        Claim.check(
            "ranking_accuracy.gap.few_flips",
            "fraction of initially mis-ranked training pairs flipped at the lowest held-out DPO loss of the "
            f"whole lr sweep (lr {lowest['lr']:g}, step {lowest['best_step']})",
            lowest["best_flip_rate"],
            "<",
            config.max_flip_rate,
            paper_value="< 10% of mis-ranked pairs flip at the lowest-validation-loss checkpoint (Sec. 4.1)",
            paper_number=0.10,
            paper_unit="fraction (upper bound)",
            paper_source="Sec. 4.1",
            details=f"at each lr's lowest held-out loss: {sweep}; at a matched held-out loss "
            f"{matched_loss:.4f} (the level every lr reaches): {matched}",
        ),
        Claim.check(
            "ranking_accuracy.gap.flips_fall_with_c",
            "in every run, flip rate in the smallest-c third minus that in the largest-c third of mis-ranked "
            "pairs (minimum over the lr sweep)",
            min(falling),
            ">",
            0.0,
            paper_value="Theorem 4.1: pairs with larger c need a smaller loss to flip",
            details="; ".join(
                f"lr {r['lr']:g}: " + "/".join(f"{v:.2f}" for v in r["flip_by_c"]["rate"]) for r in runs
            ),
        ),
    ]


def _plot_four_categories(ax: Any, run: dict[str, Any], ref_correct: float) -> None:
    """Training dynamics of the ranking (the paper's four categories, as shares of all training pairs):
    correct -> correct, flipped (incorrect -> correct), unflipped (correct -> incorrect), incorrect ->
    incorrect, over the DPO steps of one run."""
    steps = np.asarray(run["curve"]["step"])
    flip = np.asarray(run["curve"]["flip_rate"], dtype=float)  # of the initially mis-ranked
    unflip = np.asarray(run["curve"]["unflip_rate"], dtype=float)  # of the initially correct
    shares = {
        "correct -> correct": ref_correct * (1 - unflip),
        "flipped (incorrect -> correct)": (1 - ref_correct) * flip,
        "unflipped (correct -> incorrect)": ref_correct * unflip,
        "incorrect -> incorrect": (1 - ref_correct) * (1 - flip),
    }
    ax.stackplot(steps, *shares.values(), labels=list(shares), colors=PALETTE[:4], alpha=0.85)
    ax.set_xlabel("DPO step")
    ax.set_ylabel("share of training pairs")
    ax.set_ylim(0, 1)
    ax.set_title(f"ranking dynamics, lr {run['lr']:g}", fontsize=8)
    ax.legend(fontsize=6, loc="lower left")


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=4, width=3.5)
    ref, runs = data["reference"], data["runs"]
    ax = axes[0]
    for i, r in enumerate(runs):
        ax.plot(
            r["curve"]["step"],
            r["curve"]["eval_rank_acc"],
            marker="o",
            markersize=3,
            color=PALETTE[i % len(PALETTE)],
            label=f"DPO lr {r['lr']:g}",
        )
        ax.plot(
            [r["best_step"]],
            [r["best_eval_rank_acc"]],
            marker="*",
            markersize=9,
            color=PALETTE[i % len(PALETTE)],
        )
    ax.axhline(ref["ideal_eval"], color="k", linestyle="--", label=f"idealized (beta {data['beta']:g})")
    ax.axhline(ref["ref_eval_rank_acc"], color="gray", linestyle=":", label="reference model")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("DPO step")
    ax.set_ylabel("held-out ranking accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("alignment gap (star: lowest held-out loss)")
    ax.legend(loc="center left", fontsize=7)

    ax = axes[1]
    lrs = [r["lr"] for r in runs]
    ax.plot(lrs, [r["best_flip_rate"] for r in runs], marker="o", label="at lowest held-out loss")
    ax.plot(lrs, [r["final_flip_rate"] for r in runs], marker="s", label="at the last step")
    ax.axhline(0.10, color="k", linestyle="--", linewidth=1, label="paper: < 10%")
    ax.set_xscale("log")
    ax.set_xlabel("DPO learning rate (RMSProp)")
    ax.set_ylabel("flipped / initially mis-ranked")
    ax.set_ylim(0, 1)
    ax.set_title("flips of mis-ranked training pairs")
    ax.legend(fontsize=7)

    ax = axes[2]
    width = 0.8 / len(runs)
    for i, r in enumerate(runs):
        rates = r["flip_by_c"]["rate"]
        ax.bar(
            np.arange(len(rates)) + i * width,
            rates,
            width,
            color=PALETTE[i % len(PALETTE)],
            label=f"lr {r['lr']:g}",
        )
    edges = runs[0]["flip_by_c"]["edges"]
    ax.set_xticks(
        np.arange(len(edges) - 1) + 0.4 - width / 2,
        [f"c {edges[b]:.1f}-{edges[b + 1]:.1f}" for b in range(len(edges) - 1)],
        fontsize=7,
    )
    ax.set_ylabel("flip rate")
    ax.set_title("flip rate by c = log pi_ref(y_l)/pi_ref(y_w)", fontsize=8)
    ax.legend(fontsize=7)

    _plot_four_categories(axes[3], min(runs, key=lambda r: r["best_eval_loss"]), ref["ref_train_rank_acc"])
    return save(fig, out_dir, "alignment_gap")


FIGURE = Figure(
    name="fig_alignment_gap",
    title="Observed vs idealized ranking accuracy after DPO; flips of mis-ranked pairs across learning rates",
    paper_ref="Table 1, Fig. 1, Sec. 4.1",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Held-out ranking accuracy stays far below the idealized line at every lr; few mis-ranked "
    "pairs flip at the lowest held-out loss, and in every run flips concentrate at small c.",
    threads=1,  # tiny models: threads cost more than they give
    # Asserted at quick: the gap (>= 0.43 at seeds 0-4, vs 0.15). few_flips is reported, not asserted: at
    # the sweep's lowest held-out loss (lr 1e-3) DPO flips most mis-ranked pairs here (red). An earlier
    # version judged it at the smallest lr, which barely trains (a pass that said nothing).
    # flips_fall_with_c is reported: its minimum over the sweep came down to 0.015 at seed 2, one pair of a
    # third of the mis-ranked ones (the lr 1e-5 run flips a handful), no room for another CPU.
    asserted_at_quick=("ranking_accuracy.gap.alignment_gap",),
)
