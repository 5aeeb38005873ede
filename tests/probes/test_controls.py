"""Negative controls: the labels and their order, each clip's swap partner (the next clip, independent of
how many are run), the blank video, and, on the shipped tiny checkpoints, the control adapters being the
partner's and the blank video's own adapters, the swapped one answering otherwise (and worse) than the
clip's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import score_answers
from f2l.pipeline import Frames2LoRA
from probes.controls import (
    ADAPTERS,
    DESCRIPTION,
    blank_frames,
    check_adapters,
    control_adapters,
    label_probe,
    probe_controls,
    swap_partners,
)
from probes.prompts import PromptSet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_adapter_labels():
    assert check_adapters(["blank", "real"]) == ("real", "blank")  # in ADAPTERS order
    assert check_adapters(ADAPTERS) == ADAPTERS
    with pytest.raises(ValueError, match="must include 'real'"):
        check_adapters(["swapped", "blank"])
    with pytest.raises(ValueError, match="unknown adapters"):
        check_adapters(["real", "shuffled"])
    with pytest.raises(ValueError, match="repeated"):
        check_adapters(["real", "blank", "blank"])


def test_each_clips_partner_is_the_next_clip_whatever_the_count():
    clips = world_manifest("test", 4)
    partners = swap_partners(clips)
    assert [partners[c.id].id for c in clips] == [c.id for c in clips[1:]] + [clips[0].id]
    fewer = swap_partners(world_manifest("test", 3))  # a study of 2 clips passes 3: the same partners
    assert all(fewer[c.id].id == partners[c.id].id for c in clips[:2])
    with pytest.raises(ValueError, match="at least two different clips"):
        swap_partners(clips[:1])


def test_a_blank_video_has_the_clips_frames_in_one_colour():
    clip = world_manifest("test", 1)[0]
    video = load_frames(clip, num_frames=5, size=32)
    blank = blank_frames(video)
    assert blank.pixels.shape == video.pixels.shape and blank.pixels.dtype == np.uint8
    np.testing.assert_array_equal(blank.timestamps, video.timestamps)
    assert (blank.pixels == 128).all() and video.pixels.std() > 10


def test_a_probe_checks_its_controls_and_finds_the_swap_partners():
    clips = world_manifest("test", 3)
    adapters, partners = probe_controls("demo", clips, ["blank", "swapped", "real"])
    assert adapters == ("real", "swapped", "blank")
    assert {k: v.id for k, v in partners.items()} == {k: v.id for k, v in swap_partners(clips).items()}
    assert probe_controls("demo", clips, ["real"]) == (("real",), {})  # no swapped control: no partners
    given = {clips[0].id: clips[2]}
    assert probe_controls("demo", clips[:1], ["real", "swapped"], given)[1] == given  # a study's partners
    with pytest.raises(ValueError, match="demo needs at least one example"):
        probe_controls("demo", [], ["real"])
    with pytest.raises(ValueError, match="must include 'real'"):
        probe_controls("demo", clips, ["blank"])


def test_a_probes_dataset_describes_its_adapters_and_records_what_was_asked():
    ds = xr.Dataset(coords={"adapter": list(ADAPTERS)})
    out = label_probe(ds, "demo", PromptSet(2, prompts_per_clip=3), frames=8, backend="nnsight", gap=0.5)
    assert out["adapter"].attrs["description"] == DESCRIPTION
    assert out.attrs == {
        "probe": "demo",
        "backend": "nnsight",
        "gap": 0.5,
        "frames": 8,
        "qa_per_type": 2,
        "prompts_per_clip": 3,
    }
    assert list(out.attrs) == ["probe", "backend", "gap", "frames", "qa_per_type", "prompts_per_clip"]


@pytest.fixture(scope="module")
def pipeline():
    return Frames2LoRA.from_pretrained("tiny", device="cpu")


def test_the_controls_are_the_partners_and_the_blank_videos_adapters(pipeline):
    clip, partner = world_manifest("test", 2)
    video = pipeline.example_frames(clip, 4)
    adapters = control_adapters(pipeline, video, partner=partner)
    assert list(adapters) == list(ADAPTERS)
    fresh = Frames2LoRA(
        pipeline.base, pipeline.hypernet, "fresh"
    )  # made again, not read back from f2l's cache
    own = {
        "real": fresh.internalize(video),
        "swapped": fresh.internalize(fresh.example_frames(partner, 4)),
        "blank": fresh.internalize(blank_frames(video)),
    }
    for label, adapter in adapters.items():
        for module, (a, b) in adapter.factors.items():
            torch.testing.assert_close(a, own[label].factors[module][0], rtol=0, atol=0)
            torch.testing.assert_close(b, own[label].factors[module][1], rtol=0, atol=0)
    delta = {label: a.delta_weight("down_proj", 0) for label, a in adapters.items()}
    assert (delta["swapped"] - delta["real"]).abs().max() > 1e-3
    assert (delta["blank"] - delta["real"]).abs().max() > 1e-3
    assert list(control_adapters(pipeline, video, adapters=["real"])) == ["real"]
    with pytest.raises(ValueError, match="swap partner"):
        control_adapters(pipeline, video, adapters=["real", "swapped"])


def test_the_swapped_control_changes_the_answers(pipeline):
    """On the trained checkpoints: another clip's adapter answers most prompts otherwise, and worse."""
    clip, partner = world_manifest("test", 2)
    adapters = control_adapters(
        pipeline, pipeline.example_frames(clip, 8), partner=partner, adapters=["real", "swapped"]
    )
    prompts = clip_prompts(clip)
    answers = {
        label: [pipeline.generate(adapter, p.prompt, max_new_tokens=24).text for p in prompts]
        for label, adapter in adapters.items()
    }
    changed = sum(a != b for a, b in zip(answers["real"], answers["swapped"], strict=True))
    assert changed >= len(prompts) // 2
    references = [p.reference for p in prompts]
    f1 = {label: score_answers("token_f1", a, references).mean() for label, a in answers.items()}
    assert f1["real"] > f1["swapped"] + 0.1
