"""``python -m analyses.composition``: long clips, their prompts and frames, what composing segment adapters
means (one segment composed is that segment; the composition is the sum, the scaled one the mean, of
segment adapters on the clip's own clock), and an end-to-end run on the shipped tiny checkpoints (2 long
clips at 1 and 2 segments)."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
import torch

import analyses.composition as composition
from f2l.adapter import Adapter
from f2l.answer import generate
from f2l.config import parse_config
from f2l.data import CAPTION_PROMPTS, LongClip, long_clip_prompt
from f2l.eval.metrics import token_f1
from f2l.results import read_netcdf
from f2l.video import Frames
from f2l.world import frame_times, long_clip_items, render_frames, sample_long_truth

MAX_NEW = 8
ARGV = ["--clips", "2", "--n-chunks", "1", "2", "--max-new-tokens", str(MAX_NEW)]
SEEDS = (1_010_000, 1_010_001)


@pytest.fixture(scope="module")
def pipeline(one_thread):
    from f2l.pipeline import Frames2LoRA

    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def run(pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("composition")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(composition.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
        assert composition.main(["--out", str(out), *ARGV]) == 0
    return out, read_netcdf(out / "composition.nc")


def segments_of(video: Frames, frames: int, from_zero: bool = False) -> list[Frames]:
    """The video's consecutive segments of ``frames`` frames, on its clock or each restarting at 0."""
    out = []
    for i in range(0, video.num_frames, frames):
        ts = video.timestamps[i : i + frames]
        out.append(Frames(video.pixels[i : i + frames], ts - (ts[0] - video.timestamps[0]) * from_zero))
    return out


def test_prompts_are_the_worlds_and_two_way_choices_list_their_options():
    truth = sample_long_truth(SEEDS[0], 4)
    items = long_clip_items(truth, 4)
    prompts = {it.id: long_clip_prompt(it) for it in items}
    assert prompts["color-2"] == f"what color is the {truth.objects[2].shape}?"
    assert prompts["count"] == "how many objects are there?"
    assert prompts["temporal"] == CAPTION_PROMPTS["temporal"]
    assert prompts["detailed"] == CAPTION_PROMPTS["detailed"]
    order = next(it for it in items if it.id == "order-1")
    assert prompts["order-1"] == (
        f"{order.question}\nOptions:\n- {order.choices[0]}\n- {order.choices[1]}\nAnswer with one of the options."
    )


def test_long_clip_frames_are_the_segments_in_order_on_the_clips_clock():
    truth = sample_long_truth(SEEDS[0], 4)
    video = LongClip(SEEDS[0], 4).frames(3, 32)
    assert video.num_frames == 12 and video.pixels.shape == (12, 32, 32, 3)
    ordinary = frame_times(sample_long_truth(SEEDS[0], 1), 3)  # an 8 s clip's frame times
    for k, segment in enumerate(segments_of(video, 3)):
        np.testing.assert_allclose(segment.timestamps, ordinary + 8.0 * k)
        np.testing.assert_array_equal(segment.pixels, render_frames(truth, ordinary + 8.0 * k, 32))
    assert LongClip.from_id(LongClip(SEEDS[1], 8).id) == LongClip(SEEDS[1], 8)


def test_composing_segment_adapters_is_their_sum_and_one_segment_is_itself(pipeline):
    video = LongClip(SEEDS[0], 2).frames(4, 64)
    segments = pipeline.internalize_batch(segments_of(video, 4)).unbind()
    composed = pipeline.internalize(video, chunk_frames=4)
    module = composed.modules[0]
    for layer in (0, composed.num_layers - 1):
        total = sum(s.delta_weight(module, layer) for s in segments)
        tol = 1e-5 * float(total.abs().max())
        torch.testing.assert_close(composed.delta_weight(module, layer), total, atol=tol, rtol=0)
        torch.testing.assert_close(
            composed.scaled(0.5).delta_weight(module, layer), total / 2, atol=tol, rtol=0
        )
        alone = Adapter.compose(segments[1]).delta_weight(module, layer)
        torch.testing.assert_close(alone, segments[1].delta_weight(module, layer), atol=tol, rtol=0)
    # the clock reaches the adapter: segment 1 on the clip's clock (8 to 16 s) is not segment 1 from 0 s
    restarted = pipeline.internalize(segments_of(video, 4, from_zero=True)[1])
    a, b = segments[1].delta_weight(module, 0), restarted.delta_weight(module, 0)
    assert float((a - b).abs().max()) > 1e-3 * float(a.abs().max())


def test_end_to_end_dataset_has_one_segment_count_per_clip(run):
    out, ds = run
    assert list(ds["method"].values) == list(composition.METHODS)
    assert list(ds["n_chunks"].values) == [1, 2] and ds.sizes["failure"] == 0
    assert ds["score"].dims == ("example_id", "method", "n_chunks")
    clips = [LongClip(seed, n).id for seed in SEEDS for n in (1, 2)]
    assert list(dict.fromkeys(ds["clip"].values)) == clips
    for clip in clips:
        seed, n = astuple(LongClip.from_id(clip))
        items = long_clip_items(sample_long_truth(seed, n), n)
        rows = ds.sel(example_id=[f"{clip}/{it.id}" for it in items])
        assert list(rows["reference"].values) == [it.answer for it in items]
        assert list(rows["needs"].values) == [it.needs for it in items]
        assert list(rows["first_segment"].values) == [min(it.segments) for it in items]
        assert list(rows["last_segment"].values) == [max(it.segments) for it in items]
        # scored at the clip's own segment count only, every method
        assert bool(rows["score"].sel(n_chunks=n).notnull().all())
        other = 3 - n
        assert bool(rows["score"].sel(n_chunks=other).isnull().all())
        assert set(rows["prediction"].sel(n_chunks=other).values.ravel()) == {""}
    assert set(ds["needs"].values) == {"one", "several"}
    table = ds[["score", "prediction"]].to_dataframe().dropna(subset=["score"])
    assert len(table) == ds.sizes["example_id"] * len(composition.METHODS)
    refs = ds["reference"].to_series()
    for (example, _, _), row in table.iterrows():
        assert row["score"] == pytest.approx(token_f1(row["prediction"], refs[example]))
    assert str(ds["metric"].values) == "token_f1" and ds.attrs["segment_frames"] == 8
    md = (out / "composition.md").read_text()
    assert "## 1 segment (2 clips)" in md and "## 2 segments (2 clips)" in md
    assert "| f2l_composed_scaled - f2l_whole |" in md


def test_one_segment_composed_answers_as_the_whole_clip_adapter(run):
    _, ds = run
    at_one = ds["prediction"].sel(n_chunks=1).where(ds["clip"].str.endswith("-1"), drop=True)
    whole = at_one.sel({"method": "f2l_whole"}).values
    assert len(whole) == 2 * 6
    for method in ("f2l_composed", "f2l_composed_scaled"):
        assert list(at_one.sel({"method": method}).values) == list(whole), method


def test_answers_are_each_methods_on_the_long_clip(run, pipeline):
    _, ds = run
    clip = LongClip(SEEDS[1], 2).id
    seed, n = astuple(LongClip.from_id(clip))
    items = long_clip_items(sample_long_truth(seed, n), n)
    questions = [long_clip_prompt(it) for it in items]
    rows = ds["prediction"].sel(example_id=[f"{clip}/{it.id}" for it in items], n_chunks=n)
    video = LongClip(seed, n).frames(8, 64)
    segments = pipeline.internalize_batch(segments_of(video, 8)).unbind()
    expected = {
        "direct": {"videos": [video] * len(questions)},
        "f2l_whole": {"adapter": pipeline.internalize(video)},
        "f2l_composed": {"adapter": Adapter.compose(*segments)},
        "f2l_composed_scaled": {"adapter": Adapter.compose(*segments, weights=(0.5, 0.5))},
        "no_video": {},
    }
    for method, how in expected.items():
        answers = generate(pipeline.base, questions, max_new_tokens=MAX_NEW, **how)
        assert list(rows.sel({"method": method}).values) == [a.text for a in answers], method


def test_a_rerun_recomputes_nothing(run, pipeline, monkeypatch):
    out, ds = run
    monkeypatch.setattr(composition.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
    monkeypatch.setattr(composition, "clip_dataset", lambda *a, **k: pytest.fail("recomputed a clip"))
    again = composition.run(parse_config(composition.CompositionConfig, ["--out", str(out), *ARGV], prog="t"))
    np.testing.assert_array_equal(again["score"].values, ds["score"].values)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=">= 1"):
        _ = composition.CompositionConfig(n_chunks=(0, 2)).chunk_counts
    assert composition.CompositionConfig().chunk_counts == (2, 4)
    assert composition.CompositionConfig(full=True).chunk_counts == (2, 4, 8)
    with pytest.raises(ValueError, match="ground truth"):
        composition.run(composition.CompositionConfig(manifest="x.jsonl"))
