"""Models shared by the papers: a small GPT decoder, a plain MLP, and LoRA adapters."""

from common.models.gpt import GPT, GPTConfig, GPTOutput
from common.models.lora import LoRALinear, apply_lora, lora_parameters, merge_lora
from common.models.mlp import MLP

__all__ = [
    "GPT",
    "GPTConfig",
    "GPTOutput",
    "MLP",
    "LoRALinear",
    "apply_lora",
    "lora_parameters",
    "merge_lora",
]
