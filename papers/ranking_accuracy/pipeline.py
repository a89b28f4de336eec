"""The shared experiment behind Figures 1, 3 and 4: a synthetic preference task, a reference GPT, DPO runs.

Task (all synthetic, seeded). Each of `n_topics` prompts x is one token; a response y is 2-8 content tokens
drawn from a topic-dependent Markov chain (peaky Dirichlet rows, so most tokens are rare in most contexts),
followed by <eos>. A hidden reward r*(x, y) = sum_t w[x, y_t] favours tokens that are rare in the topic
(w = -log of the token's frequency under the chain, standardized), so that, as in real preference data, the
preferred response is often the *less* likely one under the reference model. `n_raters` Bradley-Terry raters
each prefer y1 with probability sigmoid(r*(y1) - r*(y2)); the majority response is y_w and
alpha = (votes for y_w + s) / (K + 2s) is the paper's fraction of raters (s = alpha_smoothing, 0 in the paper;
alpha = 1 becomes 1 - 1e-3 in the idealized accuracy).

Models. The reference pi_ref is a small `common.models.gpt.GPT` trained by next-token prediction on
`corpus_size` samples of the chains (the SFT stage, `common.lm.pretrain`, cached in the shared-artifact cache
under results/ranking_accuracy/_shared/reference-<hash>/). DPO (Rafailov et al. 2023) trains a copy of it
(`common.lm.dpo`), with all parameters shared across prompts and responses (a tabular policy would flip
every pair trivially, see proofs_checks/ranking_accuracy.py), through `common.ops.dpo_loss` on sequence
log-probs from `common.ops.sequence_logps` (chosen and rejected rows in one forward pass), with RMSProp as in
the paper's App. D.1, and is evaluated at `eval_points` log-spaced steps: ranking accuracy on training and
held-out pairs, held-out DPO loss, flips of initially mis-ranked training pairs, and the win rate of policy
samples (`common.lm.generate`) over reference samples judged by r*. Each DPO run is a shared artifact too
(results/ranking_accuracy/_shared/dpo-<hash>/), so figures that ask for the same run share it.

Cost (2 cores): the reference (n_embd 64, 2 layers, ~0.1M parameters) trains in ~5-10 s; one DPO step on 64
pairs takes a few ms, one evaluation ~0.1 s.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch

from common import lm
from common.configs import ConfigError, Count, Index, NonNegative, OneOf, Positive, Range
from common.experiment import RunContext
from common.models.gpt import GPT, GPTConfig
from common.train import TrainConfig
from papers.ranking_accuracy.metrics import dpo_pair_loss, idealized_correct, ranking_accuracy

IGNORE = lm.IGNORE
OPTIMIZERS = ("rmsprop", "adamw", "sgd")


@dataclass(frozen=True)
class Setup:
    """Task, reference model and DPO settings shared by the figures (each figure's Config extends it)."""

    seed: Index = 0
    n_topics: Count = 16
    # content vocabulary; the model's vocabulary adds <eos> and one token per topic (>= 2: pairs need
    # distinct responses)
    n_tokens: Annotated[int, Range(2)] = 24
    min_len: Count = 2  # <= max_len
    max_len: Count = 8
    dirichlet: Positive = 0.3  # concentration of the chains' rows: small = peaky = many rare tokens
    reward_noise: NonNegative = 0.5  # std of the per-(topic, token) noise added to the rarity reward
    corpus_size: Count = 20_000
    ref_steps: Count = 400
    ref_lr: Positive = 3e-3
    ref_batch: Count = 128  # <= corpus_size
    n_layer: Count = 2
    n_embd: Count = 64  # divisible by n_head
    n_head: Count = 4
    n_train_pairs: Count = 2000
    n_eval_pairs: Count = 1000
    n_raters: Count = 5  # odd: every pair has a majority
    alpha_smoothing: NonNegative = 0.0
    beta: Positive = 0.1
    dpo_optimizer: Annotated[str, OneOf(*OPTIMIZERS)] = "rmsprop"
    dpo_batch: Count = 64  # <= n_train_pairs
    eval_points: Count = 10  # evaluations at log-spaced steps (dense near the reference), plus step 0
    n_win_prompts: Count = 512

    def __post_init__(self) -> None:
        positive = (
            "n_topics corpus_size ref_steps ref_batch n_layer n_embd n_head n_train_pairs n_eval_pairs "
            "n_raters dpo_batch eval_points n_win_prompts"
        )
        for name in positive.split():
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_tokens < 2:
            raise ConfigError(f"n_tokens must be >= 2 (pairs need distinct responses), got {self.n_tokens}")
        if not 1 <= self.min_len <= self.max_len:
            raise ConfigError(
                f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}"
            )
        if self.n_raters % 2 == 0:
            raise ConfigError(
                f"n_raters must be odd so that every pair has a majority (no ties), got {self.n_raters}"
            )
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.dpo_batch > self.n_train_pairs:
            raise ConfigError(f"dpo_batch={self.dpo_batch} exceeds n_train_pairs={self.n_train_pairs}")
        if self.ref_batch > self.corpus_size:
            raise ConfigError(f"ref_batch={self.ref_batch} exceeds corpus_size={self.corpus_size}")
        if not (self.beta > 0 and np.isfinite(self.beta)):
            raise ConfigError(f"beta must be positive, got {self.beta}")
        for name in ("ref_lr", "dirichlet"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.reward_noise < 0 or self.alpha_smoothing < 0:
            raise ConfigError("reward_noise and alpha_smoothing must be >= 0")
        if self.dpo_optimizer not in OPTIMIZERS:
            raise ConfigError(f"dpo_optimizer must be one of {OPTIMIZERS}, got {self.dpo_optimizer!r}")


def setup_of(config: Any) -> Setup:
    """The Setup part of a figure config (what the reference, the data and the DPO runs depend on)."""
    return Setup(**{f.name: getattr(config, f.name) for f in dataclasses.fields(Setup)})


# ---------------------------------------------------------------------------------------------------------
# The synthetic task
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Task:
    """The chains, the hidden reward and the token layout of one seed."""

    init: np.ndarray  # (K, N) first-token distribution per topic
    trans: np.ndarray  # (K, N, N) transition rows per topic
    w: np.ndarray  # (K, N) hidden per-token reward
    setup: Setup

    @property
    def eos(self) -> int:
        return self.setup.n_tokens

    @property
    def vocab_size(self) -> int:
        return self.setup.n_tokens + 1 + self.setup.n_topics

    def topic_token(self, topic: np.ndarray) -> np.ndarray:
        return self.setup.n_tokens + 1 + topic

    def sample(self, topics: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One response per topic: a uniform length in [min_len, max_len], tokens from the topic's chain
        (inverse-CDF sampling of all responses at once, one chain step at a time)."""
        s = self.setup
        topics = np.asarray(topics, dtype=np.int64)
        n = len(topics)
        lengths = rng.integers(s.min_len, s.max_len + 1, size=n)
        u = rng.random((n, s.max_len))  # (n, max_len)
        y = np.empty((n, s.max_len), dtype=np.int64)
        probs = self.init[topics]  # (n, N)
        for t in range(s.max_len):
            cdf = np.cumsum(probs, -1)  # (n, N)
            y[:, t] = np.minimum((cdf < u[:, t : t + 1] * cdf[:, -1:]).sum(-1), s.n_tokens - 1)
            probs = self.trans[topics, y[:, t]]  # (n, N)
        return [row[:length] for row, length in zip(y, lengths, strict=True)]

    def reward(self, topics: np.ndarray, responses: list[np.ndarray]) -> np.ndarray:
        """r*(x, y) = sum_t w[x, y_t]."""
        return np.array([self.w[k, y].sum() for k, y in zip(topics, responses, strict=True)])


def make_task(setup: Setup) -> Task:
    rng = np.random.default_rng([setup.seed, 1])
    K, N = setup.n_topics, setup.n_tokens
    init = rng.dirichlet(np.full(N, setup.dirichlet), size=K)  # (K, N)
    trans = rng.dirichlet(np.full(N, setup.dirichlet), size=(K, N))  # (K, N, N)
    init = np.maximum(init, 1e-6)
    init /= init.sum(-1, keepdims=True)
    trans = np.maximum(trans, 1e-6)
    trans /= trans.sum(-1, keepdims=True)
    # Token frequency under each topic's chain (first 8 steps), the basis of the rarity reward.
    freq = np.zeros((K, N))
    p = init.copy()
    for _ in range(setup.max_len):
        freq += p
        p = np.einsum("kn,knm->km", p, trans)
    freq /= freq.sum(-1, keepdims=True)
    rarity = -np.log(freq)  # (K, N)
    rarity = (rarity - rarity.mean(-1, keepdims=True)) / rarity.std(-1, keepdims=True)
    w = 0.5 + 0.5 * rarity + setup.reward_noise * rng.standard_normal((K, N))
    return Task(init=init, trans=trans, w=w, setup=setup)


def encode(task: Task, topics: np.ndarray, responses: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, labels), each (B, max_len + 1): ids = [topic, y_1..y_L, pad], labels[t] = the token after ids[t]
    (y_1..y_L then <eos>), IGNORE elsewhere, so a response's log-prob includes its <eos>."""
    s = task.setup
    T = s.max_len + 1
    ids = np.full((len(topics), T), task.eos, dtype=np.int64)  # (B, T)
    labels = np.full((len(topics), T), IGNORE, dtype=np.int64)  # (B, T)
    ids[:, 0] = task.topic_token(np.asarray(topics))
    for i, y in enumerate(responses):
        n = len(y)
        ids[i, 1 : n + 1] = y
        labels[i, :n] = y
        labels[i, n] = task.eos
    return torch.from_numpy(ids), torch.from_numpy(labels)


@dataclass
class Pairs:
    """Preference pairs: chosen/rejected (ids, labels) (P, T), alpha (P,), lengths incl. <eos> (P,)."""

    topics: np.ndarray
    chosen_ids: torch.Tensor
    chosen_labels: torch.Tensor
    rejected_ids: torch.Tensor
    rejected_labels: torch.Tensor
    alpha: np.ndarray
    len_chosen: np.ndarray
    len_rejected: np.ndarray
    reward_margin: np.ndarray  # r*(y_w) - r*(y_l)

    def __len__(self) -> int:
        return len(self.topics)

    @property
    def batch(self) -> lm.PreferenceBatch:
        """The pairs' token tensors as a `common.lm.PreferenceBatch`."""
        return lm.PreferenceBatch(
            self.chosen_ids, self.chosen_labels, self.rejected_ids, self.rejected_labels
        )


def make_pairs(task: Task, n: int, rng: np.random.Generator) -> Pairs:
    s = task.setup
    topics = rng.integers(0, s.n_topics, size=n)
    y1 = task.sample(topics, rng)
    y2 = task.sample(topics, rng)
    for i in range(n):  # distinct responses: an identical pair carries no preference
        while np.array_equal(y1[i], y2[i]):
            y2[i] = task.sample(topics[i : i + 1], rng)[0]
    r1, r2 = task.reward(topics, y1), task.reward(topics, y2)
    p1 = 1.0 / (1.0 + np.exp(-(r1 - r2)))  # Bradley-Terry
    votes1 = rng.binomial(s.n_raters, p1)
    first = votes1 * 2 > s.n_raters
    chosen = [a if f else b for a, b, f in zip(y1, y2, first, strict=True)]
    rejected = [b if f else a for a, b, f in zip(y1, y2, first, strict=True)]
    votes = np.where(first, votes1, s.n_raters - votes1)
    alpha = (votes + s.alpha_smoothing) / (s.n_raters + 2 * s.alpha_smoothing)
    cid, clab = encode(task, topics, chosen)
    rid, rlab = encode(task, topics, rejected)
    return Pairs(
        topics=topics,
        chosen_ids=cid,
        chosen_labels=clab,
        rejected_ids=rid,
        rejected_labels=rlab,
        alpha=alpha,
        len_chosen=np.array([len(y) + 1 for y in chosen]),
        len_rejected=np.array([len(y) + 1 for y in rejected]),
        reward_margin=np.where(first, r1 - r2, r2 - r1),
    )


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------


def sequence_logp(model: GPT, ids: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """log pi(y|x) of each row, (B,) float64, in eval mode without gradients (`common.lm.sequence_logps`,
    the fused `common.ops.sequence_logps`, at most `chunk` rows per forward pass)."""
    with lm.evaluating(model):
        return lm.sequence_logps(model, ids, labels, ignore_index=IGNORE, chunk=chunk).double()


@dataclass
class Reference:
    """Everything fixed before DPO: the task, the data, the reference model and its log-probs."""

    task: Task
    model: GPT
    train: Pairs
    eval: Pairs
    ref_train: tuple[np.ndarray, np.ndarray]  # log pi_ref(y_w), log pi_ref(y_l) on training pairs
    ref_eval: tuple[np.ndarray, np.ndarray]
    sft_loss: float
    win_topics: np.ndarray
    ref_samples: list[np.ndarray]  # reference responses, one per win-rate prompt (the fixed baseline)
    seconds: float


@dataclass(frozen=True)
class CorpusSpec:
    """What the reference's SFT batches depend on: the chains (seed, topics, tokens, lengths, concentration),
    `corpus_size` samples of them, and `ref_batch` of those per step in a seeded random order."""

    seed: int
    n_topics: int
    n_tokens: int
    min_len: int
    max_len: int
    dirichlet: float
    corpus_size: int
    ref_batch: int


def reference_spec(setup: Setup) -> lm.PretrainSpec:
    """Everything the reference model's weights depend on (the key of its shared-artifact entry): the
    GPT's shape, the SFT optimizer (AdamW, cosine schedule with warm-up) and the corpus."""
    model = GPTConfig(
        vocab_size=setup.n_tokens + 1 + setup.n_topics,
        block_size=setup.max_len + 1,
        n_layer=setup.n_layer,
        n_head=setup.n_head,
        n_embd=setup.n_embd,
    )
    train = TrainConfig(
        optimizer="adamw",
        lr=setup.ref_lr,
        steps=setup.ref_steps,
        schedule="cosine",
        warmup_steps=min(20, setup.ref_steps),
        min_lr_ratio=0.1,
        seed=setup.seed,
    )
    data = CorpusSpec(
        seed=setup.seed,
        n_topics=setup.n_topics,
        n_tokens=setup.n_tokens,
        min_len=setup.min_len,
        max_len=setup.max_len,
        dirichlet=setup.dirichlet,
        corpus_size=setup.corpus_size,
        ref_batch=setup.ref_batch,
    )
    return lm.PretrainSpec(model=model, train=train, data=data, init_seed=setup.seed)


def reference(setup: Setup, ctx: RunContext) -> Reference:
    """The task, the data, the reference model and its log-probs. The model comes from the shared-artifact
    cache (trained once per `reference_spec`); the rest is cheap and rebuilt once per process and setup
    (`ctx.shared(..., persist=False)`), so the figures of one `companion reproduce` share it."""
    return ctx.shared("reference-data", setup, lambda: _build_reference(setup, ctx), persist=False)


def _build_reference(setup: Setup, ctx: RunContext) -> Reference:
    start = time.perf_counter()
    task = make_task(setup)
    rng = np.random.default_rng([setup.seed, 2])
    topics = rng.integers(0, setup.n_topics, size=setup.corpus_size)
    corpus = task.sample(topics, rng)
    train_pairs = make_pairs(task, setup.n_train_pairs, rng)
    eval_pairs = make_pairs(task, setup.n_eval_pairs, rng)

    def batches():
        ids, labels = encode(task, topics, corpus)  # (corpus_size, T) each
        order = torch.randint(
            0,
            setup.corpus_size,
            (setup.ref_steps, setup.ref_batch),
            generator=torch.Generator().manual_seed(setup.seed),
        )  # (steps, B)
        return lambda step, micro: (ids[order[step]], labels[order[step]])

    pretrained = lm.pretrain(reference_spec(setup), batches, shared=ctx, name="reference")
    model = pretrained.model
    for p in model.parameters():
        p.requires_grad_(False)
    ref_train = _pair_logps(model, train_pairs)
    ref_eval = _pair_logps(model, eval_pairs)
    win_topics = np.arange(setup.n_win_prompts) % setup.n_topics
    ref_samples = generate(model, task, win_topics, seed=setup.seed + 7)
    return Reference(
        task=task,
        model=model,
        train=train_pairs,
        eval=eval_pairs,
        ref_train=ref_train,
        ref_eval=ref_eval,
        sft_loss=float(np.mean(pretrained.loss[-20:])),
        win_topics=win_topics,
        ref_samples=ref_samples,
        seconds=time.perf_counter() - start,
    )


def generate(model: GPT, task: Task, topics: np.ndarray, seed: int) -> list[np.ndarray]:
    """Sample one response per topic from `model` (`common.lm.generate`: ancestral sampling at temperature
    1 over the content tokens and <eos>, at most max_len content tokens), with a private generator seeded
    with `seed`, so that the training RNG is untouched."""
    s = task.setup
    prompts = [[int(t)] for t in task.topic_token(np.asarray(topics))]
    rows = lm.generate(model, prompts, s.max_len, eos=task.eos, generator=seed, vocab_size=s.n_tokens + 1)
    return [np.asarray(r, dtype=np.int64) for r in rows]


# ---------------------------------------------------------------------------------------------------------
# DPO
# ---------------------------------------------------------------------------------------------------------


def _pair_logps(model: GPT, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    return (
        sequence_logp(model, pairs.chosen_ids, pairs.chosen_labels).numpy(),
        sequence_logp(model, pairs.rejected_ids, pairs.rejected_labels).numpy(),
    )


def win_rate(model: GPT, ref: Reference, seed: int) -> tuple[float, float, float]:
    """Sample one response per win-rate prompt from `model` and judge it against the fixed reference sample
    by r* (ties 1/2). Returns (win rate, mean r* of the policy samples, KL estimate
    mean_y~pi [log pi(y|x) - log pi_ref(y|x)] from the same samples)."""
    samples = generate(model, ref.task, ref.win_topics, seed=seed)
    r_pol = ref.task.reward(ref.win_topics, samples)
    r_ref = ref.task.reward(ref.win_topics, ref.ref_samples)
    # A sample cut at max_len has no <eos>; score it as if it ended there (its log-prob then includes <eos>).
    ids, labels = encode(ref.task, ref.win_topics, samples)
    kl = float((sequence_logp(model, ids, labels) - sequence_logp(ref.model, ids, labels)).mean())
    return float(np.mean((r_pol > r_ref) + 0.5 * (r_pol == r_ref))), float(r_pol.mean()), kl


def eval_schedule(steps: int, points: int) -> list[int]:
    """`points` log-spaced steps in [1, steps] (deduplicated, always ending at `steps`)."""
    grid = np.unique(np.round(np.geomspace(1, steps, points)).astype(int))
    return [int(v) for v in grid]


@dataclass(frozen=True)
class DPORunSpec:
    """What one DPO run depends on: the whole setup (task, reference, DPO settings, evaluation points), the
    learning rate and the number of steps."""

    setup: Setup
    lr: float
    steps: int


def dpo_run(config: Any, lr: float, steps: int, ctx: RunContext) -> dict[str, Any]:
    """DPO from the reference with learning rate `lr` for `steps` steps; metrics (see module doc), arrays
    as NumPy. A shared artifact keyed by `DPORunSpec`, so figures that ask for the same run share it (in
    one process and across processes)."""
    if not lr > 0:
        raise ConfigError(f"DPO learning rates must be positive, got {lr}")
    if steps < 1:
        raise ConfigError(f"DPO steps must be >= 1, got {steps}")
    spec = DPORunSpec(setup_of(config), float(lr), int(steps))
    stored = ctx.shared("dpo", spec, lambda: _as_tensors(_dpo_run(spec, ctx)))
    return {k: v.numpy().copy() if isinstance(v, torch.Tensor) else v for k, v in stored.items()}


def _as_tensors(out: dict[str, Any]) -> dict[str, Any]:
    """The run's arrays as tensors, which the shared-artifact cache stores (and loads with weights_only)."""
    return {
        k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
        for k, v in out.items()
    }


def _dpo_run(spec: DPORunSpec, ctx: RunContext) -> dict[str, Any]:
    setup, lr, steps = spec.setup, spec.lr, spec.steps
    ref = reference(setup, ctx)
    tr, ev = ref.train, ref.eval
    ref_c = torch.from_numpy(ref.ref_train[0]).float()
    ref_r = torch.from_numpy(ref.ref_train[1]).float()
    ref_mis = ref.ref_train[0] < ref.ref_train[1]  # initially mis-ranked training pairs (ties count correct)
    c_train = ref.ref_train[1] - ref.ref_train[0]
    ideal_eval = idealized_correct(*ref.ref_eval, ev.alpha, setup.beta)
    curve: dict[str, list[float]] = {
        k: []
        for k in (
            "step",
            "train_rank_acc",
            "eval_rank_acc",
            "eval_rank_acc_norm",
            "eval_loss",
            "eval_reward_acc",
            "flip_rate",
            "unflip_rate",
            "win_rate",
            "mean_reward",
            "kl",
            "logp_chosen_change",
        )
    }
    best: dict[str, Any] = {}

    def evaluate(step: int, model: GPT) -> None:
        pc, pr = _pair_logps(model, tr)
        ec, er = _pair_logps(model, ev)
        eval_losses = dpo_pair_loss(ec, er, *ref.ref_eval, setup.beta)
        correct_now = pc >= pr
        # The same sampling seed at every evaluation (common random numbers): changes in the win rate come
        # from the policy, not from the draw.
        wr, mean_r, kl = win_rate(model, ref, seed=setup.seed + 11)
        curve["step"].append(step)
        curve["train_rank_acc"].append(float(correct_now.mean()))
        curve["eval_rank_acc"].append(ranking_accuracy(ec, er))
        curve["eval_rank_acc_norm"].append(ranking_accuracy(ec / ev.len_chosen, er / ev.len_rejected))
        curve["eval_loss"].append(float(eval_losses.mean()))
        # implicit-reward accuracy: beta log pi/pi_ref larger for y_w (what the DPO loss optimizes)
        curve["eval_reward_acc"].append(float(np.mean((ec - ref.ref_eval[0]) > (er - ref.ref_eval[1]))))
        curve["flip_rate"].append(float(correct_now[ref_mis].mean()) if ref_mis.any() else float("nan"))
        curve["unflip_rate"].append(
            float((~correct_now[~ref_mis]).mean()) if (~ref_mis).any() else float("nan")
        )
        curve["win_rate"].append(wr)
        curve["mean_reward"].append(mean_r)
        curve["kl"].append(kl)
        curve["logp_chosen_change"].append(float(np.mean(ec - ref.ref_eval[0])))
        if not best or curve["eval_loss"][-1] < best["eval_loss"]:
            train_losses = dpo_pair_loss(pc, pr, *ref.ref_train, setup.beta)
            best.update(
                step=step,
                eval_loss=curve["eval_loss"][-1],
                eval_rank_acc=curve["eval_rank_acc"][-1],
                flipped=correct_now[ref_mis],
                train_losses=train_losses,
                train_correct=correct_now,
            )

    cfg = lm.DPOConfig(
        train=TrainConfig(optimizer=setup.dpo_optimizer, lr=lr, steps=steps, seed=setup.seed, log_every=10),
        beta=setup.beta,
        batch_size=setup.dpo_batch,
        order="shuffle",  # shuffled epochs of the training pairs
        order_seed=setup.seed + 1,
        concatenated=True,  # chosen and rejected rows in one forward pass
        fused=False,  # sequence_logps on that pass, then dpo_loss
    )
    eval_steps = [0, *eval_schedule(steps, setup.eval_points)]
    run = lm.dpo(
        ref.model, tr.batch, cfg, reference_logps=(ref_c, ref_r), evaluate=evaluate, eval_steps=eval_steps
    )
    policy = run.policy
    # Final-step per-pair values (for the flip-difficulty figure) besides the best-validation checkpoint.
    pc, pr = _pair_logps(policy, tr)
    final_losses = dpo_pair_loss(pc, pr, *ref.ref_train, setup.beta)
    mis_c = c_train[ref_mis]
    return {
        "lr": lr,
        "steps": steps,
        "curve": curve,
        "ideal_eval": float(ideal_eval.mean()),
        "ref_eval_rank_acc": ranking_accuracy(*ref.ref_eval),
        "ref_train_rank_acc": ranking_accuracy(*ref.ref_train),
        "best_step": best["step"],
        "best_eval_loss": best["eval_loss"],
        "best_eval_rank_acc": best["eval_rank_acc"],
        "best_flip_rate": float(np.mean(best["flipped"])),
        "mis_c": mis_c,
        "best_flipped": best["flipped"],
        "final_flipped": (pc >= pr)[ref_mis],
        "final_train_losses": final_losses,
        "final_train_correct": pc >= pr,
        "best_train_losses": best["train_losses"],
        "best_train_correct": best["train_correct"],
        "c_train": c_train,
    }


def flip_rate_by_c(mis_c: np.ndarray, flipped: np.ndarray, n_bins: int = 3) -> dict[str, list[float]]:
    """Flip rate of initially mis-ranked pairs in `n_bins` quantile bins of c (equal counts)."""
    mis_c, flipped = np.asarray(mis_c, float), np.asarray(flipped, bool)
    if mis_c.size < n_bins:
        raise ValueError(f"need at least {n_bins} mis-ranked pairs to bin by c, got {mis_c.size}")
    edges = np.quantile(mis_c, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, mis_c, side="right") - 1, 0, n_bins - 1)
    return {
        "edges": edges.tolist(),
        "rate": [
            float(flipped[which == b].mean()) if (which == b).any() else float("nan") for b in range(n_bins)
        ],
        "count": [int((which == b).sum()) for b in range(n_bins)],
    }
