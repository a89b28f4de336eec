"""The LESS pipeline at small scale: base model, LoRA warmup, gradient datastore, selection, fine-tuning.

1. Base: a small `common.models.gpt.GPT` pretrained (all weights, next-token loss on the responses) on the
   pool's *other* families (sub, rev, cpy, srt, max, cnt) and on one-digit sums written the usual way
   ("sum 7 8=" -> "15"); it has never seen the target's format.
2. Warmup (LESS step 1): LoRA on a random `warmup_fraction` of the pool for `warmup_epochs` epochs (AdamW,
   linear decay, no weight decay), keeping after every epoch the LoRA weights, AdamW's exp_avg/exp_avg_sq by
   parameter name, the step count and the epoch's average learning rate (the checkpoint weight).
3. Datastore: for every checkpoint, the projected LoRA gradient of every pool example
   (`common.ops.GradientFeatures`, one forward/backward per batch, rank-sharded under torchrun), mapped
   through Adam's update direction for the training pool and plain for the validation shots (LESS). Stored
   per checkpoint as a shared artifact, so a killed run resumes.
4. Selection: `influence_scores` (max over subtasks of the lr-weighted mean cosine), top `fraction`. The
   ablations read the same datastore: a prefix of its coordinates (proj_dim), one checkpoint of it, inner
   products instead of cosines; and `base_datastore`, gradients at the base model (no warmup).
5. Fine-tuning: LoRA from the base on a selection for `ft_steps` steps, evaluated by exact-match accuracy
   (greedy decoding) and response loss on every held-out problem of each subtask.

Adam variants (`adam_variant`): "paper" is Sec. 3's Gamma = m_hat / (sqrt(v_hat) + eps) with bias correction
(t = the checkpoint's step + 1); "official" is `obtain_gradients_with_adam` in the official code:
m' / sqrt(v' + eps), no bias correction, eps inside the square root. Both reduce exactly to the kernel's
m' / (sqrt(v') + eps') up to a positive factor (cosines ignore it): paper: eps' = eps * sqrt(1 - beta2^t);
official: v -> v + eps / beta2, eps' = 0 (then beta2 v + (1 - beta2) g^2 gains exactly eps).

The base, the warmup checkpoints and the datastore blocks are shared artifacts of the paper's figures
(`common.experiment.shared_artifact` under results/less/_shared/, keyed by the spec dataclasses below, which
hold what each depends on and nothing else); the data and the fine-tuning runs are memoised in the process.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from common import lm
from common.claims import over_seeds
from common.configs import ConfigError, Count, Index, NonNegative, OneOf, Positive, Range
from common.distributed import is_distributed, rank
from common.experiment import RunContext, memoised, shared_artifact
from common.models.gpt import GPT, GPTConfig
from common.models.lora import apply_lora
from common.ops.gradient_features import GradientFeatures
from common.train import TrainConfig, train
from papers.less import data as D
from papers.less.influence import AGGREGATIONS, influence_scores, select

ADAM_VARIANTS = ("paper", "official")
PRETRAIN_FAMILIES = ("sub", "rev", "cpy", "srt", "max", "cnt")
Share = Annotated[float, Range(0, 1, high_open=True)]  # a family's share of the pool, in [0, 1)
Selected = Annotated[float, Range(0, 1, low_open=True)]  # a fraction of the pool that is selected, in (0, 1]


@dataclass(frozen=True)
class Setup:
    """Everything the pipeline depends on; each figure's Config extends it."""

    seed: Index = 0
    pool_size: Count = 2000
    add_weight: Share = 0.08  # fraction of the pool in the target family (correct addition)
    bad_weight: Share = 0.08  # fraction in the adversarial family (carries dropped)
    n_val: Annotated[int, Range(1, 44)] = 8  # validation shots per subtask (45 would leave no carry test)
    # base model (the one fine-tuned in every figure) and its pretraining
    n_layer: Count = 2
    n_embd: Count = 64  # divisible by n_head
    n_head: Count = 4
    pretrain_steps: Count = 400
    pretrain_batch: Count = 64
    pretrain_lr: Positive = 3e-3
    # weight of the target family in pretraining (the others: 1, sum: 6)
    pretrain_add_weight: NonNegative = 0.0
    # LoRA (LESS: r 128, alpha 512, q/k/v/o; here attention and MLP)
    lora_r: Count = 8
    lora_alpha: Positive = 16.0
    # warmup on a random 5%
    warmup_fraction: Selected = 0.05
    warmup_epochs: Count = 4
    warmup_batch: Count = 2  # LESS: ~105 steps per warmup epoch; batch 2 gives 25 (quick) to 75 (default)
    warmup_lr: Positive = 1e-2
    data_seed: Index = 3  # LESS's --data_seed for the warmup subset
    # datastore and selection
    proj_dim: Count = 1024
    proj_seed: Index = 0
    adam_variant: Annotated[str, OneOf(*ADAM_VARIANTS)] = "paper"
    aggregation: Annotated[str, OneOf(*AGGREGATIONS)] = "max"
    fraction: Selected = 0.05
    feature_batch: Count = 128
    # fine-tuning on a selection
    ft_steps: Count = 150
    ft_batch: Count = 16
    ft_lr: Positive = 1e-2
    full_steps: Count = 300  # fine-tuning steps on the full pool (same batch)

    def __post_init__(self) -> None:
        positive = (
            "pool_size n_val n_layer n_embd n_head pretrain_steps pretrain_batch lora_r warmup_epochs "
            "warmup_batch proj_dim feature_batch ft_steps ft_batch full_steps pretrain_lr warmup_lr ft_lr "
            "lora_alpha"
        )
        for name in positive.split():
            if not getattr(self, name) > 0:  # `not > 0` also rejects a NaN learning rate
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.pretrain_add_weight < 0:
            raise ConfigError(f"pretrain_add_weight must be >= 0, got {self.pretrain_add_weight}")
        for name in ("add_weight", "bad_weight"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.add_weight + self.bad_weight >= 1.0:
            raise ConfigError("add_weight + bad_weight must leave room for the other families")
        for name in ("warmup_fraction", "fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must lie in (0, 1], got {value}")
            if math.floor(self.pool_size * value + 1e-9) < 1:
                raise ConfigError(f"{name}={value} of pool_size={self.pool_size} selects no example")
        if self.n_val >= 45:
            raise ConfigError(f"n_val={self.n_val} leaves no carry problem to test (there are 45)")
        if self.adam_variant not in ADAM_VARIANTS:
            raise ConfigError(f"adam_variant must be one of {ADAM_VARIANTS}, got {self.adam_variant!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")


def setup_of(config: Any) -> Setup:
    """The Setup part of a figure config."""
    return Setup(**{f.name: getattr(config, f.name) for f in dataclasses.fields(Setup)})


SELECTION_ONLY = ("aggregation", "fraction", "ft_steps", "ft_batch", "ft_lr", "full_steps", "feature_batch")
WARMUP_FREE = ("proj_dim", "proj_seed", "adam_variant")  # the warmup does not depend on these
WARMUP_ONLY = ("warmup_fraction", "warmup_epochs", "warmup_batch", "warmup_lr", "data_seed")


@dataclass(frozen=True)
class DataSpec:
    """What the pool and the target split depend on."""

    seed: int
    pool_size: int
    add_weight: float
    bad_weight: float
    n_val: int


@dataclass(frozen=True)
class StageSpec:
    """What a pipeline stage (base, warmup, a datastore block) depends on: the setup's fields minus the ones
    it does not read (`free`), the model size, and the stage's own key (e.g. "pool-adam-ckpt0")."""

    setup: tuple[tuple[str, Any], ...]
    size: tuple[int, int, int]
    stage: str = ""


def stage_spec(setup: Setup, size: ModelSize, free: tuple[str, ...], stage: str = "") -> StageSpec:
    fields = tuple((k, v) for k, v in dataclasses.asdict(setup).items() if k not in free)
    return StageSpec(fields, (size.n_layer, size.n_embd, size.n_head), stage)


# ---------------------------------------------------------------------------------------------------------
# Data and losses
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    pool: D.Examples
    val: dict[str, D.Examples]
    test: dict[str, D.Examples]


def pool_weights(setup: Setup) -> dict[str, float]:
    rest = (1.0 - setup.add_weight - setup.bad_weight) / len(PRETRAIN_FAMILIES)
    return {"add": setup.add_weight, "bad": setup.bad_weight, **dict.fromkeys(PRETRAIN_FAMILIES, rest)}


def pretrain_weights(setup: Setup) -> dict[str, float]:
    """The base's pretraining mixture: the pool's other families, one-digit sums written the usual way
    (6x, so that the base knows the sums), and optionally some of the target family itself."""
    weights = {**dict.fromkeys(PRETRAIN_FAMILIES, 1.0), "sum": 6.0}
    if setup.pretrain_add_weight > 0:
        weights["add"] = setup.pretrain_add_weight
    return weights


def make_data(setup: Setup) -> Data:
    """The pool and the target's validation and test splits (memoised in the process: cheap, but every
    stage reads them)."""

    def build() -> Data:
        pool = D.make_pool(
            setup.pool_size, pool_weights(setup), setup.seed, D.pool_problems(setup.n_val, setup.seed)
        )
        return Data(pool, *D.make_target(setup.n_val, setup.seed))

    spec = DataSpec(setup.seed, setup.pool_size, setup.add_weight, setup.bad_weight, setup.n_val)
    return memoised("less-data", spec, build)


def pretrain_data(setup: Setup) -> D.Examples:
    """The base's pretraining corpus (pretrain_steps * pretrain_batch examples); built only when the base
    is not cached (256k examples at paper scale)."""
    n = setup.pretrain_steps * setup.pretrain_batch
    return D.make_pool(
        n, pretrain_weights(setup), setup.seed + 1000, D.pool_problems(setup.n_val, setup.seed)
    )


def batch_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over every response token of the batch (HF's loss with labels -100)."""
    return model(batch[0], batch[1], ignore_index=D.IGNORE).loss


def example_losses(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Per-example mean cross-entropy over response tokens [N] (LESS's loss, one example per backward)."""
    ids, labels = batch
    logits = model(ids).logits  # (N, T, V)
    ce = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=D.IGNORE, reduction="none")
    mask = (labels != D.IGNORE).float()  # (N, T)
    return (ce * mask).sum(1) / mask.sum(1).clamp(min=1)  # (N,)


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSize:
    n_layer: int
    n_embd: int
    n_head: int


def size_of(setup: Setup) -> ModelSize:
    return ModelSize(setup.n_layer, setup.n_embd, setup.n_head)


def gpt_config(size: ModelSize) -> GPTConfig:
    return GPTConfig(
        vocab_size=D.TOKENIZER.vocab_size, block_size=D.WIDTH, n_layer=size.n_layer, n_head=size.n_head,
        n_embd=size.n_embd,
    )  # fmt: skip


def new_gpt(size: ModelSize) -> GPT:
    return GPT(gpt_config(size))


@dataclass(frozen=True)
class BaseCorpus:
    """What the base's pretraining batches depend on (the `data` of its `common.lm.PretrainSpec`): the
    families' weights, the corpus seed, the problem split an `add` share draws from, the batch size and the
    number of examples (steps x batch, read in order)."""

    weights: tuple[tuple[str, float], ...]
    seed: int
    n_val: int
    batch: int
    examples: int


def base_spec(setup: Setup, size: ModelSize) -> lm.PretrainSpec:
    """The base's pretraining, as a `common.lm.PretrainSpec`: all weights, next-token loss on responses,
    AdamW with cosine decay to 10% after 30 warmup steps."""
    train_cfg = TrainConfig(
        optimizer="adamw", lr=setup.pretrain_lr, steps=setup.pretrain_steps, schedule="cosine",
        warmup_steps=min(30, setup.pretrain_steps), min_lr_ratio=0.1, seed=setup.seed,
        log_every=max(1, setup.pretrain_steps // 10),
    )  # fmt: skip
    corpus = BaseCorpus(
        tuple(sorted(pretrain_weights(setup).items())), setup.seed, setup.n_val, setup.pretrain_batch,
        setup.pretrain_steps * setup.pretrain_batch,
    )  # fmt: skip
    return lm.PretrainSpec(gpt_config(size), train_cfg, corpus, init_seed=setup.seed, ignore_index=D.IGNORE)


def base_state(setup: Setup, size: ModelSize, shared_dir: Path) -> dict[str, torch.Tensor]:
    """The pretrained base's state dict (all weights trained), a shared artifact of the paper's figures."""
    spec = base_spec(setup, size)

    def batches():
        corpus = pretrain_data(setup)  # built only when the base is not cached
        rows = lm.cyclic_rows(len(corpus), setup.pretrain_steps, setup.pretrain_batch)  # (steps, batch)
        return lambda step, micro: (corpus.ids[rows[step]], corpus.labels[rows[step]])

    return lm.pretrain(spec, batches, shared=shared_dir, name="base").model.state_dict()


def lora_model(size: ModelSize, state: dict[str, torch.Tensor], setup: Setup, seed: int) -> GPT:
    """The base with LoRA (attention and MLP projections) whose factors are initialized from `seed`."""
    model = new_gpt(size)
    model.load_state_dict(state)
    torch.manual_seed(seed)
    apply_lora(model, ["c_attn", "c_proj", "c_fc"], r=setup.lora_r, alpha=setup.lora_alpha)
    return model


def train_lora(
    model: GPT, examples: D.Examples, steps: int, batch: int, lr: float, seed: int, callbacks=()
) -> Any:
    order = lm.shuffled_rows(len(examples), steps, batch, seed)  # (steps, batch)

    def get_batch(step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        return examples.ids[order[step]], examples.labels[order[step]]

    cfg = TrainConfig(
        optimizer="adamw", lr=lr, steps=steps, schedule="linear", warmup_steps=math.ceil(0.03 * steps),
        weight_decay=0.0, seed=seed,
    )  # fmt: skip
    return train(model, batch_loss, get_batch, cfg, callbacks=callbacks, progress=False)


# ---------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------
def exact_match(model: GPT, examples: D.Examples) -> torch.Tensor:
    """Per-example exact match [N] of greedy decoding (`common.lm.generate`) of the response and its <eos>."""
    scored = examples.labels != D.IGNORE  # (N, T): positions that predict a response token
    start = scored.float().argmax(1)  # (N,): the last prompt position
    prompts = [row[: int(s) + 1].tolist() for row, s in zip(examples.ids, start, strict=True)]
    targets = [row[row != D.IGNORE].tolist() for row in examples.labels]  # response + <eos>
    decoded = lm.generate(model, prompts, max(len(t) for t in targets), temperature=0.0,
                          eos=D.TOKENIZER.eos_id, keep_eos=True)  # fmt: skip
    return torch.tensor([d[: len(t)] == t for d, t in zip(decoded, targets, strict=True)])


@torch.no_grad()
def evaluate(model: GPT, test: dict[str, D.Examples]) -> dict[str, Any]:
    model.eval()
    out: dict[str, Any] = {"acc": {}, "loss": {}}
    for name, ex in test.items():
        out["acc"][name] = float(exact_match(model, ex).float().mean())
        out["loss"][name] = float(example_losses(model, (ex.ids, ex.labels)).mean())
    out["target_acc"] = float(np.mean(list(out["acc"].values())))  # macro average over subtasks
    out["target_loss"] = float(np.mean(list(out["loss"].values())))
    return out


# ---------------------------------------------------------------------------------------------------------
# Warmup and the gradient datastore
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    lora: dict[str, torch.Tensor]  # trainable LoRA parameters by name
    adam: dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (exp_avg, exp_avg_sq)
    step: int  # optimizer steps taken
    avg_lr: float  # average learning rate of the epoch that ends here (the checkpoint weight)


def warmup(setup: Setup, size: ModelSize, shared_dir: Path) -> list[Checkpoint]:
    """LoRA on a random `warmup_fraction` of the pool; one Checkpoint per epoch."""

    def build() -> list[dict[str, Any]]:
        data = make_data(setup)
        n = math.floor(setup.pool_size * setup.warmup_fraction + 1e-9)
        index = np.random.default_rng(setup.data_seed).permutation(setup.pool_size)[:n]
        subset = data.pool.subset(index)
        per_epoch = math.ceil(n / setup.warmup_batch)
        model = lora_model(size, base_state(setup, size, shared_dir), setup, setup.seed)
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        checkpoints: list[dict[str, Any]] = []

        def snapshot(info) -> None:
            if info.step % per_epoch:
                return
            lrs = info.history.lr[-per_epoch:]
            state = info.optimizer.state
            adam = {
                name: [state[p]["exp_avg"].clone(), state[p]["exp_avg_sq"].clone()] for name, p in trainable
            }
            lora = {name: p.detach().clone() for name, p in trainable}
            checkpoints.append({"lora": lora, "adam": adam, "step": info.step, "avg_lr": float(np.mean(lrs))})

        train_lora(model, subset, per_epoch * setup.warmup_epochs, setup.warmup_batch, setup.warmup_lr,
                   setup.seed, callbacks=[snapshot])  # fmt: skip
        return checkpoints

    stored = shared_artifact(
        shared_dir, "warmup", stage_spec(setup, size, SELECTION_ONLY + WARMUP_FREE), build
    )
    return [Checkpoint(c["lora"], {k: (m, v) for k, (m, v) in c["adam"].items()}, c["step"], c["avg_lr"])
            for c in stored]  # fmt: skip


def _adam_state(ckpt: Checkpoint, variant: str, betas=(0.9, 0.999), eps=1e-8) -> tuple[dict, float]:
    """The (name -> (exp_avg, exp_avg_sq)) mapping and eps that make the kernel's m'/(sqrt(v') + eps)
    proportional to the chosen variant's Adam direction (module docstring)."""
    if variant == "paper":
        t = ckpt.step + 1
        return dict(ckpt.adam), eps * math.sqrt(1.0 - betas[1] ** t)
    return {k: (m, v + eps / betas[1]) for k, (m, v) in ckpt.adam.items()}, 0.0


def checkpoint_model(setup: Setup, size: ModelSize, ckpt: Checkpoint, shared_dir: Path) -> GPT:
    model = lora_model(size, base_state(setup, size, shared_dir), setup, setup.seed)
    model.load_state_dict(ckpt.lora, strict=False)  # the LoRA factors; the base is already loaded
    return model.eval()


def _broadcast(t: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    if not (is_distributed() and dist.is_initialized()):
        assert t is not None
        return t
    buf = t if rank() == 0 else torch.empty(shape, dtype=torch.float32)
    dist.broadcast(buf, src=0)
    return buf


def _features(setup: Setup, model: GPT, examples: D.Examples, adam: dict | None, eps: float) -> torch.Tensor:
    feats = GradientFeatures(model, setup.proj_dim, setup.proj_seed, adam_state=adam, eps=eps)
    out = feats.featurize((examples.ids, examples.labels), example_losses, setup.feature_batch)
    return _broadcast(out, (len(examples), setup.proj_dim))  # (N, k)


def _examples(setup: Setup, kind: str) -> D.Examples:
    data = make_data(setup)
    return data.pool if kind == "pool" else data.val[kind.split(":", 1)[1]]


def datastore(setup: Setup, size: ModelSize, shared_dir: Path, kind: str, gradient: str) -> torch.Tensor:
    """Projected LoRA gradients [C, N, proj_dim] of the pool (kind "pool") or of one subtask's validation
    shots (kind "val:<subtask>") at every warmup checkpoint. gradient: "adam" or "sgd". Each checkpoint's
    block is its own shared artifact, so a killed run resumes at the first missing block."""
    checkpoints = warmup(setup, size, shared_dir)
    examples = _examples(setup, kind)
    free = SELECTION_ONLY if gradient == "adam" else SELECTION_ONLY + ("adam_variant",)  # sgd: no Adam state
    blocks = []
    for i, ckpt in enumerate(checkpoints):

        def build(ckpt: Checkpoint = ckpt) -> torch.Tensor:
            model = checkpoint_model(setup, size, ckpt, shared_dir)
            adam, eps = _adam_state(ckpt, setup.adam_variant) if gradient == "adam" else (None, 1e-8)
            return _features(setup, model, examples, adam, eps)

        stage = f"{kind.replace(':', '-')}-{gradient}-ckpt{i}"
        blocks.append(
            shared_artifact(shared_dir, f"features-{stage}", stage_spec(setup, size, free, stage), build)
        )
    return torch.stack(blocks)  # (C, N, k)


def base_datastore(setup: Setup, size: ModelSize, shared_dir: Path, kind: str) -> torch.Tensor:
    """Projected plain LoRA gradients [1, N, proj_dim] at the base model itself, no warmup (Table 5's
    "no warmup" row): the LoRA factors as initialized from `seed` (B = 0, so only B's gradient is non-zero,
    as with PEFT's initialization) and no Adam state, so both sides are SGD gradients. One shared artifact
    per kind; it depends on none of the warmup's settings."""
    examples = _examples(setup, kind)

    def build() -> torch.Tensor:
        model = lora_model(size, base_state(setup, size, shared_dir), setup, setup.seed).eval()
        return _features(setup, model, examples, None, 1e-8)

    stage = f"{kind.replace(':', '-')}-base"
    spec = stage_spec(setup, size, SELECTION_ONLY + WARMUP_ONLY + ("adam_variant",), stage)
    return shared_artifact(shared_dir, f"features-{stage}", spec, build)[None]  # (1, N, k)


def checkpoint_weights(setup: Setup, size: ModelSize, shared_dir: Path) -> list[float]:
    return [c.avg_lr for c in warmup(setup, size, shared_dir)]


def less_scores(
    setup: Setup,
    size: ModelSize,
    shared_dir: Path,
    gradient: str = "adam",
    proj_dim: int | None = None,
    aggregation: str | None = None,
    similarity: str = "cosine",
    checkpoints: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """LESS scores [N] of the pool; proj_dim <= setup.proj_dim uses the first proj_dim coordinates of the
    stored features (the keyed sign matrix makes them a projection to proj_dim up to a scale, which the
    cosine ignores). gradient: "adam" or "sgd" (training-side features at the warmup checkpoints) or "base"
    (plain gradients at the base model, no warmup); checkpoints: which warmup checkpoints to use (all by
    default; e.g. (-1,) for the last one alone); similarity: "cosine" (LESS) or "inner_product"."""
    k = proj_dim or setup.proj_dim
    if k > setup.proj_dim:
        raise ConfigError(f"proj_dim {k} exceeds the datastore's {setup.proj_dim}")
    if gradient == "base":
        if checkpoints is not None:
            raise ConfigError("the base model has one gradient, not warmup checkpoints")
        train_f = base_datastore(setup, size, shared_dir, "pool")[..., :k]
        val_f = {name: base_datastore(setup, size, shared_dir, f"val:{name}")[..., :k] for name in D.SUBTASKS}
        weights = [1.0]
    else:
        train_f = datastore(setup, size, shared_dir, "pool", gradient)[..., :k]
        val_f = {n: datastore(setup, size, shared_dir, f"val:{n}", "sgd")[..., :k] for n in D.SUBTASKS}
        weights = checkpoint_weights(setup, size, shared_dir)
        if checkpoints is not None:
            pick = list(checkpoints)
            train_f, weights = train_f[pick], [weights[i] for i in pick]
            val_f = {name: v[pick] for name, v in val_f.items()}
    return influence_scores(train_f, val_f, weights, aggregation=aggregation or setup.aggregation,
                            similarity=similarity)  # fmt: skip


def response_lengths(setup: Setup, index: np.ndarray | None = None) -> np.ndarray:
    """Response length in tokens (bytes, <eos> excluded) of pool[index] (the whole pool by default)."""
    pool = make_data(setup).pool
    index = np.arange(len(pool)) if index is None else np.asarray(index)
    return np.array([len(D.TOKENIZER.encode(pool.responses[i])) for i in index])


@torch.no_grad()
def representations(model: GPT, examples: D.Examples) -> torch.Tensor:
    """Final-layer hidden state at each example's last token (<eos>), [N, C]."""
    hidden = model.forward_hidden(examples.ids)  # (N, T, C)
    last = (examples.ids != D.TOKENIZER.pad_id).sum(1) - 1  # (N,)
    return hidden[torch.arange(len(last)), last]


def representation_scores(setup: Setup, size: ModelSize, shared_dir: Path) -> torch.Tensor:
    """The representation-similarity baseline (RDS in the paper): cosine of final-layer representations under
    the last warmup checkpoint, aggregated like LESS (mean over a subtask's shots, max over subtasks)."""
    model = checkpoint_model(setup, size, warmup(setup, size, shared_dir)[-1], shared_dir)
    data = make_data(setup)
    train_r = representations(model, data.pool)[None]  # (1, N, C)
    val_r = {name: representations(model, ex)[None] for name, ex in data.val.items()}
    return influence_scores(train_r, val_r, [1.0], aggregation=setup.aggregation)


# ---------------------------------------------------------------------------------------------------------
# Selections and fine-tuning
# ---------------------------------------------------------------------------------------------------------
def random_selection(setup: Setup, seed: int) -> np.ndarray:
    n = math.floor(setup.pool_size * setup.fraction + 1e-9)
    return np.sort(np.random.default_rng([setup.seed, 77, seed]).permutation(setup.pool_size)[:n])


def composition(setup: Setup, index: np.ndarray) -> dict[str, float]:
    """Fraction of each family in a selection."""
    fams = make_data(setup).pool.family[np.asarray(index)]
    return {f: float(np.mean(fams == f)) for f in D.FAMILIES}


def excess_sd(share: float, pool_share: float, n: int, N: int) -> float:
    """(share - pool_share) in standard deviations of the share of a random n-of-N selection (hypergeometric):
    one example moves a share by 1/n, so "over-represented" is measured against what chance gives."""
    p = pool_share
    sd = math.sqrt(p * (1 - p) / n * (N - n) / max(N - 1, 1)) if 0 < p < 1 else float("nan")
    return (share - p) / sd


def warmup_steps(setup: Setup) -> int:
    """Optimizer steps of the warmup: epochs x ceil(warmup examples / batch)."""
    n = math.floor(setup.pool_size * setup.warmup_fraction + 1e-9)
    return setup.warmup_epochs * math.ceil(n / setup.warmup_batch)


@dataclass(frozen=True)
class FinetuneSpec:
    setup: Setup
    index: tuple[int, ...]
    seed: int
    steps: int


def finetune(
    setup: Setup, index: np.ndarray, seed: int, steps: int | None = None, *, shared_dir: Path
) -> dict[str, Any]:
    """LoRA fine-tuning of the setup's base on pool[index]; test metrics."""
    size = size_of(setup)
    steps = steps or setup.ft_steps
    index = np.sort(np.asarray(index, dtype=np.int64))  # the same set gives the same run, whatever its order

    def build() -> dict[str, Any]:
        data = make_data(setup)
        model = lora_model(size, base_state(setup, size, shared_dir), setup, seed)
        history = train_lora(model, data.pool.subset(index), steps, setup.ft_batch, setup.ft_lr, seed)
        out = evaluate(model, data.test)
        out["train_loss"] = float(np.mean(history.loss[-max(1, len(history.loss) // 10) :]))
        out["n"] = len(index)
        out["composition"] = composition(setup, index)
        return out

    return memoised("less-finetune", FinetuneSpec(setup, tuple(index.tolist()), seed, steps), build)


def less_selection(setup: Setup, size: ModelSize, shared_dir: Path, **kwargs: Any) -> np.ndarray:
    return select(less_scores(setup, size, shared_dir, **kwargs), setup.fraction).numpy()


def finetune_part(
    ctx: RunContext,
    setup: Setup,
    name: str,
    index: np.ndarray,
    seed: int,
    shared_dir: Path,
    steps: int | None = None,
) -> dict[str, Any]:
    """`finetune` as the resumable unit `<name>-seed<seed>` of a figure (ctx.part)."""
    return ctx.part(f"{name}-seed{seed}", lambda: finetune(setup, index, seed, steps, shared_dir=shared_dir))


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (std over seeds, min, max) of the target accuracy of several fine-tuning runs, and
    the per-subtask means."""
    acc = np.array([r["target_acc"] for r in runs])
    return {
        "mean": float(acc.mean()),
        "std": float(acc.std()),
        "min": float(acc.min()),
        "max": float(acc.max()),
        "per_seed": acc.tolist(),
        "subtask_acc": {k: float(np.mean([r["acc"][k] for r in runs])) for k in D.SUBTASKS},
        "subtask_loss": {k: float(np.mean([r["loss"][k] for r in runs])) for k in D.SUBTASKS},
    }


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`per_seed=` and `interval=` (bootstrap over seeds) of a - b for two `summary` results trained with
    the same fine-tuning seeds (paired seed by seed), for `Claim.check(..., **paired_difference(a, b))`."""
    x, y = np.asarray(a["per_seed"], dtype=float), np.asarray(b["per_seed"], dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired runs need the same seeds, got {x.size} and {y.size} runs")
    return over_seeds(x - y)

