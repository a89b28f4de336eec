"""The MUSE benchmark data on a synthetic biography corpus ("Books" stand-in; MUSE Sec. 3, Table 1).

MUSE splits each corpus into a forget set D_f, retain sets (retain1, which regularised unlearning may use,
and retain2, on which utility is measured) and a holdout set never trained on; it derives from them the
VerbMem prompts/continuations (C1), QA pairs on D_f (C2) and on D_retain (C4), and the texts of the
PrivLeak membership test (C3); the scalability folds (C5) are nested, the sustainability folds (C6)
disjoint. Here the entities of `common.data.biographies` play the documents' role:

* forget folds F1..F4 (`n_forget` entities each; F1 is D_f, F1 u .. u Fk the k-th scalability set, Fk the
  k-th sustainability request), retain1 R1 (bios and their QA pairs in `question : .. ? answer : ..` form,
  the only QA the models are trained on), retain2 R2 (bios only: utility is KnowMem on R2 questions, so
  answering means pulling a fact out of a biography), holdout H (never trained; its name words all occur
  in trained names, so that Min-K% cannot just detect a novel token);
* VerbMem: the first `verbmem_prompt_sentences` sentences of an F1 entity's first bio as the prompt, the
  rest as the reference continuation;
* KnowMem: `icl` fixed R1 QA examples in context (MUSE prompts with ICL examples too), then the question;
* PrivLeak: every bio of F1 (non-member, label 0) against every bio of H (label 1), MUSE's key
  `forget_holdout_Min-40%`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from common.configs import ConfigError, Count, Index
from common.data.biographies import EOS, QA, BiographyCorpus, make_biographies, qa_text


@dataclass(frozen=True)
class CorpusSpec:
    """Sizes of the splits (entities) and the generator's seed: everything the corpus depends on."""

    n_forget: Count = 25  # entities per forget fold
    n_folds: Count = 4  # forget folds F1..F4 (scalability / sustainability)
    n_retain1: Count = 120
    n_retain2: Count = 80
    n_holdout: Count = 80
    bios_per_entity: Count = 3
    icl: Count = 3  # QA examples in the KnowMem prompt
    verbmem_prompt_sentences: Count = 2
    seed: Index = 0

    def __post_init__(self) -> None:
        if self.verbmem_prompt_sentences >= 6:
            raise ConfigError("verbmem_prompt_sentences must be < 6 (a bio has six sentences)")
        if self.icl > self.n_retain1:
            raise ConfigError(f"icl ({self.icl}) must be <= n_retain1 ({self.n_retain1})")

    @property
    def n_entities(self) -> int:
        return self.n_forget * self.n_folds + self.n_retain1 + self.n_retain2 + self.n_holdout


@dataclass(frozen=True)
class MuseCorpus:
    """One corpus of the benchmark: the splits as entity indices, and the texts MUSE evaluates on."""

    spec: CorpusSpec
    bio: BiographyCorpus
    folds: tuple[tuple[int, ...], ...]  # F1..Fk
    retain1: tuple[int, ...]
    retain2: tuple[int, ...]
    holdout: tuple[int, ...]
    name: str = "books"

    # ---- tokens
    @property
    def vocab_size(self) -> int:
        return len(self.bio.vocab)

    @property
    def eos(self) -> int:
        return self.bio.word_to_id[EOS]

    def encode(self, text: str) -> list[int]:
        return self.bio.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.bio.decode(ids)

    # ---- documents (word strings)
    def bios(self, entities: tuple[int, ...] | list[int]) -> list[str]:
        return [b for i in entities for b in self.bio.bios[i]]

    @property
    def forget(self) -> tuple[int, ...]:
        return self.folds[0]

    def forget_set(self, k: int = 1, nested: bool = True) -> tuple[int, ...]:
        """Scalability set F1 u .. u Fk (nested) or the k-th sustainability request Fk (not nested)."""
        if not 1 <= k <= len(self.folds):
            raise ValueError(f"k must lie in [1, {len(self.folds)}], got {k}")
        if nested:
            return tuple(i for f in self.folds[:k] for i in f)
        return self.folds[k - 1]

    def train_texts(self, include_forget: bool) -> list[str]:
        """The target's training documents (include_forget) or the retrained model's (F1 left out): bios
        of every fold, R1 and R2, and the R1 QA pairs."""
        folds = self.folds if include_forget else self.folds[1:]
        bios = self.bios([i for f in folds for i in f] + list(self.retain1) + list(self.retain2))
        return bios + [qa_text(q) for q in self.bio.questions(self.retain1)]

    def retain1_texts(self) -> list[str]:
        """What GDR / KLR regularise on (MUSE's retain1): R1 bios."""
        return self.bios(self.retain1)

    # ---- evaluation sets
    @cached_property
    def icl_prefix(self) -> str:
        # one question per R1 entity, attributes in turn (city, year, ...)
        shots = [self.bio.questions([e])[j % 6] for j, e in enumerate(self.retain1[: self.spec.icl])]
        return " ".join(f"{qa_text(q)} {EOS}" for q in shots)

    def knowmem_set(self, entities: tuple[int, ...]) -> list[tuple[str, str]]:
        """(prompt, answer) pairs: the ICL prefix and the question, the attribute's value."""
        return [(f"{self.icl_prefix} {q.prompt}", q.answer) for q in self.bio.questions(entities)]

    def verbmem_set(self, entities: tuple[int, ...]) -> list[tuple[str, str]]:
        """(prompt, reference continuation) from each entity's first bio, split after sentence m."""
        m = self.spec.verbmem_prompt_sentences
        out = []
        for i in entities:
            sentences = [s.strip() + " ." for s in self.bio.bios[i][0].split(" .") if s.strip()]
            out.append((" ".join(sentences[:m]), " ".join(sentences[m:])))
        return out

    def qa_pairs(self, entities: tuple[int, ...]) -> list[QA]:
        return self.bio.questions(entities)


def build_corpus(spec: CorpusSpec) -> MuseCorpus:
    """The biography corpus of `spec`, its entities dealt into folds, R1, R2 and H at random."""
    if not isinstance(spec, CorpusSpec):
        raise TypeError(f"spec must be a CorpusSpec, got {type(spec).__name__}")
    n = spec.n_entities
    order = list(range(n))
    random.Random(spec.seed + 1).shuffle(order)
    cuts = [spec.n_forget] * spec.n_folds + [spec.n_retain1, spec.n_retain2, spec.n_holdout]
    parts, start = [], 0
    for c in cuts:
        parts.append(tuple(order[start : start + c]))
        start += c
    holdout = parts[-1]
    bio = make_biographies(n, spec.bios_per_entity, spec.seed, held_out=holdout)
    return MuseCorpus(spec, bio, tuple(parts[: spec.n_folds]), parts[-3], parts[-2], holdout)
