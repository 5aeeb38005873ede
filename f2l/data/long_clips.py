"""Long world clips read segment by segment: what the chunk stage of ``f2l.train`` trains on and the
composition study evaluates, defined once so both read a clip, its segments and its prompts alike."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from f2l.data.manifest import QAItem, caption_prompt, qa_prompt
from f2l.video import Frames
from f2l.world import LongClipItem, long_clip_items, render_clip, sample_long_truth, split_seeds


@dataclass(frozen=True)
class LongClip:
    """A long world clip of the chunk stage, ``f2l.world.sample_long_truth(seed, segments)``, read as
    ``segments`` segments of ``frames`` frames on the clip's own clock (segment ``k`` is frames ``k *
    frames`` to ``(k + 1) * frames - 1``, as ``Frames2LoRA.internalize(chunk_frames=frames)`` splits it) and
    asked its ``f2l.world.long_clip_items``."""

    seed: int
    segments: int

    @property
    def id(self) -> str:
        return f"long-{self.seed}-{self.segments}"

    @classmethod
    def from_id(cls, clip_id: str) -> LongClip:
        _, seed, segments = clip_id.split("-")
        return cls(int(seed), int(segments))

    @property
    def segment_ids(self) -> list[str]:
        """The state cache's name of each segment (each is encoded alone, as a single clip is)."""
        return [f"{self.id}/{k}" for k in range(self.segments)]

    @functools.cached_property
    def items(self) -> list[LongClipItem]:
        return long_clip_items(sample_long_truth(self.seed, self.segments), self.segments)

    def frames(self, frames: int, size: int) -> Frames:
        """The whole clip: ``segments * frames`` frames at the centres of equal steps."""
        clip = render_clip(
            sample_long_truth(self.seed, self.segments), num_frames=self.segments * frames, size=size
        )
        return Frames(clip.frames.pixels, clip.frames.timestamps, source=f"world:{self.id}")


def long_pool(split: str, clips: int, max_segments: int) -> list[LongClip]:
    """``clips`` long clips of ``split``'s seeds, clip ``j`` of ``1 + j % max_segments`` segments (so a clip
    drawn at random has any count in 1..max_segments alike)."""
    return [LongClip(seed, 1 + j % max_segments) for j, seed in enumerate(split_seeds(split, clips))]


def long_clip_prompt(item: LongClipItem) -> str:
    """A long clip's item as the base was trained to read it: a caption category's instruction, or the
    question (a two-way choice with its options listed)."""
    if item.kind == "caption":
        return caption_prompt(item.benchmark)
    return qa_prompt(QAItem(item.id, item.question, item.answer, choices=item.choices))
