"""One pre-training run of an arm (Standard, MeCo, an ablation) on the synthetic web corpus, and its
evaluations: the shared code of the three figures.

Pre-registered evaluations (written before any run of this module; an earlier exploration on a similar
corpus found MeCo ahead only on the first of them, so all three are reported and the primary score is
their mean, fixed here):

* fact QA, zero-shot, **without metadata**, one query per fact `<relation> <entity>`, scored by the argmax
  of the next-token logits over the relation's values (accuracy against the true value), three ways
  (`common.data.web_corpus.eval_prompts`): "cued" (4 filler words of the reliable wiki style first),
  "bare" (the query alone), "fewshot" (3 true facts of other entities first);
* score = mean of the three accuracies (the paper's "average downstream score", Table 1), the primary
  score (the batch size and the token budget were changed after early runs, the evaluations were not; the
  README says which runs and what they showed);
* held-out loss (nats per token) on plain documents of a disjoint sample, overall and per family
  (the paper's PPL column, Table 1);
* steering (conditional inference, Sec. 5.1, Tables 2-3): the bare queries after `URL: <domain>\\n\\n` of a
  real reliable domain (the largest wiki domain), a fabricated reliable-looking one (`wiki<unseen id>.com`,
  the paper's www.factquizmaster.com), a real unreliable one (the largest meme domain) and a fabricated
  unreliable one (`meme<unseen id>.com`); accuracy against the truth, and against the myth.

Training (Sec. 3, and the official configs): a 2-layer GPT with rotary positions (RoPE, as the paper's
Llama models; with learned absolute positions, dropping the URL tokens at the cooldown shifts every
position), AdamW (0.9, 0.95), weight decay 0.033, 5% linear warm-up, cosine decay to 10% of the peak,
one schedule for the whole run. MeCo: documents with `URL: <domain>\\n\\n` (loss-masked, `papers.meco.pack`)
for the first 1 - cooldown of the token budget, then plain documents (the cooldown), with the optimizer and
the schedule carried on, as a switch in `get_batch` of the one training loop `common.train.train`; the
cooldown documents are the next ones of the stream, disjoint from those seen before (the paper's disjoint
cooldown subset). One document per row (the paper turns off cross-document attention, Sec. B.1).

Compute: every arm has the same budget of training tokens, counting every non-padding input token: BOS,
the metadata tokens (`URL:`, the domain's tokens, `\\n\\n`), the document and EOS. MeCo therefore sees fewer
documents than Standard (its metadata is ~14% of its tokens during conditioning; 6,912 documents against
7,904 at the default budget). Training tokens on the
trajectory's x axis are counted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F

from common.configs import Count, Index, OneOf, Positive
from common.data.web_corpus import (
    WebCorpusSpec,
    WebWorld,
    WordTokenizer,
    build_world,
    eval_prompts,
    prompt_overlap,
    sample_documents,
)
from common.experiment import RunContext
from common.lm import IGNORE, PretrainSpec, evaluating, next_token_loss, preserved_rng
from common.models.gpt import GPT, GPTConfig
from common.train import StepInfo, TrainConfig, train
from papers.meco.packing import labels, metadata_string, pack

ARMS = {  # arm -> (metadata during conditioning, cooldown fraction of the token budget)
    "standard": (None, 0.0),
    "meco": ("url", 0.1),
    "no_cooldown": ("url", 0.0),
    "hashed": ("hashed", 0.1),
    "suffix": ("suffix", 0.1),
    "topic": ("topic", 0.1),
    "meco_cd20": ("url", 0.2),
    "meco_cd30": ("url", 0.3),
}
EVALS = ("cued", "bare", "fewshot")
STEER = ("none", "reliable", "fabricated_reliable", "unreliable", "fabricated_unreliable")
ROW = 72  # longest row: BOS + 8 metadata + 7 facts x 6 words + EOS fits


@dataclass(frozen=True)
class RunConfig:
    """Model, optimizer and data of one run (every arm of a figure shares it): `tokens` training tokens
    counted with metadata, `batch` documents per step, evaluation every `eval_every` steps."""

    tokens: Count = 300_000
    batch: Count = 16
    lr: Positive = 5e-3
    n_layer: Count = 2
    n_embd: Count = 64
    n_head: Count = 4
    eval_every: Count = 25
    n_topics: Count = 8
    heldout_docs: Count = 256
    cue_words: Count = 4
    shots: Count = 3


@dataclass(frozen=True)
class ArmData:
    """What the batches of a run depend on (the `data` of its `PretrainSpec`)."""

    arm: Annotated[str, OneOf(*ARMS)]
    corpus: WebCorpusSpec
    doc_seed: Index
    tokens: Count
    batch: Count
    n_topics: Count


@dataclass(frozen=True)
class EvalSpec:
    """What the evaluations of a run depend on."""

    eval_every: Count
    heldout_docs: Count
    cue_words: Count
    shots: Count
    prompt_seed: Index


@dataclass(frozen=True)
class RunSpec:
    """The key of a run in the shared-artifact cache: pretraining and evaluation."""

    pretrain: PretrainSpec
    evals: EvalSpec


def world_and_tokenizer(corpus: WebCorpusSpec) -> tuple[WebWorld, WordTokenizer]:
    world = build_world(corpus)
    return world, WordTokenizer(world.vocabulary())


def run_spec(arm: str, seed: int, cfg: RunConfig) -> RunSpec:
    """The spec of arm `arm` at `seed` (world, documents, initialisation and prompts all from the seed);
    the number of steps follows from the token budget (`plan`)."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {tuple(ARMS)}, got {arm!r}")
    corpus = WebCorpusSpec(seed=seed)
    data = ArmData(arm, corpus, 1000 + seed, cfg.tokens, cfg.batch, cfg.n_topics)
    steps = sum(plan(data)[0])
    world, tok = world_and_tokenizer(corpus)
    model = GPTConfig(vocab_size=tok.vocab_size, block_size=ROW, n_layer=cfg.n_layer, n_head=cfg.n_head,
                      n_embd=cfg.n_embd, positions="rope")
    tc = TrainConfig(optimizer="adamw", lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.033, schedule="cosine",
                     warmup_steps=max(1, round(0.05 * steps)), min_lr_ratio=0.1, steps=steps,
                     log_every=10, seed=seed)
    evals = EvalSpec(cfg.eval_every, cfg.heldout_docs, cfg.cue_words, cfg.shots, 2000 + seed)
    return RunSpec(PretrainSpec(model, tc, data, init_seed=seed), evals)


def _stream(data: ArmData) -> list:
    world = build_world(data.corpus)
    n = data.tokens // 30 + 2 * data.batch  # a document holds >= 32 tokens, so the stream never runs out
    return sample_documents(world, n, data.doc_seed)


def _topics(docs: list, n_topics: int, seed: int) -> list[str]:
    """Model-free stand-in for the paper's model-generated topics (Sec. 5.2): k-means clusters of the
    documents' bag of words (scikit-learn), labelled `topic<k>`."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer

    x = CountVectorizer(token_pattern=r"[a-z]+").fit_transform([d.text for d in docs])
    km = KMeans(n_clusters=n_topics, n_init=1, random_state=seed).fit(x)
    return [f"topic{int(k)}" for k in km.labels_]


def plan(data: ArmData) -> tuple[tuple[int, int], list, list[str] | None]:
    """(conditioning steps, cooldown steps), the document stream, the topics (or None).

    A step takes the next `batch` documents; conditioning steps run while the tokens seen stay below
    (1 - cooldown) x budget, cooldown steps until the budget is spent (counted with metadata)."""
    metadata, cooldown = ARMS[data.arm]
    docs = _stream(data)
    world, tok = world_and_tokenizer(data.corpus)
    topics = _topics(docs, data.n_topics, data.doc_seed) if metadata == "topic" else None
    plain = np.array([len(tok.encode(d.text)) + 2 for d in docs])
    meta = np.array([len(tok.encode(metadata_string(d.url, metadata, topics[i] if topics else None)))
                     for i, d in enumerate(docs)]) if metadata else np.zeros(len(docs), int)
    b = data.batch
    seen, step, s1 = 0, 0, 0
    limit1 = (1.0 - cooldown) * data.tokens if metadata else 0.0
    while seen < limit1:
        seen += int((plain + meta)[step * b:(step + 1) * b].sum())
        step += 1
    s1 = step
    while seen < data.tokens:
        seen += int(plain[step * b:(step + 1) * b].sum())
        step += 1
    if step * b > len(docs):
        raise ValueError(f"the document stream ran out ({len(docs)} documents for {step} steps)")
    return (s1, step - s1), docs, topics


def build_batches(data: ArmData):
    """`get_batch(step, micro) -> (ids, labels)` and the cumulative training tokens after each step."""
    (s1, s2), docs, topics = plan(data)
    metadata, _ = ARMS[data.arm]
    _, tok = world_and_tokenizer(data.corpus)
    b = data.batch
    texts, urls = [d.text for d in docs], [d.url for d in docs]
    parts = []
    if s1:
        parts.append(pack(texts[:s1 * b], urls[:s1 * b], tok, ROW, metadata,
                          topics=topics[:s1 * b] if topics else None, strategy="pad"))
    if s2:
        parts.append(pack(texts[s1 * b:(s1 + s2) * b], None, tok, ROW, None, strategy="pad"))
    ids = torch.cat([p.ids for p in parts])  # (steps * B, ROW)
    lab = torch.cat([labels(p, IGNORE) for p in parts])  # (steps * B, ROW)
    real = torch.cat([p.document >= 0 for p in parts])  # (steps * B, ROW)
    per_step = real.view(s1 + s2, b, ROW).sum((1, 2))  # (steps,)
    cum = torch.cumsum(per_step, 0).tolist()

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = slice(step * b, (step + 1) * b)
        width = int(real[rows].sum(1).max())  # drop the all-padding columns
        return ids[rows, :width], lab[rows, :width]

    return get_batch, cum, ids[: s1 * b]


@torch.no_grad()
def answer_accuracy(model: GPT, tok: WordTokenizer, world: WebWorld, prompts: list, prefix: str = "") -> dict:
    """Accuracy of the argmax over the relation's values against the truth and against the myth."""
    pre = tok.encode(prefix) if prefix else []
    seqs = [[tok.bos_id, *pre, *tok.encode(p.text)] for p in prompts]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tok.pad_id, dtype=torch.long)  # (P, T)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    last = torch.tensor([len(s) - 1 for s in seqs])  # (P,)
    with evaluating(model):
        logits = model(ids).logits[torch.arange(len(seqs)), last]  # (P, V)
    truth = myth = 0
    for i, p in enumerate(prompts):
        cand = [tok.stoi[v] for v in world.values[p.relation]]
        pick = world.values[p.relation][int(logits[i, cand].argmax())]
        truth += pick == p.truth
        myth += pick == p.myth
    return {"truth": truth / len(prompts), "myth": myth / len(prompts)}


@torch.no_grad()
def heldout_loss(model: GPT, tok: WordTokenizer, world: WebWorld, docs: list) -> dict:
    """Mean next-token loss (nats/token) on plain held-out documents, overall and per family."""
    packed = pack([d.text for d in docs], None, tok, ROW, None, strategy="pad")
    lab = labels(packed, IGNORE)  # (N, ROW)
    with evaluating(model):
        logits = model(packed.ids).logits  # (N, ROW, V)
    nll = F.cross_entropy(logits.transpose(1, 2), lab, ignore_index=IGNORE, reduction="none")  # (N, ROW)
    n = (lab != IGNORE).sum(1).clamp(min=1)  # (N,)
    fam = np.array([d.family for d in docs])
    out = {"all": float(nll.sum() / n.sum())}
    for f, spec in enumerate(world.families):
        rows = torch.from_numpy(fam == f)
        if rows.any():
            out[spec.name] = float(nll[rows].sum() / n[rows].sum())
    return out


def steering_prefixes(world: WebWorld) -> dict[str, str]:
    """The metadata prefixes of the steering evaluation (module docstring)."""
    unseen = world.spec.domains_per_family + 7
    return {
        "none": "",
        "reliable": f"URL: {world.domains[world.domains_of('wiki')[0]]}\n\n",
        "fabricated_reliable": f"URL: wiki{unseen}.com\n\n",
        "unreliable": f"URL: {world.domains[world.domains_of('meme')[0]]}\n\n",
        "fabricated_unreliable": f"URL: meme{unseen}.com\n\n",
    }


def _evaluate(model: GPT, tok: WordTokenizer, world: WebWorld, prompts: dict) -> dict[str, float]:
    return {k: answer_accuracy(model, tok, world, prompts[k])["truth"] for k in EVALS}


def run_arm(arm: str, seed: int, cfg: RunConfig, ctx: RunContext) -> dict[str, Any]:
    """Train arm `arm` at `seed` (through the shared cache: a second figure reuses the run) and return its
    trajectory and final evaluations (JSON-ready)."""
    spec = run_spec(arm, seed, cfg)
    world, tok = world_and_tokenizer(spec.pretrain.data.corpus)
    ev = spec.evals
    prompts = {k: eval_prompts(world, k, ev.prompt_seed, cue_words=ev.cue_words, shots=ev.shots)
               for k in EVALS}

    def build() -> dict[str, Any]:
        get_batch, cum, conditioned = build_batches(spec.pretrain.data)
        traj: list[list[float]] = []

        def record(info: StepInfo) -> None:
            if info.step % ev.eval_every == 0 or info.step == info.cfg.steps:
                acc = _evaluate(info.model, tok, world, prompts)
                traj.append([float(cum[info.step - 1])] + [acc[k] for k in EVALS])

        with preserved_rng():
            torch.manual_seed(spec.pretrain.init_seed)
            model = GPT(spec.pretrain.model)
            hist = train(model, next_token_loss, get_batch, spec.pretrain.train, callbacks=[record],
                         progress=False)
        model.eval()
        final = _evaluate(model, tok, world, prompts)
        steer = {}
        for name, prefix in steering_prefixes(world).items():
            steer[name] = answer_accuracy(model, tok, world, prompts["bare"], prefix)
        held = sample_documents(world, ev.heldout_docs, 5000 + seed)
        train_rows = get_batch_rows(get_batch, spec.pretrain.train.steps)
        enc = {k: [[tok.bos_id, *tok.encode(p.text)] for p in prompts[k]] for k in EVALS}
        overlap = {k: prompt_overlap(v, train_rows) for k, v in enc.items()}
        cue_spans = [tok.encode(p.text)[:ev.cue_words] for p in prompts["cued"]]
        overlap["cue_words_anywhere"] = prompt_overlap(cue_spans, train_rows)
        train_texts = {d.text for d in _stream(spec.pretrain.data)}
        overlap["heldout_docs"] = sum(d.text in train_texts for d in held)
        metrics = {
            "trajectory": traj,
            "final": final,
            "steer": steer,
            "heldout_loss": heldout_loss(model, tok, world, held),
            "overlap": overlap,
            "tokens": float(cum[-1]),
            "steps": spec.pretrain.train.steps,
            "loss_last": float(np.mean(hist.loss[-5:])),
            "n_documents": spec.pretrain.train.steps * spec.pretrain.data.batch,
            "n_params": model.num_parameters(),
        }
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"state_dict": state, "metrics": metrics}

    entry = ctx.shared(f"meco-{arm}-s{seed}", spec, build)
    return entry["metrics"]


def get_batch_rows(get_batch, steps: int) -> list[list[int]]:
    """Every training row of a run (token ids, padding dropped)."""
    rows = []
    for s in range(steps):
        ids, _ = get_batch(s, 0)
        rows += [[t for t in r if t != 0] for r in ids.tolist()]
    return rows



@dataclass(frozen=True)
class BranchSpec:
    """The key of a run's cooldown branches (the paper's Fig. 2 / Table 16 protocol): the run, and how many
    branch points split its conditioning phase."""

    run: RunSpec
    branches: Count


def branch_trajectory(
    arm: str, seed: int, cfg: RunConfig, branches: int, ctx: RunContext
) -> list[list[float]]:
    """MeCo's score along training as the paper measures it (Fig. 2, Table 16: "each MeCo checkpoint
    includes a 16B-token cooldown"): the conditioning phase is checkpointed at `branches` evenly spaced
    steps, and from each checkpoint a cooldown of the run's own cooldown length (10% of the budget) on plain
    documents is trained with the optimizer and schedule carried on (the same cooldown documents as the
    run's, which it has not seen). Returns [tokens, cued, bare, fewshot] per branch, tokens counting the
    conditioning tokens up to the checkpoint plus the cooldown's; the run's own final point comes last."""
    import shutil
    import tempfile
    from pathlib import Path

    spec = run_spec(arm, seed, cfg)
    metadata, cooldown = ARMS[arm]
    if metadata is None or cooldown <= 0:
        raise ValueError(f"arm {arm!r} has no cooldown to branch")
    world, tok = world_and_tokenizer(spec.pretrain.data.corpus)
    ev = spec.evals
    prompts = {k: eval_prompts(world, k, ev.prompt_seed, cue_words=ev.cue_words, shots=ev.shots)
               for k in EVALS}
    final = run_arm(arm, seed, cfg, ctx)

    def build() -> dict[str, Any]:
        (s1, s2), _, _ = plan(spec.pretrain.data)
        get_batch, cum, _ = build_batches(spec.pretrain.data)
        every = max(1, s1 // (branches + 1))
        points = [every * k for k in range(1, branches + 1) if every * k < s1]
        tc = spec.pretrain.train
        cool_tokens = cum[-1] - cum[s1 - 1]
        out = []
        root = Path(tempfile.mkdtemp(prefix="meco-branch-"))
        try:
            main = root / "main"

            def stop_at(last: int):
                def callback(info: StepInfo) -> None:
                    info.stop = info.step >= last
                return callback

            def keep(info: StepInfo) -> None:  # train keeps only the newest checkpoint: copy each point's
                if info.step in points:
                    branch = root / f"branch{info.step}"
                    branch.mkdir()
                    shutil.copy(main / f"step_{info.step:08d}.pt", branch / f"step_{info.step:08d}.pt")

            with preserved_rng():
                torch.manual_seed(spec.pretrain.init_seed)
                model = GPT(spec.pretrain.model)
                train(model, next_token_loss, get_batch, replace(tc, checkpoint_every=every),
                      checkpoint_dir=main, callbacks=[keep, stop_at(points[-1])], progress=False)
            for p in points:
                branch = root / f"branch{p}"

                def cooled(step: int, micro: int, p: int = p) -> tuple[torch.Tensor, torch.Tensor]:
                    return get_batch(s1 + (step - p), micro)  # the run's cooldown rows, from the first

                with preserved_rng():
                    model = GPT(spec.pretrain.model)
                    train(model, next_token_loss, cooled, replace(tc, checkpoint_every=0),
                          checkpoint_dir=branch, callbacks=[stop_at(p + s2)], progress=False)
                acc = _evaluate(model.eval(), tok, world, prompts)
                out.append([float(cum[p - 1] + cool_tokens)] + [acc[k] for k in EVALS])
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return {"trajectory": out}

    branched = ctx.shared(f"meco-branches-{arm}-s{seed}", BranchSpec(spec, branches), build)["trajectory"]
    return [*branched, [final["tokens"]] + [final["final"][k] for k in EVALS]]
