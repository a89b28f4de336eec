"""DPO on the small GPT, with the fused kernel (`common.ops.fused_linear_dpo_loss`), and sampling helpers."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from common.ops import fused_linear_dpo_loss
from common.train import Callback, TrainConfig, train
from papers.likelihood_displacement.api import PreferenceBatch, response_logps
from papers.likelihood_displacement.corpus import BLOCK, EOS, GPT


def subset(batch: PreferenceBatch, rows: torch.Tensor | list[int]) -> PreferenceBatch:
    rows = torch.as_tensor(rows, dtype=torch.long)
    return PreferenceBatch(*(t[rows] for t in batch))


def dpo(
    model: GPT,
    batch: PreferenceBatch,
    steps: int,
    lr: float,
    beta: float = 0.1,
    batch_size: int = 0,
    optimizer: str = "rmsprop",
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
) -> GPT:
    """A DPO-trained copy of `model` (reference = `model`): `steps` optimizer steps over `batch`, full batch
    when batch_size is 0, else consecutive mini-batches cycling through the pairs (an epoch: B / batch_size).
    `callbacks` go to `common.train.train` (called after every step with the policy in training mode).
    """
    batch.validate()
    B = batch.chosen_ids.shape[0]
    with torch.no_grad():
        ref_c = response_logps(model, batch.chosen_ids, batch.chosen_labels)  # (B,)
        ref_r = response_logps(model, batch.rejected_ids, batch.rejected_labels)  # (B,)
    policy = copy.deepcopy(model).train()
    size = B if batch_size <= 0 else min(batch_size, B)

    def get_batch(step: int, micro: int):
        start = (step * size) % B
        rows = torch.arange(start, start + size) % B
        return (*subset(batch, rows), ref_c[rows], ref_r[rows])

    def loss_fn(m: GPT, b) -> torch.Tensor:
        ci, cl, ri, rl, rc, rr = b
        loss, _, _ = fused_linear_dpo_loss(
            m.forward_hidden(ci), m.forward_hidden(ri), m.unembedding, cl, rl, rc, rr, beta=beta
        )
        return loss

    cfg = TrainConfig(optimizer=optimizer, lr=lr, steps=steps, seed=seed, log_every=max(1, steps))
    train(policy, loss_fn, get_batch, cfg, callbacks=callbacks, progress=False)
    return policy.eval()


@torch.no_grad()
def sample(
    model: GPT,
    prompts: list[list[int]],
    n: int,
    max_new: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> list[list[list[int]]]:
    """n sampled responses (up to eos, eos dropped) per prompt; prompts of equal length are batched."""
    out: list[list[list[int]]] = []
    for p in prompts:
        ids = torch.tensor([p] * n)  # (n, Tp)
        done = torch.zeros(n, dtype=torch.bool)
        for _ in range(min(max_new, BLOCK - len(p))):
            logits = model(ids).logits[:, -1] / temperature  # (n, V)
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)  # (n, 1)
            nxt[done] = EOS
            ids = torch.cat([ids, nxt], 1)
            done |= nxt[:, 0] == EOS
            if bool(done.all()):
                break
        rows = []
        for r in ids[:, len(p) :].tolist():
            rows.append(r[: r.index(EOS)] if EOS in r else r)
        out.append(rows)
    return out
