"""One training run of the ADO toy: a small GPT on a mixture of synthetic domains, with the mixture set by
ADO, the natural prior or uniform weights; shared by the three figures through the artifact cache.

Domains (`make_domains`, common/data/markov_domains.py), each with its own tokens (1104 in all):
noise (uniform over 64 tokens, eps = log 64 = 4.159), easy (order-1 Markov, 16 states, Dirichlet(0.5) rows:
saturates early), zA / zB / zC (Zipf-visited order-1 Markov chains, 512 / 384 / 128 states, Zipf a = 1.0 /
1.0 / 1.2, rows Dirichlet(10 z): losses that fall like power laws). The true eps of a domain is the exact
Bayes loss of its held-out sequences. Two natural priors: WIN_PRIOR (noise 0.05, an over-weighted easy
domain 0.45, zA .25, zB .15, zC .10) and NOISE_HEAVY_PRIOR (noise 0.40, the rest in the same proportions).

Model and training (the paper's recipe shrunk: AdamW, beta2 0.95, clip 1.0, warmup then cosine): a 2-layer
GPT, d = 64, 2 heads, tied embeddings (172k parameters), batch 32 sequences of 17 tokens (16 targets),
lr 3e-3, 5% warm-up, cosine to 10%, through `common.train.train`. A batch's domains are drawn i.i.d. from
the sampler's current weights (`get_batch` reads them), and a callback hands the per-sequence losses to
the sampler after each step. Held-out sequences (a separate RNG stream) never enter training: a training
draw that equals one is redrawn, and the overlap of all trained sequences with the held-out set is counted.

Cost (one thread): about 14 ms per step on a free core (an earlier try), 20-150 ms measured here while up to
5 other jobs shared the 2 cores.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common.data.markov_domains import MarkovDomain, dirichlet_markov, noise_domain, zipf_markov
from common.models.gpt import GPT, GPTConfig
from common.train import StepInfo, TrainConfig, train
from papers.ado.sampler import AdoConfig, AdoSampler, StaticSampler, validate_distribution

DOMAIN_NAMES = ("noise", "easy", "zA", "zB", "zC")
NOISE = 0  # index of the noise domain
LEARNABLE = (1, 2, 3, 4)
WIN_PRIOR = (0.05, 0.45, 0.25, 0.15, 0.10)
NOISE_HEAVY_PRIOR = tuple(round(v, 6) for v in (0.40, *(0.60 / 0.95 * p for p in WIN_PRIOR[1:])))
# the "downstream" target mixture: weighted toward the data-hungry learnable domains, no noise
DOWNSTREAM_WEIGHTS = (0.0, 0.1, 0.3, 0.3, 0.3)
METHODS = ("ado", "natural", "uniform")


def make_domains(domain_seed: int) -> list[MarkovDomain]:
    """The five domains above, each on its own token range."""
    rng = np.random.default_rng([domain_seed, 2025])
    out: list[MarkovDomain] = []
    offset = 0
    for name in DOMAIN_NAMES:
        if name == "noise":
            d = noise_domain(name, 64, offset)
        elif name == "easy":
            d = dirichlet_markov(name, 16, 0.5, rng, offset)
        else:
            states, a = {"zA": (512, 1.0), "zB": (384, 1.0), "zC": (128, 1.2)}[name]
            d = zipf_markov(name, states, a, 10.0, rng, offset)
        out.append(d)
        offset += d.n_tokens
    return out


@dataclass(frozen=True)
class RunSpec:
    """Everything one run depends on (the key of its shared artifact)."""

    method: str  # "ado", "natural" or "uniform"
    prior: tuple[float, ...]  # the natural mixture mu (uniform runs: the uniform vector)
    seed: int
    steps: int
    domain_seed: int = 0
    batch: int = 32
    seq_len: int = 17
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    lr: float = 3e-3
    eval_every: int = 100
    n_eval: int = 128  # held-out sequences per domain
    ado: AdoConfig | None = None


def spec_for(method: str, prior: tuple[float, ...], seed: int, steps: int, ado: AdoConfig | None,
             **kwargs: Any) -> RunSpec:
    """The spec of one run; uniform runs ignore the prior and ADO settings (so both settings share them)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "uniform":
        prior = tuple([round(1.0 / len(prior), 12)] * len(prior))
    return RunSpec(method=method, prior=tuple(prior), seed=seed, steps=steps,
                   ado=ado if method == "ado" else None, **kwargs)


def _threads_one() -> contextlib.AbstractContextManager:
    """BLAS threads pinned to 1 for scipy's fits (unpinned L-BFGS ran ~20x slower on 2 busy cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _rows_key(rows: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.ascontiguousarray(rows, dtype=np.int64)]


def train_run(spec: RunSpec) -> dict[str, Any]:
    """Train one model; returns curves (held-out loss and accuracy per domain), weights per step, the fits,
    per-domain training losses, timings and the held-out overlap (plain lists: a shared artifact)."""
    with _threads_one():
        return _train_run(spec)


def _train_run(spec: RunSpec) -> dict[str, Any]:
    domains = make_domains(spec.domain_seed)
    K = len(domains)
    prior = validate_distribution("prior", spec.prior)
    if prior.shape[0] != K:
        raise ValueError(f"prior must have K = {K} entries, got {prior.shape[0]}")
    vocab = sum(d.n_tokens for d in domains)
    T = spec.seq_len - 1

    eval_rng = np.random.default_rng([spec.domain_seed, 99991])  # held-out stream, same for every run
    held = [d.sample(spec.n_eval, spec.seq_len, eval_rng) for d in domains]  # K x (n_eval, L)
    held_keys = set().union(*(_rows_key(h) for h in held))
    bayes = [float(d.bayes_logloss(h).mean()) for d, h in zip(domains, held, strict=True)]
    bayes_acc = []
    for d, h in zip(domains, held, strict=True):
        s = h - d.offset
        best = d.transition.argmax(1)[s[:, :-1]]  # the Bayes top-1 prediction
        bayes_acc.append(float((best == s[:, 1:]).mean()))

    if spec.method == "ado":
        sampler: AdoSampler | StaticSampler = AdoSampler(prior, spec.batch, spec.ado or AdoConfig())
    else:
        sampler = StaticSampler(prior)

    torch.manual_seed(spec.seed)  # same initialisation for every method at one seed
    model = GPT(GPTConfig(vocab_size=vocab, block_size=T, n_layer=spec.n_layer, n_head=spec.n_head,
                          n_embd=spec.n_embd))
    trained_keys: set[bytes] = set()
    redrawn = [0]
    batch_domains: dict[int, np.ndarray] = {}
    weights_log: list[list[float]] = []

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([spec.seed, step, 17])
        pi = np.asarray(sampler.weights, dtype=np.float64)
        weights_log.append(pi.tolist())
        dom = rng.choice(K, size=spec.batch, p=pi / pi.sum())  # (B,)
        rows = np.empty((spec.batch, spec.seq_len), dtype=np.int64)
        for k in np.unique(dom):
            idx = np.flatnonzero(dom == k)
            seqs = domains[k].sample(idx.size, spec.seq_len, rng)
            for j in range(idx.size):  # never train on a held-out sequence
                while seqs[j].tobytes() in held_keys:
                    redrawn[0] += 1
                    seqs[j] = domains[k].sample(1, spec.seq_len, rng)[0]
            rows[idx] = seqs
        trained_keys.update(_rows_key(rows))
        batch_domains[step] = dom
        x = torch.from_numpy(rows)
        return x[:, :-1], x[:, 1:], torch.from_numpy(dom)  # (B, T), (B, T), (B,)

    seq_losses: dict[str, torch.Tensor] = {}

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, _ = batch
        logits = net(x).logits  # (B, T, V)
        per_token = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), reduction="none")
        per_seq = per_token.view(x.shape[0], T).mean(1)  # (B,)
        seq_losses["last"] = per_seq.detach()
        return per_seq.mean()

    held_x = [torch.from_numpy(h) for h in held]
    curves: dict[str, list] = {"step": [], "loss": [], "acc": []}
    eval_seconds = [0.0]

    def evaluate(step: int) -> None:
        start = time.perf_counter()
        model.eval()
        losses, accs = [], []
        with torch.no_grad():
            for h in held_x:
                logits = model(h[:, :-1]).logits  # (n_eval, T, V)
                losses.append(float(F.cross_entropy(logits.reshape(-1, vocab), h[:, 1:].reshape(-1))))
                accs.append(float((logits.argmax(-1) == h[:, 1:]).float().mean()))
        model.train()
        curves["step"].append(step)
        curves["loss"].append(losses)
        curves["acc"].append(accs)
        eval_seconds[0] += time.perf_counter() - start

    train_losses: list[list[float]] = []
    rho_log: list[list[float]] = []

    def after_step(info: StepInfo) -> None:
        step = info.step - 1  # the 0-based index of the batch just trained on
        dom = batch_domains.pop(step)
        per_seq = seq_losses["last"].double().numpy()
        sampler.observe(step, dom, per_seq)
        if isinstance(sampler, AdoSampler):
            rho_log.append(sampler.rho.tolist())
        counts = np.bincount(dom, minlength=K)
        sums = np.bincount(dom, weights=per_seq, minlength=K)
        train_losses.append([float(s / c) if c else float("nan") for s, c in zip(sums, counts, strict=True)])
        if info.step % spec.eval_every == 0 or info.step == spec.steps:
            evaluate(info.step)

    cfg = TrainConfig(optimizer="adamw", lr=spec.lr, betas=(0.9, 0.95), schedule="cosine",
                      warmup_steps=max(1, spec.steps // 20), min_lr_ratio=0.1, steps=spec.steps,
                      clip_grad_norm=1.0, seed=spec.seed, log_every=spec.steps)
    evaluate(0)
    start = time.perf_counter()
    train(model, loss_fn, get_batch, cfg, callbacks=(after_step,), progress=False)
    wall = time.perf_counter() - start
    train_seconds = wall - eval_seconds[0]
    overlap = len(trained_keys & held_keys)
    out: dict[str, Any] = {
        "method": spec.method,
        "names": list(DOMAIN_NAMES),
        "prior": prior.tolist(),
        "bayes": bayes,
        "bayes_acc": bayes_acc,
        "curves": curves,
        "weights": weights_log,  # (steps, K): the mixture each batch was drawn from
        "rho": rho_log,  # (steps, K) ADO's clipped preference after each step (empty for baselines)
        "train_losses": train_losses,  # (steps, K) per-domain mean training loss (NaN: absent)
        "train_seconds": train_seconds,
        "step_seconds": train_seconds / spec.steps,
        "overhead_seconds": float(sampler.overhead_seconds),
        "overhead_fraction": float(sampler.overhead_seconds) / train_seconds,
        "overlap": overlap,
        "held_out_sequences": int(sum(h.shape[0] for h in held)),
        "trained_unique_sequences": len(trained_keys),
        "redrawn": redrawn[0],
        "fits": list(sampler.fits) if isinstance(sampler, AdoSampler) else [],
        "fit_seconds": float(getattr(sampler, "fit_seconds", 0.0)),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    if not all(math.isfinite(v) for row in curves["loss"] for v in row):
        raise RuntimeError(f"{spec.method} seed {spec.seed}: non-finite held-out loss")
    return out
