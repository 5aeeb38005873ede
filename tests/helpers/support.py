"""Helpers several test modules share (on pytest's path through ``pythonpath`` in pyproject)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from f2l.adapter import TARGET_MODULES, Adapter, text_model_of
from f2l.adapter.lora import SUBLAYER
from f2l.data.manifest import Example, QAItem, VideoRef
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


def dense_norms(adapter: Adapter, module: str, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``||dW||_F`` and ``||dW||_2`` from the formed ``d_out x d_in`` matrix (per sample when batched)."""
    dw = adapter.to(torch.float64).delta_weight(module, layer)
    return torch.linalg.matrix_norm(dw, "fro"), torch.linalg.matrix_norm(dw, 2)


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


def file_example(**kw) -> Example:
    """A manifest example of a video file with a span, captions, QA (one multiple-choice) and free meta;
    ``kw`` replaces fields."""
    base = dict(
        id="anet-1",
        source="activitynet_captions",
        video=VideoRef.file("videos/a.mp4", start=1.5, end=9.0),
        frames=12,
        fps=None,
        split="val",
        duration=7.5,
        captions={"short": "A man runs.", "dense": "A man runs. He stops."},
        qa=(
            QAItem("q0", "why does he stop", "tired", "causal", ("tired", "rain", "bus")),
            QAItem("q1", "what color is his shirt?", "red", "attribute"),
        ),
        meta={"timestamps": [[0.0, 2.0]], "nested": {"k": [1, 2]}},
    )
    base.update(kw)
    return Example(**base)


def world_example() -> Example:
    """A manifest example of world clip 7 with one caption and one question."""
    return Example(
        id="world-7",
        source="world",
        video=VideoRef.world(7),
        frames=8,
        captions={"short": "a red square moves left."},
        qa=(QAItem("q0", "what color is the square?", "red", "attribute"),),
    )


def clip_mean_se_by_hand(da, fmt: str = "+.3f") -> str:
    """``"mean ± se"`` as the studies' summaries report a per-prompt value (``da`` over ``example_id``, with
    a ``clip`` coord), computed with numpy alone: each clip's mean of its finite values, then the mean of
    those and their standard error (ddof 1) across clips."""
    values, clips = np.asarray(da.values, dtype=float), np.asarray(da["clip"].values)
    finite = [values[(clips == c) & np.isfinite(values)] for c in np.unique(clips)]
    per_clip = np.array([v.mean() for v in finite if v.size])
    se = per_clip.std(ddof=1) / np.sqrt(per_clip.size)
    return f"{per_clip.mean():{fmt}} ± {se:.3f}"
