"""Negative controls: the labels and their order, each clip's swap partner (the next clip, independent of
how many are run), the blank video, and, on the shipped tiny checkpoints, the control adapters being the
partner's and the blank video's own adapters, the swapped one answering otherwise (and worse) than the
clip's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import score_answers
from f2l.pipeline import Frames2LoRA
from probes.controls import ADAPTERS, blank_frames, check_adapters, control_adapters, swap_partners

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
