"""The labels of a per-prompt dataset (``probes.prompts``) and the mean ± standard error across clips that
every study's summary reports of them (``analyses.common.clip_mean_se``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analyses.common import clip_mean_se
from f2l.data import Example, QAItem, VideoRef, clip_prompts, iter_prompts, world_manifest
from probes.prompts import (
    PromptSet,
    clip_means,
    concat_prompts,
    prompt_attrs,
    prompt_coords,
    reference_variable,
)


def test_prompt_coords_label_every_prompt_of_a_clip():
    example = world_manifest("test", 1)[0]
    prompts = clip_prompts(example, 2)
    ds = xr.Dataset(coords=prompt_coords(example, prompts, questions=True))
    assert list(ds.sizes) == ["example_id"] and ds.sizes["example_id"] == len(prompts)
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert set(ds["clip"].values) == {example.id}
    assert list(ds["benchmark"].values) == [p.label for p in prompts]
    assert list(ds["prompt"].values) == [p.prompt for p in prompts]
    assert list(ds["kind"].values) == [p.kind for p in prompts]
    assert set(ds["kind"].values) == {"caption", "qa"}
    assert "prompt" not in prompt_coords(example, prompts)


def test_a_prompt_set_asks_captions_and_the_first_questions_of_each_type():
    world = world_manifest("test", 1)[0]
    assert PromptSet().of(world) == clip_prompts(world, 1)
    assert PromptSet(2).of(world) == clip_prompts(world, 2) != clip_prompts(world, 1)
    assert PromptSet(2, prompts_per_clip=3).of(world) == clip_prompts(world, 2)[:3]


def test_a_prompt_set_without_qa_per_type_asks_one_per_type_of_world_clips_every_item_of_a_record():
    world = world_manifest("test", 1)[0]
    assert PromptSet(None).of(world) == clip_prompts(world, 1)
    record = Example(
        id="r1",
        source="nextqa",
        video=VideoRef(path="a.mp4"),
        captions={"short": "a dog runs"},
        qa=(QAItem("q0", "what runs?", "a dog", "open"), QAItem("q1", "where?", "a park", "open")),
    )
    every = list(iter_prompts([record]))
    assert [p.item_id for p in every if p.kind == "qa"] == ["q0", "q1"]
    assert PromptSet(None).of(record) == every
    assert PromptSet(1).of(record) == clip_prompts(record, 1) != every
    assert PromptSet(None, prompts_per_clip=2).of(record) == every[:2]
    assert PromptSet(None).attrs() == {"qa_per_type": "world 1, manifest all"}


def test_prompt_attrs_record_a_subset_only_when_one_was_kept():
    every = prompt_attrs(probe="x", frames=8, qa_per_type=1)
    assert every == {"probe": "x", "frames": 8, "qa_per_type": 1}
    subset = prompt_attrs(probe="x", frames=12, qa_per_type=2, prompts_per_clip=3)
    assert subset == {"probe": "x", "frames": 12, "qa_per_type": 2, "prompts_per_clip": 3}


def test_clip_means_then_mean_and_standard_error_across_clips():
    # clip a: prompts 0.2, 0.4 (NaN skipped); clip b: 0.9; clip c: only NaN, so no replicate
    da = xr.DataArray(
        [0.2, np.nan, 0.4, 0.9, np.nan],
        dims="example_id",
        coords={"example_id": list("vwxyz"), "clip": ("example_id", ["a", "a", "a", "b", "c"])},
    )
    means = clip_means(da)
    np.testing.assert_allclose(means.sel(clip=["a", "b"]).values, [0.3, 0.9])
    assert np.isnan(float(means.sel(clip="c")))
    se = np.std([0.3, 0.9], ddof=1) / np.sqrt(2)
    assert clip_mean_se(da) == f"+0.600 ± {se:.3f}"
    assert clip_mean_se(da, ".1f") == f"0.6 ± {se:.3f}"
    assert clip_mean_se(da.where(da["clip"] == "b")) == "+0.900 ± nan"  # one clip: no spread
    assert clip_mean_se(da.where(da["clip"] == "c")) == "n/a"


def test_clips_join_on_their_prompts_each_with_its_references():
    clips = world_manifest("test", 2)
    parts = []
    for clip in clips:
        prompts = clip_prompts(clip, 1)
        parts.append(
            xr.Dataset(
                {"reference": reference_variable(prompts), "layers": ("layer", np.arange(3))},
                coords=prompt_coords(clip, prompts),
            )
        )
    joined = concat_prompts(parts)
    references = [p.reference for clip in clips for p in clip_prompts(clip, 1)]
    assert list(joined["reference"].values) == references and joined["reference"].dtype.kind == "U"
    assert joined["reference"].attrs == {"description": "reference"}
    assert list(joined["clip"].values) == [c.id for c in clips for _ in clip_prompts(c, 1)]
    assert joined["layers"].dims == ("layer",)  # a variable without the prompt dim: taken once
