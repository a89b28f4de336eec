"""What every MUSE figure starts from: the corpus, the cached target / retrained / reinforced models and the
retrained model's metrics (the references of the stopping rule and of PrivLeak)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.models.gpt import GPT
from papers.muse.corpus import CorpusSpec, MuseCorpus, build_corpus
from papers.muse.methods import unlearn
from papers.muse.metrics import evaluate, knowmem
from papers.muse.models import LMSpec, reinforced_model, retrain_model, target_model


@dataclass(frozen=True)
class Setup:
    """The corpus and the small GPT's training run; `seed` replaces both their seeds."""

    corpus: CorpusSpec
    lm: LMSpec


@dataclass
class Bench:
    corpus: MuseCorpus
    target: GPT
    retrain: GPT
    ref: dict[str, float]  # the retrained model's metrics
    target_metrics: dict[str, float]
    lm: LMSpec
    ctx: Any
    _reinforced: GPT | None = None

    @property
    def reinforced(self) -> GPT:
        if self._reinforced is None:
            self._reinforced = reinforced_model(self.lm, self.corpus, self.target, self.ctx)
        return self._reinforced

    def run(self, method: str, forget=None, start: GPT | None = None, **hp: Any):
        """`unlearn` with the bench's references (reinforced model only for Task Vector / WHP)."""
        reinforced = self.reinforced if method in ("Task Vector", "WHP") else None
        return unlearn(
            method,
            self.target if start is None else start,
            self.corpus,
            forget=forget,
            reference_knowmem_f=self.ref["knowmem_f"],
            reinforced=reinforced,
            **hp,
        )

    def evaluate(self, model, full: bool = True) -> dict[str, float]:
        """MUSE's metrics of `model` (full=False: only the two KnowMem scores, what C5 / C6 plot)."""
        if full:
            return evaluate(model, self.corpus, self.ref["auc"])
        c = self.corpus
        return {"knowmem_f": knowmem(model, c, c.forget), "knowmem_r": knowmem(model, c, c.retain2)}


def bench(setup: Setup, seed: int, ctx) -> Bench:
    corpus_spec = dataclasses.replace(setup.corpus, seed=seed)
    lm_spec = dataclasses.replace(setup.lm, seed=seed)
    corpus = build_corpus(corpus_spec)
    target = target_model(lm_spec, corpus, ctx)
    retrain = retrain_model(lm_spec, corpus, ctx)
    ref = evaluate(retrain, corpus)
    ref["privleak"] = 0.0
    return Bench(corpus, target, retrain, ref, evaluate(target, corpus, ref["auc"]), lm_spec, ctx)


def overlaps(corpus: MuseCorpus) -> dict[str, int]:
    """Measured overlaps that must be 0: entities shared between splits, KnowMem questions (D_f, D_retain)
    among the trained QA texts, holdout and D_f bios among the retrained model's training texts, and
    holdout bios among the target's."""
    splits = {
        "forget": set(corpus.forget_set(len(corpus.folds))),
        "retain1": set(corpus.retain1),
        "retain2": set(corpus.retain2),
        "holdout": set(corpus.holdout),
    }
    names = list(splits)
    shared_entities = sum(len(splits[a] & splits[b]) for i, a in enumerate(names) for b in names[i + 1 :])
    target_texts = set(corpus.train_texts(True))
    retrain_texts = set(corpus.train_texts(False))
    eval_q = {p.split("<eos>")[-1].strip() for p, _ in corpus.knowmem_set(corpus.forget)}
    eval_q |= {p.split("<eos>")[-1].strip() for p, _ in corpus.knowmem_set(corpus.retain2)}
    trained_q = {t.rsplit(" ", 1)[0] for t in target_texts if t.startswith("question")}
    return {
        "entities_shared_between_splits": shared_entities,
        "eval_questions_trained": len(eval_q & trained_q),
        "holdout_bios_trained": len(set(corpus.bios(corpus.holdout)) & target_texts),
        "forget_bios_in_retrain": len(set(corpus.bios(corpus.forget)) & retrain_texts),
        "holdout_names_unseen_words": sum(
            w
            not in {
                x
                for i in corpus.forget_set(len(corpus.folds)) + corpus.retain1 + corpus.retain2
                for x in corpus.bio.entities[i].name.split()
            }
            for i in corpus.holdout
            for w in corpus.bio.entities[i].name.split()
        ),
    }
