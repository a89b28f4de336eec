"""MUSE Table 3 as a figure: VerbMem on D_f, KnowMem on D_f, PrivLeak and KnowMem on D_retain for the
target, the retrained model and the eight unlearning methods (plus the official code's raw-logit NPO/KL
variants), each at the checkpoint MUSE's stopping rule selects, on the synthetic biography corpus (the
"Books" stand-in; the paper's News/Books rows are in README.md).

Cost (CPU time, one thread, measured on a heavily shared 2-core machine): quick ~35 s (small corpus,
400-step models), default ~3 min (1200-step models, ~1.5 min of it; they are shared with the other figures
through the shared-artifact cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.claims import Claim
from common.configs import ConfigError, Index, Scale
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.muse.corpus import CorpusSpec
from papers.muse.methods import GRADIENT_METHODS, METHODS, UnlearnConfig
from papers.muse.models import LMSpec
from papers.muse.pipeline import Setup, bench, overlaps

METRICS = ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")
LABELS = {
    "verbmem_f": "VerbMem on D_f (↓)",
    "knowmem_f": "KnowMem on D_f (↓)",
    "privleak": "PrivLeak (→ 0)",
    "knowmem_r": "KnowMem on D_retain (↑)",
}
# MUSE Table 3 (News), x100 / %: (VerbMem, KnowMem_f, PrivLeak, KnowMem_r)
PAPER_NEWS = {
    "target": (58.4, 63.9, -99.8, 55.2),
    "retrain": (20.8, 33.1, 0.0, 55.0),
    "GA": (0.0, 0.0, 40.4, 0.0),
    "GA_GDR": (4.9, 31.0, 108.1, 27.3),
    "GA_KLR": (27.4, 50.2, -96.1, 44.8),
    "NPO_GDR": (1.2, 54.6, 105.8, 40.5),
}
GA_METHODS = ("GA", "GA_GDR", "GA_KLR")


@dataclass(frozen=True)
class Config:
    setup: Setup
    unlearn: UnlearnConfig = UnlearnConfig()
    official_variants: tuple[str, ...] = ("NPO", "NPO_GDR", "NPO_KLR")  # also run with variant="official"
    seed: Index = 0

    def __post_init__(self) -> None:
        bad = [
            m
            for m in self.official_variants
            if m not in GRADIENT_METHODS or "NPO" not in m and "KLR" not in m
        ]
        if bad:
            raise ConfigError(f"official_variants {bad}: only NPO / KLR methods differ; valid: NPO*, GA_KLR")


CONFIGS = {
    # quick: 8 entities per fold, 0.2M-parameter GPT, 400 steps (~25 s with the models)
    Scale.QUICK: Config(
        Setup(
            CorpusSpec(n_forget=8, n_retain1=40, n_retain2=30, n_holdout=40),
            LMSpec(n_embd=64, steps=400, lr=3e-3),
        ),
        official_variants=("NPO",),
    ),
    # default: 20 entities per fold, 0.4M-parameter GPT, 1200 steps (~3 min)
    Scale.DEFAULT: Config(Setup(CorpusSpec(n_forget=20, n_retain1=80, n_retain2=60, n_holdout=60), LMSpec())),
    # paper-like sizes of the earlier CPU study (25 per fold, 400 entities, 1800 steps): ~15 min
    Scale.PAPER: Config(Setup(CorpusSpec(), LMSpec(steps=1800, block=128))),
}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    b = bench(config.setup, config.seed, ctx)
    hp = {k: getattr(config.unlearn, k) for k in ("lr", "batch", "epochs", "beta", "retain_weight", "alphas")}
    rows = {"target": b.target_metrics, "retrain": b.ref}
    selected = {}
    runs = [(m, "paper") for m in METHODS] + [(m, "official") for m in config.official_variants]
    for method, variant in ctx.progress(runs, desc="methods"):
        label = method if variant == "paper" else f"{method} (official logits)"

        def unit(method=method, variant=variant):
            r = b.run(method, variant=variant, seed=config.seed, **hp)
            return {
                "metrics": b.evaluate(r.model),
                "selected": r.selected,
                "met_rule": r.met_rule,
                "knowmem_f_path": r.knowmem_f,
            }

        out = ctx.part(f"{label}-seed{config.seed}".replace(" ", "_"), unit)
        rows[label] = out["metrics"]
        selected[label] = {k: out[k] for k in ("selected", "met_rule", "knowmem_f_path")}
    return {"rows": rows, "selected": selected, "overlaps": overlaps(b.corpus)}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    rows, sel = data["rows"], data["selected"]
    t, r = rows["target"], rows["retrain"]
    methods = list(METHODS)
    below = [m for m in methods if rows[m]["verbmem_f"] <= r["verbmem_f"]]
    far = [m for m in methods if abs(rows[m]["privleak"]) > 20]
    ga_kept = [rows[m]["knowmem_r"] / max(t["knowmem_r"], 1e-9) for m in GA_METHODS]
    table = "; ".join(f"{m}: " + "/".join(f"{rows[m][k]:.1f}" for k in METRICS) for m in rows)
    ov = data["overlaps"]
    out = [
        Claim.check(
            "muse.table3.eval_sets_disjoint",
            "forget / retain1 / retain2 / holdout entities, the KnowMem questions and the PrivLeak holdout "
            "texts are disjoint from what they must not overlap (measured count of shared items)",
            float(sum(ov.values())),
            "<=",
            0.0,
            kind="sanity",
            details=", ".join(f"{k} {v}" for k, v in ov.items()),
        ),
        Claim.check(
            "muse.table3.target_verbmem_above_retrain",
            "the target's VerbMem on D_f exceeds the retrained model's by >= 10 points (the paper's gap is "
            "37.6 on News; 'clearly above')",
            t["verbmem_f"] - r["verbmem_f"],
            ">=",
            10.0,
            paper_value="News: target 58.4 vs retrain 20.8 (Table 3)",
            paper_number=58.4 - 20.8,
            paper_unit="ROUGE-L F1 x100",
            paper_source="Table 3 (News)",
            details=f"target {t['verbmem_f']:.1f}, retrain {r['verbmem_f']:.1f}",
        ),
        Claim.check(
            "muse.table3.target_knowmem_above_retrain",
            "the target's KnowMem on D_f exceeds the retrained model's by >= 10 points (paper's gap 30.8)",
            t["knowmem_f"] - r["knowmem_f"],
            ">=",
            10.0,
            paper_value="News: target 63.9 vs retrain 33.1",
            paper_number=63.9 - 33.1,
            paper_unit="ROUGE-L F1 x100",
            paper_source="Table 3 (News)",
            details=f"target {t['knowmem_f']:.1f}, retrain {r['knowmem_f']:.1f}",
        ),
        Claim.check(
            "muse.table3.target_privleak_near_minus_100",
            "the target model's PrivLeak (MUSE's sign: negative = D_f still looks trained on) is <= -90",
            t["privleak"],
            "<=",
            -90.0,
            paper_value="News -99.8, Books -57.3",
            paper_number=-99.8,
            paper_unit="%",
            paper_source="Table 3 (News)",
            details=f"target AUC {t['auc']:.3f}, retrain AUC {r['auc']:.3f} (MUSE's News retrain: 0.477)",
        ),
        Claim.check(
            "muse.table3.most_methods_verbmem_at_retrain",
            "most of the eight methods bring VerbMem on D_f to the retrained model's level or below "
            "(fraction of methods, > 0.5)",
            len(below) / len(methods),
            ">",
            0.5,
            paper_value="News: 5 of 8 (GA, GA_GDR, NPO, NPO_GDR, WHP)",
            paper_number=5 / 8,
            paper_source="Table 3 (News)",
            details=f"at or below retrain ({r['verbmem_f']:.1f}): {', '.join(below) or 'none'}",
        ),
        Claim.check(
            "muse.table3.ga_methods_lose_utility",
            "GA-based methods (GA, GA_GDR, GA_KLR) lose most utility: their mean KnowMem on D_retain, as a "
            "fraction of the target's, is < 0.5",
            float(np.mean(ga_kept)),
            "<",
            0.5,
            paper_value="News: 0.0, 27.3, 44.8 of the target's 55.2 (mean fraction 0.44)",
            paper_number=float(np.mean([0.0, 27.3 / 55.2, 44.8 / 55.2])),
            paper_source="Table 3 (News)",
            details=", ".join(f"{m} {rows[m]['knowmem_r']:.1f}" for m in GA_METHODS)
            + f" vs target {t['knowmem_r']:.1f}; epochs selected "
            + ", ".join(
                f"{m} {sel[m]['selected']:g}{'' if sel[m]['met_rule'] else ' (rule not met)'}"
                for m in GA_METHODS
            ),
        ),
        Claim.check(
            "muse.table3.privleak_far_from_zero",
            "the privacy leak of most methods is far from 0 (fraction of the eight with |PrivLeak| > 20%)",
            len(far) / len(methods),
            ">",
            0.5,
            paper_value="News: 8 of 8 beyond +-40%",
            paper_number=1.0,
            paper_source="Table 3 (News)",
            details="PrivLeak "
            + ", ".join(f"{m} {rows[m]['privleak']:+.0f}" for m in methods)
            + f". All rows (VerbMem/KnowMem_f/PrivLeak/KnowMem_r): {table}",
        ),
    ]
    off = "NPO (official logits)"
    if off in rows:
        out.append(
            Claim.check(
                "muse.table3.official_npo_unlearns_more",
                "the official code's raw-logit NPO lowers KnowMem on D_f more than the paper's NPO formula "
                "(KnowMem_f of paper-NPO minus official-NPO, > 0)",
                rows["NPO"]["knowmem_f"] - rows[off]["knowmem_f"],
                ">",
                0.0,
                paper_value="MUSE's NPO row (0.0 / 0.0 / ~40 / 0.0) comes from the raw-logit code",
                details=f"paper NPO {rows['NPO']['knowmem_f']:.1f} (rule met: {sel['NPO']['met_rule']}), "
                f"official {rows[off]['knowmem_f']:.1f} (rule met: {sel[off]['met_rule']})",
            )
        )
    return out


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    rows = data["rows"]
    names = list(rows)
    fig, axes = new_figure(ncols=4, width=3.4, height=4.2)
    for ax, k in zip(axes, METRICS, strict=True):
        vals = [rows[n][k] for n in names]
        colors = ["#444444", "#2ca02c"] + ["#1f77b4"] * (len(names) - 2)
        ax.barh(range(len(names)), vals, color=colors)
        ax.axvline(rows["retrain"][k], color="#2ca02c", ls="--", lw=1)
        ax.set_yticks(range(len(names)), names if k == METRICS[0] else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(LABELS[k], fontsize=9)
    return save(fig, out_dir, "main_table")


FIGURE = Figure(
    name="table3_main",
    title="MUSE's four metrics for target, retrain and eight unlearning methods (Books stand-in)",
    paper_ref="Table 3, Fig. 1 (criteria C1-C4)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Target far above retrain on VerbMem/KnowMem_f; methods cut them but lose utility; PrivLeak far "
    "from 0.",
    threads=1,
    # Asserted at quick, over seeds 0-4 (tests/quick_claims_over_seeds.py, 2026-12-08): the split overlap
    # (0 at every seed, exact by construction), the target's PrivLeak (<= -90: smallest margin 9.9 points,
    # i.e. -99.9 or lower) and PrivLeak far from 0 for most methods (smallest margin 0.25: 6 of 8, one
    # method more than the 5 the threshold needs). Not asserted: target VerbMem above retrain (3/5 seeds,
    # worst margin -3.7 points) and most methods at retrain VerbMem (5/5, but at 5 of 8, no slack).
    asserted_at_quick=(
        "muse.table3.eval_sets_disjoint",
        "muse.table3.target_privleak_near_minus_100",
        "muse.table3.privleak_far_from_zero",
    ),
)
