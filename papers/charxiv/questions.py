"""Question construction as CharXiv does it (official `src/descriptive_utils.py`, `src/reasoning_utils.py`).

Descriptive: the template's instruction (prompts.DESCRIPTIVE_RESP_INST) with a subplot prefix, "For the
current plot, " (subplot_loc [0, 0]), "For the subplot at row r and column c, " ([r, c]) or "For {loc}, "
(a string); templates 18 and 19 ask about the whole figure and take no prefix. Responses are keyed
"{figure_id}_{i}" for the i-th of a figure's questions.

Reasoning: the query followed by the answer type's instruction; number-in-general (4) states the answer's
form from the ground-truth string (`number_instruction`): no "." gives an exact integer, k digits after the
"." give k decimal places.
"""

from __future__ import annotations

import re
from typing import Any

from papers.charxiv.data import CharXivSplit
from papers.charxiv.prompts import DESCRIPTIVE_RESP_INST, REASONING_RESP_INST


def subplot_prefix(subplot_loc: list[int] | str) -> str:
    """The descriptive question's prefix for a subplot location."""
    if isinstance(subplot_loc, list | tuple):
        if len(subplot_loc) != 2:
            raise ValueError(f"subplot_loc must be [row, col] or a string, got {subplot_loc!r}")
        if subplot_loc[0] == 0:
            return "For the current plot, "
        return f"For the subplot at row {subplot_loc[0]} and column {subplot_loc[1]}, "
    if isinstance(subplot_loc, str) and subplot_loc.strip():
        return f"For {subplot_loc}, "
    raise ValueError(f"subplot_loc must be [row, col] or a non-empty string, got {subplot_loc!r}")


def descriptive_question(qid: int, subplot_loc: list[int] | str) -> str:
    """The full question of template `qid` (1..19) for the subplot at `subplot_loc`."""
    if qid not in DESCRIPTIVE_RESP_INST:
        raise ValueError(f"qid must be a template id in 1..19, got {qid!r}")
    if qid in (18, 19):
        return DESCRIPTIVE_RESP_INST[qid]
    return DESCRIPTIVE_RESP_INST[qid].format(subplot_prefix(subplot_loc))


def number_instruction(answer: str) -> str:
    """The number-in-general instruction derived from the ground-truth string (get_number_instruction)."""
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"answer must be a non-empty string, got {answer!r}")
    parts = answer.split(".")
    if len(parts) == 1:
        return "* Your final answer must be an exact integer."
    if len(parts) == 2:
        return f"* Your final answer must be a number with {len(parts[1])} decimal places."
    raise ValueError(f"answer {answer!r} has more than one '.'")


def reasoning_question(query: str, inst_category: int, answer: str | None = None) -> str:
    """The query with its answer type's instruction; type 4 needs the ground-truth `answer`."""
    if inst_category in (1, 2, 3):
        return REASONING_RESP_INST[inst_category].format(query)
    if inst_category == 4:
        if answer is None:
            raise ValueError(
                "a number-in-general (4) question needs the ground-truth answer for its instruction"
            )
        return REASONING_RESP_INST[4].format(query, number_instruction(answer))
    raise ValueError(f"inst_category must be 1, 2, 3 or 4, got {inst_category!r}")


def descriptive_queries(split: CharXivSplit) -> dict[str, dict[str, Any]]:
    """{"{figure_id}_{i}": {figure_id, subq_idx, qid, question}} for every descriptive question."""
    out: dict[str, dict[str, Any]] = {}
    for d in split.descriptive.values():
        for i, qid in enumerate(d["qids"]):
            out[f"{d['figure_id']}_{i}"] = {
                "figure_id": d["figure_id"],
                "subq_idx": i,
                "qid": qid,
                "question": descriptive_question(qid, d["subplot_loc"]),
            }
    return out


def reasoning_queries(split: CharXivSplit) -> dict[str, dict[str, Any]]:
    """{"{figure_id}": {figure_id, inst_category, raw_question, question}} for every reasoning question."""
    out: dict[str, dict[str, Any]] = {}
    for r in split.reasoning.values():
        out[str(r["figure_id"])] = {
            "figure_id": r["figure_id"],
            "inst_category": r["inst_category"],
            "raw_question": r["query"],
            "question": reasoning_question(r["query"], r["inst_category"], r["answer"]),
        }
    return out


# Each template's question body after the prefix (its first line), used to recognise a template.
_TEMPLATE_HEADS = {qid: text.split("\n")[0].replace("{}", "") for qid, text in DESCRIPTIVE_RESP_INST.items()}
_PREFIX = re.compile(r"^(For the current plot, |For the subplot at row \d+ and column \d+, |For .+?, )")


def identify_template(question: str) -> int | None:
    """The template id of a descriptive question written by `descriptive_question`, else None (a reasoning
    question, or a paraphrase). Template-trained models use it to pick their answer head."""
    head = question.split("\n")[0]
    for qid in (18, 19):
        if head == _TEMPLATE_HEADS[qid]:
            return qid
    match = _PREFIX.match(head)
    if match is None:
        return None
    body = head[match.end() :]
    for qid, text in _TEMPLATE_HEADS.items():
        if body == text:
            return qid
    # "For {loc}, " is greedy-ambiguous when loc has commas: try every split point
    for qid, text in _TEMPLATE_HEADS.items():
        if head.endswith(text) and head.startswith("For "):
            return qid
    return None


def answer_type_of(question: str) -> int | None:
    """The reasoning answer type (1..4) whose instruction ends `question`, else None."""
    for cat in (1, 2, 3):
        tail = REASONING_RESP_INST[cat].split("{}")[1]
        if question.endswith(tail):
            return cat
    if re.search(
        r"\* Your final answer must be (an exact integer|a number with \d+ decimal places)\.", question
    ):
        return 4
    return None
