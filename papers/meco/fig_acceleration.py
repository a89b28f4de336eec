"""Average downstream score vs training tokens, Standard vs MeCo (Gao et al. 2025, Fig. 2 / Table 16, and
the "33% less data" of Table 1: MeCo at 160B tokens matches Standard at 240B).

Both arms train on the same document stream of `common.data.web_corpus` with the same model, schedule,
seeds and token budget (counted with the metadata tokens, `papers.meco.runs`); MeCo conditions on
`URL: <domain>\\n\\n` for the first 90% of its tokens and cools down on plain documents for the last 10%.
The score is the pre-registered mean of three fact-QA evaluations without metadata (cued, bare, few-shot;
`papers.meco.runs`), evaluated along each run.

Two MeCo curves: the run's own model, evaluated without metadata every 25 steps (before 90% of the tokens
it is the conditioned model on unconditioned prompts), and, as the paper's Fig. 2 / Table 16 ("each MeCo
checkpoint includes a 16B-token cooldown"), `branches` checkpoints of the conditioning phase each given
the run's own cooldown (10% of the budget, optimizer and schedule carried on; `runs.branch_trajectory`),
plotted at conditioning plus cooldown tokens. The branched measurement was added after the in-run one's
first results were seen; both are reported. "Tokens to reach Standard's final score" is read off each
seed's curve by linear interpolation between evaluations; a seed that never reaches it counts as
`NOT_REACHED` (1.2).

Cost (2 cores shared with four other jobs, 3-5x slower than alone): quick ~40 s (2 seeds, 50k tokens,
facts not yet learned: only the sanity checks are asserted; no branches); default ~11 min (5 seeds, 300k
tokens, ~35 s a run, plus 4 cooldown branches of each MeCo run, ~1 min a seed); paper (10 seeds, 400k
tokens) not run, estimated ~30 min.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim, bootstrap_interval, over_seeds
from common.configs import Count, Index, Scale
from common.experiment import Figure, RunContext
from common.plotting import band, new_figure, save
from papers.meco.runs import EVALS, RunConfig, branch_trajectory, run_arm

NOT_REACHED = 1.2  # tokens ratio recorded for a seed whose MeCo curve never reaches Standard's final score
# Below this final score Standard has not learned the facts (chance is 1/16 = 0.0625 and preferring the
# frequent values gives ~0.12): matching it says nothing, so that seed counts as NOT_REACHED (a failure).
LEARNED = 0.25
ARMS = ("standard", "meco")


@dataclass(frozen=True)
class Config:
    """seed: the first seed; n_seeds seeds seed, seed + 1, ...; run: model, data and budget of every run."""

    seed: Index = 0
    n_seeds: Count = 5
    run: RunConfig = RunConfig()
    branches: Index = 4  # cooldown branches of each MeCo run (the paper's Fig. 2 protocol); 0: none


CONFIGS = {
    Scale.QUICK: Config(n_seeds=2, run=RunConfig(tokens=50_000, eval_every=20), branches=0),
    # seeds 10-14: the batch size (16) and the budget (300k tokens) were chosen after runs at seeds 0-4, so
    # the default scale reports seeds that played no part in those choices (README)
    Scale.DEFAULT: Config(seed=10, n_seeds=5),
    Scale.PAPER: Config(n_seeds=10, run=RunConfig(tokens=400_000)),
}


def seeds(config: Config) -> list[int]:
    return list(range(config.seed, config.seed + config.n_seeds))


def collect(config: Config, ctx: RunContext, arms: tuple[str, ...]) -> dict[str, Any]:
    """Every (arm, seed) run's metrics, one resumable part each."""
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for seed in ctx.progress(seeds(config), desc="seeds"):
        for arm in arms:
            runs[arm].append(ctx.part(f"{arm}-s{seed}", lambda a=arm, s=seed: run_arm(a, s, config.run, ctx)))
    return {"seeds": seeds(config), "runs": runs}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    data = collect(config, ctx, ARMS)
    if config.branches:
        def branched(seed: int) -> dict[str, Any]:
            return {"trajectory": branch_trajectory("meco", seed, config.run, config.branches, ctx)}

        parts = [ctx.part(f"branches-meco-s{s}", lambda s=s: branched(s)) for s in seeds(config)]
        data["branched"] = [p["trajectory"] for p in parts]
    return data


def score(point: list[float]) -> float:
    """The average downstream score of a trajectory point [tokens, cued, bare, fewshot]."""
    return float(np.mean(point[1:]))


def final_score(metrics: dict[str, Any]) -> float:
    return float(np.mean([metrics["final"][k] for k in EVALS]))


def tokens_to_reach(traj: list[list[float]], target: float, budget: float) -> float:
    """The fraction of `budget` at which the score along `traj` first reaches `target` (linear
    interpolation between evaluations), or NOT_REACHED."""
    prev_t, prev_s = 0.0, None
    for point in traj:
        t, s = point[0], score(point)
        if s >= target:
            if prev_s is None or s == prev_s:
                return t / budget
            return (prev_t + (target - prev_s) / (s - prev_s) * (t - prev_t)) / budget
        prev_t, prev_s = t, s
    return NOT_REACHED


def ratios(data: dict[str, Any]) -> list[float]:
    """Per seed: the tokens MeCo needs to reach that seed's Standard final score, over Standard's tokens."""
    out = []
    for std, meco in zip(data["runs"]["standard"], data["runs"]["meco"], strict=True):
        target = final_score(std)
        reached = tokens_to_reach(meco["trajectory"], target, std["tokens"])
        out.append(reached if target >= LEARNED else NOT_REACHED)
    return out


def ratios_branched(data: dict[str, Any]) -> list[float]:
    """Per seed: as `ratios`, with MeCo's curve made of cooldown branches (the paper's Fig. 2 protocol)."""
    out = []
    for std, traj in zip(data["runs"]["standard"], data["branched"], strict=True):
        target = final_score(std)
        reached = tokens_to_reach(traj, target, std["tokens"])
        out.append(reached if target >= LEARNED else NOT_REACHED)
    return out


def ratios_to_peak(data: dict[str, Any]) -> list[float]:
    """Per seed: the same with Standard's best score along its run as the target (reported beside the
    claim, since Standard's curve can fall late in training)."""
    out = []
    for std, meco in zip(data["runs"]["standard"], data["runs"]["meco"], strict=True):
        target = max(score(p) for p in std["trajectory"])
        reached = tokens_to_reach(meco["trajectory"], target, std["tokens"])
        out.append(reached if target >= LEARNED else NOT_REACHED)
    return out


def _grid_curves(runs: list[dict[str, Any]], which: int | None, grid: np.ndarray) -> np.ndarray:
    curves = []
    for m in runs:
        tr = np.asarray(m["trajectory"], dtype=float)  # (E, 4)
        y = tr[:, 1:].mean(1) if which is None else tr[:, which]
        curves.append(np.interp(grid, tr[:, 0], y))
    return np.asarray(curves)  # (seeds, G)


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    runs = data["runs"]
    first = max(m["trajectory"][0][0] for arm in ARMS for m in runs[arm])
    last = min(m["tokens"] for arm in ARMS for m in runs[arm])
    grid = np.linspace(first, last, 40)
    fig, axes = new_figure(ncols=4, width=3.0, height=2.6)
    titles = ["average (score)", *EVALS]
    for ax, which, title in zip(axes, [None, 1, 2, 3], titles, strict=True):
        for arm, color in zip(ARMS, ("tab:gray", "tab:blue"), strict=True):
            c = _grid_curves(runs[arm], which, grid)
            band(ax, grid / 1e3, c.mean(0), c.std(0), f"{arm} ({len(c)} seeds)", color=color, marker=None)
        if data.get("branched"):
            b = np.asarray(data["branched"], dtype=float)  # (seeds, branches + 1, 4)
            y = b[:, :, 1:].mean(2) if which is None else b[:, :, which]
            ax.errorbar(b[:, :, 0].mean(0) / 1e3, y.mean(0), yerr=y.std(0), color="tab:red", marker="s",
                        ms=3, lw=1, capsize=2, label="meco, each point after its own cooldown")
        ax.axvline(0.9 * last / 1e3, color="tab:blue", ls=":", lw=0.8)
        ax.set_xlabel("training tokens (k, metadata counted)")
        ax.set_title(title)
    axes[0].set_ylabel("fact accuracy, no metadata")
    axes[0].legend(fontsize=7)
    return save(fig, out_dir, "acceleration")


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    runs = data["runs"]
    std, meco = runs["standard"], runs["meco"]
    r = ratios(data)
    gain = [final_score(m) - final_score(s) for s, m in zip(std, meco, strict=True)]
    if data.get("branched"):
        rb = ratios_branched(data)
        out_branched = [Claim.check(
            "meco.accel.tokens_to_match_branched",
            "MeCo reaches Standard's final average score with at most 85% of the tokens, MeCo's curve "
            "measured as the paper's Fig. 2 (each point a checkpoint plus its own 10% cooldown)",
            float(np.median(rb)), "<=", 0.85,  # same bar as tokens_to_match
            "0.67 (Table 1; Fig. 2 / Table 16 use this protocol)",
            details=f"per seed {np.round(rb, 3).tolist()} ({NOT_REACHED} = not reached); branch points "
            f"(tokens, score) of seed {data['seeds'][0]}: "
            f"{[(int(p[0]), round(score(p), 3)) for p in data['branched'][0]]}. Added after the in-run "
            "measurement's first results were seen.",
            per_seed=rb, interval=bootstrap_interval(rb, np.median),
            paper_number=0.67, paper_unit="fraction of tokens", paper_source="Table 1, Fig. 2",
        )]
    else:
        out_branched = []
    out = [
        Claim.check(
            "meco.accel.tokens_to_match",
            "MeCo reaches Standard's final average score with at most 85% of Standard's training tokens "
            "(median over seeds; metadata tokens counted)",
            float(np.median(r)), "<=", 0.85,  # threshold: the acceptance bar; the paper's own saving is 33%
            "0.67: MeCo at 160B tokens matches Standard at 240B (1.6B model, Table 1)",
            details=f"per seed {np.round(r, 3).tolist()} ({NOT_REACHED} = not reached within the budget, or "
            f"Standard's final score below {LEARNED}: facts not learned); "
            f"Standard final {np.round([final_score(m) for m in std], 3).tolist()}; with Standard's best "
            f"score along its run as the target instead: per seed "
            f"{np.round(ratios_to_peak(data), 3).tolist()}",
            per_seed=r, interval=bootstrap_interval(r, np.median),
            paper_number=0.67, paper_unit="fraction of tokens", paper_source="Table 1",
        ),
        *out_branched,
        Claim.check(
            "meco.accel.final_gain",
            "At equal training tokens MeCo's average score (no metadata at evaluation) beats Standard's",
            float(np.mean(gain)), ">", 0.0,
            "+1.0 points (55.7 -> 56.7, 10-task average, 1.6B, Table 1)",
            details=f"MeCo {np.round([final_score(m) for m in meco], 3).tolist()}",
            **over_seeds(gain), paper_number=0.010, paper_unit="accuracy", paper_source="Table 1",
        ),
    ]
    for k in EVALS:
        d = [m["final"][k] - s["final"][k] for s, m in zip(std, meco, strict=True)]
        out.append(Claim.check(
            f"meco.accel.gain_{k}",
            f"MeCo beats Standard on the pre-registered '{k}' fact-QA evaluation (no metadata)",
            float(np.mean(d)), ">", 0.0,
            "per task: +5.2 OBQA, +3.3 TruthfulQA, but -1.0 CSQA, -1.6 SIQA (Table 1)",
            details=f"Standard {np.round([s['final'][k] for s in std], 3).tolist()}, "
            f"MeCo {np.round([m['final'][k] for m in meco], 3).tolist()}",
            **over_seeds(d),
        ))
    loss_gap = [m["heldout_loss"]["all"] - s["heldout_loss"]["all"] for s, m in zip(std, meco, strict=True)]
    out.append(Claim.check(
        "meco.accel.ppl_decoupled",
        "MeCo's held-out loss on plain documents is not lower than Standard's (perplexity does not track "
        "downstream accuracy)",
        float(np.mean(loss_gap)), ">=", 0.0,
        "PPL 13.3 (MeCo) vs 13.2 (Standard) at 160B (Table 1)",
        details="nats/token, MeCo - Standard", **over_seeds(loss_gap),
    ))
    overlap = sum(v for arm in ARMS for m in runs[arm] for v in m["overlap"].values())
    out.append(Claim.check(
        "meco.accel.eval_disjoint",
        "No evaluation prompt (with BOS) occurs in any training row, no cue span occurs anywhere in them, "
        "and "
        "no held-out document is a training document",
        float(overlap), "<=", 0.0, kind="sanity",
    ))
    tok_ratio = [m["tokens"] / s["tokens"] for s, m in zip(std, meco, strict=True)]
    out.append(Claim.check(
        "meco.accel.equal_compute",
        "Standard and MeCo train on the same number of tokens (metadata counted), within 2%",
        float(max(abs(t - 1) for t in tok_ratio)), "<=", 0.02, kind="sanity",
        details=f"MeCo/Standard tokens {np.round(tok_ratio, 4).tolist()}; documents seen: Standard "
        f"{[s['n_documents'] for s in std]}, MeCo {[m['n_documents'] for m in meco]}",
    ))
    return out


FIGURE = Figure(
    name="fig_acceleration",
    title="Average downstream score vs training tokens: Standard vs MeCo",
    paper_ref="Fig. 2, Table 16 (trajectory), Table 1 (33% less data)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="MeCo's curve reaches Standard's final score before the end of the budget.",
    threads=1,
    # Asserted at quick: the two sanity checks only. tests/quick_claims_over_seeds.py, seeds 0-4: overlap
    # exactly 0 at every seed (0 by construction, measured); token budgets within 0.81% (smallest margin
    # 0.0119 to the 2% bar). At 50k tokens the facts are not yet learned, so every comparison is noise.
    asserted_at_quick=("meco.accel.eval_disjoint", "meco.accel.equal_compute"),
)


