"""``f2l.world.render``: determinism by seed, any frame count and size, the same picture at every
resolution and sampling density, and pixels that show the truth (colours, appearances, camera motion)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from f2l.video import Frames
from f2l.world import (
    COLORS,
    Clip,
    ClipTruth,
    ObjectTruth,
    object_mask,
    render_clip,
    render_frames,
    sample_truth,
)


def test_same_seed_same_clip_and_different_seeds_differ():
    a, b = render_clip(17, 6, 48), render_clip(17, 6, 48)
    assert a.truth == b.truth
    np.testing.assert_array_equal(a.frames.pixels, b.frames.pixels)
    c = render_clip(18, 6, 48)
    assert c.truth != a.truth
    assert not np.array_equal(c.frames.pixels, a.frames.pixels)
    assert isinstance(a, Clip) and isinstance(a.frames, Frames) and a.frames.source == "world:17"


@pytest.mark.parametrize("num_frames", [1, 12, 1024])
def test_any_frame_count(num_frames):
    clip = render_clip(3, num_frames, 32)
    px, ts = clip.frames.pixels, clip.frames.timestamps
    assert px.shape == (num_frames, 32, 32, 3) and px.dtype == np.uint8
    expected = (np.arange(num_frames) + 0.5) * clip.truth.duration / num_frames
    np.testing.assert_allclose(ts, expected)
    assert ts[0] > 0 and ts[-1] < clip.truth.duration


@pytest.mark.parametrize(
    "size, hw", [(32, (32, 32)), (64, (64, 64)), ((257, 130), (257, 130)), (512, (512, 512))]
)
def test_any_resolution(size, hw):
    px = render_clip(5, 2, size).frames.pixels
    assert px.shape == (2, *hw, 3) and px.dtype == np.uint8


def test_resolutions_show_the_same_picture():
    """A 256 px frame block-averaged to 64 px is close to the 64 px render (geometry is normalized)."""
    for seed in range(5):
        small = render_clip(seed, 2, 64).frames.pixels.astype(float)
        big = render_clip(seed, 2, 256).frames.pixels.astype(float)
        pooled = big.reshape(2, 64, 4, 64, 4, 3).mean(axis=(2, 4))
        assert np.abs(pooled - small).mean() < 12.0


def test_denser_sampling_is_the_same_scene():
    """Segment centres of T frames are every third centre of 3T frames: those frames are identical."""
    for seed in (0, 1, 2, 7):
        a, b = render_clip(seed, 8, 40), render_clip(seed, 24, 40)
        np.testing.assert_allclose(a.frames.timestamps, b.frames.timestamps[1::3])
        np.testing.assert_array_equal(a.frames.pixels, b.frames.pixels[1::3])
        np.testing.assert_array_equal(
            render_frames(seed, a.frames.timestamps[2:3], 40)[0], a.frames.pixels[2]
        )


def test_main_object_colour_is_visible():
    """Pixels inside the main object's mask (minus other objects) at frame 0 carry its RGB."""
    for seed in range(40):
        clip = render_clip(seed, 8, 64)
        t, ts = clip.truth, clip.frames.timestamps[0]
        mask = object_mask(t, 0, ts, 64)
        for i in range(1, len(t.objects)):
            mask &= ~object_mask(t, i, ts, 64)
        assert mask.sum() >= 20, seed
        rgb = clip.frames.pixels[0][mask].astype(int)
        assert np.abs(rgb - np.array(COLORS[t.main.color])).max() <= 1, seed


def test_appearing_object_is_absent_before_and_present_after():
    found = 0
    for seed in range(200):
        t = sample_truth(seed)
        for i, o in enumerate(t.objects):
            if o.timing == "appears":
                before, after = (o.appear - 0.05) * t.duration, (o.appear + 0.05) * t.duration
                assert not object_mask(t, i, before, 64).any()
                assert object_mask(t, i, after, 64).sum() > 10
                found += 1
    assert found > 20


def test_camera_pan_moves_static_objects_the_other_way():
    still = ObjectTruth("red", "circle", "large", "still", (0.0, 0.0), (0.0, 0.0))
    for camera, sign in (("pan_right", -1), ("pan_left", 1)):
        t = ClipTruth(1, 8.0, "grey", "stripes", camera, (still,))
        xs = []
        for ts in render_clip(t, 5, 64).frames.timestamps:
            cols = np.nonzero(object_mask(t, 0, ts, 64).any(axis=0))[0]
            xs.append(cols.mean())
        steps = np.diff(xs)
        assert np.all(sign * steps > 0.5), (camera, xs)
        # the texture moves too: consecutive frames of the background differ
        px = render_clip(t, 5, 64).frames.pixels
        assert np.abs(px[0, :8].astype(int) - px[-1, :8].astype(int)).mean() > 2.0


def test_zoom_in_grows_objects():
    obj = ObjectTruth("blue", "square", "medium", "still", (0.05, 0.0), (0.05, 0.0))
    t = ClipTruth(2, 8.0, "navy", "checks", "zoom_in", (obj,))
    areas = [object_mask(t, 0, ts, 64).sum() for ts in render_clip(t, 4, 64).frames.timestamps]
    assert all(b > a for a, b in itertools.pairwise(areas))
