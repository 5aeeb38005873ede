"""Hypernetworks: per-layer hidden states of the frozen VLM -> the LoRA adapter of every layer.

Two kinds behind one interface (``Hypernet``): f2l's own perceiver (``PerceiverHypernet``, kind
``"f2l"``) and the authors' released design (``OfficialHypernet``, kind ``"official"``, converted from
their checkpoints by ``python -m f2l.convert``). ``load_hypernet(directory)`` loads either.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from f2l.hypernet.interface import (
    CONFIG_FILE,
    READ_GROUP_BYTES,
    BaseFacts,
    Factors,
    Hypernet,
    module_shapes_of,
)
from f2l.hypernet.official import OFFICIAL_CONTEXT, OfficialConfig, OfficialHypernet
from f2l.hypernet.perceiver import HypernetConfig, PerceiverHypernet

KINDS: dict[str, type[Hypernet]] = {k.kind: k for k in (PerceiverHypernet, OfficialHypernet)}


def read_kind_config(directory: str | Path):
    """The kind class and config of a hypernetwork directory, without reading its weights."""
    meta = json.loads((Path(directory) / CONFIG_FILE).read_text())
    kind = meta.get("kind", PerceiverHypernet.kind)  # directories written before kinds existed are f2l's
    if kind not in KINDS:
        raise ValueError(f"{directory}: unknown hypernetwork kind {kind!r} (known: {', '.join(KINDS)})")
    cls = KINDS[kind]
    return cls, cls.config_class.from_dict(meta["config"])


def load_hypernet(directory: str | Path, device: str | torch.device = "cpu") -> Hypernet:
    """The hypernetwork saved in ``directory``, whatever its kind."""
    cls, _ = read_kind_config(directory)
    return cls.load(directory, device=device)


__all__ = [
    "KINDS",
    "BaseFacts",
    "OFFICIAL_CONTEXT",
    "READ_GROUP_BYTES",
    "Factors",
    "Hypernet",
    "HypernetConfig",
    "OfficialConfig",
    "OfficialHypernet",
    "PerceiverHypernet",
    "load_hypernet",
    "module_shapes_of",
    "read_kind_config",
]
