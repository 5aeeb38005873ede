"""What every study command shares: which clips it runs on and how their frames are made."""

from __future__ import annotations

from f2l.data import Example, load_frames, read_manifest, world_manifest
from f2l.video import Frames


def study_examples(manifest: str | None, split: str, clips: int, frames: int) -> list[Example]:
    """The first ``clips`` examples of a JSONL manifest, or of the world's ``split`` when none is given."""
    if manifest:
        examples = read_manifest(manifest)
        if not examples:
            raise ValueError(f"{manifest}: no examples")
        return examples[:clips]
    return world_manifest(split, clips, frames=frames)


def study_frames(pipeline, example: Example, frames: int, size: int | None = None) -> Frames:
    """The example's ``frames`` frames; world clips render at ``size`` (default: the base's frame size)."""
    if size is None and example.is_world:
        size = pipeline.base.model.config.vision_config.image_size
    return load_frames(example, num_frames=frames, size=size)
