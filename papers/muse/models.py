"""The target, retrained and reinforced models of MUSE (Sec. 3.1, Sec. 4), small GPTs cached as shared
artifacts.

* target: trained on every document (forget folds, retain1 with its QA pairs, retain2), MUSE's f_target;
* retrain: the same without D_f (F1), MUSE's gold standard f_retrain (its metrics are the reference of the
  stopping rule and of PrivLeak);
* reinforced: the target fine-tuned further on D_f (`reinforce_epochs`), which Task Vector and WHP need
  (MUSE's `baselines/finetune.py`: 10 epochs on D_f).

All three go through `common.lm.pretrain` (next-token loss on `common.train.train`), keyed by a frozen
`LMSpec`/`PretrainSpec`: the documents are shuffled every epoch, joined with <eos>, shifted by a random
offset and cut into `block`-token rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from common import lm
from common.configs import Count, Index, NonNegative, Positive
from common.experiment import RunContext
from common.models.gpt import GPT, GPTConfig
from common.train import TrainConfig
from papers.muse.corpus import CorpusSpec, MuseCorpus, build_corpus


@dataclass(frozen=True)
class LMSpec:
    """The small GPT and its training run (shared by the target and the retrained model)."""

    n_layer: Count = 2
    n_embd: Count = 128
    n_head: Count = 4
    block: Count = 64
    batch: Count = 16
    steps: Count = 1200
    lr: Positive = 2e-3
    warmup: NonNegative = 50
    weight_decay: NonNegative = 0.1
    reinforce_epochs: Count = 10
    reinforce_lr: Positive = 1e-4  # the unlearning lr, as MUSE fine-tunes with its 1e-5
    seed: Index = 0


@dataclass(frozen=True)
class StreamSpec:
    """What the batches of one training run depend on (the `data` of its PretrainSpec)."""

    corpus: CorpusSpec
    include_forget: bool
    block: int
    batch: int
    steps: int
    seed: int
    only_forget: bool = False
    parent: object = None  # a fine-tune's starting point: the PretrainSpec of the model it starts from


def stream_rows(docs: list[list[int]], eos: int, block: int, n_rows: int, seed: int) -> torch.Tensor:
    """`n_rows` rows of block + 1 tokens: epochs of the shuffled documents joined with eos, each epoch
    shifted by a random offset, cut into consecutive rows (input = row[:-1], labels = row[1:])."""
    rng = random.Random(seed)
    rows: list[list[int]] = []
    while len(rows) < n_rows:
        order = list(range(len(docs)))
        rng.shuffle(order)
        stream = [t for i in order for t in (*docs[i], eos)]
        off = rng.randrange(block)
        stream = stream[off:]
        rows.extend(stream[s : s + block + 1] for s in range(0, len(stream) - block, block))
    return torch.tensor(rows[:n_rows], dtype=torch.long)  # (n_rows, block + 1)


def gpt_config(spec: LMSpec, corpus: MuseCorpus) -> GPTConfig:
    return GPTConfig(
        vocab_size=corpus.vocab_size,
        block_size=max(spec.block, 128),
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_embd=spec.n_embd,
    )


def _pretrained(
    spec: LMSpec,
    corpus: MuseCorpus,
    data: StreamSpec,
    train_cfg: TrainConfig,
    ctx: RunContext | Path,
    name: str,
    init: GPT | None = None,
) -> GPT:
    """A GPT trained on `data`'s stream (from scratch, or fine-tuned from `init`), via the shared cache."""
    pspec = lm.PretrainSpec(gpt_config(spec, corpus), train_cfg, data, init_seed=spec.seed)

    def batches():
        texts = corpus.bios(corpus.forget) if data.only_forget else corpus.train_texts(data.include_forget)
        rows = stream_rows(
            [corpus.encode(t) for t in texts], corpus.eos, data.block, data.steps * data.batch, data.seed
        )  # (steps * batch, block + 1)
        return lambda step, micro: (
            rows[step * data.batch : (step + 1) * data.batch, :-1],
            rows[step * data.batch : (step + 1) * data.batch, 1:],
        )

    # fine-tuning from `init` (the reinforced model) starts from its weights; `name` identifies them
    init_state = None if init is None else init.state_dict()
    return lm.pretrain(pspec, batches, shared=ctx, name=name, init_state=init_state).model


def _train_config(spec: LMSpec, steps: int) -> TrainConfig:
    return TrainConfig(
        optimizer="adamw",
        lr=spec.lr,
        steps=steps,
        warmup_steps=min(spec.warmup, steps),
        schedule="cosine",
        min_lr_ratio=0.1,
        weight_decay=spec.weight_decay,
        decay_biases_and_norms=False,
        seed=spec.seed,
        log_every=max(1, steps // 20),
    )


def target_model(spec: LMSpec, corpus: MuseCorpus, ctx) -> GPT:
    """f_target: trained on forget + retain (all folds, R1 bios and QA, R2 bios)."""
    data = StreamSpec(corpus.spec, True, spec.block, spec.batch, spec.steps, spec.seed)
    return _pretrained(spec, corpus, data, _train_config(spec, spec.steps), ctx, "target")


def retrain_model(spec: LMSpec, corpus: MuseCorpus, ctx) -> GPT:
    """f_retrain: the same run without D_f (same steps, seed and schedule)."""
    data = StreamSpec(corpus.spec, False, spec.block, spec.batch, spec.steps, spec.seed)
    return _pretrained(spec, corpus, data, _train_config(spec, spec.steps), ctx, "retrain")


def reinforced_model(spec: LMSpec, corpus: MuseCorpus, target: GPT, ctx) -> GPT:
    """The target fine-tuned `reinforce_epochs` epochs on D_f (constant lr), for Task Vector and WHP."""
    n_tokens = sum(len(corpus.encode(t)) + 1 for t in corpus.bios(corpus.forget))
    per_epoch = max(1, n_tokens // (spec.block * 4))
    steps = spec.reinforce_epochs * per_epoch
    parent = lm.PretrainSpec(
        gpt_config(spec, corpus),
        _train_config(spec, spec.steps),
        StreamSpec(corpus.spec, True, spec.block, spec.batch, spec.steps, spec.seed),
        init_seed=spec.seed,
    )  # the target's spec: the reinforced weights depend on it
    data = StreamSpec(corpus.spec, True, spec.block, 4, steps, spec.seed + 7, only_forget=True, parent=parent)
    cfg = TrainConfig(optimizer="adamw", lr=spec.reinforce_lr, steps=steps, seed=spec.seed, log_every=steps)
    return _pretrained(spec, corpus, data, cfg, ctx, "reinforced", init=target)


def models(spec: LMSpec, corpus_spec: CorpusSpec, ctx) -> tuple[MuseCorpus, GPT, GPT]:
    """(corpus, target, retrain) for the specs, from the shared cache when built before."""
    corpus = build_corpus(corpus_spec)
    return corpus, target_model(spec, corpus, ctx), retrain_model(spec, corpus, ctx)
