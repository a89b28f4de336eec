"""Unlearning cost vs m (flat) against retraining (linear): Wei et al. 2025, abstract and Section 3 ("an
unlearning algorithm ... that incurs a computational overhead independent of the size of the original
dataset").

U_base touches only the forget set's documents (the Q-hat update is O(m_U L^2)) and n x n / n x r x r
arrays; retraining rebuilds Q-hat from all m documents and relearns. We time both at each m for a forget
set of fixed size (wall clock, the minimum over repeats, so that other jobs on the machine inflate it
less) and fit log-time on log m.

Claims (timings on a shared 2-core machine; slopes are robust to a constant slowdown, not to bursts):
- `unlearn_flat`: the fitted slope of U_base's time in m is <= 0.2 (theory: 0).
- `retrain_linear`: retraining's slope is >= 0.7 (theory: 1 once building Q-hat dominates).
- `unlearn_faster`: U_base is faster than retraining at the largest m (ratio of times >= 1; the paper
  says faster than retraining, with no number).

Cost (measured on 2 shared cores, inflated ~2x): quick 8 s, default 23 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter

from common.claims import Claim, slope_interval
from common.configs import Count, Index, OpenFraction, Positive, Scale
from common.data.topic_models import sample_documents, separable_topic_model
from common.experiment import Figure, RunContext
from common.plotting import new_figure, save
from papers.topic_unlearning.learner import learn_topics
from papers.topic_unlearning.unlearning import random_forget_set, unlearn


@dataclass(frozen=True)
class Config:
    ms: tuple[Count, ...]
    deleted: Count = 100  # m_U, fixed across m
    n: Count = 100
    r: Count = 5
    anchor_mass: OpenFraction = 0.1
    alpha: Positive = 0.1
    length: Count = 2
    epsilon: Positive = 1.0
    delta: OpenFraction = 1e-5
    repeats: Count = 5  # unlearning timings per m (minimum kept)
    retrain_repeats: Count = 2
    seed: Index = 0
    max_unlearn_slope: Positive = 0.2
    min_retrain_slope: Positive = 0.7
    min_speedup: Positive = 1.0

    def validate(self) -> None:
        if len(self.ms) < 3:
            raise ValueError("ms needs at least 3 sizes to fit a slope")
        if self.deleted * 2 > min(self.ms):
            raise ValueError(f"deleted={self.deleted} must be under half of the smallest m ({min(self.ms)})")
        if self.r >= self.n:
            raise ValueError(f"need r < n, got r={self.r}, n={self.n}")


CONFIGS = {
    Scale.QUICK: Config(ms=(100_000, 200_000, 400_000, 800_000)),  # 8 s
    Scale.DEFAULT: Config(ms=(100_000, 200_000, 400_000, 800_000, 1_600_000)),  # 23 s
    Scale.PAPER: Config(
        ms=(100_000, 300_000, 1_000_000, 3_000_000, 10_000_000), repeats=10
    ),  # ~2 min, estimated
}


def time_at(config: Config, m: int) -> dict[str, Any]:
    rng = np.random.default_rng(config.seed)
    model = separable_topic_model(config.n, config.r, config.anchor_mass, config.alpha, rng)
    docs = sample_documents(model, m, config.length, rng)
    threshold = config.anchor_mass / (2 * config.r)
    state = learn_topics(docs, config.r, vocab_size=config.n, candidate_min_marginal=threshold)
    ids = random_forget_set(state, config.deleted, rng)
    unlearn_s = min(
        unlearn(state, ids, config.epsilon, config.delta, sensitivity=1.0, rng=rng).seconds
        for _ in range(config.repeats)
    )
    kept = np.setdiff1d(np.arange(m), ids)
    retrain_s = []
    for _ in range(config.retrain_repeats):
        start = time.perf_counter()
        learn_topics(docs[kept], config.r, vocab_size=config.n, candidate_min_marginal=threshold)
        retrain_s.append(time.perf_counter() - start)
    return {"unlearn_seconds": unlearn_s, "retrain_seconds": min(retrain_s)}


def run(config: Config, ctx: RunContext) -> dict[str, Any]:
    rows = [ctx.part(f"m{m}", lambda m=m: time_at(config, m)) for m in ctx.progress(config.ms, "cost")]
    return {
        "ms": list(config.ms),
        "deleted": config.deleted,
        "n": config.n,
        "r": config.r,
        "unlearn_seconds": [r["unlearn_seconds"] for r in rows],
        "retrain_seconds": [r["retrain_seconds"] for r in rows],
    }


def claims(data: dict[str, Any], config: Config) -> list[Claim]:
    x = np.log(np.asarray(data["ms"], dtype=float))
    t_u = np.asarray(data["unlearn_seconds"], dtype=float)
    t_r = np.asarray(data["retrain_seconds"], dtype=float)
    s_u, s_r = (float(np.polyfit(x, np.log(t), 1)[0]) for t in (t_u, t_r))
    setup = f"n={data['n']}, r={data['r']}, m_U={data['deleted']}, m={data['ms'][0]:,}..{data['ms'][-1]:,}"
    times = (
        f"unlearn ms {np.round(1e3 * t_u, 2).tolist()}; retrain ms {np.round(1e3 * t_r, 1).tolist()} "
        "(2 shared cores)"
    )
    return [
        Claim.check(
            "topic_unlearning.cost.unlearn_flat",
            f"{setup}: log-log slope of U_base's wall time in m (independent of m)",
            s_u,
            "<=",
            config.max_unlearn_slope,
            paper_value="computational overhead independent of the dataset size (abstract)",
            details=times,
            interval=slope_interval(x, np.log(t_u)),
            paper_number=0.0,
            paper_unit="slope",
            paper_source="abstract",
        ),
        Claim.check(
            "topic_unlearning.cost.retrain_linear",
            f"{setup}: log-log slope of retraining's wall time in m",
            s_r,
            ">=",
            config.min_retrain_slope,
            paper_value="retraining reads all m documents",
            details=times,
            interval=slope_interval(x, np.log(t_r)),
            paper_number=1.0,
            paper_unit="slope",
        ),
        Claim.check(
            "topic_unlearning.cost.unlearn_faster",
            f"{setup}: retraining time / U_base time at m = {data['ms'][-1]:,}",
            float(t_r[-1] / t_u[-1]),
            ">=",
            config.min_speedup,
            paper_value="unlearning runs faster than retraining (abstract, Section 5)",
            details=times,
        ),
    ]


def plot(data: dict[str, Any], out_dir: Path) -> list[str]:
    fig, axes = new_figure()
    ax = axes[0]
    ax.plot(data["ms"], data["retrain_seconds"], "o-", color="C3", label="retrain (Q-hat + learn)")
    ax.plot(data["ms"], data["unlearn_seconds"], "o-", color="C0", label=f"unlearn {data['deleted']} docs")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_xlabel("training documents m")
    ax.set_ylabel("wall time (s, min over repeats)")
    ax.set_title(f"cost, n={data['n']}, r={data['r']}")
    ax.legend(fontsize=7)
    return save(fig, out_dir, "cost")


FIGURE = Figure(
    name="fig_cost",
    title="Unlearning cost vs m (flat) against retraining (linear)",
    paper_ref="Abstract and Algorithm 1: overhead independent of the dataset size",
    configs=CONFIGS,
    run=run,
    plot=plot,
    claims=claims,
    expected="U_base takes a few ms at every m; retraining grows linearly in m.",
    threads=1,
    # Asserted at quick: unlearn_faster only (seeds 0-4: smallest margin 168, i.e. retraining >= 169x
    # slower). The slopes are timings on a shared machine: unlearn_flat failed at 1 of 5 seeds (a burst of
    # load on one point), retrain_linear passed with a smallest margin of 0.23; both are reported.
    # Nothing asserted at quick: these claims are wall-clock timings, which the test suite never asserts
    # (the margin was 168x over seeds 0-4, but a loaded machine is not a benchmark).
    asserted_at_quick=(),
)
