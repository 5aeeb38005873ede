"""``python -m analyses.composition``: the composite clips and their questions from the world's ground
truth, and an end-to-end run on the shipped tiny checkpoints (2 composites, 2 and 4 segments)."""

from __future__ import annotations

import numpy as np
import pytest

import analyses.composition as composition
from f2l.adapter import Adapter
from f2l.answer import generate
from f2l.config import parse_config
from f2l.results import read_netcdf
from f2l.world import render_clip

MAX_NEW = 8


@pytest.fixture(scope="module")
def pipeline():
    from f2l.pipeline import Frames2LoRA

    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def run(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("composition")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(composition.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
        argv = ["--out", str(out), "--clips", "2", "--n-chunks", "2", "4", "--max-new-tokens", str(MAX_NEW)]
        assert composition.main(argv) == 0
    return out, read_netcdf(out / "composition.nc")


def test_composites_pair_clips_that_share_no_colour_or_shape():
    pairs = composition.composite_pairs("test", 20)
    assert pairs == composition.composite_pairs("test", 20)  # deterministic
    assert pairs[0] == (1010000, 1010001)
    seeds = [s for pair in pairs for s in pair]
    assert len(set(seeds)) == 40
    for a, b in pairs:
        ta, tb = composition.truth_of(a), composition.truth_of(b)
        assert not {o.color for o in ta.objects} & {o.color for o in tb.objects}
        assert not {o.shape for o in ta.objects} & {o.shape for o in tb.objects}
        assert len(ta.objects) + len(tb.objects) <= 4


def test_questions_come_from_the_ground_truth():
    a, b = composition.composite_pairs("test", 1)[0]
    ta, tb = composition.truth_of(a), composition.truth_of(b)
    items = {it.item_id: it for it in composition.composite_items(a, b)}
    assert [it.needs for it in items.values()] == ["one"] * 6 + ["both"] * 3
    assert items["a-color"].prompt == f"what color is the {ta.main.shape}?"
    assert items["a-color"].reference == ta.main.color and items["a-color"].segment == "first"
    assert items["b-shape"].prompt == f"what shape is the {tb.main.color} object?"
    assert items["b-shape"].reference == tb.main.shape and items["b-shape"].segment == "second"
    assert items["b-size"].reference == tb.main.size
    order = items["order"]
    assert order.reference == f"the {ta.main.name}" and f"- the {tb.main.name}" in order.prompt
    assert (
        items["count"].reference == ["zero", "one", "two", "three", "four"][len(ta.objects) + len(tb.objects)]
    )
    detailed = items["detailed"].reference
    assert detailed.startswith(f"a {ta.main.size} {ta.main.color} {ta.main.shape}")  # sizes take "a"
    assert tb.background in detailed and ta.background in detailed


def test_composite_frames_are_a_then_b_on_one_timeline():
    a, b = composition.composite_pairs("test", 1)[0]
    video = composition.composite_frames(a, b, 16, 64)
    clip_a, clip_b = render_clip(a, num_frames=8, size=64), render_clip(b, num_frames=8, size=64)
    assert video.num_frames == 16
    np.testing.assert_array_equal(video.pixels[:8], clip_a.frames.pixels)
    np.testing.assert_array_equal(video.pixels[8:], clip_b.frames.pixels)
    np.testing.assert_allclose(video.timestamps[8:], clip_b.frames.timestamps + clip_a.truth.duration)
    assert np.all(np.diff(video.timestamps) > 0)


def test_end_to_end_dataset(run):
    out, ds = run
    assert list(ds["method"].values) == list(composition.METHODS)
    assert list(ds["n_chunks"].values) == [2, 4]
    assert ds.sizes["example_id"] == 18 and ds.sizes["failure"] == 0  # 2 composites x 9 questions
    assert ds["score"].dims == ("example_id", "method", "n_chunks")
    assert list(ds["needs"].values[:9]) == ["one"] * 6 + ["both"] * 3
    assert set(ds["clip"].values) == {
        composition.composite_id(*p) for p in composition.composite_pairs("test", 2)
    }
    assert float(ds["score"].min()) >= 0 and float(ds["score"].max()) <= 1
    assert bool(ds["score"].notnull().all())
    no_video = ds["prediction"].sel({"method": "no_video"})
    np.testing.assert_array_equal(no_video.sel(n_chunks=2), no_video.sel(n_chunks=4))
    # more segments of 8 frames = more frames in the whole clip: direct sees another video
    assert str(ds["metric"].values) == "token_f1" and ds.attrs["segment_frames"] == 8
    md = (out / "composition.md").read_text()
    assert "## 2 segments of 8 frames" in md and "## 4 segments of 8 frames" in md
    assert "| f2l_composed_scaled - f2l_whole |" in md


def video_slice(video, start: int, stop: int):
    from f2l.video import Frames

    return Frames(video.pixels[start:stop], video.timestamps[start:stop], video.source)


def test_composed_answers_are_the_sum_and_the_mean_of_the_segment_adapters(run, pipeline):
    _, ds = run
    unit = str(ds["clip"].values[0])
    a, b = composition.parse_composite_id(unit)
    questions = [it.prompt for it in composition.composite_items(a, b)]
    video = composition.composite_frames(a, b, 16, 64)
    segments = pipeline.internalize_batch([video_slice(video, 0, 8), video_slice(video, 8, 16)]).unbind()
    rows = ds.sel(example_id=[f"{unit}/{it.item_id}" for it in composition.composite_items(a, b)], n_chunks=2)
    for method, weights in (("f2l_composed", (1.0, 1.0)), ("f2l_composed_scaled", (0.5, 0.5))):
        adapter = Adapter.compose(*segments, weights=weights)
        expected = [
            a.text for a in generate(pipeline.base, questions, adapter=adapter, max_new_tokens=MAX_NEW)
        ]
        assert list(rows["prediction"].sel({"method": method}).values) == expected, method
    whole = [
        a.text
        for a in generate(
            pipeline.base, questions, adapter=pipeline.internalize(video), max_new_tokens=MAX_NEW
        )
    ]
    assert list(rows["prediction"].sel({"method": "f2l_whole"}).values) == whole


def test_a_rerun_recomputes_nothing(run, pipeline, monkeypatch):
    out, ds = run
    monkeypatch.setattr(composition.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
    monkeypatch.setattr(
        composition, "composite_dataset", lambda *a, **k: pytest.fail("recomputed a composite")
    )
    cfg = parse_config(
        composition.CompositionConfig,
        ["--out", str(out), "--clips", "2", "--n-chunks", "2", "4", "--max-new-tokens", str(MAX_NEW)],
        prog="test",
    )
    again = composition.run(cfg)
    np.testing.assert_array_equal(again["score"].values, ds["score"].values)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="even"):
        _ = composition.CompositionConfig(n_chunks=(3,)).chunk_counts
    assert composition.CompositionConfig(full=True).chunk_counts == (2, 4, 8)
    with pytest.raises(ValueError, match="ground truth"):
        composition.run(composition.CompositionConfig(manifest="x.jsonl"))
