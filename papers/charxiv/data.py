"""The CharXiv data format: loading with validation, and writing (for synthetic splits).

The official release (princeton-nlp/CharXiv, `data/`; Wang et al. 2024, Sec. 3) ships, per split ("val",
"test"), JSON dicts keyed by the figure id as a string:

* `descriptive_{split}.json`: {"figure_id": int, "num_subplots": int, "subplot_loc": [0, 0] (single plot) |
  [row, col] (1-based) | "the bottom right subplot", "qids": [4 template ids in 1..19], "answers": [4
  strings]} (answers are null in the test split, whose answers are withheld);
* `reasoning_{split}.json`: {"figure_id": int, "query": str, "answer": str, "inst_category": 1..4 (TC, TG,
  NC, NG), "qa_source": 1..3 (GPT-sourced, GPT-inspired, completely human)};
* `image_metadata_{split}.json` (optional here): {"category": arXiv subject, "year": "20".."23", ...};
* images `{figure_id}.jpg` in a separate folder (from the Hugging Face dataset; `.png` is accepted too).

`load_split` checks every field and raises `CharXivFormatError` naming the file, the entry and the field,
and what was expected; it never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_json
from papers.charxiv.prompts import NA, NA_ALLOWED, SUBJECTS, YEARS

IMAGE_EXTS = (".jpg", ".png", ".jpeg")


class CharXivFormatError(ValueError):
    """A CharXiv file or entry that does not follow the format (the message names where and what)."""


@dataclass(frozen=True)
class CharXivSplit:
    """One split: descriptive and reasoning entries keyed by figure id (str), optional image metadata, and
    the folder of images (None when only the text is at hand)."""

    name: str
    descriptive: dict[str, dict[str, Any]]
    reasoning: dict[str, dict[str, Any]]
    image_metadata: dict[str, dict[str, Any]] | None = None
    image_dir: Path | None = None

    @property
    def has_answers(self) -> bool:
        """False for the official test split (answers withheld)."""
        return all(a is not None for d in self.descriptive.values() for a in d["answers"])

    def image_path(self, figure_id: str | int) -> Path:
        """The image file of a figure; raises FileNotFoundError naming the folder and the extensions tried."""
        if self.image_dir is None:
            raise FileNotFoundError(f"split {self.name!r} has no image_dir; pass image_dir to load_split")
        for ext in IMAGE_EXTS:
            path = self.image_dir / f"{figure_id}{ext}"
            if path.exists():
                return path
        raise FileNotFoundError(f"no image for figure {figure_id} in {self.image_dir} (tried {IMAGE_EXTS})")


def _fail(file: str, key: str, message: str) -> CharXivFormatError:
    return CharXivFormatError(f"{file}: entry {key!r}: {message}")


def _read_dict(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"CharXiv file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CharXivFormatError(f"{path.name}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CharXivFormatError(
            f"{path.name}: expected a JSON object keyed by figure id, got {type(data).__name__}"
        )
    if not data:
        raise CharXivFormatError(f"{path.name}: empty (no entries)")
    return data


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_figure_id(file: str, key: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise _fail(file, key, f"expected an object, got {type(entry).__name__}")
    fid = entry.get("figure_id")
    if not _is_int(fid) or fid < 0:
        raise _fail(file, key, f"'figure_id' must be a non-negative integer, got {fid!r}")
    if str(fid) != key:
        raise _fail(file, key, f"the key must equal str(figure_id) = {str(fid)!r}")


def validate_descriptive(
    entries: Mapping[str, Any], file: str = "descriptive", allow_null_answers: bool = False
) -> None:
    """Check descriptive entries (module docstring); raise CharXivFormatError at the first problem."""
    if not entries:
        raise CharXivFormatError(f"{file}: empty (no entries)")
    for key, e in entries.items():
        _check_figure_id(file, key, e)
        missing = {"num_subplots", "subplot_loc", "qids", "answers"} - set(e)
        if missing:
            raise _fail(file, key, f"missing field(s) {sorted(missing)}")
        n = e["num_subplots"]
        if not _is_int(n) or n < 1:
            raise _fail(file, key, f"'num_subplots' must be an integer >= 1, got {n!r}")
        loc = e["subplot_loc"]
        if isinstance(loc, list):
            if len(loc) != 2 or not all(_is_int(v) for v in loc):
                raise _fail(file, key, f"'subplot_loc' must be [row, col] integers, got {loc!r}")
            if loc != [0, 0] and (loc[0] < 1 or loc[1] < 1):
                raise _fail(
                    file,
                    key,
                    f"'subplot_loc' must be [0, 0] (single plot) or 1-based [row, col], got {loc!r}",
                )
        elif not (isinstance(loc, str) and loc.strip()):
            raise _fail(file, key, f"'subplot_loc' must be [row, col] or a non-empty string, got {loc!r}")
        qids, answers = e["qids"], e["answers"]
        if not isinstance(qids, list) or not qids or not all(_is_int(q) and 1 <= q <= 19 for q in qids):
            raise _fail(file, key, f"'qids' must be a non-empty list of template ids in 1..19, got {qids!r}")
        if len(set(qids)) != len(qids):
            raise _fail(file, key, f"'qids' repeats a template: {qids!r}")
        if not isinstance(answers, list) or len(answers) != len(qids):
            raise _fail(
                file, key, f"'answers' must be a list as long as 'qids' ({len(qids)}), got {answers!r}"
            )
        for q, a in zip(qids, answers, strict=True):
            if a is None and allow_null_answers:
                continue
            if not isinstance(a, str) or not a.strip():
                raise _fail(file, key, f"answer to template {q} must be a non-empty string, got {a!r}")
            if a == NA and q not in NA_ALLOWED:
                raise _fail(
                    file, key, f"template {q} never has the answer {NA!r} (only {sorted(NA_ALLOWED)} do)"
                )


def validate_reasoning(
    entries: Mapping[str, Any], file: str = "reasoning", allow_null_answers: bool = False
) -> None:
    """Check reasoning entries (module docstring); raise CharXivFormatError at the first problem."""
    if not entries:
        raise CharXivFormatError(f"{file}: empty (no entries)")
    for key, e in entries.items():
        _check_figure_id(file, key, e)
        missing = {"query", "answer", "inst_category", "qa_source"} - set(e)
        if missing:
            raise _fail(file, key, f"missing field(s) {sorted(missing)}")
        if not isinstance(e["query"], str) or not e["query"].strip():
            raise _fail(file, key, f"'query' must be a non-empty string, got {e['query']!r}")
        if not (e["answer"] is None and allow_null_answers) and not (
            isinstance(e["answer"], str) and e["answer"].strip()
        ):
            raise _fail(file, key, f"'answer' must be a non-empty string, got {e['answer']!r}")
        if e["inst_category"] not in (1, 2, 3, 4) or not _is_int(e["inst_category"]):
            raise _fail(
                file,
                key,
                f"'inst_category' must be 1 (TC), 2 (TG), 3 (NC) or 4 (NG), got {e['inst_category']!r}",
            )
        if e["qa_source"] not in (1, 2, 3) or not _is_int(e["qa_source"]):
            raise _fail(file, key, f"'qa_source' must be 1, 2 or 3, got {e['qa_source']!r}")
        if e["inst_category"] == 4 and isinstance(e["answer"], str) and e["answer"].count(".") > 1:
            raise _fail(file, key, f"a number-in-general answer has at most one '.', got {e['answer']!r}")


def validate_metadata(entries: Mapping[str, Any], file: str = "image_metadata") -> None:
    """Check the subject and year fields the statistics use."""
    for key, e in entries.items():
        if not isinstance(e, dict):
            raise _fail(file, key, f"expected an object, got {type(e).__name__}")
        if e.get("category") not in SUBJECTS:
            raise _fail(file, key, f"'category' must be one of {sorted(SUBJECTS)}, got {e.get('category')!r}")
        if e.get("year") not in YEARS:
            raise _fail(file, key, f"'year' must be one of {sorted(YEARS)}, got {e.get('year')!r}")


def load_split(
    data_dir: str | Path,
    split: str = "val",
    image_dir: str | Path | None = None,
    require_images: bool = False,
) -> CharXivSplit:
    """Load and validate `descriptive_{split}.json`, `reasoning_{split}.json` and, when present,
    `image_metadata_{split}.json` from `data_dir` (the official repository's `data/` folder).

    Every reasoning figure must have a descriptive entry (its subplot count bins the statistics), and the
    metadata, when given, must cover every figure. With `require_images`, every figure's image must exist in
    `image_dir`. Null answers are accepted only in the split named "test" (withheld answers).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} is not a folder")
    if not split or "/" in split:
        raise ValueError(f"split must be a plain name such as 'val' or 'test', got {split!r}")
    nulls = split == "test"
    d_file, r_file, m_file = (f"{k}_{split}.json" for k in ("descriptive", "reasoning", "image_metadata"))
    descriptive = _read_dict(data_dir / d_file)
    reasoning = _read_dict(data_dir / r_file)
    validate_descriptive(descriptive, d_file, allow_null_answers=nulls)
    validate_reasoning(reasoning, r_file, allow_null_answers=nulls)
    extra = sorted(set(reasoning) - set(descriptive), key=int)
    if extra:
        raise CharXivFormatError(f"{r_file}: figures {extra[:5]} have no entry in {d_file}")
    metadata = None
    if (data_dir / m_file).exists():
        metadata = _read_dict(data_dir / m_file)
        validate_metadata(metadata, m_file)
        uncovered = sorted(set(descriptive) - set(metadata), key=int)
        if uncovered:
            raise CharXivFormatError(f"{m_file}: no metadata for figures {uncovered[:5]}")
    result = CharXivSplit(
        split, descriptive, reasoning, metadata, None if image_dir is None else Path(image_dir)
    )
    if require_images:
        if image_dir is None:
            raise ValueError("require_images=True needs image_dir")
        for fid in descriptive:
            result.image_path(fid)
    return result


def write_split(out_dir: str | Path, split: CharXivSplit) -> list[Path]:
    """Write a split's JSON files in the official layout (images are written by the caller)."""
    validate_descriptive(split.descriptive)
    validate_reasoning(split.reasoning)
    out_dir = Path(out_dir)
    files = [
        atomic_write_json(out_dir / f"descriptive_{split.name}.json", split.descriptive),
        atomic_write_json(out_dir / f"reasoning_{split.name}.json", split.reasoning),
    ]
    if split.image_metadata is not None:
        files.append(atomic_write_json(out_dir / f"image_metadata_{split.name}.json", split.image_metadata))
    return files
