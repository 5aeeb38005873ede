"""Grow a trained base into a bigger preset that computes the same function (Net2Net-style widening
and identity layers), so that a second scale starts where the first one ended.

Why: the tiny's recipe run from nothing at the ``small`` sizes stayed on the answer-prior plateau
twice (docs/bases.md, "How it is built"): the wider, deeper text model learns to read its visual tokens
more slowly than the tiny, and had not left the plateau by the step where the tiny leaves it.
Grown from the shipped tiny, the small base sees what the tiny sees from its first step and trains
from there with the capacity of its own sizes.

The text model widens by an integer factor ``k`` (hidden size, heads, key/value heads and MLP width
all ``k`` times the tiny's; the head size stays). Every residual, head and MLP unit is repeated ``k``
times, ``[x; x]``: RMSNorm gives the same normalised vector, an input dimension repeated ``k`` times
has its weights divided by ``k``, so every projection reads exactly what it read before and writes
``k`` copies of it. Heads are repeated as whole blocks, so query head ``H + i`` is a copy of head
``i`` and, with grouped key/values repeated the same way, reads the copy of head ``i``'s key/value
head. The embeddings write ``[e; e]``; the LM head reads the copies at ``1 / k``; the connector writes
each visual token ``k`` times. Layers past the tiny's depth are copies of its last layer with their
output projections (``o_proj``, ``down_proj``) at zero: identities on the residual stream until
training moves them. The vision tower is the tiny's, unchanged (the presets must agree on it).

Exact copies would stay copies under gradient descent (their gradients are equal), so each widened
matrix gets Gaussian noise of ``noise`` times its own standard deviation: the grown model then
answers as the tiny did up to that noise (exactly at ``noise=0``, tested to float precision).
"""

from __future__ import annotations

import torch

from f2l.models.tiny import TinyPreset, build_config

_RESIDUAL_WRITERS = ("o_proj", "down_proj")


def _factor(old: int, new: int, what: str) -> int:
    if new % old:
        raise ValueError(f"cannot grow {what} {old} -> {new}: not a whole multiple")
    return new // old


def _widen(weight: torch.Tensor, shape: torch.Size, *, embedding: bool = False) -> torch.Tensor:
    """``weight`` repeated block-wise to ``shape``; a repeated input (last) dimension divided by its
    repeat count (an embedding's last dimension is its output: not divided)."""
    reps = [_factor(o, n, "a weight") for o, n in zip(weight.shape, shape, strict=True)]
    grown = weight.repeat(*reps)
    if weight.ndim == 2 and not embedding:
        grown = grown / reps[1]
    return grown


def grow(model, processor, preset: TinyPreset, *, noise: float = 1e-2, seed: int = 0):
    """A model of ``preset``'s sizes computing what ``model`` computes (up to ``noise``; module
    docstring), with ``model``'s tokenizer and processor. ``model`` is left untouched."""
    from transformers import AutoModelForImageTextToText

    old_text = model.config.text_config
    old_preset = TinyPreset(**model.config.f2l_preset) if hasattr(model.config, "f2l_preset") else None
    if old_preset is not None:
        fields = (
            "frame_size",
            "patch_size",
            "scale_factor",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
        )
        differ = [f for f in fields if getattr(old_preset, f) != getattr(preset, f)]
        if differ:
            raise ValueError(f"cannot grow into preset {preset.name!r}: its vision tower differs ({differ})")
    k = _factor(old_text.hidden_size, preset.text_hidden, "the text width")
    for what, old, new in (
        ("attention heads", old_text.num_attention_heads, preset.text_heads),
        ("key/value heads", old_text.num_key_value_heads, preset.text_kv_heads),
        ("MLP width", old_text.intermediate_size, preset.text_intermediate),
    ):
        if _factor(old, new, what) != k:
            raise ValueError(f"cannot grow {what} {old} -> {new}: the text width grows {k}x")
    if preset.text_layers < old_text.num_hidden_layers:
        raise ValueError(f"cannot grow {old_text.num_hidden_layers} layers into {preset.text_layers}")

    config = build_config(preset, processor.tokenizer)  # records the preset's sizes (f2l_preset)
    grown = AutoModelForImageTextToText.from_config(config, dtype=model.dtype)
    grown.generation_config = model.generation_config
    old_state = model.state_dict()
    last = old_text.num_hidden_layers - 1
    generator = torch.Generator().manual_seed(seed)
    new_state = {}
    with torch.no_grad():
        for name, target in grown.state_dict().items():
            source, layer = name, None
            if ".text_model.layers." in name:
                layer = int(name.split(".text_model.layers.")[1].split(".")[0])
                if layer > last:  # a new layer: the last old layer's weights ...
                    source = name.replace(f".layers.{layer}.", f".layers.{last}.")
            weight = old_state[source]
            if weight.shape == target.shape:
                new_state[name] = weight.clone()
                continue
            value = _widen(weight, target.shape, embedding=name.endswith("embed_tokens.weight"))
            if noise and value.ndim == 2:
                value = value + noise * value.std() * torch.randn(value.shape, generator=generator)
            new_state[name] = value
            if layer is not None and layer > last and name.split(".")[-2] in _RESIDUAL_WRITERS:
                new_state[name] = torch.zeros_like(value)  # ... writing nothing: an identity layer
        grown.load_state_dict(new_state)
    return grown
