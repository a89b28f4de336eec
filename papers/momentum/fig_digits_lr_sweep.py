"""Test accuracy vs effective learning rate for SGD and SGDM on real data (scikit-learn's 8x8 digits, an MLP).

Paper: Wang et al. 2024, Section 5 and the ImageNet/RoBERTa experiments: SGDM(gamma, beta) in PyTorch's form
(eq. 1) matches SGD with lr gamma / (1 - beta) when the lr is small and gradient noise dominates (small
batch);
momentum helps only where curvature limits the lr (large batch, large lr). We plot both optimizers against the
*effective* lr eta = gamma / (1 - beta) (eq. 3), so "no value of momentum" means the two curves coincide.

Cost: quick ~15 s, default ~2 min, paper ~15 min on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F

from common.claims import Claim, bootstrap_interval, over_seeds
from common.configs import Count, Index, NonNegative, Positive, Range, Scale
from common.data.real import load_digits_split
from common.experiment import Figure, RunContext
from common.models.mlp import MLP
from common.plotting import band, new_figure, save
from common.train import TrainConfig, train

# Full batch = the training set truncated to a multiple of 64 rows (1344 of 1347), so that torchrun can split
# it evenly over 2, 4, ... 64 processes.
FULL_BATCH_MULTIPLE = 64
DIVERGED_ACCURACY = 0.5  # a run whose test accuracy ends below this (chance is 0.1) counts as unstable


@dataclass(frozen=True)
class Config:
    effective_lrs: tuple[Positive, ...]
    small_batch: Count = 16
    small_batch_steps: Count = 600
    large_batch: Index = 0  # 0 = full batch (gradient descent on the first FULL_BATCH_MULTIPLE*k rows)
    large_batch_steps: Count = 40
    beta: Annotated[float, Range(0, 1, high_open=True)] = 0.9
    width: Count = 128
    seeds: Count = 3
    seed: Index = 0
    small_gap_tolerance: NonNegative = 0.015  # max |acc_SGD - acc_SGDM| in the small-lr regime (1.5 points)


CONFIGS = {
    Scale.QUICK: Config(effective_lrs=(0.03, 0.3, 2.0, 8.0), small_batch_steps=300, seeds=1),
    Scale.DEFAULT: Config(effective_lrs=(0.01, 0.03, 0.1, 0.3, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0), seeds=3),
    Scale.PAPER: Config(effective_lrs=tuple(float(v) for v in np.geomspace(0.01, 32.0, 16)), seeds=8),
}


def train_one(
    data: tuple[torch.Tensor, ...], eff_lr: float, beta: float, batch: int, steps: int, width: int, seed: int
) -> dict[str, float]:
    """Train one MLP with PyTorch SGD(lr = eff_lr * (1 - beta), momentum = beta); return test accuracy."""
    x_train, y_train, x_test, y_test = data  # (N, 64), (N,), (M, 64), (M,)
    n = x_train.shape[0]
    torch.manual_seed(seed)
    model = MLP(x_train.shape[1], [width], 10)
    generator = torch.Generator().manual_seed(10_000 + seed)
    full = batch <= 0 or batch >= n
    rows = None if full else torch.randint(0, n, (steps, batch), generator=generator)  # (steps, B)

    def get_batch(step: int, micro_step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if full:
            rows_used = n - n % FULL_BATCH_MULTIPLE
            return x_train[:rows_used], y_train[:rows_used]
        return x_train[rows[step]], y_train[rows[step]]

    def loss_fn(model: torch.nn.Module, batch_xy: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch_xy[0]), batch_xy[1])

    config = TrainConfig(optimizer="sgd", lr=eff_lr * (1.0 - beta), momentum=beta, steps=steps, seed=seed)
    history = train(model, loss_fn, get_batch, config, progress=False)
    with torch.no_grad():
        logits = model(x_test)  # (M, 10)
        finite = bool(torch.isfinite(logits).all())
        accuracy = float((logits.argmax(1) == y_test).float().mean()) if finite else 0.1
    final_loss = float(history.loss[-1]) if history.loss else float("nan")
    return {"test_accuracy": accuracy, "final_train_loss": final_loss, "finite": finite}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    data = load_digits_split(seed=config.seed)
    regimes = {
        "small_batch": (config.small_batch, config.small_batch_steps),
        "large_batch": (config.large_batch, config.large_batch_steps),
    }
    results: dict[str, Any] = {"effective_lrs": list(config.effective_lrs), "beta": config.beta}
    units = [
        (r, opt, lr, s)
        for r in regimes
        for opt in ("sgd", "sgdm")
        for lr in config.effective_lrs
        for s in range(config.seeds)
    ]
    accuracies: dict[tuple[str, str], np.ndarray] = {}
    for regime, opt, lr, s in ctx.progress(units, desc="digits lr sweep"):
        batch, steps = regimes[regime]
        beta = config.beta if opt == "sgdm" else 0.0
        key = f"{regime}-{opt}-lr{lr:g}-seed{config.seed + s}"
        out = ctx.part(
            key,
            lambda b=batch, st=steps, be=beta, lr=lr, s=s: train_one(
                data, lr, be, b, st, config.width, config.seed + s
            ),
        )
        accuracies.setdefault((regime, opt), np.zeros((len(config.effective_lrs), config.seeds)))
        accuracies[(regime, opt)][config.effective_lrs.index(lr), s] = out["test_accuracy"]
    for (regime, opt), acc in accuracies.items():
        results[f"{regime}/{opt}/mean"] = acc.mean(1)
        results[f"{regime}/{opt}/std"] = acc.std(1)
        results[f"{regime}/{opt}/all"] = acc
    # Not a claim (the paper reports no best-vs-best number we could check): recorded for the README.
    results["large_batch_best_sgdm_minus_best_sgd"] = float(
        results["large_batch/sgdm/mean"].max() - results["large_batch/sgd/mean"].max()
    )
    results["batches"] = {r: b for r, (b, _) in regimes.items()}
    results["steps"] = {r: s for r, (_, s) in regimes.items()}
    return results


def _stable_max_lr(lrs: np.ndarray, mean_acc: np.ndarray) -> float:
    stable = lrs[mean_acc >= DIVERGED_ACCURACY]
    return float(stable.max()) if stable.size else float("nan")


def _abs_interval(interval: tuple[float, float]) -> tuple[float, float]:
    """The interval of |m| from an interval (low, high) of m: [0, max] when it contains 0."""
    low, high = interval
    if low <= 0.0 <= high:
        return 0.0, max(-low, high)
    return min(abs(low), abs(high)), max(abs(low), abs(high))


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    lrs = np.asarray(data["effective_lrs"])
    sgd_small, sgdm_small = (np.asarray(data[f"small_batch/{o}/mean"]) for o in ("sgd", "sgdm"))
    sgd_large, sgdm_large = (np.asarray(data[f"large_batch/{o}/mean"]) for o in ("sgd", "sgdm"))
    all_acc = {k: np.asarray(data[f"{k}/all"], dtype=float) for r in ("small_batch", "large_batch")
               for k in (f"{r}/sgd", f"{r}/sgdm")}  # each (lrs, seeds)
    # Small-lr regime: every effective lr up to the one where SGD's accuracy peaks (beyond it the lr, not the
    # noise, limits training, which is the regime the paper excludes).
    best = int(np.argmax(sgd_small))
    small_gaps = np.abs(sgd_small[: best + 1] - sgdm_small[: best + 1])
    worst = int(np.argmax(small_gaps))
    small_gap = float(small_gaps[worst])
    worst_per_seed = all_acc["small_batch/sgd"][worst] - all_acc["small_batch/sgdm"][worst]  # (seeds,)
    ratio = _stable_max_lr(lrs, sgdm_large) / _stable_max_lr(lrs, sgd_large)
    # Best vs best: each optimizer at its own best effective lr (the same pick on both sides, as the paper's
    # grid searches do); the per-seed values are paired differences at those two lrs.
    best_sgd, best_sgdm = int(np.argmax(sgd_large)), int(np.argmax(sgdm_large))
    best_vs_best = float(sgdm_large[best_sgdm] - sgd_large[best_sgd])
    best_per_seed = all_acc["large_batch/sgdm"][best_sgdm] - all_acc["large_batch/sgd"][best_sgd]  # (seeds,)
    max_gain = float(np.max(sgdm_large - sgd_large))
    return [
        Claim.check(
            "momentum.digits.small_batch_coincide",
            f"batch {data['batches']['small_batch']}: SGD(eta) and SGDM(eta(1-beta), beta) reach the same "
            "test "
            f"accuracy at every effective lr up to SGD's best (max |gap|, lr <= {lrs[best]:g})",
            small_gap,
            "<=",
            config.small_gap_tolerance,
            paper_value="ImageNet/RoBERTa: curves coincide at small and medium batch",
            per_seed=worst_per_seed,
            interval=_abs_interval(bootstrap_interval(worst_per_seed)),
            details=f"largest |mean gap| at eta = {lrs[worst]:g}; per seed: SGD - SGDM there; interval: "
            "|.| of the bootstrap interval of the mean signed gap",
        ),
        Claim.check(
            "momentum.digits.large_batch_stability",
            "full batch: the largest stable effective lr of SGDM over that of SGD (curvature limits SGD)",
            ratio,
            ">=",
            3.0,
            paper_value="momentum helps only at large batch and large lr",
            details="heavy ball is stable for gamma < 2(1+beta)/lambda_max, i.e. eta < 2(1+beta)/((1-beta)"
            "lambda_max): 19x SGD's 2/lambda_max at beta=0.9 on a quadratic",
        ),
        Claim.check(
            "momentum.digits.large_batch_best_vs_best",
            "full batch: SGDM's best test accuracy over the effective-lr grid exceeds SGD's best",
            best_vs_best,
            ">",
            0.0,
            paper_value="ImageNet batch-size study: at large batch SGDM (lr tuned) beats SGD (lr tuned)",
            **over_seeds(best_per_seed),
            details=f"best eta: SGD {lrs[best_sgd]:g}, SGDM {lrs[best_sgdm]:g}; the largest gap at one eta "
            f"(where SGD diverges, a restatement of the stability claim, not claimed): {max_gain:+.3f}",
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2)
    lrs = data["effective_lrs"]
    for ax, regime in zip(axes, ("small_batch", "large_batch"), strict=True):
        for opt, label in (
            ("sgd", "SGD, lr = eta"),
            ("sgdm", f"SGDM, lr = eta(1-beta), beta={data['beta']}"),
        ):
            band(ax, lrs, data[f"{regime}/{opt}/mean"], data[f"{regime}/{opt}/std"], label)
        batch = data["batches"][regime]
        ax.set_title(f"{'full batch' if batch <= 0 else f'batch {batch}'}, {data['steps'][regime]} steps")
        ax.set_xscale("log")
        ax.set_xlabel("effective learning rate eta")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
    axes[0].legend(loc="lower left")
    return save(fig, out_dir, "digits_lr_sweep")


FIGURE = Figure(
    name="fig_digits_lr_sweep",
    title="SGD vs SGDM at matched effective lr on digits (small vs large batch)",
    paper_ref="Sec. 5, ImageNet batch-size study (analogue)",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Small batch: the two curves coincide up to SGD's best lr. Full batch: SGD diverges at large "
    "effective lr where SGDM still trains.",
    threads=1,  # small models: threads cost more than they give, and results stay bitwise stable
    # Asserted at quick: both claims that held at seeds 0-4 with room. Smallest margins: small-batch max gap
    # 0.0089 vs 0.015 (about 3 test digits of 450 to spare), stability ratio 4 vs 3. Best vs best is reported,
    # not asserted (about -1 point at default: red).
    asserted_at_quick=(
        "momentum.digits.small_batch_coincide",
        "momentum.digits.large_batch_stability",
    ),
)
