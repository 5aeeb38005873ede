"""Helpers several test modules share (on pytest's path through ``pythonpath`` in pyproject)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from f2l.adapter import TARGET_MODULES, Adapter, text_model_of
from f2l.adapter.lora import SUBLAYER
from f2l.video import Frames

REPO = Path(__file__).resolve().parents[2]

# a capitalised and a lower-case question: "User: what" merges the space into " what", the video's
# "\n\nwhat" does not, so the second shares all but its first token
QUESTIONS = ["Describe the video in one sentence.", "how many squares are there?"]
ANSWERS = [[300, 17, 421, 88, 49], [12, 500, 501]]  # teacher-forced: any tokens will do


def random_adapter(model, rank: int = 4, seed: int = 0, scaling: float = 0.5, std: float = 0.15) -> Adapter:
    """Random factors large enough that the adapter visibly changes the logits."""
    text = text_model_of(model)
    g = torch.Generator().manual_seed(seed)
    factors = {}
    for m in TARGET_MODULES:
        lin = getattr(getattr(text.layers[0], SUBLAYER[m]), m)
        n = len(text.layers)
        factors[m] = (
            std * torch.randn(n, rank, lin.in_features, generator=g),
            std * torch.randn(n, rank, lin.out_features, generator=g),
        )
    return Adapter(factors, scaling=scaling, provenance={"video_id": f"v{seed}"})


def random_frames(n: int = 2, size: int = 64, seed: int = 0) -> Frames:
    rng = np.random.default_rng(seed)
    return Frames(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n, dtype=float))


class FakePipeline:
    """What the probe needs of a ``Frames2LoRA``: a base, frames for an example and an adapter."""

    def __init__(self, base, adapter):
        self.base, self.adapter = base, adapter

    def example_frames(self, example, frames):
        return random_frames(frames, self.base.model.config.vision_config.image_size)

    def internalize(self, frames):
        return self.adapter
