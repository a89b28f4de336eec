"""Low-rank adaptation (LoRA; Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1).

A frozen `nn.Linear` with weight W0 (d_out, d_in) gets a trainable update `(alpha / r) * B @ A` with
`lora_A` of shape (r, d_in) and `lora_B` of shape (d_out, r):

    h = W0 x + b + (alpha / r) * B A dropout(x)

B starts at zero, so a freshly wrapped layer computes exactly what the base did (Sec. 4.1). The paper draws
A from a Gaussian; we use Kaiming-uniform (a=sqrt(5)) as the authors' loralib and HF peft do.
The names `lora_A` / `lora_B` are part of the API: per-sample gradient featurizers (LESS) hook them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LoRALinear", "apply_lora", "lora_parameters", "merge_lora"]


class LoRALinear(nn.Module):
    """A frozen `base` Linear plus a rank-`r` update scaled by `alpha / r` (Hu et al. 2021)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r <= 0:
            raise ValueError(f"rank r must be positive, got {r}")
        self.base = base
        self.r = r
        self.alpha = float(alpha)
        self.scaling = self.alpha / r
        # Remember the base's trainability so merge_lora can hand back an equivalent plain Linear.
        self._base_requires_grad = {n: p.requires_grad for n, p in base.named_parameters()}
        for p in base.parameters():
            p.requires_grad_(False)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))  # (d_out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        """d_in of the wrapped layer."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """d_out of the wrapped layer."""
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight W0 (d_out, d_in), not including the LoRA update."""
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """The frozen base bias (d_out,) or None."""
        return self.base.bias

    def delta_weight(self) -> torch.Tensor:
        """The LoRA update `(alpha / r) * B @ A`, shape (d_out, d_in)."""
        return (self.lora_B @ self.lora_A) * self.scaling  # (d_out, d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`base(x) + scaling * dropout(x) @ A.T @ B.T` for `x` of shape (..., d_in)."""
        u = F.linear(self.lora_dropout(x), self.lora_A)  # (..., r)
        return self.base(x) + F.linear(u, self.lora_B) * self.scaling  # (..., d_out)

    def merged_linear(self) -> nn.Linear:
        """A plain nn.Linear whose weight is W0 + (alpha / r) B A (the base's trainability restored)."""
        base = self.base
        merged = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        with torch.no_grad():
            merged.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                merged.bias.copy_(base.bias)
        for n, p in merged.named_parameters():
            p.requires_grad_(self._base_requires_grad.get(n, True))
        return merged

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def _matches(name: str, suffixes: list[str]) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def apply_lora(
    model: nn.Module,
    target_modules: Iterable[str],
    r: int,
    alpha: float,
    dropout: float = 0.0,
    freeze_base: bool = True,
) -> list[str]:
    """Wrap, in place, each nn.Linear whose qualified name ends with a `target_modules` suffix in LoRALinear.

    `target_modules` are name suffixes matched on whole components ("c_attn" matches "h.0.attn.c_attn",
    not "h.0.attn.xc_attn"). With `freeze_base` every other parameter of the model is frozen too, so only
    the LoRA factors train (the setting of Hu et al. 2021 and of LESS, Xia et al. 2024). Returns the
    qualified names replaced; raises if none matched, so a typo cannot silently train nothing.
    """
    suffixes = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if not suffixes:
        raise ValueError("target_modules is empty")
    targets: list[str] = []
    for name, module in model.named_modules():
        if not name or not _matches(name, suffixes):
            continue
        if isinstance(module, LoRALinear):
            raise ValueError(f"{name} already carries LoRA")
        if isinstance(module, nn.Linear):
            targets.append(name)
    if not targets:
        raise ValueError(f"no nn.Linear in the model matches target_modules={suffixes}")
    if freeze_base:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in targets:
        _replace(model, name, LoRALinear(model.get_submodule(name), r=r, alpha=alpha, dropout=dropout))
    return targets


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """All `lora_A` and `lora_B` parameters of the model, in module order (A before B in each layer)."""
    params: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, LoRALinear):
            params.extend([module.lora_A, module.lora_B])
    return params


def merge_lora(model: nn.Module) -> list[str]:
    """Fold every LoRALinear into a plain nn.Linear with weight W0 + (alpha / r) B A, in place.

    The merged model computes the same function (up to rounding) with no extra cost per token. Returns the
    qualified names merged.
    """
    names = [name for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        module = model.get_submodule(name)
        assert isinstance(module, LoRALinear)
        _replace(model, name, module.merged_linear())
    return names
