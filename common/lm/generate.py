"""Greedy decoding and ancestral sampling with per-row end-of-sequence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from common.lm._models import evaluating, unwrap


@torch.no_grad()
def generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]] | torch.Tensor,
    max_new_tokens: int,
    *,
    eos: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | int | None = None,
    vocab_size: int | None = None,
    keep_eos: bool = False,
) -> list[list[int]]:
    """Continue every prompt by up to `max_new_tokens` tokens; returns the new tokens of each row, cut
    before its first `eos` (the eos itself is dropped; with `keep_eos` it ends the row, so a row that ran
    out of budget or of block_size is told apart from one that ended, e.g. for exact-match scoring).

    temperature > 0: ancestral sampling from softmax(logits / temperature) with `generator` (a
    torch.Generator, or an int seed for a fresh one; required, so the global RNG is never drawn from);
    temperature == 0: greedy decoding (argmax, no generator needed). Every row is drawn at every step until
    all rows are done (so the generator's stream does not depend on when the others stop); a row stops at
    its eos, after max_new_tokens, or when it fills the model's block_size. vocab_size: only the first
    vocab_size token ids may be produced (e.g. to leave out prompt-only tokens). Prompts may differ in
    length: they sit right-padded in one buffer and each row writes at its own position (causal models
    only), so positions stay 0.. for every row. The model runs in eval mode and is restored after.
    """
    gpt = unwrap(model)
    if not gpt.config.causal:
        raise ValueError("generate needs a causal model (GPTConfig(causal=True))")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    if vocab_size is not None and not 1 <= vocab_size <= gpt.config.vocab_size:
        raise ValueError(f"vocab_size must lie in [1, {gpt.config.vocab_size}], got {vocab_size}")
    rows = prompts.tolist() if isinstance(prompts, torch.Tensor) else [list(map(int, p)) for p in prompts]
    if not rows:
        return []
    if min(len(r) for r in rows) < 1:
        raise ValueError("every prompt needs at least one token")
    if max(len(r) for r in rows) > gpt.config.block_size:
        raise ValueError(f"a prompt is longer than the model's block_size {gpt.config.block_size}")
    device = gpt.unembedding.device
    gen = generator
    if temperature > 0:
        if gen is None:
            raise ValueError("sampling (temperature > 0) needs a generator or an int seed")
        if isinstance(gen, int):
            gen = torch.Generator(device=device).manual_seed(gen)
    B = len(rows)
    lengths = torch.tensor([len(r) for r in rows], device=device)  # (B,)
    budget = (gpt.config.block_size - lengths).clamp(min=0, max=max_new_tokens)  # (B,)
    width = int((lengths + budget).max())
    buf = torch.zeros((B, width), dtype=torch.long, device=device)  # (B, W): prompts, then new tokens
    for b, r in enumerate(rows):
        buf[b, : len(r)] = torch.tensor(r, dtype=torch.long)
    cur = lengths.clone()  # (B,): where each row writes next
    done = budget == 0  # (B,)
    ar = torch.arange(B, device=device)
    with evaluating(model):
        for _ in range(int(budget.max())):
            if bool(done.all()):
                break
            logits = model(buf[:, : int(cur.max())]).logits  # (B, L, V)
            last = logits[ar, cur - 1]  # (B, V): the distribution of each row's next token
            if vocab_size is not None:
                last = last[:, :vocab_size]
            if temperature == 0:
                nxt = last.argmax(-1)  # (B,)
            else:
                if temperature != 1.0:
                    last = last / temperature
                nxt = torch.multinomial(torch.softmax(last, -1), 1, generator=gen)[:, 0]  # (B,)
            active = ~done
            buf[ar[active], cur[active]] = nxt[active]
            cur = cur + active.long()
            if eos is not None:
                done = done | (active & (nxt == eos))
            done = done | (cur - lengths >= budget)
    out = []
    for b in range(B):
        new = buf[b, int(lengths[b]) : int(cur[b])].tolist()
        if eos is not None and eos in new:
            new = new[: new.index(eos) + int(keep_eos)]
        out.append(new)
    return out
