"""The frozen base's per-layer states of a clip, cached on disk: what a hypernetwork reads (``f2l.encode``),
so that training reads a clip it has seen before instead of running the base over it again.

An entry is one clip encoded alone (no padding, so it is a function of its key alone), all layers' states
``(L, T, d_model)`` as float16 in one safetensors file written atomically. Entries are kept under the
base's weight digest, like the teacher cache, and keyed by the context format, the clip id and the frame
count and size it is read at. What float16 changes in the generated adapters, and the bytes per clip,
are measured in docs/training.md, "The state cache"; states beyond float16's range are refused, not stored as
infinities.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from f2l.encode import ContextFormat, LayerStates, collect_hidden_states, internalization_inputs
from f2l.io import atomic_save_safetensors
from f2l.models import Base
from f2l.video import Frames

DTYPE = torch.float16


class StateCache:
    """``root/states-<base digest>/<key>.safetensors``: one clip's states of every layer."""

    def __init__(self, root: str | Path, base_digest: str):
        self.root = Path(root) / f"states-{base_digest}"
        self.base_digest = base_digest

    @staticmethod
    def key(clip_id: str, num_frames: int, size: int, context: ContextFormat) -> str:
        """The entry of a clip read as ``num_frames`` frames at ``size`` (what ``f2l.data.load_frames`` is
        asked for: known before any frame is decoded) in ``context``."""
        raw = json.dumps([context.to_dict(), clip_id, num_frames, size], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> torch.Tensor:
        return read(self.path(key))

    def put(self, key: str, states: torch.Tensor) -> None:
        atomic_save_safetensors(self.path(key), {"states": states})


def read(path: str | Path) -> torch.Tensor:
    """One entry's states ``(L, T, d_model)``, float16."""
    from safetensors.torch import load_file

    return load_file(path)["states"]


def encode_clip(base: Base, frames: Frames, context: ContextFormat) -> torch.Tensor:
    """One clip alone through the frozen base: every layer's states ``(L, T, d_model)`` as stored."""
    layers = collect_hidden_states(base, internalization_inputs(base, [frames], context))
    states = torch.stack([s.hidden[0] for s in layers])
    stored = states.to(DTYPE)
    if not torch.isfinite(stored).all():
        peak = float(states.abs().max())
        raise ValueError(f"the base's states reach {peak:.3g}, beyond float16: train without a state cache")
    return stored.cpu()


def layer_states(clips: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached clips ``(L, T_i, d)`` as one batch, left-padded as the processor pads: ``hidden (N, L, T,
    d)`` and ``mask (N, T)`` (True at real tokens)."""
    longest = max(c.shape[1] for c in clips)
    hidden = clips[0].new_zeros(len(clips), clips[0].shape[0], longest, clips[0].shape[2])
    mask = torch.zeros(len(clips), longest, dtype=torch.bool)
    for i, c in enumerate(clips):
        hidden[i, :, longest - c.shape[1] :] = c
        mask[i, longest - c.shape[1] :] = True
    return hidden, mask


def as_layers(hidden: torch.Tensor, mask: torch.Tensor) -> list[LayerStates]:
    """``layer_states``' batch as the ``LayerStates`` of layers 0..L-1, what a hypernetwork reads."""
    return [LayerStates(layer, hidden[:, layer], mask) for layer in range(hidden.shape[1])]
