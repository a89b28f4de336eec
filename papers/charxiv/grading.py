"""Grading: an offline rule-based grader for CharXiv answers, and the deterministic aggregation.

The paper grades every answer with GPT-4o (gpt-4o-2024-05-13) following per-template rubrics (Sec. 3.3 and
appendix; official `src/constants.py`). This module approximates those rubrics with rules, per family:

* quant (templates 8-10, 12, 14, 15, 17, 19): the response's final number equals the truth's value exactly
  (notations 1.5e3 = 1500, 10^-2 = 0.01, 1.0 = 1.00; "%" stripped);
* bool (11): the same yes/no; ocr (2-7): numbers by value, text by normalised form (case, LaTeX "$", braces,
  Greek names = letters, unicode minus); title (1): as ocr, and a letter prefix "(a) " may be dropped;
* enum (13): the same comma-separated terms in the same order;
* layout (18): the same "n by m", also written "two rows and three columns" or "2 x 3";
* trend (16): the same sequence of moves (increase / decrease / stable) through a small synonym table;
* "Not Applicable": when the truth is NA the response must say so (leniently: "there is no title" counts,
  as the authors intend), and an NA response to a non-NA truth scores 0.

Exact for quant, bool, layout and number-valued ocr; approximate (flagged in the README) where the judge uses
semantics: free-text titles and labels, the trend rubric, and text-in-general reasoning answers.

Aggregation follows `src/get_stats.py`: a score outside {0, 1} counts as invalid and as 0; percentages are
round(100 * mean, 2) overall, by template ("Q1".."Q19"), by category (score_utils.QNUM2QTYPE), by subplot
bin (1, 2-4, 5+), and by subject and year when the image metadata is given; reasoning by answer type and
source. An empty group reports 0, as the official code does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from papers.charxiv.data import CharXivSplit
from papers.charxiv.prompts import (
    ANSWER_TYPES,
    CATEGORIES,
    CATEGORY_OF_QID,
    NA,
    QA_SOURCES,
    RUBRIC_OF_QID,
    SUBJECTS,
    YEARS,
)

GREEK = {
    "α": "alpha",
    "β": "beta",
    "γ": "gamma",
    "δ": "delta",
    "ε": "epsilon",
    "η": "eta",
    "θ": "theta",
    "λ": "lambda",
    "μ": "mu",
    "ν": "nu",
    "π": "pi",
    "ρ": "rho",
    "σ": "sigma",
    "τ": "tau",
    "φ": "phi",
    "χ": "chi",
    "ψ": "psi",
    "ω": "omega",
    "Δ": "delta",
    "Σ": "sigma",
    "Ω": "omega",
}
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "single": 1,
}
_NA_PATTERNS = re.compile(
    r"not applicable|\bn/?a\b|\bnone\b|there (is|are) no\b|does not (have|contain)|doesn't (have|contain)|"
    r"\bno (explicit |visible )?(title|label|legend|colorbar|color bar|lines?|ticks?|x-axis|y-axis)\b|"
    r"not (a line plot|present|shown)|cannot be determined",
    re.IGNORECASE,
)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER = re.compile(
    rf"(?<![\d.])10\s*\^\s*\{{?(?P<e3>{_NUM})\}}?"
    rf"|(?P<m>{_NUM})\s*(?:[x×*·]\s*10\s*\^\s*\{{?(?P<e1>{_NUM})\}}?|[eE](?P<e2>[-+]?\d+))?"
)
_TREND_WORDS = (
    ("inc", r"increas\w*|ris(e|es|ing)|rose|grow\w*|goes up|go(es)? up|moves? up|upward\w*|climb\w*|\bup\b"),
    ("dec", r"decreas\w*|declin\w*|fall\w*|fell|drop\w*|goes down|moves? down|downward\w*|reduc\w*|\bdown\b"),
    (
        "flat",
        r"stabiliz\w*|stabilis\w*|constant|flat\w*|plateau\w*|stay\w*|steady|level\w* off|saturat\w*|"
        r"unchanged|stable",
    ),
)


def is_na(text: str) -> bool:
    """Whether a response expresses "Not Applicable" (lenient: "there is no title", "N/A", "none")."""
    return bool(_NA_PATTERNS.search(str(text)))


def parse_number(text: str) -> float | None:
    """The value of `text` when the whole string is one number (1.5e3, 10^-2, 3 x 10^4, -0.5, 45%), else
    None."""
    s = _clean(str(text)).replace(",", "").rstrip("%").strip()
    m = _NUMBER.fullmatch(s)
    return None if m is None else _value(m)


def final_number(text: str) -> float | None:
    """The last number written in a response (its final answer for a number question), else None."""
    s = _clean(str(text))
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # thousands separators
    found = list(_NUMBER.finditer(s))
    if found:
        return _value(found[-1])
    words = re.findall(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", s.lower())
    return float(NUMBER_WORDS[words[-1]]) if words else None


def _value(m: re.Match) -> float:
    if m.group("e3") is not None:
        return 10.0 ** float(m.group("e3"))
    mant = float(m.group("m"))
    exp = m.group("e1") or m.group("e2")
    return mant * 10.0 ** float(exp) if exp is not None else mant


def _clean(s: str) -> str:
    return s.replace("\u2212", "-").replace("−", "-").strip()


def normalize_text(s: str) -> str:
    """Case, LaTeX markup ($, braces, backslashes), Greek letters as names, unicode minus, spacing and the
    surrounding quotes and final period removed."""
    s = _clean(str(s)).lower()
    for letter, name in GREEK.items():
        s = s.replace(letter, name)
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("\\", "")
    s = re.sub(r"\\?text|\\?mathrm", "", s)
    s = re.sub(r"\s+", " ", s).strip().strip("\"'`*").rstrip(".").strip()
    return s


_LEAD = re.compile(
    r"^(?:.*?\b(?:final answer|answer)\b\s*(?:is|:)\s*"
    r"|(?:the|here)\b[^:\"]*?\b(?:is|are)\b:?\s*|[^:\"]*:\s*)",
    re.IGNORECASE,
)


def final_answer(response: str) -> str:
    """The answer part of a response: the last quoted text if any, else the text after "answer is" / "the X
    is" / "...:", without quotes or a final period. A bare answer comes back unchanged."""
    s = _clean(str(response))
    quoted = re.findall(r"\"([^\"]+)\"", s)
    if quoted:
        return quoted[-1].strip()
    if len(s.split()) > 3 or ":" in s:
        s = _LEAD.sub("", s, count=1)
    return s.strip().strip("\"'`*").rstrip(".").strip()


def _strip_letter_prefix(s: str) -> str:
    return re.sub(r"^\(?[a-z]\)\s*", "", s)


def _same_text(response: str, truth: str, title: bool = False) -> bool:
    a, b = normalize_text(final_answer(response)), normalize_text(truth)
    if title:
        a, b = _strip_letter_prefix(a), _strip_letter_prefix(b)
    return a == b and a != ""


def _same_number(response: str, truth: str) -> bool:
    t, r = parse_number(truth), final_number(response)
    return t is not None and r is not None and math.isclose(r, t, rel_tol=1e-9, abs_tol=1e-12)


def parse_layout(text: str) -> tuple[int, int] | None:
    """(rows, cols) from "2 by 3", "2x3", "2 × 3" or "two rows and three columns", else None."""
    s = normalize_text(text)
    word = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
    m = re.search(word + r"\s*(?:by|x|×|\*)\s*" + word, s)
    if m is None:
        m = re.search(word + r"\s*rows?\b.*?" + word + r"\s*col(?:umn)?s?\b", s)
    if m is None:
        return None
    return tuple(int(v) if v.isdigit() else NUMBER_WORDS[v] for v in m.groups())  # type: ignore[return-value]


def trend_moves(text: str) -> tuple[str, ...]:
    """The sequence of moves a trend phrase names, e.g. "increases then stabilizes" -> ("inc", "flat")."""
    s = normalize_text(text)
    hits = []
    for name, pattern in _TREND_WORDS:
        hits += [(m.start(), name) for m in re.finditer(pattern, s)]
    moves: list[str] = []
    for _, name in sorted(hits):
        if not moves or moves[-1] != name:
            moves.append(name)
    return tuple(moves)


def _terms(text: str) -> list[str]:
    return [normalize_text(t) for t in final_answer(text).split(",") if t.strip()]


def grade_descriptive(qid: int, response: str, truth: str) -> int:
    """1 if `response` answers template `qid` with ground truth `truth` under the rule-based rubric, else
    0."""
    if qid not in RUBRIC_OF_QID:
        raise ValueError(f"qid must be a template id in 1..19, got {qid!r}")
    if not isinstance(truth, str) or not truth:
        raise ValueError(f"truth must be a non-empty string, got {truth!r}")
    response = "" if response is None else str(response)
    if not response.strip():
        return 0
    rubric = RUBRIC_OF_QID[qid]
    if rubric == "bool":
        m = re.match(r"\W*(yes|no)\b", response.strip(), re.IGNORECASE)
        if m is not None and truth != NA:
            return int(m.group(1).lower() == truth.strip().lower())
        return int(truth == NA and is_na(response)) if truth == NA else 0
    if truth == NA:
        return int(is_na(response))
    if is_na(final_answer(response)):
        return 0
    if rubric == "quant":
        return int(_same_number(response, truth))
    if rubric in ("ocr", "title"):
        if parse_number(truth) is not None:
            return int(_same_number(final_answer(response), truth))
        return int(_same_text(response, truth, title=rubric == "title"))
    if rubric == "enum":
        return int(_terms(response) == _terms(truth))
    if rubric == "layout":
        got = parse_layout(response)
        return int(got is not None and got == parse_layout(truth))
    moves = trend_moves(final_answer(response)) or trend_moves(response)
    return int(bool(moves) and moves == trend_moves(truth))


def grade_reasoning(inst_category: int, response: str, truth: str) -> int:
    """Rule-based reasoning grade: TC same terms in any order; TG same normalised text (or the same trend
    moves); NC and NG the same number by value."""
    if inst_category not in ANSWER_TYPES:
        raise ValueError(f"inst_category must be 1, 2, 3 or 4, got {inst_category!r}")
    if not isinstance(truth, str) or not truth:
        raise ValueError(f"truth must be a non-empty string, got {truth!r}")
    response = "" if response is None else str(response)
    if not response.strip():
        return 0
    if inst_category in (3, 4):
        return int(_same_number(response, truth))
    if inst_category == 1:
        got, want = _terms(response), _terms(truth)
        return int(bool(want) and sorted(got) == sorted(want))
    if _same_text(response, truth):
        return 1
    moves = trend_moves(truth)
    return int(bool(moves) and trend_moves(response) == moves)


def _subplot_bin(n: int) -> str:
    if n == 1:
        return "1 Subplot"
    if 2 <= n <= 4:
        return "2-4 Subplots"
    if n >= 5:
        return "5+ Subplots"
    raise ValueError(f"num_subplots must be >= 1, got {n}")


def _finish(groups: dict[str, Any], n_valid: int, n_invalid: int) -> dict[str, Any]:
    def pct(v: list[float]) -> float:
        return round(100 * sum(v) / len(v), 2) if v else 0.0

    out: dict[str, Any] = {}
    for k, v in groups.items():
        out[k] = {k1: pct(v1) for k1, v1 in v.items()} if isinstance(v, dict) else pct(v)
    out["N_valid"], out["N_invalid"] = n_valid, n_invalid
    return out


def _score(scores: Mapping[str, Any], key: str) -> tuple[float, bool]:
    if key not in scores:
        raise KeyError(f"no score for {key!r}")
    s = scores[key]["score"] if isinstance(scores[key], Mapping) else scores[key]
    return (float(s), True) if s in (0, 1) else (0.0, False)


def descriptive_stats(scores: Mapping[str, Any], split: CharXivSplit) -> dict[str, Any]:
    """get_stats for descriptive scores keyed "{figure_id}_{i}" (an int or {"score": int})."""
    groups: dict[str, Any] = {
        "Overall Score": [],
        "By Question": {f"Q{q}": [] for q in range(1, 20)},
        "By Category": {c: [] for c in CATEGORIES},
        "By Subplot": {b: [] for b in ("1 Subplot", "2-4 Subplots", "5+ Subplots")},
    }
    if split.image_metadata is not None:
        groups["By Subject"] = {v: [] for v in SUBJECTS.values()}
        groups["By Year"] = {v: [] for v in YEARS.values()}
    n_valid = n_invalid = 0
    for fid, d in split.descriptive.items():
        for i, qid in enumerate(d["qids"]):
            s, ok = _score(scores, f"{fid}_{i}")
            n_invalid += not ok
            n_valid += 1
            groups["Overall Score"].append(s)
            groups["By Question"][f"Q{qid}"].append(s)
            groups["By Category"][CATEGORY_OF_QID[qid]].append(s)
            groups["By Subplot"][_subplot_bin(d["num_subplots"])].append(s)
            if split.image_metadata is not None:
                meta = split.image_metadata[fid]
                groups["By Subject"][SUBJECTS[meta["category"]]].append(s)
                groups["By Year"][YEARS[meta["year"]]].append(s)
    return _finish(groups, n_valid, n_invalid)


def reasoning_stats(scores: Mapping[str, Any], split: CharXivSplit) -> dict[str, Any]:
    """get_stats for reasoning scores keyed "{figure_id}"."""
    groups: dict[str, Any] = {
        "Overall Score": [],
        "By Answer Type": {v: [] for v in ANSWER_TYPES.values()},
        "By Source": {v: [] for v in QA_SOURCES.values()},
        "By Subplot": {b: [] for b in ("1 Subplot", "2-4 Subplots", "5+ Subplots")},
    }
    n_valid = n_invalid = 0
    for fid, r in split.reasoning.items():
        s, ok = _score(scores, fid)
        n_invalid += not ok
        n_valid += 1
        groups["Overall Score"].append(s)
        groups["By Answer Type"][ANSWER_TYPES[r["inst_category"]]].append(s)
        groups["By Source"][QA_SOURCES[r["qa_source"]]].append(s)
        groups["By Subplot"][_subplot_bin(split.descriptive[fid]["num_subplots"])].append(s)
    return _finish(groups, n_valid, n_invalid)


def rule_scores(
    split: CharXivSplit, descriptive_responses: Mapping[str, Any], reasoning_responses: Mapping[str, Any]
) -> tuple[dict[str, int], dict[str, int]]:
    """Rule-based scores of responses keyed as the official generation files are ("{fid}_{i}" and "{fid}",
    each a string or {"response": str}); a missing response scores 0."""

    def text(responses: Mapping[str, Any], key: str) -> str:
        r = responses.get(key, "")
        return r.get("response", "") if isinstance(r, Mapping) else str(r)

    if not split.has_answers:
        raise ValueError(f"split {split.name!r} has no answers (the official test split withholds them)")
    d_scores = {
        f"{fid}_{i}": grade_descriptive(q, text(descriptive_responses, f"{fid}_{i}"), d["answers"][i])
        for fid, d in split.descriptive.items()
        for i, q in enumerate(d["qids"])
    }
    r_scores = {
        fid: grade_reasoning(r["inst_category"], text(reasoning_responses, fid), r["answer"])
        for fid, r in split.reasoning.items()
    }
    return d_scores, r_scores
