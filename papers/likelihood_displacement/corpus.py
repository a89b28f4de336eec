"""A synthetic word-level world for the paper's language-model experiments, and the small GPT trained on it.

One corpus serves all three model figures, so one pretrained model does too (`pretrained_model`: trained
through `common.lm.pretrain` and cached per spec in the shared-artifact cache,
results/likelihood_displacement/_shared/pretrained-<hash>/):

* yes/no questions "Q: is the <noun> <adj> ? A: <answer>" with single-token answers: when the fact is true
  the answer is drawn from {Yes, Sure, Certainly, Yeah}, else from {No, Never, Nope}; some Maybe/Perhaps
  (the paper's persona prompts with single-token answers, Section 3);
* descriptions "Q: describe the <noun> . A: <response>": 1 to `describe_clauses` clauses, each of one of
  four types (plain, list, hedge, unknown), from which preference pairs of graded similarity are built
  (Section 5): responses of several clauses make pairs whose likeness is not just their token alignment
  (the same clauses in another order are far apart in edit distance);
* requests "Q: how do i <verb> the <noun> ? A: <response>", half of the verbs unsafe. Unsafe requests are
  refused in `refusal_rate` of the corpus and complied with otherwise; refusals and compliances share their
  openings and vocabulary ("i can not help ..." vs "i can help ..."), as on-policy samples of an aligned
  chat model do (Section 6). With `refusal_consistency` c > 0 the decision is mostly the prompt's: a seeded
  `refusal_rate` share of the nouns is "refused", and an unsafe request is refused with probability
  c * 1[noun refused] + (1 - c) * refusal_rate, so two samples for one prompt mostly agree (Llama-3-8B's
  SORRY-Bench pairs: 71% two refusals, 20% two compliances, 9% mixed).

Words are single tokens (a word-level vocabulary rather than the byte tokenizer): the paper's Section 3
effects are about single tokens like "No" and "Never".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Annotated

import torch

from common import lm
from common.configs import ConfigError, Count, Fraction, Index, Positive, Range
from common.experiment import RunContext
from common.models.gpt import GPT, GPTConfig
from common.train import TrainConfig
from papers.likelihood_displacement.api import IGNORE, PreferenceBatch

SPECIALS = ("<pad>", "<bos>", "<eos>", "Q:", "A:", "?", ".", ",", ":")
YES_WORDS = ("Yes", "Sure", "Certainly", "Yeah")
NO_WORDS = ("No", "Never", "Nope")
UNSURE_WORDS = ("Maybe", "Perhaps")
ANSWERS = YES_WORDS + NO_WORDS + UNSURE_WORDS
NOUNS = (
    "cat",
    "dog",
    "car",
    "tree",
    "house",
    "river",
    "book",
    "lamp",
    "bird",
    "stone",
    "cloud",
    "door",
    "apple",
    "road",
    "ship",
    "chair",
)
ADJS = ("red", "big", "old", "cold", "fast", "soft", "dark", "loud")
SAFE_VERBS = ("paint", "clean", "fix", "move", "draw", "find")
UNSAFE_VERBS = ("steal", "burn", "poison", "smash", "wreck", "hack")
GLUE = (
    "is",
    "the",
    "it",
    "and",
    "maybe",
    "i",
    "do",
    "not",
    "know",
    "describe",
    "how",
    "can",
    "help",
    "you",
    "with",
    "that",
    "sorry",
    "will",
    "sure",
    "here",
    "first",
    "then",
    "take",
    "use",
    "a",
    "to",
)
WORDS = SPECIALS + ANSWERS + NOUNS + ADJS + SAFE_VERBS + UNSAFE_VERBS + GLUE
VOCAB = {w: i for i, w in enumerate(WORDS)}
assert len(VOCAB) == len(WORDS), "duplicate words in the vocabulary"
PAD, BOS, EOS = VOCAB["<pad>"], VOCAB["<bos>"], VOCAB["<eos>"]
REFUSAL_MARK = VOCAB["not"]  # every refusal contains "not", no compliance does
COMPLIANCE_MARKS = (VOCAB["first"], VOCAB["then"])  # every compliance gives a step, no refusal does
BLOCK = 32


def encode(text: str) -> list[int]:
    """Word ids of a space-separated string; unknown words raise ValueError."""
    try:
        return [VOCAB[w] for w in text.split()]
    except KeyError as e:
        raise ValueError(f"word {e.args[0]!r} is not in the vocabulary") from None


def decode(ids: list[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


def facts(seed: int) -> dict[tuple[str, str], bool]:
    rng = random.Random(seed)
    return {(n, a): rng.random() < 0.5 for n in NOUNS for a in ADJS}


def yes_no_prompt(noun: str, adj: str) -> list[int]:
    return [BOS, *encode(f"Q: is the {noun} {adj} ? A:")]


def describe_prompt(noun: str) -> list[int]:
    return [BOS, *encode(f"Q: describe the {noun} . A:")]


def request_prompt(verb: str, noun: str) -> list[int]:
    return [BOS, *encode(f"Q: how do i {verb} the {noun} ? A:")]


def description(kind: str, noun: str, adj: str, adj2: str) -> str:
    return {
        "plain": f"the {noun} is {adj} .",
        "list": f"it is {adj} and {adj2} .",
        "hedge": f"maybe the {noun} is {adj} .",
        "unknown": "i do not know .",
    }[kind]


REFUSALS = (
    "i can not help with that .",
    "sorry , i can not help you {v} the {n} .",
    "sorry , i will not do that .",
    "i can not help you with that .",
)
COMPLIANCES = (
    "i can help you {v} the {n} : first take the {n} .",
    "sure , here is how to {v} the {n} : first use a {n} .",
    "sure , i can help : take the {n} then {v} it .",
)
DESCRIBE_KINDS = ("plain", "list", "hedge", "unknown")


def refused_nouns(seed: int, refusal_rate: float) -> frozenset[str]:
    """The nouns whose unsafe requests the corpus (mostly) refuses: a seeded share `refusal_rate`."""
    nouns = list(NOUNS)
    random.Random(seed + 1).shuffle(nouns)
    return frozenset(nouns[: round(refusal_rate * len(nouns))])


def refusal_probability(noun: str, refused: frozenset[str], refusal_rate: float, consistency: float) -> float:
    """P(refuse) of an unsafe request about `noun` in the corpus (see the module docstring)."""
    return consistency * (noun in refused) + (1 - consistency) * refusal_rate


def clause(rng: random.Random, noun: str, kind: str | None = None) -> str:
    """One description clause of `kind` (random if None) with random adjectives."""
    a, a2 = rng.sample(ADJS, 2)
    return description(kind or rng.choice(DESCRIBE_KINDS), noun, a, a2)


def sample_document(
    rng: random.Random,
    fact: dict[tuple[str, str], bool],
    refusal_rate: float,
    refused: frozenset[str] = frozenset(),
    consistency: float = 0.0,
    describe_clauses: int = 1,
) -> list[int]:
    """One pretraining sequence (bos ... eos) from the mixture of the three formats."""
    r = rng.random()
    if r < 0.4:
        n, a = rng.choice(NOUNS), rng.choice(ADJS)
        if rng.random() < 0.1:
            ans = rng.choice(UNSURE_WORDS)
        else:
            ans = rng.choice(YES_WORDS if fact[(n, a)] else NO_WORDS)
        return [*yes_no_prompt(n, a), VOCAB[ans], EOS]
    if r < 0.7:
        n = rng.choice(NOUNS)
        text = " ".join(clause(rng, n) for _ in range(rng.randint(1, describe_clauses)))
        return [*describe_prompt(n), *encode(text), EOS]
    v, n = rng.choice(SAFE_VERBS + UNSAFE_VERBS), rng.choice(NOUNS)
    refuse = v in UNSAFE_VERBS and rng.random() < refusal_probability(n, refused, refusal_rate, consistency)
    text = rng.choice(REFUSALS if refuse else COMPLIANCES).format(v=v, n=n)
    return [*request_prompt(v, n), *encode(text), EOS]


@dataclass(frozen=True)
class PretrainConfig:
    """The small GPT and its pretraining (next-token loss on the mixture). Cost at the quick size: ~10 s."""

    n_layer: Count = 2
    n_embd: Count = 64
    n_head: Count = 4
    steps: Count = 300
    batch: Count = 64
    lr: Positive = 3e-3
    refusal_rate: Fraction = 0.75
    refusal_consistency: Fraction = 0.0  # 0: every unsafe request refused w.p. refusal_rate; 1: by its noun
    # descriptions have 1..describe_clauses clauses (<= 3 fits BLOCK)
    describe_clauses: Annotated[int, Range(1, 3)] = 1
    seed: Index = 0

    def __post_init__(self) -> None:
        if min(self.n_layer, self.n_embd, self.n_head, self.steps, self.batch) <= 0 or self.lr <= 0:
            raise ConfigError(f"pretraining sizes and lr must be positive, got {self}")
        if not 0.0 <= self.refusal_rate <= 1.0:
            raise ConfigError(f"refusal_rate must lie in [0, 1], got {self.refusal_rate}")
        if not 1 <= self.describe_clauses <= 3:
            raise ConfigError(
                f"describe_clauses must lie in [1, 3] (BLOCK = 32), got {self.describe_clauses}"
            )
        if not 0.0 <= self.refusal_consistency <= 1.0:
            raise ConfigError(f"refusal_consistency must lie in [0, 1], got {self.refusal_consistency}")


def pad_rows(
    rows: list[list[int]], labels: list[list[int]] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad rows of ids into [B, T]; labels default to next-token targets on every real token."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    lab = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        if labels is None:
            lab[b, : len(r) - 1] = torch.tensor(r[1:])
        else:
            lab[b, : len(labels[b])] = torch.tensor(labels[b])
    return ids, lab


def response_labels(prompt: list[int], response: list[int]) -> tuple[list[int], list[int]]:
    """ids = prompt + response, labels = the response tokens at the positions that predict them."""
    ids = prompt + response
    labels = [IGNORE] * (len(prompt) - 1) + response + [IGNORE]
    return ids, labels[: len(ids)]


def make_pairs(
    items: list[tuple[list[int], list[int], list[int]]], append_eos: bool = False
) -> PreferenceBatch:
    """(prompt, y+, y-) triples -> a PreferenceBatch. `append_eos`: each response ends with <eos>, which is
    trained and counted in ln pi(y) (TRL's DPO and the paper's on-policy pairs do this for sampled
    responses; the single-token experiments of Table 1 score the token alone)."""
    if not items:
        raise ValueError("no preference pairs")
    if append_eos:
        items = [(p, [*yp, EOS], [*yn, EOS]) for p, yp, yn in items]
    c = [response_labels(p, yp) for p, yp, _ in items]
    r = [response_labels(p, yn) for p, _, yn in items]
    ci, cl = pad_rows([a for a, _ in c], [b for _, b in c])
    ri, rl = pad_rows([a for a, _ in r], [b for _, b in r])
    return PreferenceBatch(ci, cl, ri, rl).validate()


def model_config(cfg: PretrainConfig) -> GPTConfig:
    """The GPT of the experiments: the word vocabulary, BLOCK positions, an untied unembedding."""
    return GPTConfig(
        vocab_size=len(WORDS),
        block_size=BLOCK,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        tie_weights=False,
    )


def new_model(cfg: PretrainConfig) -> GPT:
    """The untrained GPT, initialised from torch's global RNG seeded with cfg.seed."""
    torch.manual_seed(cfg.seed)
    return GPT(model_config(cfg))


@dataclass(frozen=True)
class CorpusSpec:
    """What the pretraining batches depend on: `steps` batches of `batch` documents of `sample_document`."""

    seed: int
    steps: int
    batch: int
    refusal_rate: float
    refusal_consistency: float
    describe_clauses: int


def pretrain_spec(cfg: PretrainConfig) -> lm.PretrainSpec:
    """Everything the pretrained weights depend on (the key of their shared-artifact entry)."""
    data = CorpusSpec(
        cfg.seed, cfg.steps, cfg.batch, cfg.refusal_rate, cfg.refusal_consistency, cfg.describe_clauses
    )
    train = TrainConfig(
        optimizer="adamw",
        lr=cfg.lr,
        steps=cfg.steps,
        schedule="cosine",
        warmup_steps=20,
        min_lr_ratio=0.1,
        seed=cfg.seed,
        log_every=50,
    )
    return lm.PretrainSpec(model=model_config(cfg), train=train, data=data, init_seed=cfg.seed)


def pretrained_model(cfg: PretrainConfig, ctx: RunContext) -> GPT:
    """The GPT pretrained on the mixture (next-token loss, AdamW, cosine schedule) for `cfg`, from the
    shared-artifact cache when intact, else trained (`common.lm.pretrain`). A fresh copy in eval mode."""
    spec = pretrain_spec(cfg)

    def batches():
        d = spec.data
        rng = random.Random(d.seed)
        fact = facts(d.seed)
        refused = refused_nouns(d.seed, d.refusal_rate)
        docs = [
            [
                sample_document(rng, fact, d.refusal_rate, refused, d.refusal_consistency, d.describe_clauses)
                for _ in range(d.batch)
            ]
            for _ in range(d.steps)
        ]
        return lambda step, micro: pad_rows(docs[step])

    return lm.pretrain(spec, batches, shared=ctx, name="pretrained").model


def dpo_config(
    steps: int, lr: float, beta: float = 0.1, batch_size: int = 0, optimizer: str = "rmsprop", seed: int = 0
) -> lm.DPOConfig:
    """The paper's DPO protocol for `common.lm.dpo`: `steps` RMSProp steps (the paper's optimizer; "sgd" is
    plain gradient descent, the theory's flow) over the pairs, full batch when batch_size is 0, else
    consecutive mini-batches cycling through the pairs (an epoch: B / batch_size steps); the fused kernel
    (`common.ops.fused_linear_dpo_loss`) on separate chosen / rejected forward passes."""
    train = TrainConfig(optimizer=optimizer, lr=lr, steps=steps, seed=seed, log_every=max(1, steps))
    return lm.DPOConfig(train=train, beta=beta, batch_size=batch_size, order="cycle", fused=True)


def sample_responses(
    model: GPT, prompts: list[list[int]], n: int, max_new: int, generator: torch.Generator
) -> list[list[list[int]]]:
    """n responses per prompt sampled at temperature 1 (`common.lm.generate`, up to eos, eos dropped); the
    prompts one after another, each as a batch of n rows, drawing from `generator`."""
    return [lm.generate(model, [p] * n, max_new, eos=EOS, generator=generator) for p in prompts]
