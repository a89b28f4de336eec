"""The eight unlearning methods MUSE evaluates (Sec. 4.1) and its checkpoint selection rule (Sec. 4.2).

Losses over a forget batch x_f and a retain batch x_r (D_retain = retain1), theta_t the target model,
ell the mean token NLL:

* GA: L = -ell(x_f) (gradient ascent on D_f);
* NPO (Zhang et al. 2024, "Negative Preference Optimization"): L = -(2/beta) E log sigma(-beta log(p(x_f) /
  p_t(x_f))), log p the sequence log-likelihood, beta = 0.1;
* _GDR: + ell(x_r) (gradient descent on the retain set); _KLR: + the per-token KL(p_t || p) on x_r
  (weight `retain_weight`, 1 in MUSE);
* Task Vector (Ilharco et al. 2023): theta = theta_t - alpha (theta_reinforced - theta_t);
* WHP (Eldan & Russinovich 2023, "Who's Harry Potter?"): logits z = z_t - alpha ReLU(z_reinforced - z_t);
  theta_reinforced is the target fine-tuned further on D_f.

`variant="official"` swaps in what the official code (swj0419/muse_bench, `baselines/iterative.py`) computes
instead of the paper's formulas: NPO on raw logits (`neg_log_ratio = ref.logits - cur.logits`, averaged over
positions and vocabulary) and the KL term as `F.kl_div(cur.logits, ref.logits, reduction="batchmean",
log_target=True)` on raw logits (not a KL). We take both over the labelled positions only (our rows are
padded; MUSE's 2048-token chunks are not).

Every gradient method trains with `common.train.train` (AdamW, constant lr, MUSE's recipe) and is evaluated
once per epoch; the selection rule is MUSE's: keep the first epoch whose KnowMem on D_f is at or below the
retrained model's, else the last epoch (for Task Vector and WHP the same scan over alpha in {1, 2, 4, 8, 16}).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from common import lm
from common.configs import ConfigError, Count, Index, NonNegative, OneOf, Positive, validate_config
from common.models.gpt import GPT, GPTOutput
from common.train import StepInfo, TrainConfig, train
from papers.muse.metrics import knowmem

METHODS = ("GA", "GA_GDR", "GA_KLR", "NPO", "NPO_GDR", "NPO_KLR", "Task Vector", "WHP")
GRADIENT_METHODS = METHODS[:6]


@dataclass(frozen=True)
class UnlearnConfig:
    """Hyperparameters of `unlearn` (MUSE Sec. 4.2 / the official scripts: AdamW, constant lr 1e-5 on
    7B models, batch 4 per device, up to 10 epochs; beta 0.1; alpha in {1, 2, 4, 8, 16})."""

    lr: Positive = 1e-4  # the small model's lr (MUSE: 1e-5 on 7B)
    batch: Count = 4
    epochs: Count = 10  # the most epochs (MUSE: 10)
    steps: Count | None = None  # a fixed number of steps instead of epochs (matched-steps protocol)
    beta: Positive = 0.1
    retain_weight: NonNegative = 1.0
    variant: Annotated[str, OneOf("paper", "official")] = "paper"
    alphas: tuple[Positive, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    stop_rule: bool = True  # MUSE's selection rule; False: train all epochs (scalability / sustainability)
    seed: Index = 0

    def __post_init__(self) -> None:
        if not self.alphas:
            raise ConfigError("alphas must hold at least one value")


class UnlearnResult(NamedTuple):
    """The selected model, the epoch (or alpha) it was taken at, whether the stopping rule was met, and
    KnowMem on D_f at each epoch (or alpha) scanned."""

    model: nn.Module
    selected: float
    met_rule: bool
    knowmem_f: list[float]
    steps: int


def select_checkpoint(knowmem_f: Sequence[float], reference: float | None) -> tuple[int, bool]:
    """MUSE's rule: the index of the first checkpoint whose KnowMem on D_f is <= the retrained model's
    (`reference`), and True; else the last index and False (also when reference is None)."""
    if len(knowmem_f) == 0:
        raise ValueError("select_checkpoint needs at least one checkpoint")
    if reference is not None:
        for i, k in enumerate(knowmem_f):
            if k <= reference:
                return i, True
    return len(knowmem_f) - 1, False


# ------------------------------------------------------------------------------------------------ batches
def doc_rows(docs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, T) and labels (N, T) (the next token; IGNORE on padding) of whole documents."""
    T = max(len(d) for d in docs) - 1
    ids = torch.zeros((len(docs), T), dtype=torch.long)  # (N, T)
    labels = torch.full((len(docs), T), lm.IGNORE, dtype=torch.long)  # (N, T)
    for i, d in enumerate(docs):
        ids[i, : len(d) - 1] = torch.tensor(d[:-1])
        labels[i, : len(d) - 1] = torch.tensor(d[1:])
    return ids, labels


# ------------------------------------------------------------------------------------------------- losses
def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids).logits  # (B, T, V)


def nll(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token NLL over the labelled positions."""
    return model(ids, labels, ignore_index=lm.IGNORE).loss


def npo_loss(model, ref, ids, labels, beta: float, variant: str) -> torch.Tensor:
    """NPO on a forget batch: the paper's sequence-level form, or the official code's raw-logit form."""
    if variant == "paper":
        logp = lm.sequence_logps(model, ids, labels)  # (B,)
        with torch.no_grad():
            ref_logp = lm.sequence_logps(ref, ids, labels)  # (B,)
        return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()
    mask = labels != lm.IGNORE  # (B, T)
    cur = _logits(model, ids)[mask]  # (N, V)
    with torch.no_grad():
        ref_logits = _logits(ref, ids)[mask]  # (N, V)
    return -(2.0 / beta) * F.logsigmoid(beta * (ref_logits - cur)).mean()


def kl_loss(model, ref, ids, labels, variant: str) -> torch.Tensor:
    """KL(p_t || p) per labelled retain token, averaged (paper); or the official raw-logit `kl_div`."""
    mask = labels != lm.IGNORE  # (B, T)
    cur = _logits(model, ids)[mask]  # (N, V)
    with torch.no_grad():
        ref_logits = _logits(ref, ids)[mask]  # (N, V)
    if variant == "paper":
        logp_t, logp = torch.log_softmax(ref_logits, -1), torch.log_softmax(cur, -1)
        return (logp_t.exp() * (logp_t - logp)).sum(-1).mean()
    # F.kl_div(input, target, log_target=True) = sum exp(target) (target - input), / B for "batchmean"
    return F.kl_div(cur, ref_logits, reduction="sum", log_target=True) / ids.shape[0]


def method_loss(method: str, ref: nn.Module, cfg: UnlearnConfig):
    """`loss_fn(model, batch)` for `common.train.train`; batch = (forget ids, labels, retain ids, labels)."""
    forget_part, _, reg = method.partition("_")

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        f_ids, f_labels, r_ids, r_labels = batch
        if forget_part == "GA":
            loss = -nll(model, f_ids, f_labels)
        else:
            loss = npo_loss(model, ref, f_ids, f_labels, cfg.beta, cfg.variant)
        if reg == "GDR":
            loss = loss + cfg.retain_weight * nll(model, r_ids, r_labels)
        elif reg == "KLR":
            loss = loss + cfg.retain_weight * kl_loss(model, ref, r_ids, r_labels, cfg.variant)
        return loss

    return loss_fn


# ---------------------------------------------------------------------------------------- TV and WHP
def task_vector(target: GPT, reinforced: GPT, alpha: float) -> GPT:
    """theta_t - alpha (theta_reinforced - theta_t), a fresh model."""
    sr, st = reinforced.state_dict(), target.state_dict()
    state = {k: st[k] - alpha * (sr[k] - st[k]) for k in st}
    return lm.load_model(target.config, state)


class WHPModel(nn.Module):
    """Who's Harry Potter as a model: logits z_t - alpha ReLU(z_r - z_t) (MUSE's `WHPModelForCausalLM`)."""

    def __init__(self, target: GPT, reinforced: GPT, alpha: float) -> None:
        super().__init__()
        self.target, self.reinforced, self.alpha = target, reinforced, float(alpha)
        self.config = target.config

    @property
    def unembedding(self) -> torch.Tensor:
        return self.target.unembedding

    def forward(self, ids: torch.Tensor, *args: Any, **kwargs: Any) -> GPTOutput:
        z_t, z_r = _logits(self.target, ids), _logits(self.reinforced, ids)  # (B, T, V) each
        z = z_t - self.alpha * torch.relu(z_r - z_t)  # (B, T, V)
        return GPTOutput(hidden=z, logits=z, loss=None)


# ---------------------------------------------------------------------------------------------- unlearn
def _config(hparams: dict[str, Any]) -> UnlearnConfig:
    names = {f.name for f in dataclasses.fields(UnlearnConfig)}
    unknown = sorted(set(hparams) - names)
    if unknown:
        raise ConfigError(f"unknown unlearning hyperparameter(s) {unknown}; valid: {sorted(names)}")
    cfg = UnlearnConfig(**hparams)
    validate_config(cfg)
    return cfg


def unlearn(
    method: str,
    target: nn.Module,
    corpus,
    *,
    forget: Sequence[int] | None = None,
    reference_knowmem_f: float | None = None,
    reinforced: GPT | None = None,
    **hparams: Any,
) -> UnlearnResult:
    """Unlearn `forget` (entity indices; default the corpus's D_f) from `target` with `method` (one of
    METHODS), keeping the checkpoint MUSE's rule selects against `reference_knowmem_f` (the retrained
    model's KnowMem on D_f; None or stop_rule=False: the last epoch). The target is not modified. Task
    Vector and WHP need `reinforced` (the target fine-tuned on the forget set). `hparams`: fields of
    `UnlearnConfig`."""
    if method not in METHODS:
        raise ValueError(f"unknown unlearning method {method!r}; valid: {', '.join(METHODS)}")
    if not isinstance(target, GPT):
        raise TypeError(f"target must be a common.models.gpt.GPT, got {type(target).__name__}")
    cfg = _config(hparams)
    forget = tuple(corpus.forget if forget is None else forget)
    if not forget:
        raise ValueError("forget must name at least one entity")
    if not set(forget) <= set(range(len(corpus.bio.entities))):
        raise ValueError("forget holds entity indices outside the corpus")
    ref = reference_knowmem_f if cfg.stop_rule else None
    if method in ("Task Vector", "WHP"):
        if not isinstance(reinforced, GPT):
            raise ValueError(f"{method} needs reinforced=<the target fine-tuned on the forget set>")
        scores, models = [], []
        for a in cfg.alphas:
            m = (
                task_vector(target, reinforced, a)
                if method == "Task Vector"
                else WHPModel(target, reinforced, a)
            )
            scores.append(knowmem(m, corpus, corpus.forget))
            models.append(m)
            if ref is not None and scores[-1] <= ref:
                break
        i, met = select_checkpoint(scores, ref)
        return UnlearnResult(models[i], float(cfg.alphas[i]), met, scores, 0)

    f_ids, f_labels = doc_rows([corpus.encode(t) for t in corpus.bios(forget)])  # (Nf, Tf)
    r_ids, r_labels = doc_rows([corpus.encode(t) for t in corpus.retain1_texts()])  # (Nr, Tr)
    per_epoch = max(1, round(f_ids.shape[0] / cfg.batch))
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    f_rows = lm.shuffled_rows(f_ids.shape[0], steps, cfg.batch, cfg.seed)  # (steps, batch)
    r_rows = lm.shuffled_rows(r_ids.shape[0], steps, cfg.batch, cfg.seed + 1)  # (steps, batch)

    def get_batch(step: int, micro: int):
        f, r = f_rows[step], r_rows[step]
        return f_ids[f], f_labels[f], r_ids[r], r_labels[r]

    model = lm.load_model(target.config, {k: v.clone() for k, v in target.state_dict().items()})
    model.train()
    frozen = lm.load_model(target.config, target.state_dict())  # theta_t: NPO's and KL's reference
    scores: list[float] = []
    done = {"steps": steps}

    def at_epoch(info: StepInfo) -> None:
        if info.step != steps and (ref is None or info.step % per_epoch):
            return  # without the stopping rule only the last checkpoint is scored
        scores.append(knowmem(info.model, corpus, corpus.forget))
        done["steps"] = info.step
        if ref is not None and scores[-1] <= ref:
            info.stop = True

    tc = TrainConfig(
        optimizer="adamw", lr=cfg.lr, steps=steps, schedule="constant", seed=cfg.seed, log_every=max(1, steps)
    )
    train(model, method_loss(method, frozen, cfg), get_batch, tc, callbacks=[at_epoch], progress=False)
    model.eval()
    _, met = select_checkpoint(scores, ref)
    return UnlearnResult(model, float(len(scores)), met, scores, done["steps"])


__all__ = [
    "METHODS",
    "UnlearnConfig",
    "UnlearnResult",
    "WHPModel",
    "select_checkpoint",
    "task_vector",
    "unlearn",
]
