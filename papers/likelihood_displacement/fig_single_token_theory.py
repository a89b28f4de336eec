"""Figure 1a: single-token likelihood displacement where the paper's theory is exact.

Paper: Section 3 (Table 1: DPO on No > Never raises pi(Yes) in OLMo-1B) explained by Section 4.2.1 (Theorems
4-5): with a trainable hidden state h and unembedding W, ln pi(y+) falls at an instant exactly when
<Wbar - W+, W+ - W-> > (1 - pi+ + pi-) ||h||^2 (Wbar = sum_z pi_z W_z), and the mass goes to the tokens most
aligned with W+ - W-. We plant a geometry: W_No = e1 + b e2, W_Never = e1 - b e2 (so W_No - W_Never = 2b e2),
W_Yes = c e1 + gamma e2, fillers near 0, h = eta e1, and sweep gamma, the alignment of Yes with
W_No - W_Never. DPO (beta 0.1, reference = start) by gradient descent on h and W, the paper's flow.

Cost: quick ~2 s, default ~5 s (all geometries train at once as one batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from common.claims import Claim
from common.configs import AnyFloat, ConfigError, Count, Index, Positive, Range, Scale
from common.experiment import Figure, RunContext
from common.ops import dpo_loss
from common.plotting import new_figure, save
from papers.likelihood_displacement.theory import displacement_margin

TOKENS = ("Yes", "No", "Never", "Sure", "Maybe")
YES, NO, NEVER = 0, 1, 2


@dataclass(frozen=True)
class Config:
    gammas: tuple[AnyFloat, ...]  # alignment of W_Yes with e2 = (W_No - W_Never) / (2b)
    b: Positive = 0.5  # W_No, W_Never = e1 +- b e2: cos = (1 - b^2) / (1 + b^2)
    c: AnyFloat = 2.0  # W_Yes . e1: Yes is the most likely token at the start
    eta: AnyFloat = 0.6  # h = eta e1; a small ||h||^2 lets the unembedding geometry decide
    dim: Annotated[int, Range(3)] = 8  # e1, e2 and e3 carry the planted geometry
    n_fillers: Index = 10  # unlikely tokens (W_z . e1 = -2 plus noise)
    beta: Positive = 0.1
    lr: Positive = 0.5
    steps: Count = 300
    probe_lr: Positive = 1e-4  # one DPO step this small measures the instantaneous direction of ln pi(No)
    control_gamma: AnyFloat = 0.0
    seed: Index = 0

    def __post_init__(self) -> None:
        if len(self.gammas) < 2:
            raise ConfigError("gammas needs at least two geometries")
        if self.dim < 3 or self.n_fillers < 0 or self.steps < 1:
            raise ConfigError(
                f"need dim >= 3, n_fillers >= 0, steps >= 1; got {self.dim}, {self.n_fillers}, {self.steps}"
            )
        if min(self.lr, self.probe_lr, self.beta, self.b) <= 0:
            raise ConfigError("lr, probe_lr, beta and b must be positive")


CONFIGS = {
    Scale.QUICK: Config(gammas=tuple(float(g) for g in np.linspace(-1.0, 6.0, 15)), steps=300, lr=0.2),
    Scale.DEFAULT: Config(gammas=tuple(float(g) for g in np.linspace(-1.0, 6.0, 36)), steps=600, lr=0.2),
    Scale.PAPER: Config(
        gammas=tuple(float(g) for g in np.linspace(-1.0, 6.0, 141)),
        steps=3000,
        lr=0.05,
        dim=64,
        n_fillers=251,
    ),
}


def geometry(config: Config, gamma: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The planted unembedding W [V, D] and hidden state h [D] for one value of gamma."""
    V = len(TOKENS) + config.n_fillers
    W = torch.zeros(V, config.dim, dtype=torch.float64)
    W[NO, 0], W[NO, 1] = 1.0, config.b
    W[NEVER, 0], W[NEVER, 1] = 1.0, -config.b
    W[YES, 0], W[YES, 1] = config.c, gamma
    W[3, 0], W[3, 2] = 0.6, 0.8  # Sure: likely-ish, orthogonal to W_No - W_Never
    W[4, 0], W[4, 2] = 0.3, -0.8  # Maybe
    W[len(TOKENS) :, 0] = -2.0
    W[len(TOKENS) :] += 0.1 * torch.randn(config.n_fillers, config.dim, generator=g, dtype=torch.float64)
    h = torch.zeros(config.dim, dtype=torch.float64)
    h[0] = config.eta
    return W, h


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    g = torch.Generator().manual_seed(config.seed)
    pairs = [geometry(config, gm, g) for gm in config.gammas]
    W0 = torch.stack([p[0] for p in pairs])  # (G, V, D)
    h0 = torch.stack([p[1] for p in pairs])  # (G, D)
    margin = torch.stack([displacement_margin(W, h, NO, NEVER) for W, h in pairs])  # (G,)
    align = torch.einsum("gvd,gd->gv", W0, W0[:, NO] - W0[:, NEVER])  # (G, V): <W_z, W+ - W->
    W, h = W0.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    with torch.no_grad():
        logp0 = torch.log_softmax(torch.einsum("gvd,gd->gv", W, h), -1)  # (G, V)
    ref_c, ref_r = logp0[:, NO].clone(), logp0[:, NEVER].clone()
    traj = [logp0.exp().numpy()]
    margins = []  # the theory's condition at the start of every step
    early = None
    for step in range(config.steps):
        lr = config.probe_lr if step == 0 else config.lr
        with torch.no_grad():
            margins.append([float(displacement_margin(W[i], h[i], NO, NEVER)) for i in range(len(pairs))])
        logp = torch.log_softmax(torch.einsum("gvd,gd->gv", W, h), -1)  # (G, V)
        losses, _, _ = dpo_loss(logp[:, NO], logp[:, NEVER], ref_c, ref_r, beta=config.beta)
        gW, gh = torch.autograd.grad(losses.sum(), [W, h])  # geometries are independent: sum = per-geometry
        with torch.no_grad():
            W -= lr * gW
            h -= lr * gh
            probs = torch.softmax(torch.einsum("gvd,gd->gv", W, h), -1)
        traj.append(probs.numpy())
        if step == 0:
            early = probs.log() - logp0
    traj_arr = np.stack(traj, 1)  # (G, steps + 1, V)
    final = np.log(traj_arr[:, -1]) - logp0.numpy()  # (G, V) change of ln pi over the run
    lowest = np.log(traj_arr[:, :, NO].min(1)) - logp0[:, NO].numpy()  # (G,) deepest dip of ln pi(No)
    step_change = np.diff(np.log(traj_arr[:, :, NO]), axis=1)  # (G, steps)
    step_margin = np.asarray(margins).T  # (G, steps)
    others = [z for z in range(W0.shape[1]) if z not in (NO, NEVER)]
    top_gainer = [others[int(np.argmax(final[i, others]))] for i in range(len(config.gammas))]
    top_aligned = [others[int(torch.argmax(align[i, others]))] for i in range(len(config.gammas))]
    ctrl = int(np.argmin(np.abs(np.asarray(config.gammas) - config.control_gamma)))
    return {
        "gammas": list(config.gammas),
        "tokens": list(TOKENS),
        "theory_margin": margin.numpy(),
        "predicted_displacement": (margin > 0).numpy(),
        "early_dlogp_no": early[:, NO].numpy(),
        "final_dlogp_no": final[:, NO],
        "lowest_dlogp_no": lowest,
        "step_agree": (step_change < 0) == (step_margin > 0),
        "step_margin": step_margin,
        "final_dlogp_never": final[:, NEVER],
        "final_dlogp_yes": final[:, YES],
        "pi_no": traj_arr[:, :, NO],
        "pi_yes": traj_arr[:, :, YES],
        "pi_never": traj_arr[:, :, NEVER],
        "top_gainer": top_gainer,
        "top_aligned": top_aligned,
        "control_index": ctrl,
        "designed_index": len(config.gammas) - 1,
    }


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    pred = np.asarray(data["predicted_displacement"], dtype=bool)
    early = np.asarray(data["early_dlogp_no"]) < 0
    agree = np.asarray(data["step_agree"], dtype=bool)
    step_margin = np.asarray(data["step_margin"])
    worst = float(np.abs(step_margin[~agree]).max()) if (~agree).any() else 0.0
    final = np.asarray(data["final_dlogp_no"]) < 0
    margin = np.asarray(data["theory_margin"])
    wrong_final = [
        f"gamma={g:.2f} (margin {m:+.3f})"
        for g, m, p, f in zip(data["gammas"], margin, pred, final, strict=True)
        if p != f
    ]
    d, c = data["designed_index"], data["control_index"]
    pi_no, pi_yes = np.asarray(data["pi_no"]), np.asarray(data["pi_yes"])
    gainer_ok = np.mean(
        [a == b for a, b, p in zip(data["top_gainer"], data["top_aligned"], pred, strict=True) if p]
    )
    # Every check here is Theorems 4 and 5 on their own model (unconstrained features, one step or a run
    # of gradient descent): sanity checks of our derivation and code, counted apart from the paper's claims.
    # The paper's claims are measured on a trained network in fig1b.
    return [
        Claim.check(
            "likelihood_displacement.fig1a.early_matches_theory",
            f"over {len(pred)} geometries, ln pi(No) falls in a first DPO step of lr {config.probe_lr:g} "
            "exactly "
            "when the theory's condition holds at the start (fraction that agree)",
            float(np.mean(pred == early)),
            ">=",
            1.0,
            paper_value="Theorem 4: displacement iff <Wbar - W+, W+ - W-> > (1 - pi+ + pi-)||h||^2",
            kind="sanity",
        ),
        Claim.check(
            "likelihood_displacement.fig1a.run_matches_theory",
            f"along the whole run ({config.steps} steps of lr {config.lr:g}, all geometries): ln pi(No) "
            "falls "
            "in a step exactly when the condition holds at that step's start (fraction of steps that agree)",
            float(agree.mean()),
            ">=",
            0.99,
            details=f"{int((~agree).sum())} of {agree.size} steps disagree, all with |condition| <= "
            f"{worst:.3g} "
            f"(a finite step across the boundary). ln pi(No) ends below its start in {int(final.sum())}/"
            f"{len(final)} geometries; the end differs from the start condition at: "
            + (", ".join(wrong_final) or "none")
            + " (near the boundary the dip recovers as pi(Never) vanishes)",
            kind="sanity",
        ),
        Claim.check(
            "likelihood_displacement.fig1a.designed_displaces",
            f"designed geometry (gamma={data['gammas'][d]:g}): pi(No) start - end, while pi(Yes) rises by "
            f"{pi_yes[d, -1] - pi_yes[d, 0]:+.3f}",
            float(pi_no[d, 0] - pi_no[d, -1]),
            ">=",
            0.05,
            paper_value="OLMo-1B, No > Never: pi(No) falls, Yes among the gainers (Table 1)",
            kind="sanity",
        ),
        Claim.check(
            "likelihood_displacement.fig1a.control_no_displacement",
            f"control geometry (gamma={data['gammas'][c]:g}, Yes orthogonal to W_No - W_Never): "
            "pi(No) end - start",
            float(pi_no[c, -1] - pi_no[c, 0]),
            ">",
            0.0,
            kind="sanity",
        ),
        Claim.check(
            "likelihood_displacement.fig1a.mass_to_aligned_token",
            "displacing geometries: the token gaining most log-prob over the run is the one most aligned "
            "with "
            "W_No - W_Never (fraction)",
            float(gainer_ok) if np.any(pred) else float("nan"),
            ">=",
            1.0,
            paper_value="Theorem 5",
            kind="sanity",
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure(ncols=3)
    gammas = np.asarray(data["gammas"])
    margin = np.asarray(data["theory_margin"])
    ax = axes[0]
    ax.plot(gammas, data["final_dlogp_no"], marker="o", markersize=3, label="Δ ln π(No), whole run")
    ax.plot(gammas, data["final_dlogp_yes"], marker="s", markersize=3, label="Δ ln π(Yes)")
    ax.axhline(0, color="k", lw=0.8)
    cross = gammas[np.argmax(margin > 0)] if np.any(margin > 0) else None
    if cross is not None:
        ax.axvspan(cross, gammas.max(), color="#d62728", alpha=0.08, label="theory: displacement")
    ax.set_xlabel("γ = alignment of W_Yes with W_No − W_Never")
    ax.set_ylabel("change of log-prob")
    ax.set_title("DPO on No ≻ Never, sweep of geometries")
    ax.legend(loc="best")
    for ax, idx, name in (
        (axes[1], data["designed_index"], "designed"),
        (axes[2], data["control_index"], "control"),
    ):
        for key, label in (("pi_no", "π(No)"), ("pi_never", "π(Never)"), ("pi_yes", "π(Yes)")):
            ax.plot(np.asarray(data[key])[idx], label=label)
        ax.set_title(f"{name}: γ = {gammas[idx]:.2f}")
        ax.set_xlabel("DPO step")
        ax.set_ylabel("probability")
        ax.set_ylim(0, 1)
        ax.legend(loc="best")
    return save(fig, out_dir, "single_token_theory")


FIGURE = Figure(
    name="fig1a_single_token_theory",
    title="Single-token displacement where the theory is exact (trainable h and W, planted geometry)",
    paper_ref="Sec. 3 / Table 1 (No > Never raises Yes), explained by Sec. 4.2.1, Theorems 4-5",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="ln pi(No) falls and pi(Yes) rises exactly for the geometries where the theory's condition "
    "holds; "
    "the control geometry trains No up.",
    threads=1,  # small models: threads cost more than they give
    # Asserted at quick: every claim; all held at seeds 0-4 (tests/quick_claims_over_seeds.py). The two
    # agreement fractions are 1.0 at every seed (the first step follows the theorem exactly); smallest other
    # margins: per-step agreement 0.998 vs 0.99 (9 of 4500 steps disagree, 45 allowed), designed pi(No) drop
    # 0.144 vs 0.05, control rise 0.85 vs 0.
    asserted_at_quick=(
        "likelihood_displacement.fig1a.early_matches_theory",
        "likelihood_displacement.fig1a.run_matches_theory",
        "likelihood_displacement.fig1a.designed_displaces",
        "likelihood_displacement.fig1a.control_no_displacement",
        "likelihood_displacement.fig1a.mass_to_aligned_token",
    ),
)
