"""The LLM-judge grading of CharXiv, with the judge as a pluggable callable.

The paper's numbers come from GPT-4o (gpt-4o-2024-05-13, JSON mode, temperature 0, top_p 1, seed 42) grading
every answer (official `src/evaluate.py`, `descriptive_utils.py`, `reasoning_utils.py`). What is
deterministic is reproduced exactly here:

* descriptive: responses grouped by template id (in file order), batched `nq_per_query = 5` per call; the
  prompt is DESCRIPTIVE_GRADING_PREFIX with <|NUM_TRIPLETS|>, <|OVERARCHING_QUESTION|> (the template's
  question) and <|JSON_KEYS|> (['extract_answer_T1', 'score_T1', ...]) filled in, then the template's rubric
  with its in-context example, then "T{i}:\\nResponse {i}: ...\\nGround Truth {i}: ...\\n\\n" per pair; the
  reply must be a JSON object with every key and every score in {0, 1};
* reasoning: one call per question, REASONING_GRADING_PREFIX + the answer type's rules with <|question|>
  (the query without its instruction), <|ground_truth|> and <|response|> filled in; the reply is
  {"extracted_answer", "score"};
* a reply that does not parse or verify is retried (up to `max_retries` calls in all); after that the item
  gets score -1 and "Failed to parse response", which the statistics count as invalid and as 0.

A judge is any `Callable[[str], str]`: prompt in, the model's reply text out (with an OpenAI client, a
function that calls chat.completions.create with the settings above and returns the message content; the
official code also doubles max_tokens from 256 up to 1024 when a reply is cut off, which belongs in that
function). `offline_judge` is a judge that grades with the rule-based rubrics by reading the prompt back; it
checks the plumbing without a model. The judge's drift between runs (about +-2 points, official issue #15)
is not reproducible offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from papers.charxiv.data import CharXivSplit
from papers.charxiv.grading import grade_descriptive, grade_reasoning
from papers.charxiv.prompts import (
    DESCRIPTIVE_GRADING_ICL,
    DESCRIPTIVE_GRADING_PREFIX,
    DESCRIPTIVE_GRADING_QMAP,
    REASONING_GRADING_INST,
    REASONING_GRADING_PREFIX,
    RUBRIC_OF_QID,
)

Judge = Callable[[str], str]
FAILED = "Failed to parse response"


def json_keys(n: int) -> str:
    """The key list the descriptive judge must fill, as the official code writes it (str of a list)."""
    return str([k for i in range(1, n + 1) for k in (f"extract_answer_T{i}", f"score_T{i}")])


def descriptive_grading_prompt(qid: int, batch: list[tuple[str, str]]) -> str:
    """The judge prompt for up to `nq_per_query` (response, ground truth) pairs of template `qid`."""
    if qid not in DESCRIPTIVE_GRADING_QMAP:
        raise ValueError(f"qid must be a template id in 1..19, got {qid!r}")
    if not batch:
        raise ValueError("a grading batch needs at least one (response, truth) pair")
    prefix = (
        DESCRIPTIVE_GRADING_PREFIX.replace("<|NUM_TRIPLETS|>", str(len(batch)))
        .replace("<|OVERARCHING_QUESTION|>", DESCRIPTIVE_GRADING_QMAP[qid])
        .replace("<|JSON_KEYS|>", json_keys(len(batch)))
    )
    pairs = "".join(
        f"T{i}:\nResponse {i}: {r}\nGround Truth {i}: {g}\n\n" for i, (r, g) in enumerate(batch, 1)
    )
    return prefix + DESCRIPTIVE_GRADING_ICL[RUBRIC_OF_QID[qid]] + pairs


def reasoning_grading_prompt(inst_category: int, raw_question: str, truth: str, response: str) -> str:
    """The judge prompt for one reasoning answer."""
    if inst_category not in REASONING_GRADING_INST:
        raise ValueError(f"inst_category must be 1, 2, 3 or 4, got {inst_category!r}")
    return REASONING_GRADING_PREFIX + (
        REASONING_GRADING_INST[inst_category]
        .replace("<|question|>", raw_question)
        .replace("<|ground_truth|>", truth)
        .replace("<|response|>", response)
    )


def _verify_descriptive(reply: Any, n: int) -> None:
    if not isinstance(reply, dict):
        raise ValueError("the reply is not a JSON object")
    for i in range(1, n + 1):
        if f"extract_answer_T{i}" not in reply or f"score_T{i}" not in reply:
            raise ValueError(f"the reply lacks extract_answer_T{i} or score_T{i}")
        if reply[f"score_T{i}"] not in (0, 1):
            raise ValueError(f"score_T{i} is not in [0, 1]")


def _ask(judge: Judge, prompt: str, verify: Callable[[Any], None], max_retries: int) -> Any | None:
    for _ in range(max_retries):
        try:
            reply = json.loads(judge(prompt))
            verify(reply)
            return reply
        except (ValueError, TypeError, KeyError):  # unparsable or incomplete reply: ask again
            continue
    return None


def _responses(responses: Mapping[str, Any], key: str) -> str:
    if key not in responses:
        raise KeyError(f"no response for {key!r}")
    r = responses[key]
    return str(r.get("response", "")) if isinstance(r, Mapping) else str(r)


def judge_descriptive(
    split: CharXivSplit,
    responses: Mapping[str, Any],
    judge: Judge,
    nq_per_query: int = 5,
    max_retries: int = 10,
) -> dict[str, dict[str, Any]]:
    """Scores {"{fid}_{i}": {resp_id, extracted_answer, score}} from `judge`, batched as the paper does."""
    if nq_per_query < 1 or max_retries < 1:
        raise ValueError(f"nq_per_query and max_retries must be >= 1, got {nq_per_query}, {max_retries}")
    groups: dict[int, list[tuple[str, str, str]]] = {q: [] for q in range(1, 20)}
    for fid, d in split.descriptive.items():
        for i, qid in enumerate(d["qids"]):
            key = f"{fid}_{i}"
            groups[qid].append((key, _responses(responses, key), d["answers"][i]))
    scores: dict[str, dict[str, Any]] = {}
    for qid, items in groups.items():
        for start in range(0, len(items), nq_per_query):
            batch = items[start : start + nq_per_query]
            prompt = descriptive_grading_prompt(qid, [(r, g) for _, r, g in batch])
            n = len(batch)
            reply = _ask(judge, prompt, lambda rep, n=n: _verify_descriptive(rep, n), max_retries)
            for i, (key, _, _) in enumerate(batch, 1):
                ext = FAILED if reply is None else reply[f"extract_answer_T{i}"]
                score = -1 if reply is None else reply[f"score_T{i}"]
                scores[key] = {"resp_id": key, "extracted_answer": ext, "score": score}
    return scores


def judge_reasoning(
    split: CharXivSplit, responses: Mapping[str, Any], judge: Judge, max_retries: int = 10
) -> dict[str, dict[str, Any]]:
    """Scores {"{fid}": {extracted_answer, score}} from `judge`, one call per question."""

    def verify(rep: Any) -> None:
        if not isinstance(rep, dict) or "extracted_answer" not in rep or "score" not in rep:
            raise ValueError("the reply lacks extracted_answer or score")

    scores: dict[str, dict[str, Any]] = {}
    for fid, r in split.reasoning.items():
        prompt = reasoning_grading_prompt(
            r["inst_category"], r["query"], r["answer"], _responses(responses, fid)
        )
        reply = _ask(judge, prompt, verify, max_retries)
        scores[fid] = (
            {"extracted_answer": FAILED, "score": -1}
            if reply is None
            else {"extracted_answer": reply["extracted_answer"], "score": reply["score"]}
        )
    return scores


_PAIR = re.compile(r"T(\d+):\nResponse \1: (.*?)\nGround Truth \1: (.*?)\n\n", re.DOTALL)


def offline_judge(prompt: str) -> str:
    """A judge that needs no model: it reads the template (from the overarching question) or the answer type
    (from the rules) and the pairs back out of a prompt built above and grades them with the rule-based
    rubrics. Only the part after the rubric's example is read, so the in-context examples are not graded."""
    if prompt.startswith(DESCRIPTIVE_GRADING_PREFIX.split("<|")[0]) and "Overarching Question: " in prompt:
        question = re.search(r"Overarching Question: (.*)\n", prompt).group(1)  # type: ignore[union-attr]
        qid = next(q for q, text in DESCRIPTIVE_GRADING_QMAP.items() if text == question)
        body = prompt[
            prompt.index(DESCRIPTIVE_GRADING_ICL[RUBRIC_OF_QID[qid]])
            + len(DESCRIPTIVE_GRADING_ICL[RUBRIC_OF_QID[qid]]) :
        ]
        reply: dict[str, Any] = {}
        for i, response, truth in _PAIR.findall(body):
            reply[f"extract_answer_T{i}"] = response
            reply[f"score_T{i}"] = grade_descriptive(qid, response, truth)
        return json.dumps(reply)
    for cat in (1, 2, 3, 4):
        head = REASONING_GRADING_PREFIX + REASONING_GRADING_INST[cat].split("<|question|>")[0]
        if prompt.startswith(head):
            m = re.search(
                r"### Your Turn ###\n    \* Question: (.*)\n    \* Ground Truth: (.*)\n"
                r"    \* Response: (.*)\n\n    $",
                prompt,
                re.DOTALL,
            )
            if m is None:
                break
            _, truth, response = m.groups()
            return json.dumps({"extracted_answer": response, "score": grade_reasoning(cat, response, truth)})
    return "not json"
