"""The procedural world: determinism, any frame count and size, grounded annotations, balance, splits."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest

from f2l.video import Frames
from f2l.world import (
    CAPTION_CATEGORIES,
    COLORS,
    QA,
    QA_TYPES,
    SPLITS,
    Clip,
    ClipTruth,
    ObjectTruth,
    captions,
    long_clip_items,
    object_mask,
    qa,
    render_clip,
    render_frames,
    sample_long_truth,
    sample_truth,
    split_of,
    split_seeds,
    world_text_corpus,
)

N_WORDS = {"one": 1, "two": 2, "three": 3}


@pytest.fixture(scope="module")
def truths() -> list[ClipTruth]:
    return [sample_truth(s) for s in range(500)]


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


def test_truth_json_round_trip(truths):
    for t in truths[:50]:
        back = ClipTruth.from_dict(json.loads(json.dumps(t.to_dict())))
        assert back == t
        assert captions(back) == captions(t)


def test_truth_invariants(truths):
    for t in truths:
        objs = t.objects
        assert 1 <= len(objs) <= 3
        assert len({o.color for o in objs}) == len(objs) and len({o.shape for o in objs}) == len(objs)
        assert t.main.appear == 0.0 and t.main.leave == 1.0
        size_rank = {"small": 0, "medium": 1, "large": 2}
        assert all(size_rank[o.size] < size_rank[t.main.size] for o in objs[1:])
        if t.camera != "still":
            assert t.texture != "plain"
        taus = [e.tau for e in t.events()]
        assert taus == sorted(taus)


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


def test_caption_categories_and_form(truths):
    for t in truths[:100]:
        caps = captions(t)
        assert tuple(caps) == CAPTION_CATEGORIES
        for text in caps.values():
            assert text == text.lower() and text.endswith(".")
        m = t.main
        assert f"{m.size} {m.color} {m.shape}" in caps["short"]
        assert caps["main_object"].startswith(f"the main object is a {m.size} {m.color} {m.shape}")
        assert t.background in caps["background"]
        if not t.events():
            assert caps["temporal"] == "nothing appears or leaves."


def test_temporal_caption_orders_events():
    for seed in range(300):
        t = sample_truth(seed)
        ev = t.events()
        if len(ev) >= 2:
            text = captions(t)["temporal"]
            assert text.startswith("first ")
            first, second = (t.objects[e.index].name for e in ev[:2])
            assert text.index(first) < text.index(second)
            return
    pytest.fail("no clip with two events in 300 seeds")


def test_qa_types_and_consistency(truths):
    for t in truths:
        items = qa(t)
        assert all(isinstance(x, QA) and x.type in QA_TYPES for x in items)
        assert {x.type for x in items} == set(QA_TYPES)
        by_q = {x.question: x.answer for x in items}
        assert sum(x.type == "attribute" for x in items) >= 3 and sum(x.type == "yes_no" for x in items) >= 3
        for o in t.objects:
            assert by_q[f"what color is the {o.shape}?"] == o.color
            assert by_q[f"what shape is the {o.color} object?"] == o.shape
            assert by_q[f"what size is the {o.name}?"] == o.size
            assert by_q[f"which way does the {o.name} move?"] == o.motion
        assert by_q["what color is the background?"] == t.background
        assert N_WORDS[by_q["how many objects are there?"]] == len(t.objects)
        assert N_WORDS[by_q["how many objects are there at the end?"]] == sum(
            o.leave >= 1.0 for o in t.objects
        )
        for x in items:
            if x.choices is not None:
                assert x.answer in x.choices
        ev = t.events()
        first = by_q["what happens first?"]
        if ev:
            assert first == f"the {t.objects[ev[0].index].name} {ev[0].kind}"
        else:
            assert first == "nothing appears or leaves"
    assert qa(truths[3]) == qa(sample_truth(3))


def test_yes_no_answers_are_true(truths):
    for t in truths[:200]:
        present = {o.name for o in t.objects}
        for x in qa(t):
            if x.question.startswith("is there "):
                name = x.question.removeprefix("is there ").removesuffix("?").split(" ", 1)[1]
                assert (x.answer == "yes") == (name in present)
            if x.question.startswith("is the background "):
                assert (x.answer == "yes") == x.question.endswith(f" {t.background}?")


def test_yes_no_balanced(truths):
    answers = [x.answer for t in truths for x in qa(t) if x.type == "yes_no"]
    assert set(answers) == {"yes", "no"}
    assert 0.4 < answers.count("yes") / len(answers) < 0.6


def test_colour_answer_prior_is_flat(truths):
    counts = Counter(
        x.answer
        for t in truths
        for x in qa(t)
        if x.question.startswith("what color is the ") and x.question != "what color is the background?"
    )
    assert set(counts) == set(COLORS)
    top = max(counts.values()) / sum(counts.values())
    assert top < 1.5 / len(COLORS)


def test_splits_disjoint_and_consistent():
    ranges = sorted(SPLITS.values(), key=lambda r: r.start)
    for a, b in itertools.pairwise(ranges):
        assert a.stop <= b.start
    for name in SPLITS:
        seeds = split_seeds(name, 5, offset=3)
        assert len(seeds) == 5 and all(split_of(s) == name for s in seeds)
        assert seeds[0] == SPLITS[name].start + 3
    assert set(split_seeds("val", 4)).isdisjoint(split_seeds("test", 4))
    with pytest.raises(ValueError):
        split_of(2_000_000)
    with pytest.raises(ValueError):
        split_of(-1)
    with pytest.raises(ValueError):
        split_seeds("val", 20_000)
    with pytest.raises(ValueError):
        split_seeds("holdout", 1)


def test_world_text_corpus_covers_captions_and_qa():
    texts = list(world_text_corpus([0, 1]))
    t0 = sample_truth(0)
    expected = len(CAPTION_CATEGORIES) * 2 + 2 * (len(qa(t0)) + len(qa(sample_truth(1))))
    assert len(texts) == expected
    assert captions(t0)["detailed"] in texts and qa(t0)[0].question in texts
    vocab = {w.strip(".,?") for s in world_text_corpus(range(300)) for w in s.split()}
    assert len(vocab) < 120  # a small closed vocabulary


@pytest.mark.parametrize("segments", [1, 2, 4, 8])
def test_long_clip_objects_take_turns_over_the_segments_of_one_scene(segments):
    truth = sample_long_truth(1_010_000 + segments, segments)
    assert truth == sample_long_truth(1_010_000 + segments, segments)
    assert truth.duration == 8.0 * segments and truth.camera == "still"
    assert len(truth.objects) == min(segments, 4)
    assert (
        len({o.color for o in truth.objects}) == len({o.shape for o in truth.objects}) == len(truth.objects)
    )
    # Object i is on screen exactly during its run of whole segments, the runs tile the clip in
    # order, and each object moves a normal clip's distance during its run.
    per_segment = 3
    frames = segments * per_segment
    times = (np.arange(frames) + 0.5) / frames * truth.duration
    assert truth.objects[0].appear == 0.0 and truth.objects[-1].leave == 1.0
    for prev, nxt in itertools.pairwise(truth.objects):
        assert prev.leave == nxt.appear
    for k, o in enumerate(truth.objects):
        first, last = round(o.appear * segments), round(o.leave * segments)
        assert first < last
        on = [object_mask(truth, k, t).any() for t in times]
        assert on == [first <= i // per_segment < last for i in range(frames)]
        travelled = np.hypot(*np.subtract(o.position(o.leave), o.position(o.appear)))
        assert travelled == pytest.approx(0.0 if o.motion == "still" else 0.4, abs=1e-3)
    # Seen whole, each hand-over is one object leaving and the next appearing at the same moment.
    events = truth.events()
    assert len(events) == 2 * (len(truth.objects) - 1)
    for k, (a, b) in enumerate(zip(events[::2], events[1::2], strict=True)):
        assert a.tau == b.tau == truth.objects[k].leave
        assert {(a.kind, a.index), (b.kind, b.index)} == {("leaves", k), ("appears", k + 1)}


@pytest.mark.parametrize("segments", [1, 2, 4, 8])
def test_long_clip_items_are_grounded_in_the_truth_and_name_the_segments_that_show_it(segments):
    truth = sample_long_truth(1_010_100 + segments, segments)
    items = long_clip_items(truth, segments)
    assert items == long_clip_items(truth, segments)
    assert len({it.id for it in items}) == len(items)
    k = len(truth.objects)
    assert len(items) == 3 * k + (k - 1) + (k > 1) + 3
    # Which segments show each object, read off the rendered frames (3 a segment).
    per = 3
    times = (np.arange(segments * per) + 0.5) / (segments * per) * truth.duration
    shown = [
        tuple(
            s
            for s in range(segments)
            if any(object_mask(truth, j, t).any() for t in times[s * per : (s + 1) * per])
        )
        for j in range(k)
    ]
    by_id = {it.id: it for it in items}
    for j, o in enumerate(truth.objects):
        for benchmark, answer in (("color", o.color), ("shape", o.shape), ("size", o.size)):
            it = by_id[f"{benchmark}-{j}"]
            assert (it.kind, it.benchmark, it.answer, it.needs, it.segments) == (
                "qa",
                benchmark,
                answer,
                "one",
                shown[j],
            )
        assert by_id[f"color-{j}"].question == f"what color is the {o.shape}?"
        assert by_id[f"shape-{j}"].question == f"what shape is the {o.color} object?"
    for j in range(k - 1):
        order = by_id[f"order-{j}"]
        earlier, later = f"the {truth.objects[j].name}", f"the {truth.objects[j + 1].name}"
        assert order.answer == earlier and set(order.choices) == {earlier, later}
        assert order.question == f"which is there first, {order.choices[0]} or {order.choices[1]}?"
        assert order.needs == "several" and order.segments == shown[j] + shown[j + 1]
        assert shown[j][-1] < shown[j + 1][0]  # the answer is the one seen earlier
    clip_wide = ("count", "temporal", "detailed")
    for item_id in clip_wide:
        assert by_id[item_id].segments == tuple(range(segments))
        assert by_id[item_id].needs == ("several" if k > 1 else "one")
    assert by_id["count"].answer == ["one", "two", "three", "four"][k - 1]
    assert by_id["temporal"].kind == "caption" and by_id["temporal"].question == ""
    temporal = by_id["temporal"].answer
    if k == 1:
        assert temporal == "nothing appears or leaves." and "first_event" not in by_id
    else:
        assert by_id["first_event"].answer == f"the {truth.objects[0].name} leaves"
        # the hand-overs in order: each object leaves before the next appears
        positions = [temporal.index(f"{o.color} {o.shape} appears") for o in truth.objects[1:]]
        assert positions == sorted(positions)
        assert temporal.index(f"the {truth.objects[0].name} leaves") < positions[0]
    assert all(f"{o.size} {o.color} {o.shape}" in by_id["detailed"].answer for o in truth.objects)


def test_long_clip_items_refuse_a_segment_count_the_clip_does_not_have():
    with pytest.raises(ValueError, match="not 4 segments"):
        long_clip_items(sample_long_truth(0, 2), 4)


def test_long_clip_order_questions_put_the_right_answer_first_half_the_time():
    firsts = [
        it.choices[0] == it.answer
        for seed in range(200)
        for it in long_clip_items(sample_long_truth(seed, 4), 4)
        if it.benchmark == "order"
    ]
    assert len(firsts) > 500 and 0.4 < np.mean(firsts) < 0.6
