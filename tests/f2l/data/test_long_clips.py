"""``f2l.data.long_clips``: a long clip's name, its frames segment after segment on the clip's own clock,
its items, the pool of long clips of a split, and the prompt each item is asked with."""

from __future__ import annotations

import numpy as np
import pytest

from f2l.data.long_clips import LongClip, long_clip_prompt, long_pool
from f2l.data.manifest import CAPTION_PROMPTS
from f2l.world import long_clip_items, object_mask, render_clip, sample_long_truth, split_seeds


def test_a_clip_is_named_by_its_seed_and_segments_and_read_back_from_its_name():
    clip = LongClip(1_010_003, 4)
    assert clip.id == "long-1010003-4"
    assert LongClip.from_id(clip.id) == clip
    assert clip.segment_ids == [f"long-1010003-4/{k}" for k in range(4)]


def test_segment_k_is_frames_k_times_frames_on_and_shows_the_kth_object():
    """Three segments of 2 frames: the 24 s scene rendered at 6 frames, frames 2k and 2k + 1 in the k-th
    8 s, where (one object a segment) only object k is on screen."""
    seed, segments, per = 1_010_005, 3, 2
    clip = LongClip(seed, segments)
    frames = clip.frames(per, 64)
    truth = sample_long_truth(seed, segments)
    assert frames.pixels.shape == (segments * per, 64, 64, 3) and frames.source == "world:long-1010005-3"
    np.testing.assert_array_equal(frames.pixels, render_clip(truth, segments * per, 64).frames.pixels)
    assert truth.duration == 24.0 and len(truth.objects) == segments
    np.testing.assert_array_equal(frames.timestamps // 8.0, [0, 0, 1, 1, 2, 2])
    for i, t in enumerate(frames.timestamps):
        on = [k for k in range(segments) if object_mask(truth, k, t, 64).any()]
        assert on == [i // per], (i, on)


def test_items_are_the_worlds_long_clip_items_computed_once():
    clip = LongClip(1_010_007, 2)
    assert clip.items == long_clip_items(sample_long_truth(1_010_007, 2), 2)
    assert clip.items is clip.items


@pytest.mark.parametrize(("clips", "max_segments"), [(7, 3), (4, 1)])
def test_the_pool_cycles_the_segment_counts_over_the_splits_seeds(clips, max_segments):
    pool = long_pool("val", clips, max_segments)
    assert [c.seed for c in pool] == split_seeds("val", clips)
    assert [c.segments for c in pool] == [1 + j % max_segments for j in range(clips)]


def test_an_item_is_asked_as_its_caption_instruction_or_its_question_with_the_options():
    items = {it.id: it for it in LongClip(1_010_009, 2).items}
    temporal = items["temporal"]
    assert temporal.kind == "caption" and long_clip_prompt(temporal) == CAPTION_PROMPTS["temporal"]
    color = items["color-0"]
    assert color.choices is None and long_clip_prompt(color) == color.question
    order = items["order-0"]
    lines = long_clip_prompt(order).split("\n")
    assert lines[0] == order.question
    assert [line.removeprefix("- ") for line in lines if line.startswith("- ")] == list(order.choices)
