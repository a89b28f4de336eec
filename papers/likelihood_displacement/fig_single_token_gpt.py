"""Figure 1b: single-token DPO on a small GPT pretrained on the synthetic corpus (corpus.py).

Paper: Section 3, Table 1 (models trained on one prompt, full batch, DPO beta 0.1, RMSProp, ~100 steps; pairs
No > Never, Yes > No, Sure > Yes), each row read against the Section 4 theory. Here, for each token pair and
each of several yes/no prompts, DPO runs on that one prompt; we record the change of pi(y+) and the token that
gains most, and compare with the theory's prediction from the model's own unembedding W and hidden state h at
the prompt, mass to argmax <W_z, W+ - W->.

The sign of d ln pi(y+)/dt is read in three geometries, from the model's own W and h at the start:
* free h (Theorem 4 as stated, h a free parameter): -[<Wbar - W+, W+ - W-> - (1 - pi+ + pi-)||h||^2];
* the network under gradient flow, the theory's own dynamics: h moves through shared weights, dh/dt =
  -l' K (W+ - W-) with K = J J^T the empirical NTK of h (J = dh/dtheta over every weight but the
  unembedding), so the condition becomes <Wbar - W+, K (W+ - W-)> > (1 - pi+ + pi-)||h||^2 (K = I gives the
  free-h form; computed as <grad ln pi(y+), grad (ln pi(y+) - ln pi(y-))> over all weights);
* the network under RMSProp, the paper's optimizer: the same inner product with RMSProp's first-step
  preconditioner (1 / (sqrt((1 - alpha) g^2) + eps), g the DPO gradient) between the two gradients.
Each (pair, prompt) is trained twice: with gradient descent (the flow the theory describes) and with RMSProp
(the paper's protocol), and each run's measured sign is compared with its geometry's prediction.

Cost: quick ~15 s (with the shared pretraining), default ~90 s.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import lm
from common.claims import Claim
from common.configs import ConfigError, Count, Index, Positive, Scale
from common.experiment import Figure, RunContext
from common.nulls import balanced_accuracy
from common.plotting import new_figure, save
from common.train import StepInfo, TrainConfig
from papers.likelihood_displacement.corpus import (
    ADJS,
    ANSWERS,
    NOUNS,
    VOCAB,
    WORDS,
    PretrainConfig,
    dpo_config,
    make_pairs,
    pretrained_model,
    yes_no_prompt,
)
from papers.likelihood_displacement.theory import displacement_margin

PAIRS = (("No", "Never"), ("Never", "No"), ("No", "Yes"), ("Yes", "No"), ("Sure", "Yes"), ("Yes", "Sure"))


@dataclass(frozen=True)
class Config:
    pretrain: PretrainConfig
    pairs: tuple[str, ...] = tuple(f"{a}>{b}" for a, b in PAIRS)
    prompts: Count = 3
    steps: Count = 60
    lr: Positive = 1e-4  # RMSProp, the paper's optimizer
    gd_lr: Positive = 0.05  # plain gradient descent, the theory's dynamics
    beta: Positive = 0.1
    ipo_beta: Positive = 0.01  # Table 3's IPO runs use beta 0.01 (RMSProp, same lr and steps here)
    top_k: Count = 3  # the measured top gainer should be among the top_k tokens most aligned with W+ - W-
    seed: Index = 0

    def __post_init__(self) -> None:
        for p in self.pairs:
            a, _, b = p.partition(">")
            if a not in VOCAB or b not in VOCAB or a == b:
                raise ConfigError(
                    f"pair {p!r} must read 'Good>Bad' with two distinct words of the vocabulary"
                )
        if self.prompts < 1 or self.steps < 1 or self.lr <= 0 or self.gd_lr <= 0 or self.top_k < 1:
            raise ConfigError("prompts, steps, top_k, lr and gd_lr must be positive")


# refusal_consistency 0.9: an aligned model refuses a prompt consistently (figure 3's pair mix);
# describe_clauses 3: multi-clause descriptions for figure 2's pairs (see corpus.py)
CONFIGS = {
    Scale.QUICK: Config(
        PretrainConfig(steps=150, batch=32, refusal_consistency=0.9, describe_clauses=3), prompts=2, steps=40
    ),
    Scale.DEFAULT: Config(
        PretrainConfig(steps=600, batch=64, refusal_consistency=0.9, describe_clauses=3), prompts=5, steps=100
    ),
    Scale.PAPER: Config(
        PretrainConfig(
            n_layer=6,
            n_embd=256,
            n_head=8,
            steps=5000,
            batch=128,
            refusal_consistency=0.9,
            describe_clauses=3,
        ),
        prompts=10,
        steps=100,
    ),
}


def _prompt_state(model, prompt: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        h = model.forward_hidden(torch.tensor([prompt]))[0, -1].double()  # (D,)
        return model.unembedding.detach().double(), h


def network_rates(model, prompt: list[int], pos: int, neg: int, beta: float) -> dict[str, float]:
    """d ln pi(y+)/dt at the start of DPO (reference = model, so -l' = beta/2) for the whole network, split
    as in Theorem 4: the unembedding's part (the (1 - pi+ + pi-)||h||^2 term) and the part through h, under
    gradient flow (NTK geometry) and under RMSProp's first-step preconditioner."""
    params = dict(model.named_parameters())
    logp = torch.log_softmax(model(torch.tensor([prompt])).logits[0, -1], -1)  # (V,)
    g_pos = torch.autograd.grad(logp[pos], list(params.values()), retain_graph=True)
    g_margin = torch.autograd.grad(logp[pos] - logp[neg], list(params.values()))
    neg_l_prime = beta / 2
    alpha, eps = TrainConfig.alpha, TrainConfig.eps
    out = {"gd_unembedding": 0.0, "gd_body": 0.0, "rmsprop": 0.0}
    for name, a, b in zip(params, g_pos, g_margin, strict=True):
        a, b = a.double(), b.double()
        key = "gd_unembedding" if name == "lm_head.weight" else "gd_body"
        out[key] += neg_l_prime * float((a * b).sum())
        step = neg_l_prime * b / (((1 - alpha) * (neg_l_prime * b) ** 2).sqrt() + eps)  # -(RMSProp step)/lr
        out["rmsprop"] += float((a * step).sum())
    out["gd"] = out["gd_unembedding"] + out["gd_body"]
    return out


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    model = pretrained_model(config.pretrain, ctx)
    rng = random.Random(config.seed)
    prompts = [yes_no_prompt(rng.choice(NOUNS), rng.choice(ADJS)) for _ in range(config.prompts)]
    rows = []
    for pair in ctx.progress(config.pairs, desc="token pairs"):
        good, _, bad = pair.partition(">")
        pos, neg = VOCAB[good], VOCAB[bad]
        for j, prompt in enumerate(prompts):

            def unit(prompt=prompt, pos=pos, neg=neg, good=good, bad=bad, j=j):
                W, h = _prompt_state(model, prompt)
                margin = float(displacement_margin(W, h, pos, neg))
                rates = network_rates(model, prompt, pos, neg, config.beta)
                align = (W @ (W[pos] - W[neg])).numpy()
                batch = make_pairs([(prompt, [pos], [neg])])
                x = torch.tensor([prompt])
                p_first = []  # pi(y+) after the RMSProp run's first step, read during that run

                def after_first(info: StepInfo) -> None:
                    if info.step == 1:
                        with torch.no_grad():
                            p_first.append(float(torch.softmax(info.model(x).logits[0, -1], -1)[pos]))

                rms = dpo_config(config.steps, config.lr, config.beta)
                trained = lm.dpo(model, batch, rms, callbacks=[after_first]).policy
                gd = lm.dpo(
                    model, batch, dpo_config(config.steps, config.gd_lr, config.beta, optimizer="sgd")
                ).policy
                ipo_config = dataclasses.replace(
                    dpo_config(config.steps, config.lr, config.ipo_beta), loss_type="ipo"
                )
                ipo = lm.dpo(model, batch, ipo_config).policy
                with torch.no_grad():
                    p0 = torch.softmax(model(x).logits[0, -1], -1).numpy()
                    p1 = torch.softmax(trained(x).logits[0, -1], -1).numpy()
                    p_gd = float(torch.softmax(gd(x).logits[0, -1], -1)[pos])
                    p_ipo = float(torch.softmax(ipo(x).logits[0, -1], -1)[pos])
                others = [z for z in range(len(WORDS)) if z not in (pos, neg)]
                dlog = np.log(p1) - np.log(p0)
                gainer = others[int(np.argmax(p1[others] - p0[others]))]
                ranked = [others[i] for i in np.argsort(-align[others])]
                return {
                    "pair": f"{good}>{bad}",
                    "prompt": j,
                    "margin": margin,
                    "hh": float(h @ h),
                    **{f"rate_{k}": v for k, v in rates.items()},
                    "pi_pos_after_first_step": p_first[0],
                    "pi_pos_after_gd": p_gd,
                    "pi_pos_after_ipo": p_ipo,
                    "pi_pos_before": float(p0[pos]),
                    "pi_pos_after": float(p1[pos]),
                    "pi_neg_before": float(p0[neg]),
                    "pi_neg_after": float(p1[neg]),
                    "dlogp_pos": float(dlog[pos]),
                    "top_gainer": WORDS[gainer],
                    "top_gainer_gain": float(p1[gainer] - p0[gainer]),
                    "top_aligned": [WORDS[z] for z in ranked[: config.top_k]],
                    "answer_gains": {w: float(p1[VOCAB[w]] - p0[VOCAB[w]]) for w in ANSWERS},
                }

            rows.append(ctx.part(f"{good}-{bad}-prompt{j}", unit))
    return {"rows": rows, "answers": list(ANSWERS)}


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    rows = data["rows"]
    fell_rms = np.array([r["pi_pos_after"] < r["pi_pos_before"] for r in rows])
    fell_first = np.array([r["pi_pos_after_first_step"] < r["pi_pos_before"] for r in rows])
    fell_gd = np.array([r["pi_pos_after_gd"] < r["pi_pos_before"] for r in rows])
    pred_free = np.array([r["margin"] > 0 for r in rows])
    pred_gd = np.array([r["rate_gd"] < 0 for r in rows])
    pred_rms = np.array([r["rate_rmsprop"] < 0 for r in rows])
    in_top = np.array([r["top_gainer"] in r["top_aligned"] for r in rows])
    by_pair: dict[str, list[bool]] = {}
    for r in rows:
        by_pair.setdefault(r["pair"], []).append(r["pi_pos_after"] < r["pi_pos_before"])
    displaced = ", ".join(p for p, v in by_pair.items() if np.mean(v) > 0.5) or "none"
    n = len(rows)
    hh = float(np.mean([r["hh"] for r in rows]))
    body = float(np.median([r["rate_gd_body"] for r in rows]))
    unemb = float(np.median([r["rate_gd_unembedding"] for r in rows]))
    ba_gd, ba_rms = _balanced_agreement(pred_gd, fell_gd), _balanced_agreement(pred_rms, fell_rms)
    fell_ipo = np.array([r["pi_pos_after_ipo"] < r["pi_pos_before"] for r in rows])
    hit = float(np.mean(fell_rms[pred_rms])) if pred_rms.any() else float("nan")
    return [
        Claim.check(
            "likelihood_displacement.fig1b.theory_predicts_displacement_gd",
            f"{n} single-prompt runs ({len(by_pair)} token pairs) under gradient descent, the theory's "
            "dynamics: Theorem 4's condition for the network (h moving through its empirical NTK) predicts "
            "whether pi(y+) falls (balanced accuracy; needs runs of both outcomes)",
            ba_gd,
            ">=",
            0.8,
            paper_value="Theorem 4 (gradient flow); Table 1: pi(y+) fell in every reported run",
            details=f"predicted to fall {int(pred_gd.sum())}/{n}, fell {int(fell_gd.sum())}/{n} "
            f"({config.steps} steps of lr {config.gd_lr:g}); raw agreement {np.mean(pred_gd == fell_gd):.2f} "
            f"(a constant predictor scores {max(fell_gd.mean(), 1 - fell_gd.mean()):.2f}; NaN balanced "
            f"accuracy: only one outcome occurred); median rate split: unembedding (1 - pi+ + pi-)||h||^2 "
            f"part {unemb:+.2f}, part through h {body:+.2f} (mean ||h||^2 {hh:.0f})",
        ),
        Claim.check(
            "likelihood_displacement.fig1b.theory_predicts_displacement",
            f"the same {n} runs with the paper's protocol (RMSProp lr {config.lr:g}, {config.steps} steps): "
            "the condition in RMSProp's geometry (first-step preconditioner) predicts whether pi(y+) ends "
            "lower (balanced accuracy; needs runs of both outcomes)",
            ba_rms,
            ">=",
            0.8,
            paper_value="Table 1: pi(y+) fell in every run for the reported pairs (RMSProp)",
            details=f"pairs displacing in most runs: {displaced}; fell by the end {int(fell_rms.sum())}/{n}, "
            f"after the first step {int(fell_first.sum())}/{n}; predicted {int(pred_rms.sum())}/{n}; raw "
            f"agreement {np.mean(pred_rms == fell_rms):.2f} (constant predictor "
            f"{max(fell_rms.mean(), 1 - fell_rms.mean()):.2f}); agreement with the first step "
            f"{np.mean(pred_rms == fell_first):.2f}; free-h condition (Theorem 4 as stated) predicts "
            f"{int(pred_free.sum())}/{n}, agrees with the end in {np.mean(pred_free == fell_rms):.2f}",
        ),
        Claim.check(
            "likelihood_displacement.fig1b.falls_where_predicted",
            "Table 1 on the GPT: among the RMSProp runs where the condition predicts displacement, the "
            "fraction in which pi(y+) ends lower",
            hit,
            ">=",
            0.8,
            paper_value="Table 1: pi(y+) fell in every reported run (OLMo-1B, Gemma-2B, Llama-3-8B)",
            details=f"{int(fell_rms[pred_rms].sum())} of {int(pred_rms.sum())} predicted runs fell (NaN: "
            "the condition predicted no displacement in any run)",
        ),
        Claim.check(
            "likelihood_displacement.fig1b.ipo_displaces_too",
            f"Table 3 on the GPT: among the runs where DPO (RMSProp) lowered pi(y+), the fraction where IPO "
            f"(beta {config.ipo_beta:g}, same optimizer, lr and steps) lowered it too",
            float(np.mean(fell_ipo[fell_rms])) if fell_rms.any() else float("nan"),
            ">=",
            0.8,
            paper_value="Table 3: likelihood displacement occurs for IPO as for DPO",
            details=f"IPO lowered pi(y+) in {int(fell_ipo.sum())}/{n} runs, DPO in "
            f"{int(fell_rms.sum())}/{n}, both in {int((fell_ipo & fell_rms).sum())}",
        ),
        Claim.check(
            "likelihood_displacement.fig1b.mass_to_aligned_tokens",
            f"the token (other than y+, y-) gaining most probability is among the {config.top_k} most "
            "aligned "
            "with W+ - W- (fraction of RMSProp runs)",
            float(np.mean(in_top)),
            ">=",
            0.8,
            paper_value="Theorem 5; Table 1's gaining tokens (e.g. Yes for No > Never)",
            details=f"a token drawn at random would be among them in {config.top_k / (len(VOCAB) - 2):.3f} "
            "of runs (top_k / (V - 2))",
        ),
    ]


def _balanced_agreement(predicted: np.ndarray, happened: np.ndarray) -> float:
    """Balanced accuracy of the prediction, NaN when only one outcome occurred (a constant predictor would
    then look perfect, so agreement says nothing)."""
    if happened.all() or not happened.any():
        return float("nan")
    return balanced_accuracy(predicted, happened)


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    rows = data["rows"]
    fig, axes = new_figure(ncols=2, width=4.6)
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    ax = axes[0]
    for i, p in enumerate(pairs):
        rs = [r for r in rows if r["pair"] == p]
        for r in rs:
            ax.plot(
                [i - 0.15, i + 0.15],
                [r["pi_pos_before"], r["pi_pos_after"]],
                color="#1f77b4",
                marker="o",
                markersize=3,
                alpha=0.7,
            )
            ax.text(
                i + 0.18, r["pi_pos_after"], "x" if r["rate_rmsprop"] < 0 else "", color="#d62728", fontsize=7
            )
    ax.set_xticks(range(len(pairs)), pairs, rotation=30)
    ax.set_ylabel("π(y+): before → after DPO (RMSProp)")
    ax.set_title("x: predicted to fall (RMSProp geometry)")
    ax = axes[1]
    answers = data["answers"]
    mat = np.array(
        [[np.mean([r["answer_gains"][w] for r in rows if r["pair"] == p]) for w in answers] for p in pairs]
    )
    lim = float(np.abs(mat).max()) or 1.0
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(answers)), answers, rotation=45)
    ax.set_yticks(range(len(pairs)), pairs)
    ax.set_title("mean change of π(answer) after DPO")
    ax.grid(False)
    fig.colorbar(im, ax=ax)
    return save(fig, out_dir, "single_token_gpt")


FIGURE = Figure(
    name="fig1b_single_token_gpt",
    title="Single-token DPO on a small GPT: which pairs displace and where the mass goes",
    paper_ref="Sec. 3, Table 1 (and App. H.1), read with Theorems 4-5",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="Runs where the theory's condition (in the optimizer's geometry) holds lose pi(y+); the gaining "
    "token is aligned with W+ - W-.",
    threads=1,  # small models: threads cost more than they give
    # Nothing asserted at quick. The gradient-descent agreement was 12/12 at seeds 0-4 only because pi(y+)
    # never fell under GD (a constant predictor agrees as often); as balanced accuracy it is undefined there.
    # The RMSProp agreement and the aligned top gainer (7/12) fail at quick.
    asserted_at_quick=(),
)
