"""The synthetic instruction pool and target task (all seeded; nothing is downloaded).

Each example is a prompt and a response in plain bytes (`common.data.tokenizer.ByteTokenizer`), e.g.

    add 7 8=    51       one-digit addition, the sum written least-significant digit first (15 -> "51")
    add 7 8=    5        family "bad": the same prompts (carry problems only), the carry dropped
    sub 47 38=  90       subtraction (a >= b), least-significant digit first (09 -> "90")
    rev kqzt=   tzqk     reverse a string
    cpy kqzt=   kqzt     copy a string
    srt 3142=   1234     sort digits
    max 3142=   4        largest digit
    cnt abab a= 2        count a letter

The target task is one-digit addition (`add`) with two subtasks, as LESS's targets have several (MMLU's 57
subjects, TydiQA's 9 languages): `carry` (a + b >= 10, a two-digit answer) and `no_carry`. `bad` is the
adversarial family, low-quality data in the pool: carry problems in the target's own format whose answers
drop the carry (so its answers have the *shape* of no-carry answers: one digit, then <eos>).

Held out as LESS's targets are (MMLU, TydiQA and BBH are disjoint from its training pool): the 100 problems
are split once per seed (`split_problems`) into the validation shots, the test problems and the pool's
problems, per subtask. The pool's `add` and `bad` examples (and the base's optional `add` pretraining) use
only the pool's problems, so no test or validation problem appears in the pool, in any family
(`overlap` measures it). The base's pretraining family `sum` writes every one-digit sum the usual way: the
base knows arithmetic, as a pretrained LM does; what the pool teaches is the target's format.

The loss of an example is the mean cross-entropy over its response tokens and <eos> (prompt tokens are
masked, as open-instruct / LESS's HF loss with labels -100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from common.data.tokenizer import ByteTokenizer, pad_sequences

IGNORE = -100
TOKENIZER = ByteTokenizer()
FAMILIES = ("add", "bad", "sub", "rev", "cpy", "srt", "max", "cnt")
PRETRAIN_ONLY = ("sum",)  # one-digit sums written the usual way (15), in the base model's pretraining only
TARGET_FAMILY = "add"
SUBTASKS = ("carry", "no_carry")
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def _lsd(n: int) -> str:
    """n written least-significant digit first."""
    return str(n)[::-1]


def add_problems(carry: bool | None = None) -> list[tuple[int, int]]:
    """Every one-digit addition problem (a, b), a, b in 0..9; carry=True/False keeps a + b >= 10 / < 10."""
    return [(a, b) for a in range(10) for b in range(10) if carry is None or (a + b >= 10) == carry]


def add_example(a: int, b: int) -> tuple[str, str]:
    return f"add {a} {b}=", _lsd(a + b)


Problem = tuple[int, int]


def split_problems(n_val: int, seed: int) -> dict[str, dict[str, list[Problem]]]:
    """subtask -> {"val", "test", "pool"}: disjoint problem lists. Per subtask, `n_val` problems are the
    validation shots; of the rest, half (rounded down) are the test and the others the pool's (carry: 45
    problems, no_carry: 55)."""
    if n_val <= 0:
        raise ValueError(f"validation examples per subtask must be positive, got {n_val}")
    rng = np.random.default_rng([seed, 13])
    split = {}
    for name in SUBTASKS:
        problems = add_problems(carry=name == "carry")
        if len(problems) - n_val < 2:
            raise ValueError(
                f"n_val={n_val} leaves fewer than 2 problems of subtask {name!r} ({len(problems)} problems) "
                "for the test and the pool"
            )
        order = rng.permutation(len(problems))
        n_test = (len(problems) - n_val) // 2
        parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "pool": order[n_val + n_test :]}
        split[name] = {k: [problems[i] for i in np.sort(v)] for k, v in parts.items()}
    return split


def pool_problems(n_val: int, seed: int) -> list[Problem]:
    """The addition problems the pool may use (those of neither the validation shots nor the test)."""
    return [p for parts in split_problems(n_val, seed).values() for p in parts["pool"]]


def sample(family: str, rng: np.random.Generator, problems: Sequence[Problem] = ()) -> tuple[str, str]:
    """One (prompt, response) of a family; `add` and `bad` draw their (a, b) from `problems`."""
    if family in ("add", "bad") and not problems:
        raise ValueError(f"family {family!r} needs the addition problems it may use (see pool_problems)")
    if family == "add":
        a, b = problems[int(rng.integers(0, len(problems)))]
        return add_example(a, b)
    if family == "bad":  # a carry problem whose answer drops the carry: 7 + 8 -> "5" instead of "51"
        carry = [(a, b) for a, b in problems if a + b >= 10]
        if not carry:
            raise ValueError("family 'bad' needs carry problems among the problems it may use")
        a, b = carry[int(rng.integers(0, len(carry)))]
        return f"add {a} {b}=", str((a + b) % 10)
    if family == "sum":
        a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
        return f"sum {a} {b}=", str(a + b)
    if family == "sub":
        a, b = sorted((int(x) for x in rng.integers(10, 100, size=2)), reverse=True)
        return f"sub {a} {b}=", _lsd(a - b)
    if family in ("rev", "cpy"):
        s = "".join(rng.choice(LETTERS, size=int(rng.integers(3, 6))))
        return f"{family} {s}=", s[::-1] if family == "rev" else s
    if family in ("srt", "max"):
        d = "".join(str(x) for x in rng.integers(0, 10, size=int(rng.integers(3, 6))))
        return f"{family} {d}=", "".join(sorted(d)) if family == "srt" else max(d)
    if family == "cnt":
        letters = rng.choice(LETTERS[:3], size=int(rng.integers(3, 7)))
        q = str(rng.choice(letters))
        return f"cnt {''.join(letters)} {q}=", str(int((letters == q).sum()))
    raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")


def is_carry(prompt: str) -> bool:
    """Whether an addition prompt ("add 7 8=") has a carry (a + b >= 10)."""
    _, a, b = prompt.rstrip("=").split()
    return int(a) + int(b) >= 10


@dataclass
class Examples:
    """Tokenized examples: ids and labels (N, T) right-padded, the family of each row, and the raw text."""

    ids: torch.Tensor  # (N, T) long
    labels: torch.Tensor  # (N, T) long, IGNORE outside the response
    family: np.ndarray  # (N,) str
    prompts: list[str]
    responses: list[str]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def subset(self, index: Sequence[int] | np.ndarray) -> Examples:
        index = np.asarray(index, dtype=np.int64)
        t = torch.from_numpy(index)
        return Examples(
            self.ids[t],
            self.labels[t],
            self.family[index],
            [self.prompts[i] for i in index],
            [self.responses[i] for i in index],
        )


def encode(prompts: Sequence[str], responses: Sequence[str], families: Sequence[str], width: int) -> Examples:
    """ids = <bos> prompt response <eos>; labels[t] = ids[t + 1] on the response and <eos>, else IGNORE."""
    if not prompts:
        raise ValueError("no examples to encode")
    seqs, targets = [], []
    for p, r in zip(prompts, responses, strict=True):
        prompt = TOKENIZER.encode(p, add_bos=True)
        seq = prompt + TOKENIZER.encode(r, add_eos=True)
        if len(seq) > width:
            raise ValueError(f"example {p!r} -> {r!r} has {len(seq)} tokens, more than the width {width}")
        seqs.append(seq)
        targets.append([IGNORE] * (len(prompt) - 1) + seq[len(prompt) :])  # next token, response only
    ids, _ = pad_sequences(seqs, TOKENIZER.pad_id, pad_to=width)  # (N, T)
    labels, _ = pad_sequences(targets, IGNORE, pad_to=width)  # (N, T)
    return Examples(ids, labels, np.asarray(families), list(prompts), list(responses))


WIDTH = 20  # longest example: "<bos>cnt abcabc a=" + "6" + "<eos>" = 20 tokens at most


def make_pool(
    n: int, weights: dict[str, float], seed: int, problems: Sequence[Problem] = ()
) -> Examples:
    """`n` examples, families drawn with probabilities proportional to `weights`; the `add` and `bad`
    families use only `problems` (the pool's share of `split_problems`)."""
    unknown = set(weights) - set(FAMILIES) - set(PRETRAIN_ONLY)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; families: {', '.join(FAMILIES)}")
    if n <= 0:
        raise ValueError(f"pool size must be positive, got {n}")
    rng = np.random.default_rng([seed, 11])
    names = list(weights)
    p = np.asarray([weights[k] for k in names], dtype=float)
    fams = [names[i] for i in rng.choice(len(names), size=n, p=p / p.sum())]
    pairs = [sample(f, rng, problems) for f in fams]
    return encode([a for a, _ in pairs], [b for _, b in pairs], fams, WIDTH)


def make_target(n_val: int, seed: int) -> tuple[dict[str, Examples], dict[str, Examples]]:
    """(validation, test) examples per subtask, grouped by subtask as LESS's validation files are:
    `n_val` problems per subtask (LESS's few shots) and the subtask's test problems (`split_problems`)."""
    val, test = {}, {}
    for name, parts in split_problems(n_val, seed).items():
        for split, key in ((val, "val"), (test, "test")):
            pairs = [add_example(a, b) for a, b in parts[key]]
            split[name] = encode(
                [a for a, _ in pairs], [b for _, b in pairs], [TARGET_FAMILY] * len(pairs), WIDTH
            )
    return val, test


def overlap(pool: Examples, held_out: dict[str, Examples]) -> int:
    """How many pool examples have the prompt of a held-out (validation or test) example: 0 by
    construction, measured so the report shows it."""
    prompts = {p for examples in held_out.values() for p in examples.prompts}
    return sum(p in prompts for p in pool.prompts)
