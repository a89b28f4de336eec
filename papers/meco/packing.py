"""The MeCo data packer: documents with a metadata prefix, packed into rows, with a loss mask.

The official repository's packing script (`datatools/mds_pack_data.py`, run with `--add_url --use_short_url
--add_metadata_prefix "URL: " --add_metadata_suffix "\\n\\n" --add_metadata_mask --strategy pack_complete`)
imports a tokenizer module and a packing module that it does not ship. This is that step, for any tokenizer
with `encode(text) -> list[int]` and a BOS and an EOS id:

* metadata string (Gao et al. 2025, Sec. 3 and the script): "url" `URL: <domain>\\n\\n` with the domain the
  URL's text after `http(s)://` and before the first `/` (`https://en.wikipedia.org/wiki/X` ->
  `en.wikipedia.org`); "hashed" the same with the domain replaced by a fixed random string per domain
  (Table 5, "hashed URLs"; here 6 SHA-256 digits); "suffix" the text after the domain's last dot (Table 5,
  "URL suffix", `org`); "topic" `Topic: <label>\\n\\n` (Sec. 5.2, model-generated topics; labels given);
  None: no metadata (standard pre-training, and MeCo's cooldown).
* unit: `[BOS] + encode(metadata) + encode(document) + [EOS]`, the metadata and the document encoded apart,
  as the script does.
* loss mask: False on BOS and on every metadata token (`mask[:1 + len(metadata)] = 0` in the script; the
  paper: "we only calculate the cross entropy loss over the document tokens"), True on the document tokens
  and EOS, False on padding. The first document token is still a target, predicted from the last metadata
  position.
* strategy "pack_complete" (the script's): units are laid end to end; when a row is full, the unit that
  overflows is cut there and its rest discarded, so every row starts at a document. A cut never falls
  inside BOS + metadata + the first document token: a unit that would be cut there moves whole to the next
  row and the rest of the row is padding. "pad": one unit per row, cut at `seq_len` (what the paper's
  per-document attention makes of a packed row, Sec. B.1).

`labels(packed)` gives next-token labels (ignore index where the next token is masked), the convention of
`common.models.gpt.GPT.forward`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

__all__ = ["METADATA", "STRATEGIES", "Packed", "pack", "labels", "metadata_string", "short_url",
           "hashed_domain", "url_suffix"]

METADATA = ("url", "hashed", "suffix", "topic", None)
STRATEGIES = ("pack_complete", "pad")
HASH_DIGITS = 6


class Packed(NamedTuple):
    """Packed rows: token ids, loss mask (True where the token is a training target), the document index
    of each position (-1 on padding), and how many metadata and how many non-padding tokens they hold."""

    ids: torch.Tensor  # (N, L) int64
    loss_mask: torch.Tensor  # (N, L) bool
    document: torch.Tensor  # (N, L) int64
    n_metadata_tokens: int
    n_tokens: int


def short_url(url: str) -> str:
    """The absolute domain: the text after `http://` or `https://` and before the first `/`."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must be a non-empty string, got {url!r}")
    domain = re.sub(r"^https?://", "", url.strip()).split("/")[0]
    if not domain:
        raise ValueError(f"url {url!r} has no domain")
    return domain


def hashed_domain(domain: str) -> str:
    """A fixed random-looking id for a domain: the SHA-256 of the domain, as HASH_DIGITS decimal digits."""
    return str(int(hashlib.sha256(domain.encode()).hexdigest(), 16) % 10**HASH_DIGITS).zfill(HASH_DIGITS)


def url_suffix(domain: str) -> str:
    """The text after the domain's last dot (`en.wikipedia.org` -> `org`)."""
    return domain.rsplit(".", 1)[-1]


def metadata_string(url: str | None, metadata: str | None, topic: str | None = None) -> str:
    """The metadata prefix of one document (module docstring); "" for metadata=None."""
    if metadata not in METADATA:
        raise ValueError(f"metadata must be one of {METADATA}, got {metadata!r}")
    if metadata is None:
        return ""
    if metadata == "topic":
        if not isinstance(topic, str) or not topic.strip():
            raise ValueError(f"metadata='topic' needs a non-empty topic label, got {topic!r}")
        return f"Topic: {topic}\n\n"
    domain = short_url(url)  # type: ignore[arg-type]
    body = {"url": domain, "hashed": hashed_domain(domain), "suffix": url_suffix(domain)}[metadata]
    return f"URL: {body}\n\n"


def _special(tokenizer: Any, name: str, given: int | None) -> int:
    if given is not None:
        return int(given)
    for attr in (f"{name}_id", f"{name}_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"tokenizer has no {name}_id or {name}_token_id; pass {name}_id=")


def pack(
    documents: Sequence[str],
    urls: Sequence[str] | None,
    tokenizer: Any,
    seq_len: int,
    metadata: str | None = "url",
    *,
    topics: Sequence[str] | None = None,
    strategy: str = "pack_complete",
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> Packed:
    """Pack `documents` (with `urls`, or `topics` for metadata="topic") into rows of `seq_len` tokens.

    Returns token ids, the loss mask (metadata tokens masked), the document index per position, and the
    counts of metadata and non-padding tokens (module docstring for the template and the strategies).
    `tokenizer` needs `encode(text) -> list[int]`, and `bos_id`/`eos_id` (or HF's `*_token_id`) unless
    given; padding uses `pad_id` (default the tokenizer's, else 0).
    """
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a sequence of strings, got {type(documents).__name__}")
    if not documents:
        raise ValueError("documents must not be empty")
    bad = [i for i, d in enumerate(documents) if not isinstance(d, str) or not d.strip()]
    if bad:
        raise ValueError(f"documents must be non-empty strings; document {bad[0]} is {documents[bad[0]]!r}")
    if metadata not in METADATA:
        raise ValueError(f"metadata must be one of {METADATA}, got {metadata!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 3:
        raise ValueError(f"seq_len must be an integer >= 3 (BOS, a token, EOS), got {seq_len!r}")
    if metadata in ("url", "hashed", "suffix"):
        if urls is None or len(urls) != len(documents):
            raise ValueError(f"metadata={metadata!r} needs one url per document: got "
                             f"{None if urls is None else len(urls)} urls for {len(documents)} documents")
    if metadata == "topic" and (topics is None or len(topics) != len(documents)):
        raise ValueError(f"metadata='topic' needs one topic per document: got "
                         f"{None if topics is None else len(topics)} topics for {len(documents)} documents")
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError("tokenizer must have an encode(text) -> list[int] method")
    bos, eos = _special(tokenizer, "bos", bos_id), _special(tokenizer, "eos", eos_id)
    pad = int(pad_id) if pad_id is not None else int(getattr(tokenizer, "pad_id", None) or 0)

    rows: list[list[int]] = []
    masks: list[list[bool]] = []
    docs: list[list[int]] = []
    n_meta = 0
    row: list[int] = []
    mrow: list[bool] = []
    drow: list[int] = []

    def flush() -> None:
        nonlocal row, mrow, drow
        if row:
            fill = seq_len - len(row)
            rows.append(row + [pad] * fill)
            masks.append(mrow + [False] * fill)
            docs.append(drow + [-1] * fill)
        row, mrow, drow = [], [], []

    for i, text in enumerate(documents):
        meta_text = metadata_string(urls[i] if urls is not None else None, metadata,
                                    topics[i] if topics is not None else None)
        meta = [int(t) for t in tokenizer.encode(meta_text)] if meta_text else []
        body = [int(t) for t in tokenizer.encode(text)]
        if not body:
            raise ValueError(f"document {i} encodes to no tokens")
        head = 1 + len(meta)  # BOS + metadata: masked
        if head + 1 > seq_len:
            raise ValueError(f"seq_len={seq_len} cannot hold BOS, the {len(meta)} metadata tokens of "
                             f"document {i} and one document token")
        unit = [bos, *meta, *body, eos]
        umask = [False] * head + [True] * (len(body) + 1)
        if strategy == "pad" or len(row) + head + 1 > seq_len:
            flush()  # the unit starts a new row (a cut may not fall inside its head)
        take = min(len(unit), seq_len - len(row))  # the rest of an overflowing unit is discarded
        row += unit[:take]
        mrow += umask[:take]
        drow += [i] * take
        n_meta += len(meta)
        if len(row) == seq_len or strategy == "pad":
            flush()
    flush()
    ids = torch.tensor(rows, dtype=torch.long)  # (N, L)
    mask = torch.tensor(masks, dtype=torch.bool)  # (N, L)
    document = torch.tensor(docs, dtype=torch.long)  # (N, L)
    return Packed(ids, mask, document, n_meta, int((document >= 0).sum()))


def labels(packed: Packed, ignore_index: int = -100) -> torch.Tensor:
    """Next-token labels (N, L): labels[:, t] = ids[:, t + 1] where loss_mask[:, t + 1], else ignore_index
    (also at the last position)."""
    out = torch.full_like(packed.ids, ignore_index)  # (N, L)
    nxt = packed.ids[:, 1:]  # (N, L - 1)
    out[:, :-1] = torch.where(packed.loss_mask[:, 1:], nxt, torch.full_like(nxt, ignore_index))
    return out
