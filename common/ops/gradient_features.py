"""Projected per-sample gradient features of a model's Linear / LoRA layers (LESS, Xia et al. 2024).

`GradientFeatures(model, proj_dim, seed)` hooks the chosen layers and, for a batch, returns the features
[N, proj_dim] (float32) of every example in one forward and one backward, with no per-example loop:
the forward hooks keep each layer's input a_t, `torch.autograd.grad` of the summed per-example losses
gives each layer's output gradient g_t, and the per-sample weight gradient G_n = sum_t g_t a_t^T is
projected by `per_sample_linear_grads_projected` without ever being formed for all N at once.

The hooked parameters are taken in `model.named_parameters()` order and concatenated, as LESS flattens
its LoRA gradient; parameter p occupies rows [offset_p, offset_p + numel_p) of the implicit sign matrix,
so in `mode="dense"` the features equal `project(cat_p vec(grad_p), proj_dim, seed)`, the projection
LESS applies to the whole flattened gradient (with a stored matrix). With `adam_state` each grad_p is first
mapped to Adam's update direction m' / (sqrt(v') + eps) (LESS's training-side features). `mode="kronecker"`
sums LoGra's per-parameter projections P_out^T G P_in (independent sign matrices per parameter) into the
same proj_dim.

A LoRALinear contributes lora_A (input: the dropped-out x; output gradient: scaling * B^T g) and lora_B
(input: scaling * A x; output gradient: g); a plain nn.Linear its weight (not its bias). Models in
float16/bfloat16 are accepted; the features are float32.

Under torch.distributed, `featurize(examples, loss_fn, batch_size)` splits the dataset into contiguous
shards, one per rank, and gathers the features to rank 0 in dataset order (other ranks get None).

`gradient_features_reference` is the plain-PyTorch twin: torch.func per-sample gradients (vmap of grad
over functional_call) and materialized sign matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from common.ops.grad_projection import (
    _check_proj_dim,
    _resolve_kron_dims,
    adam_direction_reference,
    per_sample_linear_grads_projected,
    project_kronecker_reference,
    project_reference,
)

__all__ = ["GradientFeatures", "gradient_features_reference"]

# common/ops sits below common/models in the layering (DESIGN.md), so LoRA layers are recognized by their
# interface, the one common.models.lora.LoRALinear documents as its API: lora_A (r, d_in), lora_B
# (d_out, r), scaling, lora_dropout, base.
_LORA_ATTRS = ("lora_A", "lora_B", "scaling", "lora_dropout", "base")


def _is_lora(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in _LORA_ATTRS) and isinstance(module.lora_A, nn.Parameter)


Batch = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
LossFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class _Param:
    name: str  # qualified parameter name
    param: nn.Parameter
    row_offset: int  # first row of this parameter's slice of the implicit sign matrix
    adam: tuple | None  # (exp_avg, exp_avg_sq, beta1, beta2, eps) or None


@dataclass
class _Layer:
    name: str
    module: nn.Module  # LoRALinear or nn.Linear
    params: list[_Param]  # [lora_A, lora_B] or [weight]


def _select_layers(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, nn.Module]]:
    """(name, module) of the layers to hook: LoRALinear / nn.Linear modules whose name ends with one of
    `layers` (whole components); by default every LoRALinear, or every nn.Linear whose weight requires
    grad when the model has no LoRA."""
    lora = [(n, m) for n, m in model.named_modules() if _is_lora(m)]
    inside_lora = {id(m.base) for _, m in lora}
    linear = [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) not in inside_lora
    ]
    if layers is None:
        chosen = lora or [(n, m) for n, m in linear if m.weight.requires_grad]
        if not chosen:
            raise ValueError(
                "the model has no LoRALinear and no nn.Linear with a trainable weight to featurize"
            )
        return chosen
    if isinstance(layers, str) or not all(isinstance(s, str) for s in layers) or not layers:
        raise TypeError(f"layers must be a non-empty list of module-name suffixes, got {layers!r}")
    candidates = sorted(lora + linear, key=lambda nm: [n for n, _ in model.named_modules()].index(nm[0]))
    chosen = [(n, m) for n, m in candidates if any(n == s or n.endswith("." + s) for s in layers)]
    if not chosen:
        raise ValueError(f"no LoRALinear or nn.Linear in the model matches layers={list(layers)}")
    return chosen


def _adam_for(param_name: str, param: nn.Parameter, adam_state: Any, betas, eps) -> tuple | None:
    if adam_state is None:
        return None
    if isinstance(adam_state, torch.optim.Optimizer):
        state = adam_state.state.get(param, {})
        if "exp_avg" not in state or "exp_avg_sq" not in state:
            raise ValueError(
                f"adam_state (an optimizer) has no exp_avg/exp_avg_sq for parameter {param_name!r}; "
                "was it created over this model's parameters and stepped at least once?"
            )
        group = next(g for g in adam_state.param_groups if any(p is param for p in g["params"]))
        b1, b2 = group["betas"]
        return state["exp_avg"], state["exp_avg_sq"], float(b1), float(b2), float(group["eps"])
    if isinstance(adam_state, Mapping):
        if param_name not in adam_state:
            raise ValueError(
                f"adam_state has no entry for parameter {param_name!r} (keys are parameter names)"
            )
        entry = adam_state[param_name]
        if not isinstance(entry, Sequence) or len(entry) != 2:
            raise TypeError(f"adam_state[{param_name!r}] must be a pair (exp_avg, exp_avg_sq)")
        return entry[0], entry[1], float(betas[0]), float(betas[1]), float(eps)
    raise TypeError(
        "adam_state must be None, a torch.optim.Adam/AdamW optimizer, or a mapping from parameter names "
        f"to (exp_avg, exp_avg_sq); got {type(adam_state).__name__}"
    )


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = list(batch.values()) if isinstance(batch, Mapping) else list(batch)
    sizes = {v.shape[0] for v in values if isinstance(v, torch.Tensor)}
    if len(sizes) != 1:
        raise ValueError(
            f"the tensors of a batch must share their first (example) dimension, got {sorted(sizes)}"
        )
    return sizes.pop()


def _slice(batch: Any, lo: int, hi: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[lo:hi]
    if isinstance(batch, Mapping):
        return {k: v[lo:hi] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return type(batch)(v[lo:hi] if isinstance(v, torch.Tensor) else v for v in batch)


class GradientFeatures:
    """Projected per-sample gradients of a model's Linear/LoRA layers: [N, proj_dim] float32 per batch.

    model: any nn.Module; proj_dim, seed: the projection (see `per_sample_linear_grads_projected`);
    layers: module-name suffixes to hook (default: every LoRALinear, else every trainable nn.Linear);
    adam_state: None (plain gradients), a torch.optim.Adam/AdamW stepped on this model, or a mapping from
    parameter names to (exp_avg, exp_avg_sq) used with `betas` and `eps`; mode: "dense" (LESS/TRAK) or
    "kronecker" (LoGra, proj_dim = k_out * k_in, `kron_dims` or the most balanced factorization).

    Call it as `features(batch, loss_fn)` with `loss_fn(model, batch) -> Tensor[N]` the per-example losses
    (e.g. each sequence's mean token cross-entropy, as LESS). Every example must be independent of the
    others in the forward pass (no batch norm); run the model in eval mode for deterministic features.
    """

    def __init__(
        self,
        model: nn.Module,
        proj_dim: int,
        seed: int,
        layers: Sequence[str] | None = None,
        adam_state: torch.optim.Optimizer | Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        *,
        mode: str = "dense",
        kron_dims: tuple[int, int] | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        _check_proj_dim(proj_dim)
        if mode not in ("dense", "kronecker"):
            raise ValueError(f"mode must be 'dense' or 'kronecker', got {mode!r}")
        if mode == "kronecker" and adam_state is not None:
            raise ValueError("adam_state is not available with mode='kronecker' (use mode='dense')")
        self.kron_dims = _resolve_kron_dims(proj_dim, kron_dims) if mode == "kronecker" else None
        self.model, self.proj_dim, self.seed, self.mode = model, proj_dim, seed, mode
        names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
        owners: dict[int, int] = {}
        for m in model.modules():
            for p in m.parameters(recurse=False):
                owners[id(p)] = owners.get(id(p), 0) + 1
        self.layers: list[_Layer] = []
        offset = 0
        for name, module in _select_layers(model, layers):
            params = [module.lora_A, module.lora_B] if _is_lora(module) else [module.weight]
            entries = []
            for p in params:
                if owners.get(id(p), 0) > 1:
                    raise ValueError(
                        f"parameter {names[id(p)]!r} is shared with another module (tied weights): its "
                        "gradient is not that of one linear layer"
                    )
                entries.append(
                    _Param(names[id(p)], p, offset, _adam_for(names[id(p)], p, adam_state, betas, eps))
                )
                offset += p.numel()
            self.layers.append(_Layer(name, module, entries))
        self.total_params = offset

    @property
    def param_names(self) -> list[str]:
        """The featurized parameters, in the order of their rows in the sign matrix."""
        return [p.name for layer in self.layers for p in layer.params]

    def __call__(self, batch: Any, loss_fn: LossFn) -> torch.Tensor:
        """Features [N, proj_dim] (float32) of one batch: one forward, one backward, no per-example loop."""
        captured: dict[int, dict[str, torch.Tensor]] = {id(layer.module): {} for layer in self.layers}
        handles = []

        def save_output(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            slot = captured[id(module)]
            if "output" in slot:
                raise RuntimeError(
                    "a featurized layer ran twice in one forward; its per-sample gradient is ambiguous"
                )
            slot["output"] = output
            if not _is_lora(module):
                slot["input"] = inputs[0].detach()

        def save_dropped(lora: nn.Module) -> Callable:
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                captured[id(lora)]["input"] = output.detach()  # dropout(x): what lora_A multiplies

            return hook

        params = [p.param for layer in self.layers for p in layer.params]
        was_trainable = [p.requires_grad for p in params]
        try:
            for layer in self.layers:
                handles.append(layer.module.register_forward_hook(save_output))
                if _is_lora(layer.module):
                    handles.append(
                        layer.module.lora_dropout.register_forward_hook(save_dropped(layer.module))
                    )
            for p in params:  # outputs must carry a graph even for a frozen model (validation gradients)
                p.requires_grad_(True)
            with torch.enable_grad():
                losses = loss_fn(self.model, batch)
                if not isinstance(losses, torch.Tensor) or losses.dim() != 1:
                    raise ValueError(
                        "loss_fn must return the per-example losses, a 1-D tensor [N]; got "
                        + (
                            f"shape {tuple(losses.shape)}"
                            if isinstance(losses, torch.Tensor)
                            else type(losses).__name__
                        )
                    )
                missing = [layer.name for layer in self.layers if "output" not in captured[id(layer.module)]]
                if missing:
                    raise RuntimeError(f"featurized layers did not run in the forward pass: {missing}")
                outputs = [captured[id(layer.module)]["output"] for layer in self.layers]
                grads = torch.autograd.grad(losses.sum(), outputs, allow_unused=True)
        finally:
            for h in handles:
                h.remove()
            for p, flag in zip(params, was_trainable, strict=True):
                p.requires_grad_(flag)
        N = losses.shape[0]
        features = torch.zeros(N, self.proj_dim, dtype=torch.float32, device=losses.device)  # (N, k)
        for layer, g in zip(self.layers, grads, strict=True):
            if g is None:  # the layer does not influence the loss: zero gradient
                continue
            a = captured[id(layer.module)]["input"]
            for act, out_grad, p in self._pairs(layer, a, g, N):
                features += self._project(act, out_grad, p)
        return features

    def _pairs(self, layer: _Layer, a: torch.Tensor, g: torch.Tensor, N: int):
        """(activations [N, T, d_in], output_grads [N, T, d_out], param) whose sum_t g a^T is each
        parameter's per-sample gradient."""
        if a.shape[0] != N or g.shape[0] != N:
            raise RuntimeError(f"layer {layer.name!r} saw a batch of {a.shape[0]} rows, the loss has {N}")
        a = a.reshape(N, -1, a.shape[-1])  # (N, T, d_in)
        g = g.reshape(N, -1, g.shape[-1])  # (N, T, d_out)
        module = layer.module
        if not _is_lora(module):
            return [(a, g, layer.params[0])]
        A = module.lora_A.detach().float()  # (r, d_in)
        B = module.lora_B.detach().float()  # (d_out, r)
        u = (a.float() @ A.T) * module.scaling  # (N, T, r): the input of lora_B, scaled
        g_u = (g.float() @ B) * module.scaling  # (N, T, r): the gradient at A's output
        return [(a, g_u, layer.params[0]), (u, g, layer.params[1])]

    def _project(self, act: torch.Tensor, out_grad: torch.Tensor, p: _Param) -> torch.Tensor:
        out = per_sample_linear_grads_projected(
            act, out_grad, self.proj_dim, self.seed, adam=p.adam, mode=self.mode, row_offset=p.row_offset,
            kron_dims=self.kron_dims,
        )  # fmt: skip
        return out.float()

    def featurize(self, examples: Batch, loss_fn: LossFn, batch_size: int) -> torch.Tensor | None:
        """Features [N, proj_dim] of a whole dataset (a tensor, or tuple/list/dict of tensors sharing the
        first dimension), `batch_size` examples per forward/backward.

        Under torch.distributed each rank featurizes a contiguous shard (rank r: examples [r P, (r+1) P),
        P = ceil(N / world_size)) and the shards are gathered to rank 0 in dataset order: rank 0 returns
        all N rows, the other ranks None. Without a process group the whole dataset is featurized here.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        N = _batch_size(examples)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        W, r = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        per = math.ceil(N / W)
        lo, hi = min(r * per, N), min((r + 1) * per, N)
        parts = [
            self(_slice(examples, s, min(s + batch_size, hi)), loss_fn) for s in range(lo, hi, batch_size)
        ]
        device = parts[0].device if parts else next(self.model.parameters()).device
        local = torch.cat(parts) if parts else torch.zeros(0, self.proj_dim, device=device)  # (hi - lo, k)
        if not distributed:
            return local
        padded = torch.zeros(per, self.proj_dim, dtype=torch.float32, device=device)  # equal sizes to gather
        padded[: local.shape[0]] = local
        if r == 0:
            shards = [torch.empty_like(padded) for _ in range(W)]
            dist.gather(padded, shards, dst=0)
            return torch.cat(shards)[:N]  # (N, k), rank order = dataset order
        dist.gather(padded, dst=0)
        return None


def gradient_features_reference(features: GradientFeatures, batch: Any, loss_fn: LossFn) -> torch.Tensor:
    """The same features in plain PyTorch: per-example gradients of the featurized parameters by
    torch.func (vmap of grad of the example's loss through functional_call), Adam's map, then the
    materialized sign matrix (dense: one matrix over the concatenated gradient; kronecker: per-parameter
    factors). Uses `features` only for its configuration. Float64 models give float64 features."""
    from torch.func import functional_call, grad, vmap

    entries = [p for layer in features.layers for p in layer.params]
    wrapper = _LossModule(features.model, loss_fn)
    params = {"model." + p.name: p.param.detach() for p in entries}

    def example_loss(ps: dict[str, torch.Tensor], example: Any) -> torch.Tensor:
        return functional_call(wrapper, ps, (_expand(example),), strict=False).sum()

    grads = vmap(grad(example_loss), in_dims=(None, 0), randomness="same")(params, batch)
    per_example = {p.name: grads["model." + p.name] for p in entries}  # (N, *param.shape) each
    N = next(iter(per_example.values())).shape[0]
    acc = torch.float64 if all(p.param.dtype == torch.float64 for p in entries) else torch.float32
    if features.mode == "dense":
        blocks = []
        for p in entries:
            G = per_example[p.name].to(acc)  # (N, *param.shape)
            if p.adam is not None:
                m, v, b1, b2, eps = p.adam
                G = adam_direction_reference(G, m, v, b1, b2, eps)
            blocks.append(G.reshape(N, -1))
        return project_reference(torch.cat(blocks, dim=1), features.proj_dim, features.seed)  # (N, k)
    out = 0
    for p in entries:
        G = per_example[p.name].to(acc)  # (N, d_out, d_in)
        out = out + project_kronecker_reference(
            G, features.proj_dim, features.seed, p.row_offset, features.kron_dims
        )
    return out  # (N, k)


def _expand(example: Any) -> Any:
    """One example (no batch dimension, as vmap passes it) as a batch of one."""
    if isinstance(example, torch.Tensor):
        return example.unsqueeze(0)
    if isinstance(example, Mapping):
        return {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in example.items()}
    return type(example)(v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for v in example)


class _LossModule(nn.Module):
    """forward(batch) = loss_fn(model, batch), so that torch.func.functional_call can swap the parameters
    of `model` (under the prefix "model.") around an arbitrary loss function."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.model, batch)
