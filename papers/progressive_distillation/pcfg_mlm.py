"""Masked-language-model teachers, students and the n-gram probe on a PCFG, for Panigrahi et al. 2025
(arXiv 2410.05464, section 5; official `PCFG_mlm/`, read through the reference notes section 3.2).

- Data: sentences of a cfg3-shaped grammar (`common.data.pcfg.PCFG.random`), laid out as
  <bos> sentence <eos> <pad>... with the official token map (terminals, then bos, eos, pad, mask); BERT
  masking of `mask_rate` of the terminals, 80 % <mask> / 10 % random terminal / 10 % unchanged.
- Models: `common.models.gpt.GPT` with `causal=False` (every position attends to every other, a BERT-style
  encoder; `mlm_logits`), trained with `common.train.train` (AdamW, beta2 = 0.95, warm-up
  then cosine, as in the official scripts).
- `train_teacher`: checkpoints every `ckpt_every` steps kept in memory; `shared_teacher` keeps them in the
  paper's shared-artifact cache, keyed by `TeacherSpec`.
- `train_student`: cross-entropy on the labels, or on the argmax of a teacher checkpoint chosen per step by a
  schedule (the official tau = 1e-20): progressive (`lockstep`, with the official speed factor), (2, T)
  (`two_shot`), one-shot from the final checkpoint.
- `context_reliance`: the M_robust / M_close probe of the official `probing/ngram_prediction.py`: the L1
  change of the prediction at a masked position when the window of radius r around it is masked too
  (reliance on the short context), or when everything outside that window is masked (reliance on the
  context beyond r tokens); plus the cross-entropy of the true token under each input, from which Figure 4
  reads how much information the short window and the context beyond carry for the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F

from common.configs import ConfigError, Count, Index, OpenFraction, Positive, Range
from common.data.pcfg import PCFG
from common.experiment import RunContext
from common.models.gpt import GPT, GPTConfig
from common.train import StepInfo, TrainConfig, train

IGNORE = -100
MAX_CONTEXT = 1024


@dataclass(frozen=True)
class PCFGSetup:
    """The grammar, the masking, the teacher and student shapes and their optimisation; shared fields of
    Figure 4's config (repeated flat there so `--set teacher_embd=32` works)."""

    levels: Count = 4  # non-terminal levels, root included (cfg3b: 6)
    symbols_per_level: Count = 4
    rules_per_symbol: Count = 2
    terminals: Count = 6
    grammar_seed: Index = 0
    mask_rate: OpenFraction = 0.3
    teacher_layers: Count = 2
    teacher_heads: Count = 4  # divides teacher_embd
    teacher_embd: Count = 64
    student_layers: Count = 2
    student_heads: Count = 4  # divides student_embd
    student_embd: Count = 32
    batch: Count = 32
    lr: Positive = 5e-3
    warmup_frac: Annotated[float, Range(0, 1, high_open=True)] = 0.06
    teacher_steps: Count = 1000  # a multiple of ckpt_every
    student_steps: Count = 1000  # a multiple of eval_every
    ckpt_every: Count = 50
    eval_sentences: Count = 500
    eval_every: Count = 50
    seed: Index = 0

    def validate(self) -> None:
        """Fail fast on shapes or settings that cannot make the experiment."""
        positive = (
            "levels",
            "symbols_per_level",
            "rules_per_symbol",
            "terminals",
            "teacher_layers",
            "teacher_heads",
            "teacher_embd",
            "student_layers",
            "student_heads",
            "student_embd",
            "batch",
            "teacher_steps",
            "student_steps",
            "ckpt_every",
            "eval_sentences",
            "eval_every",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        for who in ("teacher", "student"):
            embd, heads = getattr(self, f"{who}_embd"), getattr(self, f"{who}_heads")
            if embd % heads:
                raise ConfigError(f"{who}_embd ({embd}) must be divisible by {who}_heads ({heads})")
        if not 0.0 < self.mask_rate < 1.0:
            raise ConfigError(f"mask_rate must lie in (0, 1), got {self.mask_rate}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError(f"warmup_frac must lie in [0, 1), got {self.warmup_frac}")
        if self.teacher_steps % self.ckpt_every:
            raise ConfigError(
                f"teacher_steps ({self.teacher_steps}) must be a multiple of ckpt_every ({self.ckpt_every})"
            )
        if self.student_steps % self.eval_every:
            raise ConfigError(
                f"student_steps ({self.student_steps}) must be a multiple of eval_every ({self.eval_every})"
            )
        if self.seed < 0 or self.grammar_seed < 0:
            raise ConfigError(f"seeds must be >= 0, got seed={self.seed}, grammar_seed={self.grammar_seed}")
        task = make_task(self)  # fails fast on a grammar that cannot be drawn
        if task.T > MAX_CONTEXT:
            raise ConfigError(
                f"the grammar's longest sentence needs a context of {task.T} > {MAX_CONTEXT}; "
                "use fewer levels"
            )


def setup_of(config: Any) -> PCFGSetup:
    """The PCFGSetup fields of a figure config."""
    setup = PCFGSetup(**{name: getattr(config, name) for name in PCFGSetup.__dataclass_fields__})
    setup.validate()
    return setup


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Task:
    """The grammar with its token layout: T = longest sentence + <bos> + <eos>."""

    grammar: PCFG
    T: int

    @property
    def ids(self) -> dict[str, int]:
        return self.grammar.special_ids()

    @property
    def vocab_size(self) -> int:
        return self.grammar.vocab_size


def make_task(setup: PCFGSetup) -> Task:
    try:
        grammar = PCFG.random(
            levels=setup.levels,
            symbols_per_level=setup.symbols_per_level,
            rules_per_symbol=setup.rules_per_symbol,
            terminals=setup.terminals,
            seed=setup.grammar_seed,
        )
    except ValueError as err:
        raise ConfigError(f"cannot build the grammar: {err}") from None
    return Task(grammar=grammar, T=grammar.length_range()[1] + 2)


def _seed(setup: PCFGSetup, stream: int, index: int = 0) -> int:
    return 1_000_003 * setup.seed + 7919 * stream + 104_729 * index + 17


def encode(task: Task, sentences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Token ids (N, T): <bos> sentence <eos> then <pad>."""
    if not sentences:
        raise ValueError("no sentences to encode")
    ids = task.ids
    x = torch.full((len(sentences), task.T), ids["pad"], dtype=torch.long)
    for i, s in enumerate(sentences):
        if len(s) + 2 > task.T:
            raise ValueError(f"sentence {i} has {len(s)} tokens; the context holds {task.T - 2}")
        x[i, 0] = ids["bos"]
        x[i, 1 : 1 + len(s)] = torch.as_tensor(s, dtype=torch.long)
        x[i, 1 + len(s)] = ids["eos"]
    return x


def mask_tokens(task: Task, x: torch.Tensor, rate: float, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """BERT masking of the terminals of x (N, T): returns inputs (N, T) and targets (N, T), IGNORE where no
    prediction is asked. Of the chosen positions 80 % become <mask>, 10 % a random terminal, 10 % stay."""
    nt = task.grammar.num_terminals
    chosen = (torch.rand(x.shape, generator=gen) < rate) & (x < nt)  # (N, T)
    how = torch.rand(x.shape, generator=gen)
    random_tok = torch.randint(0, nt, x.shape, generator=gen)
    inputs = torch.where(chosen & (how < 0.8), torch.full_like(x, task.ids["mask"]), x)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_tok, inputs)
    targets = torch.where(chosen, x, torch.full_like(x, IGNORE))
    return inputs, targets


def mlm_batch(task: Task, setup: PCFGSetup, stream: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training batch `step` of data stream `stream`: fresh sentences and a fresh mask (one pass, as in the
    official scripts)."""
    seed = _seed(setup, stream, step)
    x = encode(task, task.grammar.sample(setup.batch, seed=seed))
    return mask_tokens(task, x, setup.mask_rate, torch.Generator().manual_seed(seed))


def eval_set(task: Task, setup: PCFGSetup) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out masked sentences with a fixed mask, from a stream no training batch uses."""
    seed = _seed(setup, 999)
    x = encode(task, task.grammar.sample(setup.eval_sentences, seed=seed))
    return mask_tokens(task, x, setup.mask_rate, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- models


def new_model(task: Task, layers: int, heads: int, embd: int, seed: int) -> GPT:
    """A GPT of this shape initialised from `seed` (without moving the global RNG)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT(GPTConfig(task.vocab_size, task.T, layers, heads, embd, causal=False))  # BERT-style


def mlm_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Masked-LM logits (B, T, V) of a bidirectional GPT (`new_model` builds them with causal=False)."""
    if model.config.causal:
        raise ValueError("mlm_logits needs a bidirectional GPT (GPTConfig(causal=False)), got a causal one")
    return model(idx).logits


def masked_metrics(model: GPT, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy at the masked positions."""
    with torch.no_grad():
        chunks = [mlm_logits(model, inputs[i : i + 256]) for i in range(0, inputs.shape[0], 256)]
        logits = torch.cat(chunks)  # (N, T, V)
    sel = targets != IGNORE
    lg, tg = logits[sel], targets[sel]
    return float(F.cross_entropy(lg, tg)), float((lg.argmax(-1) == tg).float().mean())


def _eval_metrics(model: GPT, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """`masked_metrics` of a model in training, in eval mode and back."""
    model.eval()
    out = masked_metrics(model, inputs, targets)
    model.train()
    return out


def mlm_loss(net: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Masked-LM cross-entropy of `common.train.train`'s contract: the mean over the asked positions."""
    inputs, targets = batch
    logits = mlm_logits(net, inputs)  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def train_config(setup: PCFGSetup, steps: int, seed: int) -> TrainConfig:
    """The official optimiser: AdamW (beta2 = 0.95), linear warm-up for `warmup_frac`, then cosine."""
    return TrainConfig(
        optimizer="adamw",
        lr=setup.lr,
        betas=(0.9, 0.95),
        schedule="cosine",
        warmup_steps=int(setup.warmup_frac * steps),
        steps=steps,
        log_every=setup.eval_every,
        seed=seed,
    )


# -------------------------------------------------------------------------------------------- teacher


@dataclass
class Teacher:
    """Checkpoints (state dicts) at `ckpt_steps` (index 0 = init) and held-out metrics at each."""

    ckpt_steps: list[int]
    states: list[dict[str, torch.Tensor]]
    loss: list[float]
    accuracy: list[float]

    def model(self, task: Task, setup: PCFGSetup, index: int) -> GPT:
        """Checkpoint `index` as a frozen GPT in eval mode."""
        m = new_model(task, setup.teacher_layers, setup.teacher_heads, setup.teacher_embd, seed=0)
        m.load_state_dict(self.states[index])
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    def index_at_or_after(self, step: int) -> int:
        """Index of the first checkpoint at step >= `step` (the last checkpoint when none is)."""
        for i, s in enumerate(self.ckpt_steps):
            if s >= step:
                return i
        return len(self.ckpt_steps) - 1


@dataclass(frozen=True)
class TeacherSpec:
    """Everything `train_teacher` depends on, and nothing else (every PCFGSetup field but the student's and
    the eval cadence): the key of the teacher in the shared-artifact cache. The fields are PCFGSetup's."""

    levels: int
    symbols_per_level: int
    rules_per_symbol: int
    terminals: int
    grammar_seed: int
    mask_rate: float
    teacher_layers: int
    teacher_heads: int
    teacher_embd: int
    batch: int
    lr: float
    warmup_frac: float
    teacher_steps: int
    ckpt_every: int
    eval_sentences: int
    seed: int

    @classmethod
    def of(cls, setup: PCFGSetup) -> TeacherSpec:
        return cls(**{name: getattr(setup, name) for name in cls.__dataclass_fields__})

    def setup(self) -> PCFGSetup:
        """A PCFGSetup with these fields (the student's at their defaults: the teacher never reads them)."""
        return PCFGSetup(**dataclasses.asdict(self))


def shared_teacher(ctx: RunContext, setup: PCFGSetup) -> Teacher:
    """The teacher of `setup` from the paper's shared-artifact cache (`ctx.shared`), trained once per
    `TeacherSpec`."""
    spec = TeacherSpec.of(setup)
    return Teacher(**ctx.shared("pcfg_teacher", spec, lambda: train_teacher(spec.setup()).__dict__))


def train_teacher(setup: PCFGSetup) -> Teacher:
    """Train the teacher with masked-LM cross-entropy, keeping a checkpoint every `ckpt_every` steps."""
    task = make_task(setup)
    model = new_model(task, setup.teacher_layers, setup.teacher_heads, setup.teacher_embd, _seed(setup, 1))
    x_eval, y_eval = eval_set(task, setup)
    out = Teacher(ckpt_steps=[], states=[], loss=[], accuracy=[])

    def snapshot(step: int, m: GPT) -> None:
        loss, acc = _eval_metrics(m, x_eval, y_eval)
        out.ckpt_steps.append(step)
        out.states.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        out.loss.append(loss)
        out.accuracy.append(acc)

    def callback(info: StepInfo) -> None:
        if info.step % setup.ckpt_every == 0:
            snapshot(info.step, info.model)

    snapshot(0, model)
    cfg = train_config(setup, setup.teacher_steps, _seed(setup, 1))
    train(
        model,
        mlm_loss,
        lambda step, micro: mlm_batch(task, setup, 2, step),
        cfg,
        callbacks=[callback],
        progress=False,
    )
    return out


# ------------------------------------------------------------------------------------------- students

# A schedule maps a student step t (0-based) to a teacher checkpoint index, or None for the labels.
Schedule = Callable[[int], int | None]


def lockstep(teacher: Teacher, speed: int = 1, start: int = 0) -> Schedule:
    """Progressive distillation: at student step t the first checkpoint at teacher step >= speed * (t + 1)
    (the official `speed_factor`; 1 = lockstep, the MLM script; 2 = the autoregressive script), and never one
    before checkpoint index `start` (the official list of checkpoints starts at its first saved one, 1k steps,
    which is already mid-transition)."""
    return lambda t: max(start, teacher.index_at_or_after(speed * (t + 1)))


def one_shot(teacher: Teacher) -> Schedule:
    last = len(teacher.ckpt_steps) - 1
    return lambda t: last


def two_shot(teacher: Teacher, ckpt_index: int, first_steps: int) -> Schedule:
    """(2, T)-progressive: checkpoint `ckpt_index` for the first T student steps, then the final one."""
    last = len(teacher.ckpt_steps) - 1
    return lambda t: ckpt_index if t < first_steps else last


def labels_only() -> Schedule:
    return lambda t: None


def train_student(setup: PCFGSetup, teacher: Teacher | None, schedule: Schedule) -> dict[str, Any]:
    """Train one student on the schedule's targets; returns its held-out loss / accuracy curve.

    Every student sees the same batches and starts from the same initialisation (paired comparisons). A
    distilled student's target at each masked position is the teacher checkpoint's argmax there (tau -> 0).
    """
    task = make_task(setup)
    model = new_model(task, setup.student_layers, setup.student_heads, setup.student_embd, _seed(setup, 3))
    x_eval, y_eval = eval_set(task, setup)
    loaded: dict[int, GPT] = {}

    def teacher_at(index: int) -> GPT:
        if index not in loaded:
            assert teacher is not None, "a distillation schedule needs a teacher"
            loaded.clear()  # one checkpoint at a time: the schedules only move forward
            loaded[index] = teacher.model(task, setup, index)
        return loaded[index]

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = mlm_batch(task, setup, 4, step)
        index = schedule(step)
        if index is not None:
            with torch.no_grad():
                predicted = mlm_logits(teacher_at(index), inputs).argmax(-1)  # (B, T)
            targets = torch.where(targets != IGNORE, predicted, targets)
        return inputs, targets

    steps, losses, accs = [0], *([v] for v in masked_metrics(model, x_eval, y_eval))

    def callback(info: StepInfo) -> None:
        if info.step % setup.eval_every == 0:
            loss, acc = _eval_metrics(info.model, x_eval, y_eval)
            steps.append(info.step)
            losses.append(loss)
            accs.append(acc)

    cfg = train_config(setup, setup.student_steps, _seed(setup, 3))
    train(model, mlm_loss, get_batch, cfg, callbacks=[callback], progress=False)
    return {"steps": steps, "loss": losses, "accuracy": accs}


# ---------------------------------------------------------------------------------------------- probe


def probe_batch(
    task: Task, setup: PCFGSetup, sentences: int, positions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe sentences x (N, T) and one probed terminal position per row p (N,): `positions` evenly spread
    positions of each of `sentences` sentences (kept >= 1 away from <bos> / <eos>)."""
    sents = task.grammar.sample(sentences, seed=_seed(setup, 555))
    x = encode(task, sents)
    rows, pos = [], []
    for i, s in enumerate(sents):
        for j in range(positions):
            rows.append(i)
            pos.append(1 + round((j + 0.5) * len(s) / positions))
    p = torch.tensor(pos)
    return x[rows], p


def _masked(task: Task, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x with every terminal outside `keep` (N, T bool) replaced by <mask>."""
    terminal = x < task.grammar.num_terminals
    return torch.where(terminal & ~keep, torch.full_like(x, task.ids["mask"]), x)


def context_reliance(
    task: Task, model: GPT, x: torch.Tensor, p: torch.Tensor, radii: Sequence[int]
) -> dict[str, list[float]]:
    """The probe at one model, at position p (N,) of sentences x (N, T), for each radius r in `radii`.

    Inputs: base = only p masked; robust[r] = p and its r neighbours on each side masked; close[r] =
    everything but the window [p - r, p + r] masked (r = 0: every terminal masked). Returns

    - "robust" / "close": the median over positions of the L1 distance between the predictive distribution
      over the terminals and the base one (the official M_robust / M_close): how much the prediction relies
      on the short (2r+1)-gram context, and on the context beyond r;
    - "ce_base", "ce_close": cross-entropy (nats) of the true token at p under base and under close[r], so
      ce_close[0] - ce_close[r] is what the window of radius r tells the model and ce_close[r] - ce_base is
      what the context beyond r adds.
    """
    N, T = x.shape
    nt = task.grammar.num_terminals
    col = torch.arange(T)[None, :]  # (1, T)
    dist = (col - p[:, None]).abs()  # (N, T)
    truth = x[torch.arange(N), p]  # (N,)

    def predict(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = mlm_logits(model, inputs)[torch.arange(N), p, :nt]  # (N, nt)
        return torch.log_softmax(logits.double(), dim=-1)

    def ce(logp: torch.Tensor) -> float:
        return float(-logp[torch.arange(N), truth].mean())

    base = predict(_masked(task, x, dist > 0))
    out: dict[str, Any] = {"robust": [], "close": [], "ce_base": ce(base), "ce_close": []}
    for r in radii:
        close = predict(_masked(task, x, (dist <= r) & (dist > 0)))
        out["close"].append(float((close.exp() - base.exp()).abs().sum(-1).median()))
        out["ce_close"].append(ce(close))
        if r > 0:
            robust = predict(_masked(task, x, dist > r))
            out["robust"].append(float((robust.exp() - base.exp()).abs().sum(-1).median()))
        else:
            out["robust"].append(0.0)
    return out


def teacher_probe(
    setup: PCFGSetup, teacher: Teacher, radii: Sequence[int], sentences: int, positions: int
) -> dict[str, Any]:
    """`context_reliance` at every teacher checkpoint: each key holds one entry per checkpoint."""
    task = make_task(setup)
    x, p = probe_batch(task, setup, sentences, positions)
    out: dict[str, Any] = {"radii": list(radii)}
    for i in range(len(teacher.ckpt_steps)):
        for key, value in context_reliance(task, teacher.model(task, setup, i), x, p, radii).items():
            out.setdefault(key, []).append(value)
    return out
