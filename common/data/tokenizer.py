"""A byte-level tokenizer: ids 0..255 are the UTF-8 bytes of the text, special tokens come after.

Byte-level vocabularies (as in GPT-2's byte-level BPE before merges, or ByT5) need no training data and no
file, never produce an unknown token, and round-trip every string of Unicode scalar values exactly:
`decode(encode(s)) == s`. The price is length (one id per byte), which is fine for the small CPU models here.

Layout of the vocabulary::

    0 .. 255                       the byte values
    256, 257, 258                  <pad>, <bos>, <eos>
    259 .. 259 + len(extra) - 1    extra named specials, in the order given (e.g. "<mask>", "<sep>")

Special tokens never come out of `encode`: text that happens to read "<bos>" is encoded as its five bytes.
That keeps the tokenizer injective on text, so metadata strings (MeCo's URLs) can never smuggle in a control
token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

NUM_BYTES = 256
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def pad_sequences(
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    max_len: int | None = None,
    pad_to: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad integer sequences into one batch.

    Args:
        seqs: B sequences of token ids.
        pad_id: id written into padded positions.
        max_len: if given, each sequence is cut to its first `max_len` ids (right truncation).
        pad_to: if given, the batch is padded to exactly this length T, which must be at least the longest
            (truncated) sequence; otherwise T is the longest sequence.

    Returns:
        ids: LongTensor (B, T); attention_mask: BoolTensor (B, T), True on real tokens, False on padding.
    """
    if max_len is not None and max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    cut = [list(s[:max_len]) if max_len is not None else list(s) for s in seqs]
    longest = max((len(s) for s in cut), default=0)
    if pad_to is not None:
        if pad_to < longest:
            raise ValueError(
                f"pad_to={pad_to} is shorter than the longest sequence ({longest} ids); "
                "pass max_len to truncate"
            )
        width = pad_to
    else:
        width = longest
    ids = torch.full((len(cut), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(cut), width), dtype=torch.bool)  # (B, T)
    for b, s in enumerate(cut):
        if s:
            ids[b, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[b, : len(s)] = True
    return ids, mask


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255, then <pad>, <bos>, <eos>, then optional extra specials.

    Example::

        tok = ByteTokenizer(extra_specials=("<mask>",))
        tok.encode("hé", add_bos=True)      # [257, 104, 195, 169]
        tok.decode([257, 104, 195, 169])    # "hé"
        tok.vocab_size                      # 260
    """

    def __init__(self, extra_specials: Iterable[str] = ()) -> None:
        extra = tuple(extra_specials)
        names = (PAD, BOS, EOS, *extra)
        if len(set(names)) != len(names):
            raise ValueError(f"special token names must be distinct, got {names}")
        self.special_ids: dict[str, int] = {name: NUM_BYTES + i for i, name in enumerate(names)}
        self._special_names: dict[int, str] = {i: name for name, i in self.special_ids.items()}
        self.extra_specials: tuple[str, ...] = extra
        self.pad_id: int = self.special_ids[PAD]
        self.bos_id: int = self.special_ids[BOS]
        self.eos_id: int = self.special_ids[EOS]

    @property
    def vocab_size(self) -> int:
        """Number of ids: 256 bytes + 3 standard specials + the extra specials."""
        return NUM_BYTES + len(self.special_ids)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"ByteTokenizer(extra_specials={self.extra_specials!r}, vocab_size={self.vocab_size})"

    def token_id(self, name: str) -> int:
        """The id of a special token by name, e.g. `token_id("<mask>")`."""
        try:
            return self.special_ids[name]
        except KeyError:
            raise KeyError(f"unknown special token {name!r}; known: {sorted(self.special_ids)}") from None

    def is_special(self, token_id: int) -> bool:
        """True for the pad/bos/eos/extra ids, False for byte ids."""
        return token_id in self._special_names

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Encode `text` as its UTF-8 bytes, optionally wrapped in <bos> ... <eos>.

        Raises UnicodeEncodeError (a ValueError) for strings holding lone surrogates such as "\\ud800":
        they are not Unicode scalar values and have no UTF-8 encoding.
        """
        ids = list(text.encode("utf-8"))
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special: bool = True) -> str:
        """Decode ids to text; invalid UTF-8 byte runs become U+FFFD.

        With `skip_special=False` special ids are rendered by name ("<bos>"), so the output is readable but
        no longer the inverse of `encode`.
        """
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode takes a 1-D sequence of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        pieces: list[str] = []
        run = bytearray()
        for i in ids:
            i = int(i)
            if 0 <= i < NUM_BYTES:
                run.append(i)
                continue
            if i not in self._special_names:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            if not skip_special:
                pieces.append(run.decode("utf-8", errors="replace"))
                run = bytearray()
                pieces.append(self._special_names[i])
            # Skipped specials do not break the byte run: a multi-byte character split by a skipped
            # special still decodes, exactly as if the special had never been there.
        pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def batch_encode(
        self,
        texts: Sequence[str],
        max_len: int | None = None,
        pad_to: int | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and right-pad a batch with <pad>.

        `max_len` truncates each encoded sequence (after <bos>/<eos> are added, so a cut sequence loses its
        <eos>); `pad_to` fixes the width T (it must cover the longest sequence).

        Returns:
            ids: LongTensor (B, T); attention_mask: BoolTensor (B, T), True on real tokens.
        """
        if isinstance(texts, str):
            raise TypeError("batch_encode takes a sequence of strings; use encode for one string")
        seqs = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        return pad_sequences(seqs, self.pad_id, max_len=max_len, pad_to=pad_to)

    def batch_decode(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, skip_special: bool = True
    ) -> list[str]:
        """Decode a (B, T) batch; positions where `attention_mask` is False are dropped."""
        if ids.dim() != 2:
            raise ValueError(f"batch_decode takes ids of shape (B, T), got {tuple(ids.shape)}")
        out = []
        for b in range(ids.shape[0]):
            row = ids[b] if attention_mask is None else ids[b][attention_mask[b].bool()]
            out.append(self.decode(row, skip_special=skip_special))
        return out
