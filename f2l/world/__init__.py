"""The embedded procedural video world: coloured shapes over textured backgrounds under a moving
camera, with ground truth, captions in the paper's categories and typed QA, at any frame count
and resolution, deterministic by seed, with fixed train/val/test splits."""

from __future__ import annotations

from f2l.world.language import (
    CAPTION_CATEGORIES,
    QA,
    QA_TYPES,
    LongClipItem,
    captions,
    long_clip_items,
    qa,
    world_text_corpus,
)
from f2l.world.render import Clip, frame_times, object_mask, render_clip, render_frames
from f2l.world.scene import (
    BACKGROUNDS,
    CAMERAS,
    COLORS,
    MOTIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    ClipTruth,
    Event,
    ObjectTruth,
    sample_long_truth,
    sample_truth,
)
from f2l.world.splits import SPLITS, split_of, split_seeds

__all__ = [
    "BACKGROUNDS",
    "CAMERAS",
    "CAPTION_CATEGORIES",
    "COLORS",
    "MOTIONS",
    "QA",
    "QA_TYPES",
    "SHAPES",
    "SIZES",
    "SPLITS",
    "TEXTURES",
    "Clip",
    "ClipTruth",
    "Event",
    "LongClipItem",
    "ObjectTruth",
    "captions",
    "frame_times",
    "long_clip_items",
    "object_mask",
    "qa",
    "render_clip",
    "render_frames",
    "sample_long_truth",
    "sample_truth",
    "split_of",
    "split_seeds",
    "world_text_corpus",
]
