"""LoRA adapters for the frozen text model: the ``Adapter`` value object, its application through
explicit ``LoRALinear`` wrappers (batched per sample, or merged), and export to PEFT."""

from __future__ import annotations

from f2l.adapter.adapter import TARGET_MODULES, Adapter, FactoredSVD, compose, stack_adapters
from f2l.adapter.lora import (
    LoRALinear,
    attach_adapter,
    attached,
    install_lora,
    lora_modules,
    merge_adapter,
    merged_adapter,
    text_model_of,
    uninstall_lora,
    unmerge_adapter,
    use_adapter,
)
from f2l.adapter.peft_export import export_peft

__all__ = [
    "TARGET_MODULES",
    "Adapter",
    "FactoredSVD",
    "LoRALinear",
    "attach_adapter",
    "attached",
    "compose",
    "export_peft",
    "install_lora",
    "lora_modules",
    "merge_adapter",
    "merged_adapter",
    "stack_adapters",
    "text_model_of",
    "uninstall_lora",
    "unmerge_adapter",
    "use_adapter",
]
