"""Per-template accuracy of the baselines on the synthetic CharXiv-format suite, end to end.

Paper: Wang et al. 2024, Sec. 4 and the main results table (accuracy per descriptive category and
reasoning answer type;
per-template numbers in the appendix), with a random baseline (19.85% descriptive, 10.80% reasoning on the
validation set). Ours runs the whole pipeline the paper's numbers go through, on synthetic charts:

1. the style-A test charts of fig_stress_test (the same shared chart set) get CharXiv questions: 4
   descriptive templates per chart with about 25% "Not Applicable" answers, and a number-in-chart or
   text-in-chart reasoning question where the chart allows (synthetic.py); the training charts get
   questions the same way, for the baselines' answer priors only;
2. the split is written in the official layout (descriptive_/reasoning_*.json + one PNG per figure),
   loaded back with validation (data.load_split), turned into questions (questions.py);
3. each model answers every (image, question) pair; answers are graded by the rule-based grader
   (grading.py) and aggregated as get_stats does.

Models: an oracle that looks the answer up (checks the plumbing: it must score 100), random, text-only
and the small CNN (its visual templates 10, 11, 16, 18, 19; text-only elsewhere); random and CNN run at
the same seeds. At 64 px the text templates (titles, labels, ticks, legends) are unreadable to the CNN, so
only the visual templates separate it from the text-only baseline.

Claims: on the visual templates the CNN beats the text-only baseline by at least 20 points (a model that
sees the chart beats blind guessing: the paper's weakest reported open model, InternVL Chat V1.5, is 38.65
points above random on descriptive questions; 20 is about half of that); the random baseline stays at or
below 30% descriptive (the paper's random row: 19.85%). Sanity: the oracle scores 100, the split survives
the write-load round trip unchanged, the offline judge (the paper's batched judge prompts, graded back by
rules) agrees with the direct rule grades, the rule grader agrees with every hand-labelled fixture case.

Cost: seconds beyond the shared chart set and CNNs of fig_stress_test (run first; alone this figure builds
them, ~50 s quick, ~5 min default on 2 shared cores).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.claims import Claim, bootstrap_interval
from common.experiment import Figure, RunContext
from common.plotting import PALETTE, new_figure, save
from papers.charxiv.baselines import CNNModel, RandomModel, TextOnlyModel, answer_split
from papers.charxiv.chartset import HEAD_QIDS, truth_from_dict
from papers.charxiv.data import load_split, write_split
from papers.charxiv.fig_stress_test import CONFIGS, Config
from papers.charxiv.grading import (
    descriptive_stats,
    grade_descriptive,
    grade_reasoning,
    reasoning_stats,
    rule_scores,
)
from papers.charxiv.judge import judge_descriptive, judge_reasoning, offline_judge
from papers.charxiv.prompts import CATEGORIES
from papers.charxiv.questions import descriptive_queries, reasoning_queries
from papers.charxiv.runs import chart_set, cnn_models
from papers.charxiv.synthetic import build_split

FIXTURE = Path(__file__).with_name("grader_fixture.json")
MODELS = ("random", "text-only", "CNN")
MIN_VISUAL_GAIN = 20.0  # points; about half the paper's InternVL-vs-random descriptive gap (58.50 - 19.85)
MAX_RANDOM = 30.0  # percent; the paper's random row scores 19.85 descriptive


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


class OracleModel:
    """Answers by looking up (image, question) in the split's ground truth: 100% if the plumbing is right."""

    def __init__(self, split, images: dict[str, np.ndarray]) -> None:
        self.table: dict[tuple[str, str], str] = {}
        for key, q in descriptive_queries(split).items():
            fid, i = key.rsplit("_", 1)
            self.table[(_digest(images[fid]), q["question"])] = split.descriptive[fid]["answers"][int(i)]
        for fid, q in reasoning_queries(split).items():
            self.table[(_digest(images[fid]), q["question"])] = split.reasoning[fid]["answer"]

    def __call__(self, image: np.ndarray, question: str) -> str:
        return self.table.get((_digest(image), question), "")


def fixture_disagreements() -> tuple[int, int]:
    """(cases where the rule grader differs from the hand label, number of cases)."""
    fx = json.loads(FIXTURE.read_text(encoding="utf-8"))
    bad = sum(
        grade_descriptive(c["qid"], c["response"], c["truth"]) != c["expected"] for c in fx["descriptive"]
    )
    bad += sum(
        grade_reasoning(c["inst_category"], c["response"], c["truth"]) != c["expected"]
        for c in fx["reasoning"]
    )
    return int(bad), len(fx["descriptive"]) + len(fx["reasoning"])


def _round_trip(split, images: np.ndarray, folder: Path):
    write_split(folder, split)
    (folder / "images").mkdir()
    for fid, image in zip(split.descriptive, images, strict=True):
        Image.fromarray(image).save(folder / "images" / f"{fid}.png")
    return load_split(folder, split.name, image_dir=folder / "images", require_images=True)


def _summary(d_stats: dict[str, Any], r_stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "descriptive": d_stats["Overall Score"],
        "reasoning": r_stats["Overall Score"],
        "by_question": d_stats["By Question"],
        "by_category": d_stats["By Category"],
        "by_answer_type": r_stats["By Answer Type"],
    }


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    charts = chart_set(ctx, config)
    train = build_split("synthtrain", [truth_from_dict(t) for t in charts["train_truths"]], seed=config.seed)
    test = build_split("synthval", [truth_from_dict(t) for t in charts["test_truths"]], seed=config.seed + 1)
    test_images = charts["test"]["A"]["images"].numpy()  # (n_test, S, S, 3)
    cnns = cnn_models(ctx, config, charts)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = _round_trip(test, test_images, Path(tmp))
        images = {
            fid: np.asarray(Image.open(loaded.image_path(fid)).convert("RGB")) for fid in loaded.descriptive
        }
        round_trip_diff = (
            int(loaded.descriptive != test.descriptive)
            + int(loaded.reasoning != test.reasoning)
            + sum(
                int(not np.array_equal(images[fid], im))
                for fid, im in zip(test.descriptive, test_images, strict=True)
            )
        )
    oracle_d, oracle_r = rule_scores(loaded, *answer_split(OracleModel(loaded, images), loaded, images))
    oracle = _summary(descriptive_stats(oracle_d, loaded), reasoning_stats(oracle_r, loaded))
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODELS}
    judge_disagreements = 0
    for s, cnn in enumerate(ctx.progress(cnns, desc="baselines")):
        text_only = TextOnlyModel(train)
        models = {
            "random": RandomModel(train, seed=config.seed + s),
            "text-only": text_only,
            "CNN": CNNModel(cnn, text_only),
        }
        for name, model in models.items():
            d_resp, r_resp = answer_split(model, loaded, images)
            d_scores, r_scores = rule_scores(loaded, d_resp, r_resp)
            results[name].append(
                _summary(descriptive_stats(d_scores, loaded), reasoning_stats(r_scores, loaded))
            )
            if s == 0 and name == "CNN":  # the paper's judge prompts, graded back offline, must agree
                jd = judge_descriptive(loaded, d_resp, offline_judge)
                jr = judge_reasoning(loaded, r_resp, offline_judge)
                judge_disagreements = sum(jd[k]["score"] != v for k, v in d_scores.items()) + sum(
                    jr[k]["score"] != v for k, v in r_scores.items()
                )
    counts = {f"Q{q}": 0 for q in range(1, 20)}
    na_share = []
    for d in loaded.descriptive.values():
        for q, a in zip(d["qids"], d["answers"], strict=True):
            counts[f"Q{q}"] += 1
            na_share.append(a == "Not Applicable")
    bad, n_cases = fixture_disagreements()
    return {
        "models": list(MODELS),
        "results": results,
        "oracle": oracle,
        "question_counts": counts,
        "na_share": float(np.mean(na_share)),
        "n_figures": len(loaded.descriptive),
        "n_reasoning": len(loaded.reasoning),
        "round_trip_differences": round_trip_diff,
        "judge_disagreements": int(judge_disagreements),
        "fixture_disagreements": bad,
        "fixture_cases": n_cases,
        "overlap": charts["overlap"],
        "seeds": list(range(config.seed, config.seed + config.seeds)),
    }


def _visual_gain(data: dict[str, Any]) -> np.ndarray:
    """Per seed: mean over the visual templates asked of CNN minus text-only accuracy (points)."""
    asked = [f"Q{q}" for q in HEAD_QIDS if data["question_counts"][f"Q{q}"] > 0]
    gains = []
    for cnn, text in zip(data["results"]["CNN"], data["results"]["text-only"], strict=True):
        gains.append(np.mean([cnn["by_question"][q] - text["by_question"][q] for q in asked]))
    return np.asarray(gains)


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    gain = _visual_gain(data)
    rand = np.asarray([r["descriptive"] for r in data["results"]["random"]])
    overall = {m: np.mean([r["descriptive"] for r in data["results"][m]]) for m in data["models"]}
    setup = (
        f"{data['n_figures']} synthetic charts ({100 * data['na_share']:.0f}% NA answers), {len(gain)} seeds"
    )
    return [
        Claim.check(
            "charxiv.suite.cnn_beats_text_only_on_visual_templates",
            f"{setup}: the small CNN beats the text-only baseline on templates 10, 11, 16, 18, 19",
            float(gain.mean()),
            ">=",
            MIN_VISUAL_GAIN,
            paper_value="main results table: models that see the chart beat the random baseline "
            "(InternVL Chat V1.5 58.50 vs random 19.85 descriptive)",
            details="descriptive overall (%): " + ", ".join(f"{m}: {v:.1f}" for m, v in overall.items()),
            per_seed=gain.tolist(),
            interval=bootstrap_interval(gain),
        ),
        Claim.check(
            "charxiv.suite.random_is_low",
            f"{setup}: the random baseline's descriptive accuracy stays low",
            float(rand.mean()),
            "<=",
            MAX_RANDOM,
            paper_value="main results table: Random (GPT-4o) 19.85% descriptive, 10.80% reasoning",
            per_seed=rand.tolist(),
            interval=bootstrap_interval(rand),
            paper_number=19.85,
            paper_unit="%",
            paper_source="main results table (validation set)",
        ),
        Claim.check(
            "charxiv.suite.oracle_scores_100",
            "an oracle answering the ground truth scores 100% on descriptive and reasoning questions through "
            "the write-load-question-grade-aggregate pipeline",
            float(min(data["oracle"]["descriptive"], data["oracle"]["reasoning"])),
            ">=",
            100.0,
            kind="sanity",
        ),
        Claim.check(
            "charxiv.suite.round_trip",
            "the split written in the official layout loads back identical (entries and PNG pixels)",
            float(data["round_trip_differences"]),
            "<=",
            0.0,
            kind="sanity",
        ),
        Claim.check(
            "charxiv.suite.offline_judge_agrees",
            "the paper's judge prompts (batches of 5 per template, JSON keys), graded back by the offline "
            "judge, give the same scores as the direct rule grades",
            float(data["judge_disagreements"]),
            "<=",
            0.0,
            kind="sanity",
        ),
        Claim.check(
            "charxiv.suite.grader_matches_fixture",
            f"the rule-based grader agrees with all {data['fixture_cases']} hand-labelled cases (rubric "
            "examples and hand-made)",
            float(data["fixture_disagreements"]),
            "<=",
            0.0,
            kind="sanity",
        ),
        Claim.check(
            "charxiv.suite.train_test_overlap",
            "the suite's test charts share no content hash or image with the training charts",
            float(data["overlap"]["content"] + data["overlap"]["image"]),
            "<=",
            0.0,
            kind="sanity",
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2, width=5.0)
    qs = [f"Q{q}" for q in range(1, 20)]
    x = np.arange(len(qs))
    w = 0.27
    for k, m in enumerate(data["models"]):
        vals = np.asarray([[r["by_question"][q] for q in qs] for r in data["results"][m]])  # (seeds, 19)
        axes[0].bar(x + (k - 1) * w, vals.mean(0), w, yerr=vals.std(0), label=m, color=PALETTE[k], capsize=1)
    axes[0].axhline(100, color="k", linestyle=":", linewidth=0.8, label="oracle")
    labels = [f"{q}\n{data['question_counts'][q]}" for q in qs]
    axes[0].set_xticks(x, labels, fontsize=5)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title("per template (number of questions below)")
    axes[0].legend(fontsize=6, ncol=2)
    groups = [*CATEGORIES, "Reasoning"]
    gx = np.arange(len(groups))
    for k, m in enumerate(data["models"]):
        vals = np.asarray(
            [[r["by_category"][c] for c in CATEGORIES] + [r["reasoning"]] for r in data["results"][m]]
        )
        axes[1].bar(gx + (k - 1) * w, vals.mean(0), w, yerr=vals.std(0), label=m, color=PALETTE[k], capsize=1)
    axes[1].set_xticks(gx, ["INEX", "ENUM", "PATT", "CNTG", "COMP", "REAS"])
    axes[1].set_ylabel("accuracy (%)")
    axes[1].set_title("per category (CharXiv's reporting groups)")
    return save(fig, out_dir, "per_template")


FIGURE = Figure(
    name="fig_per_template",
    title="Per-template accuracy of random, text-only and small-CNN baselines on the synthetic suite",
    paper_ref="main results table and appendix per-template results, analogue on synthetic charts",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Oracle 100; the CNN far above text-only on the visual templates, equal elsewhere",
    threads=1,
    # Asserted at quick: random_is_low (16.3-17.0% against 30% at seeds 0-4, margin >= 13 points) and the
    # sanity checks (exact at every seed). The CNN's gain over text-only is reported only: 36.9, 14.0 and
    # 28.3 points at seeds 0, 1, 3 against 20 (50 test charts, 400 training charts are too few at quick).
    asserted_at_quick=(
        "charxiv.suite.random_is_low",
        "charxiv.suite.oracle_scores_100",
        "charxiv.suite.round_trip",
        "charxiv.suite.offline_judge_agrees",
        "charxiv.suite.grader_matches_fixture",
        "charxiv.suite.train_test_overlap",
    ),
)
