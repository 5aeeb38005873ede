"""analyses.scaling: the degeneracy detector, the tiled frame layout, direct answers from a shared prefill,
the intervals over clips, and the command end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from analyses import scaling
from analyses.scaling import (
    FULL_FRAMES,
    FULL_RESOLUTIONS,
    ScalingConfig,
    is_degenerate,
    repeated_ngram_fraction,
    shared_answer_fraction,
    tiled_video_inputs,
    video_inputs,
)
from f2l.answer import answer, decode, prefill_video
from f2l.chat import model_inputs, prompt_text
from f2l.config import parse_config
from f2l.data import clip_prompts, world_manifest, write_manifest
from f2l.eval.metrics import token_f1
from f2l.eval.stats import bootstrap_ci
from f2l.results import read_netcdf
from f2l.world import render_clip

ARGS = ["--clips", "2", "--frames", "4", "8", "--resolutions", "64", "96", "--resolution-frames", "4"]
ARGS += ["--max-new-tokens", "8"]


def test_repeated_ngram_fraction_counts_repeats_of_earlier_trigrams():
    assert repeated_ngram_fraction("x y z x y z") == pytest.approx(0.25)  # xyz, yzx, zxy, xyz
    assert repeated_ngram_fraction("x y z x y z x y z") == pytest.approx(1 - 3 / 7)
    assert repeated_ngram_fraction("red") == 0.0  # shorter than one trigram


@pytest.mark.parametrize(
    ("text", "degenerate"),
    [
        ("", True),
        ("   ", True),
        ("...", True),
        ("The.", True),  # nothing left once the article and the full stop go
        ("red red red red", True),
        ("the camera pans left. the camera pans left. the camera pans left.", True),
        ("a medium green square moves right over a medium green square moves right over a blue", True),
        ("one", False),
        ("x y z x y z", False),  # 25% repeated: under the 30% threshold
        ("a small purple circle moves right and leaves, and a medium cyan square moves right.", False),
    ],
)
def test_is_degenerate_on_hand_made_answers(text, degenerate):
    assert is_degenerate(text) is degenerate


def test_world_references_are_not_degenerate():
    refs = [p.reference for e in world_manifest("test", 30) for p in clip_prompts(e, 1)]
    assert len(refs) == 330 and not any(is_degenerate(r) for r in refs)


def test_shared_answer_fraction_sees_one_answer_given_to_every_prompt():
    """Each answer alone passes the n-gram test; together they are one answer to everything."""
    np.testing.assert_allclose(shared_answer_fraction(["One.", "one", "one", "ONE!"]), [1, 1, 1, 1])
    np.testing.assert_allclose(shared_answer_fraction(["red", "two", "Red.", "left"]), [1 / 3, 0, 1 / 3, 0])
    assert shared_answer_fraction(["alone"]).tolist() == [0.0]
    refs = [[p.reference for p in clip_prompts(e, 1)] for e in world_manifest("test", 30)]
    assert np.mean([shared_answer_fraction(r).mean() for r in refs]) < 0.05  # references rarely repeat


def test_tiled_layout_is_the_video_path_at_the_tile_size_and_tiles_larger_frames(tiny_base):
    processor = tiny_base.processor
    text = prompt_text(processor, "what color is the square?", with_video=True)
    small = render_clip(1010000, num_frames=3, size=64).frames
    tiled, plain = tiled_video_inputs(processor, text, small), model_inputs(processor, [text], [small])
    assert torch.equal(tiled["input_ids"], plain["input_ids"])
    assert torch.equal(tiled["pixel_values"], plain["pixel_values"])

    def visual_per_frame(inputs) -> float:
        return int((inputs["input_ids"] == processor.image_token_id).sum()) / 3

    tiles = {64: 1, 96: 5, 128: 5, 192: 10, 256: 17, 384: 17}  # n x n tiles + a global view, capped at 4 x 4
    for size, n in tiles.items():
        clip = render_clip(1010000, num_frames=3, size=size).frames
        assert (
            visual_per_frame(video_inputs(tiny_base, "q", clip, tiling=True)) == n * processor.image_seq_len
        )
        # SmolVLM's own video path resizes every frame to one tile, whatever its size
        assert visual_per_frame(video_inputs(tiny_base, "q", clip, tiling=False)) == processor.image_seq_len


def test_direct_answers_from_the_shared_prefill_are_those_of_the_video_in_context(tiny_base):
    """Frames tiled by the image processor (96 px: 2 x 2 tiles and a global view each), prefilled once:
    every question answers token for token as with the whole prompt in one pass, over as many tokens."""
    clip = render_clip(1010001, num_frames=3, size=96).frames
    prefix = prefill_video(tiny_base, clip, inputs=video_inputs(tiny_base, "", clip, tiling=True))
    assert prefix.visual_tokens == 3 * 80
    for question in ("Describe the video in detail.", "what color is the square?", "how many objects?"):
        whole = decode(tiny_base, video_inputs(tiny_base, question, clip, tiling=True), max_new_tokens=8)[0]
        shared = answer(tiny_base, None, question, prefix=prefix, max_new_tokens=8)
        assert shared.ids == whole.ids and shared.stop == whole.stop, question
        assert sum(shared.input_tokens.values()) == sum(whole.input_tokens.values())


def test_full_is_the_issues_grid_on_eight_clips():
    full = parse_config(ScalingConfig, ["--full"], prog="scaling")
    assert full.num_clips == 8 and parse_config(ScalingConfig, [], prog="scaling").num_clips == 2
    assert FULL_FRAMES[0] == 12 and FULL_FRAMES[-1] == 1024
    assert FULL_RESOLUTIONS[-1] == 4 * FULL_RESOLUTIONS[0]


@pytest.fixture(scope="module")
def scaling_run(tmp_path_factory):
    """Two held-out world clips cut down to two prompts each (a caption category and a question), so that
    the run stays small but has intervals over clips: 3 grid points x 2 clips x 2 prompts x 2 methods."""
    out = tmp_path_factory.mktemp("scaling")
    examples = [
        replace(e, captions={"short": e.captions["short"]}, qa=e.qa[:1]) for e in world_manifest("test", 2)
    ]
    manifest = write_manifest(out / "clips.jsonl", examples)
    args = ["--out", str(out), "--manifest", str(manifest), *ARGS]
    assert scaling.main(args) == 0
    return out, args, read_netcdf(out / "scaling.nc")


def test_scaling_end_to_end(scaling_run):
    out, _, ds = scaling_run
    assert list(ds["method"].values) == ["direct", "f2l"]
    assert list(ds["frames"].values) == [4, 8] and list(ds["resolution"].values) == [64, 96]
    assert ds.sizes["example_id"] == 4 and sorted(ds["kind"].values) == ["caption", "caption", "qa", "qa"]
    assert ds.attrs["metric"] == "token_f1" and ds.attrs["training_resolution"] == 64

    run = ds["score"].notnull().all(["example_id", "method"])
    assert run.values.tolist() == [[True, True], [True, False]]  # (8 frames, 96 px) is in neither sweep
    assert (ds["prediction"].sel(frames=8, resolution=96) == "").all()

    visual = ds["visual_tokens"].sel({"method": "direct"})
    assert (visual.sel(frames=4, resolution=64) == 4 * 16).all()
    assert (visual.sel(frames=8, resolution=64) == 8 * 16).all()
    assert (visual.sel(frames=4, resolution=96) == 4 * 80).all()  # 2 x 2 tiles + a global view a frame
    direct = ds["input_tokens"].sel({"method": "direct", "resolution": 64})
    assert (direct.sel(frames=8) > direct.sel(frames=4)).all()

    f2l = ds.sel({"method": "f2l"})
    assert (f2l["visual_tokens"].fillna(0) == 0).all()
    tokens = f2l["input_tokens"].stack(point=["frames", "resolution"]).dropna("point")
    assert (tokens == tokens.isel(point=0)).all()  # the question alone, whatever the video

    score, references = ds["score"].values, ds["reference"].values
    for index, prediction in np.ndenumerate(ds["prediction"].values):
        if np.isnan(score[index]):
            continue
        assert score[index] == token_f1(prediction, str(references[index[0]]))
        assert ds["degenerate"].values[index] == float(is_degenerate(prediction))
        same = ds["prediction"].values[:, index[1], index[2], index[3]]
        assert ds["same_answer"].values[index] == shared_answer_fraction(list(same))[index[0]]
        assert ds["ttft_s"].values[index] > 0

    md = (out / "scaling.md").read_text()
    assert "## Frames, at 64 px" in md and "## Resolution, at 4 frames" in md
    assert "same answer" in md and "(the references: " in md
    assert md.count("\n| 4 |") == 1 and "\n| 8 |" in md and "\n| 96 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| 8 |"))
    low, high = ds["score_ci"].sel({"method": "f2l", "frames": 8, "resolution": 64}).values
    f2l = float(ds["mean_score"].sel({"method": "f2l", "frames": 8, "resolution": 64}))
    assert f"{f2l:.3f} [{low:.3f}, {high:.3f}]" in row


def test_intervals_are_over_clips_of_their_prompts_means(scaling_run):
    """Each clip's mean over its prompts, by hand; their mean and its bootstrap interval over the two clips
    (whose resampled means are one clip, the other, or both: the 95% interval runs from the lower clip to
    the higher); the paired difference f2l - direct the same way."""
    _, _, ds = scaling_run
    clips = sorted(set(ds["clip"].values))
    assert list(ds["replicate"].values) == clips and list(ds["bound"].values) == ["low", "high"]
    for name in ("score", "degenerate", "same_answer"):
        for frames, resolution in ((4, 64), (8, 64), (4, 96)):
            point = {"frames": frames, "resolution": resolution}
            by_clip = {}
            for method in ("direct", "f2l"):
                values = ds[name].sel({"method": method, **point}).values
                means = np.array([values[ds["clip"].values == c].mean() for c in clips])
                by_clip[method] = means
                sel = {"method": method, **point}
                np.testing.assert_allclose(ds[f"clip_{name}"].sel(sel).values, means)
                assert float(ds[f"mean_{name}"].sel(sel)) == pytest.approx(means.mean())
                ci = ds[f"{name}_ci"].sel(sel).values
                np.testing.assert_allclose(ci, [means.min(), means.max()])
                np.testing.assert_allclose(ci, bootstrap_ci(means, 0.95))
            if name == "score":
                diffs = by_clip["f2l"] - by_clip["direct"]
                assert float(ds["score_diff"].sel(point)) == pytest.approx(diffs.mean())
                np.testing.assert_allclose(ds["score_diff_ci"].sel(point).values, [diffs.min(), diffs.max()])
    assert ds["mean_score"].sel({"frames": 8, "resolution": 96}).isnull().all()  # in neither sweep
    assert ds.attrs["ci_level"] == 0.95


def test_scaling_resumes_without_recomputing(scaling_run, monkeypatch):
    out, args, first = scaling_run

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was computed again")

    monkeypatch.setattr(scaling, "measure_clip", must_not_run)
    assert scaling.main(args) == 0
    again = read_netcdf(out / "scaling.nc")
    assert again.sizes["failure"] == 0
    np.testing.assert_array_equal(again["ttft_s"].values, first["ttft_s"].values)  # timings never repeat
    for name in ("score_ci", "score_diff_ci", "same_answer_ci"):  # recomputed from the merged parts, alike
        np.testing.assert_array_equal(again[name].values, first[name].values)
