"""CharXiv (Wang et al. 2024): the data loader and its errors, question construction, the rule-based grader
against the hand-labelled fixture, aggregation, the judge plumbing, the chart generator's ground truth, the
baselines and the configs. The figures' quick claims are run by tests/test_quick_claims.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.configs import ConfigError, apply_overrides
from common.data.charts import (
    AxesSpec,
    ChartSpec,
    ChartStyle,
    any_intersection,
    classify_trend,
    random_chart,
    render,
    trend_curve,
)
from papers.charxiv import fig_leaderboard, fig_stress_test
from papers.charxiv.baselines import RandomModel, TextOnlyModel, answer_split
from papers.charxiv.cnn import ChartCNN, multi_head_loss
from papers.charxiv.data import CharXivFormatError, load_split, write_split
from papers.charxiv.fig_per_template import fixture_disagreements
from papers.charxiv.grading import (
    descriptive_stats,
    final_number,
    grade_descriptive,
    grade_reasoning,
    parse_layout,
    parse_number,
    reasoning_stats,
    rule_scores,
)
from papers.charxiv.judge import (
    FAILED,
    descriptive_grading_prompt,
    judge_descriptive,
    judge_reasoning,
    offline_judge,
)
from papers.charxiv.prompts import CATEGORY_OF_QID, DESCRIPTIVE_GRADING_QMAP, NA
from papers.charxiv.questions import (
    answer_type_of,
    descriptive_question,
    identify_template,
    number_instruction,
    reasoning_question,
)
from papers.charxiv.synthetic import build_split, descriptive_answers, sample_questions

# A small fixture in the official format (entries shaped like the validation set's: figure 62 uses a
# string subplot location, figure 8 a single plot; answers include "Not Applicable").
DESCRIPTIVE = {
    "0": {
        "figure_id": 0,
        "num_subplots": 2,
        "subplot_loc": [1, 2],
        "qids": [7, 13, 11, 15],
        "answers": ["60", "Ft-CNN, iCaRL*, EEIL*", "Yes", NA],
    },
    "8": {
        "figure_id": 8,
        "num_subplots": 1,
        "subplot_loc": [0, 0],
        "qids": [6, 8, 18, 10],
        "answers": ["10^1", "200000", "1 by 1", NA],
    },
    "62": {
        "figure_id": 62,
        "num_subplots": 5,
        "subplot_loc": "the bottom subplot",
        "qids": [4, 6, 5, 15],
        "answers": ["10", "0", "50", NA],
    },
}
REASONING = {
    "0": {
        "figure_id": 0,
        "query": "Which method is best at 10 classes?",
        "answer": "Ours-AL-MML",
        "inst_category": 1,
        "qa_source": 3,
    },
    "8": {
        "figure_id": 8,
        "query": "How many peaks exceed 0.5?",
        "answer": "3",
        "inst_category": 4,
        "qa_source": 1,
    },
    "62": {
        "figure_id": 62,
        "query": "What is the value at t=5?",
        "answer": "0.25",
        "inst_category": 3,
        "qa_source": 2,
    },
}
METADATA = {k: {"category": "cs", "year": "22", "figure_path": f"images/{k}.jpg"} for k in DESCRIPTIVE}


def write_fixture(folder: Path, split: str = "val", descriptive=None, reasoning=None, metadata=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"descriptive_{split}.json").write_text(json.dumps(descriptive or DESCRIPTIVE))
    (folder / f"reasoning_{split}.json").write_text(json.dumps(reasoning or REASONING))
    if metadata is not False:
        (folder / f"image_metadata_{split}.json").write_text(json.dumps(metadata or METADATA))
    return folder


def test_load_split_reads_the_official_format(tmp_path):
    split = load_split(write_fixture(tmp_path))
    assert set(split.descriptive) == {"0", "8", "62"} and split.has_answers
    assert split.image_metadata is not None and split.reasoning["8"]["inst_category"] == 4


def _mutated(key: str, field: str, value, which: str = "descriptive"):
    data = json.loads(json.dumps(DESCRIPTIVE if which == "descriptive" else REASONING))
    if value is _DELETE:
        del data[key][field]
    else:
        data[key][field] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("which", "key", "field", "value", "message"),
    [
        ("descriptive", "0", "qids", _DELETE, "missing field"),
        ("descriptive", "0", "figure_id", 5, "must equal str"),
        ("descriptive", "0", "qids", [7, 13, 11, 20], "template ids in 1..19"),
        ("descriptive", "0", "qids", [7, 7, 11, 15], "repeats a template"),
        ("descriptive", "0", "answers", ["60"], "as long as 'qids'"),
        ("descriptive", "8", "answers", ["10^1", "200000", NA, NA], "never has the answer"),
        ("descriptive", "0", "subplot_loc", [0, 3], "1-based"),
        ("descriptive", "0", "num_subplots", 0, "integer >= 1"),
        ("descriptive", "0", "answers", ["60", "", "Yes", NA], "non-empty string"),
        ("reasoning", "8", "inst_category", 5, "'inst_category' must be 1"),
        ("reasoning", "8", "qa_source", 0, "'qa_source'"),
        ("reasoning", "8", "answer", None, "'answer' must be a non-empty string"),
    ],
)
def test_load_split_names_the_malformed_field(tmp_path, which, key, field, value, message):
    data = _mutated(key, field, value, which)
    folder = write_fixture(tmp_path, **({which: data}))
    with pytest.raises(CharXivFormatError, match=message):
        load_split(folder)


def test_load_split_rejects_empty_missing_and_invalid_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_split(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="descriptive_val.json"):
        load_split(tmp_path)
    folder = write_fixture(tmp_path / "a")
    (folder / "descriptive_val.json").write_text("{}")
    with pytest.raises(CharXivFormatError, match="empty"):
        load_split(folder)
    (folder / "descriptive_val.json").write_text("[1, 2]")
    with pytest.raises(CharXivFormatError, match="JSON object"):
        load_split(folder)
    (folder / "descriptive_val.json").write_text("{not json")
    with pytest.raises(CharXivFormatError, match="not valid JSON"):
        load_split(folder)


def test_load_split_cross_file_checks(tmp_path):
    extra = {**REASONING, "99": {**REASONING["0"], "figure_id": 99}}
    with pytest.raises(CharXivFormatError, match="no entry in descriptive"):
        load_split(write_fixture(tmp_path / "a", reasoning=extra))
    bad_year = {**METADATA, "0": {"category": "cs", "year": "19"}}
    with pytest.raises(CharXivFormatError, match="'year'"):
        load_split(write_fixture(tmp_path / "b", metadata=bad_year))
    with pytest.raises(FileNotFoundError, match="no image for figure"):
        load_split(write_fixture(tmp_path / "c"), image_dir=tmp_path / "c", require_images=True)


def test_test_split_accepts_withheld_answers(tmp_path):
    d = {k: {**v, "answers": [None] * 4} for k, v in DESCRIPTIVE.items()}
    r = {k: {**v, "answer": None} for k, v in REASONING.items()}
    split = load_split(write_fixture(tmp_path, "test", d, r, metadata=False), "test")
    assert not split.has_answers
    with pytest.raises(ValueError, match="no answers"):
        rule_scores(split, {}, {})
    with pytest.raises(CharXivFormatError):  # a validation split must have answers
        load_split(write_fixture(tmp_path / "v", "val", d, r, metadata=False), "val")


# --- questions ---------------------------------------------------------------------------------------


def test_descriptive_question_prefixes():
    assert descriptive_question(1, [0, 0]).startswith("For the current plot, what is its title?")
    assert descriptive_question(10, [2, 3]).startswith(
        "For the subplot at row 2 and column 3, how many lines"
    )
    assert descriptive_question(4, "the bottom subplot").startswith(
        "For the bottom subplot, what is the leftmost"
    )
    assert descriptive_question(18, [2, 3]).startswith("What is the layout of the subplots?")
    assert descriptive_question(19, "x").startswith("What is the number of subplots?")
    with pytest.raises(ValueError, match="qid"):
        descriptive_question(20, [0, 0])
    with pytest.raises(ValueError, match="subplot_loc"):
        descriptive_question(1, "")


@pytest.mark.parametrize("loc", [[0, 0], [1, 2], "the bottom right subplot", "the left, upper subplot"])
def test_identify_template_inverts_question_building(loc):
    for qid in range(1, 20):
        assert identify_template(descriptive_question(qid, loc)) == qid
    assert identify_template("How many bars exceed 3?") is None


def test_number_instruction_and_reasoning_questions():
    assert number_instruction("42") == "* Your final answer must be an exact integer."
    assert number_instruction("0.25") == "* Your final answer must be a number with 2 decimal places."
    with pytest.raises(ValueError, match="more than one"):
        number_instruction("1.2.3")
    q4 = reasoning_question("How many?", 4, "3.5")
    assert "1 decimal places" in q4 and answer_type_of(q4) == 4
    for cat in (1, 2, 3):
        assert answer_type_of(reasoning_question("Which?", cat)) == cat
    with pytest.raises(ValueError, match="needs the ground-truth"):
        reasoning_question("How many?", 4)
    with pytest.raises(ValueError, match="inst_category"):
        reasoning_question("x", 0)


# --- grading -----------------------------------------------------------------------------------------


def test_rule_grader_matches_every_hand_labelled_case():
    bad, n = fixture_disagreements()
    assert n >= 60 and bad == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5e3", 1500),
        ("10^-2", 0.01),
        ("10^{-2}", 0.01),
        ("3 x 10^4", 3e4),
        ("\u22120.5", -0.5),
        ("45%", 45),
        ("abc", None),
    ],
)
def test_parse_number_notations(text, value):
    assert parse_number(text) == value


def test_grading_rules():
    assert final_number("The value at t=50 is 1.5e3.") == 1500
    assert grade_descriptive(10, "There is no line in this plot, not applicable.", NA) == 1
    assert grade_descriptive(10, "3", NA) == 0
    assert grade_descriptive(13, "B, A", "A, B") == 0 and grade_descriptive(13, "A, B", "A, B") == 1
    assert parse_layout("two rows and three columns") == (2, 3) and parse_layout("3 by 2") == (3, 2)
    assert grade_descriptive(18, "2 by 3", "3 by 2") == 0
    assert grade_reasoning(1, "B, A", "A, B") == 1  # any order for text-in-chart
    assert grade_reasoning(3, "1.5e3", "1500") == 1
    with pytest.raises(ValueError, match="qid"):
        grade_descriptive(0, "x", "y")
    with pytest.raises(ValueError, match="truth"):
        grade_reasoning(1, "x", "")


def test_aggregation_follows_get_stats(tmp_path):
    split = load_split(write_fixture(tmp_path))
    scores = {
        "0_0": 1,
        "0_1": 0,
        "0_2": 1,
        "0_3": -1,
        "8_0": 1,
        "8_1": 1,
        "8_2": 1,
        "8_3": 0,
        "62_0": 1,
        "62_1": 0,
        "62_2": 0,
        "62_3": 1,
    }
    stats = descriptive_stats(scores, split)
    assert stats["N_valid"] == 12 and stats["N_invalid"] == 1
    assert stats["Overall Score"] == round(100 * 7 / 12, 2)
    assert stats["By Question"]["Q15"] == 50.0  # -1 counts as 0
    assert stats["By Category"]["Pattern Recognition"] == 100.0  # Q11 and Q18
    assert stats["By Category"]["Compositionality"] == 0.0  # empty group reports 0 as get_stats does
    assert stats["By Subplot"] == {"1 Subplot": 75.0, "2-4 Subplots": 50.0, "5+ Subplots": 50.0}
    assert stats["By Subject"]["Computer Science"] == stats["Overall Score"]
    assert CATEGORY_OF_QID[8] == "Enumeration" and CATEGORY_OF_QID[17] == "Compositionality"
    r = reasoning_stats({"0": 1, "8": 0, "62": {"score": 1}}, split)
    assert r["By Answer Type"]["Text-in-Chart"] == 100.0 and r["By Answer Type"]["Number-in-General"] == 0.0
    assert r["By Source"]["GPT-Inspired"] == 100.0
    with pytest.raises(KeyError, match="no score"):
        descriptive_stats({}, split)


# --- judge -------------------------------------------------------------------------------------------


def test_descriptive_prompt_structure():
    prompt = descriptive_grading_prompt(10, [("3", "3"), ("2", NA)])
    assert "You will be given 2 pairs" in prompt
    assert "['extract_answer_T1', 'score_T1', 'extract_answer_T2', 'score_T2']" in prompt
    assert f"Overarching Question: {DESCRIPTIVE_GRADING_QMAP[10]}" in prompt
    assert prompt.endswith(
        "T1:\nResponse 1: 3\nGround Truth 1: 3\n\nT2:\nResponse 2: 2\nGround Truth 2: Not Applicable\n\n"
    )
    with pytest.raises(ValueError, match="at least one"):
        descriptive_grading_prompt(10, [])


def test_judge_batches_by_template_and_handles_failures(tmp_path):
    split = load_split(write_fixture(tmp_path))
    responses = {
        f"{fid}_{i}": {"response": a}
        for fid, d in split.descriptive.items()
        for i, a in enumerate(d["answers"])
    }
    prompts: list[str] = []

    def counting_judge(prompt: str) -> str:
        prompts.append(prompt)
        return offline_judge(prompt)

    scores = judge_descriptive(split, responses, counting_judge, nq_per_query=5)
    assert all(v["score"] == 1 for v in scores.values())
    assert len(prompts) == len({q for d in split.descriptive.values() for q in d["qids"]})  # one per template
    calls = []
    broken = judge_descriptive(split, responses, lambda p: calls.append(p) or "{bad", max_retries=3)
    assert all(v == {"resp_id": k, "extracted_answer": FAILED, "score": -1} for k, v in broken.items())
    assert len(calls) == 3 * len(prompts)
    r = judge_reasoning(split, {k: v["answer"] for k, v in split.reasoning.items()}, offline_judge)
    assert all(v["score"] == 1 for v in r.values())
    assert descriptive_stats(broken, split)["N_invalid"] == 12


# --- charts and synthetic questions ------------------------------------------------------------------


def test_trend_and_intersection_geometry():
    x = np.linspace(0, 1, 30)
    for trend in ("increases", "decreases", "increases then decreases", "decreases then increases"):
        assert classify_trend(trend_curve(trend, x)) == trend
    a = np.stack([x, x], 1)
    assert any_intersection([a, np.stack([x, 1 - x], 1)])
    assert not any_intersection([a, np.stack([x, x + 0.1], 1)])
    with pytest.raises(ValueError, match="3 finite"):
        classify_trend([1.0, 2.0])


def test_render_reads_ground_truth_from_the_figure():
    x = tuple(float(v) for v in np.linspace(0, 10, 12))
    line = AxesSpec(
        "line",
        x=x,
        series=(tuple(v for v in x), tuple(5 - v / 2 for v in x)),
        labels=("up", "down"),
        title="Demo",
        xlabel="time",
        legend=True,
        trend="",
    )
    heat = AxesSpec("heatmap", z=tuple(tuple(float(i * j) for j in range(4)) for i in range(4)))
    spec = ChartSpec(1, 2, (line, heat))
    image, truth = render(spec, ChartStyle(), 96)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    a, h = truth.axes
    assert truth.layout == "1 by 2" and a.n_lines == 2 and a.intersect is True
    assert a.legend == ["up", "down"] and a.title == "Demo" and a.xlabel == "time" and a.ylabel == ""
    assert a.xticks[0] == "0" and a.trend == "increases"  # the mean of the two lines rises
    ans = descriptive_answers(truth, 1)
    assert ans[10] == NA and ans[11] == NA and ans[14] != NA and ans[16 if 16 in ans else 14]
    assert descriptive_answers(truth, 0)[13] == "up, down" and descriptive_answers(truth, 0)[15] == NA
    image2, _ = render(spec, ChartStyle(), 96)
    assert np.array_equal(image, image2)  # deterministic
    with pytest.raises(ValueError, match="needs 2 axes"):
        ChartSpec(1, 2, (line,))
    with pytest.raises(ValueError, match="aspect"):
        ChartStyle(aspect=10)


def test_synthetic_split_round_trips_and_shares_na(tmp_path):
    rng = np.random.default_rng(0)
    truths = [render(random_chart(rng), ChartStyle(), 32)[1] for _ in range(12)]
    split = build_split("synth", truths, seed=0)
    write_split(tmp_path, split)
    loaded = load_split(tmp_path, "synth")
    assert loaded.descriptive == split.descriptive and loaded.reasoning == split.reasoning
    qids, answers = sample_questions({1: NA, 2: "x", 3: NA, 4: "y", 5: "z"}, np.random.default_rng(1), n=4)
    assert len(set(qids)) == 4 and all(
        a == {1: NA, 2: "x", 3: NA, 4: "y", 5: "z"}[q] for q, a in zip(qids, answers, strict=True)
    )
    assert (
        random_chart(np.random.default_rng(3)).content_hash
        == random_chart(np.random.default_rng(3)).content_hash
    )
    assert (
        random_chart(np.random.default_rng(3)).content_hash
        != random_chart(np.random.default_rng(4)).content_hash
    )


def test_baselines_answer_every_question(tmp_path):
    split = load_split(write_fixture(tmp_path))
    text = TextOnlyModel(split)
    rand = RandomModel(split, seed=0)
    images = {k: np.zeros((8, 8, 3), np.uint8) for k in split.descriptive}
    d, r = answer_split(text, split, images)
    assert set(d) == {f"{f}_{i}" for f in split.descriptive for i in range(4)} and set(r) == set(
        split.reasoning
    )
    assert d["0_3"]["response"] == NA  # the only training answer of template 15
    d2, _ = answer_split(rand, split, images)
    assert all(
        v["response"] in {a for dd in split.descriptive.values() for a in dd["answers"]} for v in d2.values()
    )


def test_cnn_shapes_and_masked_loss():
    model = ChartCNN(64, 8)
    logits = model(torch.zeros(3, 64, 64, 3, dtype=torch.uint8))
    assert [lg.shape for lg in logits] == [(3, 5), (3, 3), (3, 4), (3, 9), (3, 9)]
    labels = torch.tensor([[1, -100, -100, 0, 0]] * 3)
    loss = multi_head_loss(logits, labels)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="multiple of 8"):
        ChartCNN(60)


# --- configs and the leaderboard figure --------------------------------------------------------------


def test_configs_fail_fast():
    from common.configs import Scale

    cfg = fig_stress_test.CONFIGS[Scale.QUICK]
    with pytest.raises(ConfigError, match="size"):
        apply_overrides(cfg, ["size=60"])
    with pytest.raises(ConfigError, match="unknown config key"):
        apply_overrides(cfg, ["n_charts=3"])
    with pytest.raises(ConfigError, match="batch"):
        apply_overrides(cfg, ["batch=1000"])
    with pytest.raises(ConfigError, match="styles"):
        apply_overrides(cfg, ["styles=dark,neon"])


def test_leaderboard_numbers_are_consistent(tmp_path):
    from common.configs import Scale
    from common.experiment import RunContext

    cfg = fig_leaderboard.CONFIGS[Scale.QUICK]
    data = fig_leaderboard.run(cfg, RunContext(tmp_path))
    assert data["rows"]["GPT-4o (2024-05-13)"]["reasoning"] == 47.10
    assert all(c.passed for c in fig_leaderboard.claims(data, cfg))
    # a typo in a shipped number is caught: 61.62 -> 61.72 is no integer count over 99 questions
    data["count_deviation"]["GPT-4o (2024-05-13)"] = abs(61.72 * 99 / 100 - round(61.72 * 99 / 100))
    assert not fig_leaderboard.claims(data, cfg)[0].passed
