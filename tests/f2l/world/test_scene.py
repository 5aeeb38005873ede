"""``f2l.world.scene``: the sampled ground truth (its invariants and JSON form) and the long clips' scenes."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from f2l.world import ClipTruth, captions, object_mask, sample_long_truth


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
