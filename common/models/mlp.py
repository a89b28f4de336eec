"""A plain fully connected network: Linear -> activation -> ... -> Linear.

Used for the sparse-parity students, regression toys and probes. Layers use PyTorch's default
(Kaiming-uniform) initialisation; papers that need a specific init re-initialise `mlp.layers` themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}


class MLP(nn.Module):
    """`d_in -> hidden[0] -> ... -> hidden[-1] -> d_out`, `activation` between layers and none after the last.

    `hidden=()` gives a single linear map. The Linear layers are `self.layers[0..len(hidden)]`.
    """

    def __init__(
        self,
        d_in: int,
        hidden: Sequence[int],
        d_out: int,
        activation: str = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = [d_in, *hidden, d_out]
        if any(w <= 0 for w in widths):
            raise ValueError(f"all widths must be positive, got {widths}")
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=bias) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map `x` of shape (..., d_in) to (..., d_out)."""
        for layer in self.layers[:-1]:
            x = self._act(layer(x))  # (..., hidden_i)
        return self.layers[-1](x)  # (..., d_out)

    def extra_repr(self) -> str:
        return f"activation={self.activation}"
