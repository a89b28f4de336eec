"""A small GPT-2 style decoder (nanoGPT-like) for the papers' language-model experiments.

Pre-LayerNorm transformer blocks (Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners"), causal self-attention through `F.scaled_dot_product_attention`, learned absolute positions (the
default) or rotary position embeddings (`GPTConfig(positions="rope")`, Su et al. 2021, "RoFormer: Enhanced
Transformer with Rotary Position Embedding", arXiv 2104.09864), GPT-2 initialisation (normal std 0.02,
residual projections scaled by 1/sqrt(2 * n_layer)) and, by default, an unembedding tied to the token
embedding (Press & Wolf 2017).

The forward pass returns the final hidden states as well as the logits so that the fused log-prob/DPO
kernels in `common.ops` can skip the `[B, T, V]` logits: they take `forward_hidden(idx)` and
`model.unembedding` (shape `[V, C]`) instead.

Positions. With "learned" (GPT-2) a table `wpe` of block_size vectors is added to the token embeddings; the
model sees absolute positions. With "rope" there is no table: each head's queries and keys are rotated by
angles proportional to their positions (RoFormer eq. 34, in the rotate-half layout of GPT-NeoX/LLaMA), so
the attention scores q_m . k_n depend on m - n only. A rope model therefore computes the same function
when every position is shifted by one constant (e.g. after a prefix is dropped, as MeCo's cooldown drops
its URL tokens); `forward(idx, positions=...)` takes explicit position ids for that. The default stays
"learned", so existing models keep their parameters, their random initialisation and their bits.

Cost: a 2-layer, 64-dim model with vocab 64 has ~0.1M parameters and trains a step on a batch of 8x16
tokens in a few milliseconds on one CPU core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPTConfig", "GPTOutput", "GPT", "POSITIONS", "rope_angles", "apply_rope"]

POSITIONS = ("learned", "rope")


@dataclass(frozen=True)
class GPTConfig:
    """Shape and regularisation of a `GPT`.

    vocab_size: V; block_size: the longest sequence T the positional table covers; n_layer, n_head, n_embd
    (C, divisible by n_head); dropout on embeddings, attention weights and residual branches; bias on the
    Linear and LayerNorm layers; tie_weights shares the token embedding with the unembedding; causal=False
    lets every position attend to every other (a BERT-style encoder for masked-token prediction, as the
    progressive-distillation paper's PCFG experiments) instead of only to earlier ones. positions: "learned"
    (a table of block_size absolute position vectors, GPT-2) or "rope" (rotary embeddings of queries and
    keys, no table; needs an even head size C / n_head); rope_base: the rotary base (10000 in RoFormer).
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    causal: bool = True
    positions: str = "learned"
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"rope needs an even head size, got n_embd/n_head = {self.n_embd // self.n_head}"
            )
        if not self.rope_base > 1.0:
            raise ValueError(f"rope_base must be > 1, got {self.rope_base}")


class GPTOutput(NamedTuple):
    """What `GPT.forward` returns: final hidden states, logits, and the mean token loss (or None)."""

    hidden: torch.Tensor  # (B, T, C), after the final LayerNorm
    logits: torch.Tensor | None  # (B, T, V); None from forward(..., with_logits=False)
    loss: torch.Tensor | None  # scalar; None when no targets were given


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """Rotary angles m * theta_i for position ids `positions` ((T,) or (B, T)), theta_i = base^(-2i / D)
    for i < D/2 (RoFormer, eq. 15), repeated for the two halves of a head: shape (..., T, D)."""
    even = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64)  # (D/2,): 2i
    inv_freq = base ** (-even / head_dim)  # (D/2,)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (..., T, D/2)
    return torch.cat([angles, angles], dim=-1)  # (..., T, D)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the vectors `x` (B, H, T, D) by the angles whose cosines and sines are `cos`, `sin` ((T, D)
    or (B, 1, T, D), from `rope_angles`): each pair (x_i, x_{i+D/2}) turns by angle m theta_i (the
    rotate-half layout of RoFormer's eq. 34), so that <R_m q, R_n k> = <q, R_{n-m} k>."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (B, H, T, D)
    return x * cos + rotated * sin  # (B, H, T, D)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection (`c_attn`) and an output `c_proj`; causal
    unless the config says `causal=False`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.causal = config.causal
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Attend over `x` of shape (B, T, C) (causally unless configured otherwise); returns (B, T, C).
        `rope`: (cos, sin) of the rotary angles, (T, D) or (B, 1, T, D), applied to queries and keys."""
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)  # (B, H, T, D) each
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class FeedForward(nn.Module):
    """The transformer MLP: `c_fc` (C -> 4C), GELU, `c_proj` (4C -> C), dropout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to `x` of shape (B, T, C)."""
        h = F.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-LN residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """One block on `x` of shape (B, T, C) (`rope`: (cos, sin) of the rotary angles, or None)."""
        x = x + self.attn(self.ln_1(x), rope)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    """A decoder-only transformer language model.

    Module names follow nanoGPT/GPT-2 (`wte`, `wpe`, `h.{i}.attn.c_attn`, `h.{i}.attn.c_proj`,
    `h.{i}.mlp.c_fc`, `h.{i}.mlp.c_proj`, `ln_f`, `lm_head`; `wpe` only with learned positions) so that
    `apply_lora(model, ["c_attn"])` and per-layer gradient featurizers can address layers by suffix.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        # Learned positions only: a rope model has no table (and draws no random numbers for one).
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.positions == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight  # one Parameter, shape (V, C)
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer), two residual adds per block, so the
        # variance of the residual stream does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def unembedding(self) -> torch.Tensor:
        """The unembedding matrix W of shape (V, C): logits = hidden @ W.T (tied to `wte` by default)."""
        return self.lm_head.weight

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of distinct parameters (a tied matrix counts once).

        With `exclude_embeddings=True` the positional table and, when untied, the token embedding are left
        out (the unembedding stays, as in nanoGPT's count / Kaplan et al. 2020's non-embedding N).
        """
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            if self.wpe is not None:
                n -= self.wpe.weight.numel()
            if not self.config.tie_weights:
                n -= self.wte.weight.numel()
        return n

    def forward_hidden(self, idx: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states after the final LayerNorm, shape (B, T, C), for token ids `idx` of shape (B, T).

        `positions`: position ids, (T,) or (B, T) int64 (default 0..T-1). Learned positions need them in
        [0, block_size); rotary ones take any integers (only differences matter to the attention).
        This is everything but the unembedding; fused log-prob kernels take it with `self.unembedding`.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        if positions is None:
            pos = torch.arange(T, device=idx.device)  # (T,)
        else:
            pos = positions.to(idx.device)  # (T,) or (B, T)
            if pos.shape not in ((T,), (B, T)) or pos.dtype not in (torch.int32, torch.int64):
                raise ValueError(
                    f"positions must be integer ids of shape (T,) or (B, T), got {tuple(pos.shape)}"
                )
            if self.wpe is not None and pos.numel():
                if int(pos.min()) < 0 or int(pos.max()) >= self.config.block_size:
                    raise ValueError(
                        f"learned positions must lie in [0, block_size={self.config.block_size})"
                    )
        rope: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.wpe is not None:
            x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        else:
            x = self.drop(self.wte(idx))  # (B, T, C)
            head = self.config.n_embd // self.config.n_head
            angles = rope_angles(pos, head, self.config.rope_base)  # (T, D) or (B, T, D)
            if angles.dim() == 3:
                angles = angles[:, None]  # (B, 1, T, D): one rotation for every head
            rope = (angles.cos().to(x.dtype), angles.sin().to(x.dtype))
        for block in self.h:
            x = block(x, rope)  # (B, T, C)
        return self.ln_f(x)  # (B, T, C)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        ignore_index: int = -100,
        positions: torch.Tensor | None = None,
        with_logits: bool = True,
    ) -> GPTOutput:
        """Run the model on token ids `idx` (B, T) (at position ids `positions`, see `forward_hidden`).

        With `targets` (B, T) the loss is the mean next-token cross-entropy over positions whose target is
        not `ignore_index` (targets are already shifted by the caller: targets[:, t] is the token after
        idx[:, t]). `with_logits=False` returns the hidden states only (logits None): what fused kernels
        need from a model called through its wrapper (DistributedDataParallel hooks into `forward`).
        """
        hidden = self.forward_hidden(idx, positions)  # (B, T, C)
        if not with_logits:
            if targets is not None:
                raise ValueError("the loss needs the logits: pass targets only with with_logits=True")
            return GPTOutput(hidden=hidden, logits=None, loss=None)
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(f"targets shape {tuple(targets.shape)} != idx shape {tuple(idx.shape)}")
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=ignore_index
            )  # scalar
        return GPTOutput(hidden=hidden, logits=logits, loss=loss)
