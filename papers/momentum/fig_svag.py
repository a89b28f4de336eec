"""SVAG: the test-accuracy gap between SGDM and SGD at a large effective lr closes as the SVAG factor l grows.

Paper: Wang et al. 2024, Section 5, Definition 5.1 and Figure 2 (CIFAR-10, ResNet-32, batch 512, lr 0.2 grid-
searched for SGDM, beta = 0.9; SGD and SGDM run with SVAG at several l). SVAG (Li, Malladi & Arora, NeurIPS
2021) with factor l >= 1 takes lr eta / l, l times as many steps (the same SDE time t = k eta / l), and the
gradient r1 g1 + r2 g2 of two independent minibatches with r_{1,2} = (1 +- sqrt(2l - 1)) / 2: the mean is
unchanged (r1 + r2 = 1) and the covariance is multiplied by l (r1^2 + r2^2 = l), so noise per unit SDE time is
unchanged while the lr, and with it every curvature (discretisation) effect, shrinks like 1/l. As l -> oo
both optimizers approach the same SGD SDE, so a gap that exists at l = 1 and comes from curvature (the lr is
too large for SGD, not for SGDM) must close. This is the paper's argument that momentum's benefit at large lr
is a curvature effect, not noise reduction.

We implement SVAG through the loss: r1 * L(batch1) + r2 * L(batch2) has exactly the SVAG gradient (the
gradient is linear in the loss), so the one training loop `common.train.train` runs it unchanged; at l = 1,
r2 = 0 and the second batch is not drawn (plain SGD / SGDM). SGDM is PyTorch's heavy ball (eq. 1) with
gamma = eta (1 - beta) / l, i.e. the EMA form (eq. 3) at lr eta / l; SGD runs at lr eta / l.

What was verified and what is assumed:
- Verified (numerically, tests/test_momentum_svag.py): r1 + r2 = 1, r1^2 + r2^2 = l; the SVAG gradient is
  unbiased with covariance l * Cov(g) on a linear model.
- Assumed, not verified against the paper's text: how Definition 5.1 treats beta as l grows. The public
  pages at hand (ar5iv excerpt, reference notes section 4.5, marked [R; verify]) do not show it. We keep beta
  fixed (the alpha = 0 schedule of Theorem 3.5), under which momentum's relaxation time in SDE time,
  (eta / l) / (1 - beta), shrinks with l and SGDM's SVAG limit is the SGD SDE. Scaling 1 - beta by 1/l instead
  would keep that relaxation time constant and give a different (second-order) limit, so the gap would not
  have to close; if the PDF says so, this figure tests the fixed-beta variant only.
- Assumed from the reference notes (figure caption, [V-src]): Figure 2's setup above. Ours differs: scikit-
  learn digits, a 64-128-10 MLP, a constant lr, no lr decay, a few hundred steps.
- eta is chosen by a rule (`choose_eta`): the largest eta of a grid at which SGD at l = 1 converges at every
  seed. An earlier version used eta = 3.5 picked by hand at seeds 0-4; the rule was written afterwards (it
  picks the same 3.5 there), so the default scale runs fresh seeds 100-104.

Cost (2 cores, measured while other jobs ran): quick ~12 s (l in {1, 4}, 2 seeds), default ~100 s (l in {1, 2,
4, 8}, 5 seeds); paper (l up to 16, 8 seeds) ~6 min, estimated from the default's per-step cost, not run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F

from common.claims import Claim, over_seeds
from common.configs import AnyFloat, ConfigError, Count, Index, NonNegative, Positive, Range, Scale
from common.data.real import load_digits_split
from common.experiment import Figure, RunContext
from common.models.mlp import MLP
from common.plotting import band, new_figure, save
from common.train import StepInfo, TrainConfig, train

OPTIMIZERS = ("sgd", "sgdm")


@dataclass(frozen=True)
class Config:
    svag_ls: tuple[Count, ...]  # SVAG factors l >= 1
    # eta of eq. 3 at l = 1 (SGD's lr; SGDM's gamma = eta (1 - beta)). 0 = chosen by the rule stated in
    # advance (`choose_eta`): the largest eta of `eta_grid` at which SGD at l = 1 converges at every seed.
    effective_lr: NonNegative = 0.0
    eta_grid: tuple[Positive, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
    batch: Count = 256
    steps: Count = 150  # at l = 1; SVAG factor l runs l * steps steps (same SDE time steps * eta)
    beta: Annotated[float, Range(0, 1, high_open=True)] = 0.9  # kept fixed across l (module docstring)
    width: Count = 128
    seeds: Count = 3
    seed: Index = 0
    curve_points: Count = 10  # full-train-loss evaluations along SDE time, for the curves panel
    # claim 1: acc(SGDM) - acc(SGD) at l = 1, at least 1 point (see claims())
    min_gap_at_l1: Annotated[float, Range(-1, 1)] = 0.01
    max_gap_ratio: AnyFloat = 0.5  # claim 2: gap at the largest l over the gap at l = 1


# eta = 3.5 was first picked by hand at seeds 0-4, right below SGD's divergence (3.75); the rule in
# `choose_eta` now picks it, and the default scale runs seeds 100-104, which played no part in that choice.
CONFIGS = {
    Scale.QUICK: Config(svag_ls=(1, 4), seeds=2),
    Scale.DEFAULT: Config(svag_ls=(1, 2, 4, 8), seeds=5, seed=100),
    Scale.PAPER: Config(svag_ls=(1, 2, 4, 8, 16), seeds=8, seed=100),
}

CONVERGED_ACCURACY = 0.5  # a run converges when its logits stay finite and test accuracy ends >= this


def svag_coefficients(l: float) -> tuple[float, float]:
    """(r1, r2) = ((1 + sqrt(2l - 1)) / 2, (1 - sqrt(2l - 1)) / 2): r1 + r2 = 1 and r1^2 + r2^2 = l."""
    if l < 1:
        raise ValueError(f"the SVAG factor l must be >= 1, got {l}")
    root = math.sqrt(2.0 * l - 1.0)
    return (1.0 + root) / 2.0, (1.0 - root) / 2.0


def svag_loss(loss1: torch.Tensor, loss2: torch.Tensor, l: float) -> torch.Tensor:
    """r1 * loss1 + r2 * loss2 for two independent minibatch losses: its gradient is the SVAG gradient
    r1 g1 + r2 g2 (mean grad L, covariance l * Cov g), since the gradient is linear in the loss."""
    r1, r2 = svag_coefficients(l)
    return r1 * loss1 + r2 * loss2


def train_one(
    data: tuple[torch.Tensor, ...], opt: str, config: Config, l: int, seed: int
) -> dict[str, Any]:
    """Train one MLP with SVAG factor l; return its final test accuracy and full-train-loss curve."""
    x_train, y_train, x_test, y_test = data  # (N, 64), (N,), (M, 64), (M,)
    n, B = x_train.shape[0], config.batch
    steps = config.steps * l
    torch.manual_seed(seed)  # same initialisation for SGD and SGDM and for every l
    model = MLP(x_train.shape[1], [config.width], 10)
    generator = torch.Generator().manual_seed(10_000 + 97 * l + seed)
    n_batches = 1 if l == 1 else 2  # r2 = 0 at l = 1
    rows = torch.randint(0, n, (steps, n_batches, B), generator=generator)  # (steps, 1 or 2, B)

    def get_batch(step: int, micro_step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = rows[step]  # (1 or 2, B)
        return x_train[idx], y_train[idx]  # (1 or 2, B, 64), (1 or 2, B)

    def loss_fn(model: torch.nn.Module, batch_xy: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch_xy
        if x.shape[0] == 1:
            return F.cross_entropy(model(x[0]), y[0])
        return svag_loss(F.cross_entropy(model(x[0]), y[0]), F.cross_entropy(model(x[1]), y[1]), l)

    beta = config.beta if opt == "sgdm" else 0.0
    lr = config.effective_lr / l
    train_cfg = TrainConfig(optimizer="sgd", lr=lr * (1.0 - beta), momentum=beta, steps=steps, seed=seed,
                            log_every=steps)
    every = max(1, steps // config.curve_points)
    curve_t: list[float] = []
    curve_loss: list[float] = []

    def record(info: StepInfo) -> None:
        if info.step % every == 0:
            with torch.no_grad():
                loss = float(F.cross_entropy(info.model(x_train), y_train))
            curve_t.append(info.step * lr)  # SDE time t = k eta / l
            curve_loss.append(loss if math.isfinite(loss) else float("nan"))

    start = time.perf_counter()
    train(model, loss_fn, get_batch, train_cfg, callbacks=(record,), progress=False)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = model(x_test)  # (M, 10)
        finite = bool(torch.isfinite(logits).all())
        accuracy = float((logits.argmax(1) == y_test).float().mean()) if finite else 0.1
    return {"test_accuracy": accuracy, "finite": finite, "curve_t": curve_t, "curve_train_loss": curve_loss,
            "seconds": seconds}


def choose_eta(
    data: tuple[torch.Tensor, ...], config: Config, ctx: RunContext
) -> tuple[float, dict[str, list[float]]]:
    """The rule stated in advance for SVAG's eta: the largest eta of `config.eta_grid` at which plain SGD
    (l = 1) converges at every seed of the figure (finite logits, test accuracy >= CONVERGED_ACCURACY): the
    large-lr regime where curvature, not noise, limits SGD, the regime of the paper's Fig. 2. Returns eta and
    the probe's test accuracies per grid eta (NaN-free: a diverged run scores 0.1)."""
    probe: dict[str, list[float]] = {}
    converged = []
    for eta in sorted(config.eta_grid):
        probe_config = dataclasses.replace(config, effective_lr=eta)
        runs = [
            ctx.part(
                f"eta-probe-{eta:g}-seed{config.seed + s}",
                lambda s=s, c=probe_config: train_one(data, "sgd", c, 1, config.seed + s),
            )
            for s in range(config.seeds)
        ]
        probe[f"{eta:g}"] = [r["test_accuracy"] for r in runs]
        if all(r["finite"] and r["test_accuracy"] >= CONVERGED_ACCURACY for r in runs):
            converged.append(eta)
    if not converged:
        raise ConfigError(f"SGD converged at no eta of eta_grid {config.eta_grid}: give smaller values")
    return max(converged), probe


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    data = load_digits_split(seed=config.seed)
    probe: dict[str, list[float]] = {}
    if config.effective_lr == 0:
        eta, probe = choose_eta(data, config, ctx)
        config = dataclasses.replace(config, effective_lr=eta)
    ls = list(config.svag_ls)
    acc = {opt: np.zeros((len(ls), config.seeds)) for opt in OPTIMIZERS}
    curves: dict[str, Any] = {}
    seconds = 0.0
    units = [(opt, l, s) for l in ls for opt in OPTIMIZERS for s in range(config.seeds)]
    for opt, l, s in ctx.progress(units, desc="svag"):
        key = f"{opt}-l{l}-seed{config.seed + s}"
        out = ctx.part(key, lambda opt=opt, l=l, s=s: train_one(data, opt, config, l, config.seed + s))
        acc[opt][ls.index(l), s] = out["test_accuracy"]
        seconds += out["seconds"]
        if s == 0:
            curves[f"{opt}/l{l}"] = {"t": out["curve_t"], "train_loss": out["curve_train_loss"]}
    gap = acc["sgdm"] - acc["sgd"]  # (len(ls), seeds), paired by seed
    return {
        "svag_ls": ls,
        "effective_lr": config.effective_lr,
        "eta_rule": "largest eta of the grid where SGD (l = 1) converges at every seed" if probe else "given",
        "eta_probe": probe,
        "beta": config.beta,
        "batch": config.batch,
        "steps_at_l1": config.steps,
        **{f"{opt}/mean": acc[opt].mean(1) for opt in OPTIMIZERS},
        **{f"{opt}/std": acc[opt].std(1) for opt in OPTIMIZERS},
        **{f"{opt}/all": acc[opt] for opt in OPTIMIZERS},
        "gap/mean": gap.mean(1),
        "gap/std": gap.std(1),
        "curves": curves,
        "train_seconds": round(seconds, 2),
    }


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    ls = data["svag_ls"]
    gap = np.asarray(data["gap/mean"], dtype=float)
    gap_std = np.asarray(data["gap/std"], dtype=float)
    ratio = float(gap[-1] / gap[0]) if gap[0] > 0 else float("nan")
    paired = np.subtract(data["sgdm/all"], data["sgd/all"], dtype=float)  # (ls, seeds)
    gap_l1_per_seed = paired[0]
    per_l = ", ".join(f"l={l}: {g:+.3f}" for l, g in zip(ls, gap, strict=True))
    # Thresholds: the paper states no number for Fig. 2's gap, only that SGDM is better at l = 1 and that the
    # curves meet as l grows. Claim 1 asks for 1 point (several seed standard errors of the paired gap, ~0.3
    # points at 5 seeds); claim 2 asks that at least half of that gap be gone at the largest l.
    setup = f"digits, batch {data['batch']}, eta = {data['effective_lr']:g}, beta = {data['beta']}"
    return [
        Claim.check(
            "momentum.svag.gap_at_l1",
            f"{setup}: at l = 1 SGDM's test accuracy exceeds SGD's (curvature effect)",
            float(gap[0]), ">=", config.min_gap_at_l1,
            paper_value="Fig. 2 (CIFAR-10, ResNet-32): SGDM tests better than SGD at l = 1",
            **over_seeds(gap_l1_per_seed),
            details=f"gap per l (mean over seeds): {per_l}; std over seeds at l=1: {gap_std[0]:.3f}",
        ),
        Claim.check(
            "momentum.svag.gap_closes",
            f"{setup}: gap at l = {ls[-1]} over gap at l = 1 (SVAG removes curvature effects)",
            ratio, "<=", config.max_gap_ratio,
            paper_value="Fig. 2: the gap between SGD and SGDM closes as l grows",
            details=f"gap per l: {per_l}; std over seeds at l={ls[-1]}: {gap_std[-1]:.3f} (NaN: no l=1 gap)",
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=2)
    ls = data["svag_ls"]
    for opt, label in (("sgd", "SGD"), ("sgdm", f"SGDM, beta={data['beta']}")):
        band(axes[0], ls, data[f"{opt}/mean"], data[f"{opt}/std"], label)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(ls, [str(v) for v in ls])
    axes[0].set_xlabel("SVAG factor l")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_title(f"digits, batch {data['batch']}, lr eta/l, eta = {data['effective_lr']:g}")
    axes[0].legend(loc="lower right")
    styles = {"sgd": "-", "sgdm": "--"}
    colors = {l: f"C{i}" for i, l in enumerate(ls)}
    for name, curve in data["curves"].items():
        opt, l = name.split("/")
        l_val = int(l[1:])
        axes[1].plot(curve["t"], curve["train_loss"], styles[opt], color=colors[l_val],
                     label=f"{opt.upper()}, l={l_val}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("SDE time t = k eta / l")
    axes[1].set_ylabel("full-batch train loss (seed 0)")
    axes[1].legend(fontsize=6, ncol=2)
    return save(fig, out_dir, "svag")


FIGURE = Figure(
    name="fig_svag",
    title="SVAG: SGD vs SGDM at a large effective lr as the SVAG factor l grows",
    paper_ref="Fig. 2 and Definition 5.1 (SVAG), analogue on digits",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="At l = 1 SGDM beats SGD; as l grows SGD's accuracy rises to SGDM's and the gap shrinks.",
    threads=1,  # small models: threads cost more than they give; results stay bitwise stable
    # Asserted at quick: gap_closes only. At quick (2 seeds) the l = 1 gap is about one test example, at
    # its threshold, so gap_at_l1 is reported, not asserted. gap_closes held at seeds 0-4 with the ratio
    # <= 0 (threshold 0.5).
    asserted_at_quick=("momentum.svag.gap_closes",),
)
