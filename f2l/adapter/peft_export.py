"""Export one ``Adapter`` as a PEFT LoRA directory, so any PEFT-aware stack can serve it.

PEFT stores ``lora_A.weight = A_l`` (``[r, d_in]``) and ``lora_B.weight = B_l^T`` (``[d_out, r]``) per
module and applies ``(lora_alpha / r) * lora_B(lora_A(x))``; so ``lora_alpha = scaling * r`` (without
rsLoRA) reproduces our update exactly. ``target_modules`` lists the full module paths inside the VLM
(``model.text_model.layers.0.self_attn.q_proj`` ...), which PEFT matches by exact name: a short name
like ``q_proj`` would also catch the vision tower's attention projections.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from f2l.adapter.adapter import Adapter
from f2l.adapter.lora import SUBLAYER, text_model_of
from f2l.io import atomic_save_safetensors, atomic_write_json

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
# PEFT wraps the VLM as PeftModel.base_model (LoraModel) -> .model; saved keys carry that prefix.
_PEFT_PREFIX = "base_model.model."


def text_model_path(model) -> str:
    """The dotted path of the text model inside ``model`` (``model.text_model`` for SmolVLM)."""
    text = text_model_of(model)
    for name, module in model.named_modules():
        if module is text:
            return name
    raise ValueError(f"The text model is not a submodule of {type(model).__name__}.")


def peft_module_names(adapter: Adapter, model) -> dict[tuple[int, str], str]:
    """``(layer, module)`` -> the full module path PEFT targets."""
    prefix = text_model_path(model)
    prefix = f"{prefix}." if prefix else ""
    return {
        (layer, m): f"{prefix}layers.{layer}.{SUBLAYER[m]}.{m}"
        for m in adapter.modules
        for layer in range(adapter.num_layers)
    }


def export_peft(adapter: Adapter, base, out_dir: str | os.PathLike) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` for ``PeftModel.from_pretrained``.

    ``base`` is the ``Base`` (or the bare VLM) the adapter was made for: it fixes the module paths.
    Only a single adapter can be exported; PEFT needs rank >= 1.
    """
    from peft import LoraConfig

    if adapter.batch_size is not None:
        raise ValueError("Export one adapter at a time: index the batch first (adapter[i]).")
    if adapter.rank < 1:
        raise ValueError("PEFT cannot hold a rank-0 adapter.")
    model = base.model if hasattr(base, "processor") else base  # a Base, or the VLM itself
    n_layers = len(text_model_of(model).layers)
    if adapter.num_layers != n_layers:
        raise ValueError(f"The adapter covers {adapter.num_layers} layers; the text model has {n_layers}.")
    names = peft_module_names(adapter, model)
    scaling = float(adapter.scaling)
    base_id = getattr(base, "path", None) or adapter.provenance.get("base_model")
    config = LoraConfig(
        r=adapter.rank,
        lora_alpha=scaling * adapter.rank,
        target_modules=sorted(names.values()),
        lora_dropout=0.0,
        bias="none",
        use_rslora=False,
        inference_mode=True,
        base_model_name_or_path=None if base_id is None else str(base_id),
    ).to_dict()
    config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}

    tensors = {}
    for (layer, m), full in names.items():
        a, b = adapter.factors[m]
        tensors[f"{_PEFT_PREFIX}{full}.lora_A.weight"] = a[layer]
        tensors[f"{_PEFT_PREFIX}{full}.lora_B.weight"] = b[layer].T
    out = Path(out_dir)
    metadata = {"format": "pt", "f2l_provenance": json.dumps(dict(adapter.provenance), sort_keys=True)}
    atomic_save_safetensors(out / WEIGHTS_NAME, tensors, metadata=metadata)
    atomic_write_json(out / CONFIG_NAME, config)
    return out
