"""Small language models on the repository's one training loop and its fused kernels.

What the papers that train a `common.models.gpt.GPT` share, written once:

* `pretrain(spec, batches, shared=...)`: next-token pretraining through `common.train.train` (DDP under
  torchrun), cached through the shared-artifact cache (`common.experiment.shared_artifact`) under the hash
  of a frozen `PretrainSpec` that holds everything the weights depend on; the weights come back from the
  cache when the entry is intact and are retrained (with a notice) when it is not.
* `token_logps`, `sequence_logps`, `preference_logps`: log-probabilities of the labelled tokens through the
  fused kernels `common.ops.token_logps` / `common.ops.sequence_logps`, on the final hidden states and the
  unembedding (the [B, T, V] logits are never materialized).
* `dpo(reference, pairs, DPOConfig(...))`: preference optimization against a frozen reference, through
  `common.ops.dpo_loss` or `common.ops.fused_linear_dpo_loss`, trained by `common.train.train`: DPO
  (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
  eq. 7), cDPO (label smoothing), IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand
  Learning from Human Preferences", eq. 17, on length-averaged log-probs), robust and hinge, as TRL's
  DPOTrainer defines them.
* `generate(model, prompts, max_new_tokens, ...)`: ancestral sampling at a temperature (Holtzman et al.
  2020 call it pure sampling at temperature 1) or greedy decoding (temperature 0), each row stopping at its
  end-of-sequence token, with a private seeded generator so that the global RNG is untouched.
* `cyclic_rows`, `shuffled_rows`: the deterministic batch orders of `common.train`'s `get_batch(step,
  micro)` contract (consecutive rows wrapping around; shuffled epochs laid end to end).

Conventions: token ids are right-padded [B, T] int64; labels [B, T] are aligned with the positions that
predict them (labels[b, t] is the token after ids[b, t]) and IGNORE (-100) elsewhere (prompt, padding), as
`GPT.forward`'s targets and the kernels expect. Models are called through `forward` (with
`with_logits=False` where only hidden states are needed), so a DistributedDataParallel wrapper sees every
call; `unwrap` gives the GPT inside for its unembedding.
"""

from __future__ import annotations

from common.lm._models import IGNORE, evaluating, hidden_states, load_model, preserved_rng, unwrap
from common.lm.batches import cyclic_rows, shuffled_rows
from common.lm.dpo import DPOConfig, DPORun, dpo, dpo_batch_loss
from common.lm.generate import generate
from common.lm.logps import PreferenceBatch, preference_logps, sequence_logps, token_logps
from common.lm.pretrain import Pretrained, PretrainSpec, next_token_loss, pretrain

__all__ = [
    "IGNORE",
    "DPOConfig",
    "DPORun",
    "PreferenceBatch",
    "PretrainSpec",
    "Pretrained",
    "cyclic_rows",
    "dpo",
    "dpo_batch_loss",
    "evaluating",
    "generate",
    "hidden_states",
    "load_model",
    "next_token_loss",
    "preference_logps",
    "preserved_rng",
    "pretrain",
    "sequence_logps",
    "shuffled_rows",
    "token_logps",
    "unwrap",
]
