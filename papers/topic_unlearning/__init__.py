"""Wei, Malladi, Arora, Sanyal. "Provable unlearning in topic modeling and downstream tasks". ICLR 2025,
arXiv 2411.12600. The paper is theoretical and has no code; this package is a synthetic walkthrough of its
algorithms and checks of its statements (see README.md).

API: `learn_topics(docs, r)` (Algorithm 3: co-occurrence, anchors, RecoverL2), `unlearn(state, forget_ids,
epsilon, delta)` (Algorithm 1, U_base), `cooccurrence(docs, vocab_size)` (the Q-hat estimator),
`calibrate_sensitivity` (the measured constant the noise scale needs).
"""

from common.experiment import Paper
from papers.topic_unlearning.learner import TopicState, cooccurrence, learn_topics
from papers.topic_unlearning.unlearning import Unlearned, calibrate_sensitivity, retrain, unlearn

PAPER = Paper(
    key="topic_unlearning",
    title="Provable unlearning in topic modeling and downstream tasks",
    authors="Wei, Malladi, Arora, Sanyal",
    venue="ICLR 2025",
    arxiv="2411.12600",
    figure_modules=(
        "papers.topic_unlearning.fig_recovery",
        "papers.topic_unlearning.fig_capacity",
        "papers.topic_unlearning.fig_cost",
        "papers.topic_unlearning.fig_head",
    ),
)

__all__ = [
    "PAPER",
    "TopicState",
    "Unlearned",
    "calibrate_sensitivity",
    "cooccurrence",
    "learn_topics",
    "retrain",
    "unlearn",
]
