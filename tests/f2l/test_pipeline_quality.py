"""Do the shipped hypernetworks internalize? Held-out world clips, answered from the adapter alone
(zero visual tokens) against the same base with the video in context and with no video, at both scales."""

from __future__ import annotations

import numpy as np
import pytest

from f2l.data import clip_prompts, world_manifest
from f2l.eval.metrics import token_f1
from f2l.pipeline import Frames2LoRA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline():
    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module", params=["tiny", "small"])
def each_scale(request, pipeline):
    """The shipped hypernetwork of each scale with its base: the tiny, and the small's."""
    if request.param == "tiny":
        return pipeline
    return Frames2LoRA.from_pretrained(request.param, base=request.getfixturevalue("small_base"))


@pytest.fixture(scope="module")
def examples():
    return world_manifest("test", 16, frames=8, offset=6000)


def _scores(pipeline, examples, frames: int, methods=("direct", "no_video", "f2l")) -> dict[str, float]:
    from f2l.answer import generate
    from f2l.data import load_frames

    base = pipeline.base
    rows = [(e, p, ref) for e in examples for p, ref in [(r.prompt, r.reference) for r in clip_prompts(e, 1)]]
    clips = {e.id: load_frames(e, num_frames=frames, size=64) for e in examples}
    preds = {}
    if "direct" in methods:
        videos = [clips[e.id] for e, _, _ in rows]
        preds["direct"] = [
            a.text for a in generate(base, [p for _, p, _ in rows], videos=videos, max_new_tokens=40)
        ]
    if "no_video" in methods:
        preds["no_video"] = [a.text for a in generate(base, [p for _, p, _ in rows], max_new_tokens=40)]
    preds["f2l"] = []
    for e in examples:
        adapter = pipeline.internalize(clips[e.id])
        for p in [row.prompt for row in clip_prompts(e, 1)]:
            preds["f2l"].append(pipeline.generate(adapter, p, max_new_tokens=40).text)
    return {
        m: float(np.mean([token_f1(x, ref) for x, (_, _, ref) in zip(ps, rows, strict=True)]))
        for m, ps in preds.items()
    }


def test_adapter_only_answers_match_video_in_context(each_scale, examples):
    s = _scores(each_scale, examples, frames=8)
    assert s["f2l"] > s["no_video"] + 0.08, s
    assert s["f2l"] > s["direct"] - 0.05, s


def test_adapter_stays_sane_from_12_to_256_frames(pipeline, examples):
    """The same clip internalized at 12, 64 and 256 frames: the adapter's norm stays within a small
    factor, and its answers stay far above the no-video floor."""
    from f2l.data import load_frames

    norms = {}
    for frames in (12, 64, 256):
        adapters = [pipeline.internalize(load_frames(e, num_frames=frames, size=64)) for e in examples[:4]]
        norms[frames] = np.mean(
            [
                sum(
                    float(a.delta_weight(m, layer).norm()) for m in a.modules for layer in range(a.num_layers)
                )
                for a in adapters
            ]
        )
    assert max(norms.values()) / min(norms.values()) < 2.0, norms
    # (direct inference is left out here: at 256 frames its 6.7k-token prefill per question is slow on a
    # CPU, and the tiny base degenerates there: 0.05 token-F1 when measured, against 0.56 for f2l)
    short = _scores(pipeline, examples[:8], frames=12, methods=("no_video", "f2l"))
    long = _scores(pipeline, examples[:8], frames=256, methods=("f2l",))
    # measured on these 8 clips: 0.692 at 12 frames, 0.641 at 256 (32x the training length); on the
    # scaling study's clips 0.682 -> 0.691
    assert long["f2l"] > short["f2l"] - 0.08, (short, long)
    assert long["f2l"] > short["no_video"] + 0.04, (short, long)


def test_shipped_official_design_internalizes(examples):
    """The authors' design trained by their recipe on the tiny world (``paper-tiny``): it carries the
    video, if less of it than f2l's design at equal steps (docs/hypernetworks.md, "Against f2l's design")."""
    paper = Frames2LoRA.from_pretrained("paper-tiny", device="cpu")
    assert paper.hypernet.kind == "official"
    s = _scores(paper, examples[:8], frames=8, methods=("no_video",))  # 8 clips: the margin is wide
    assert s["f2l"] > s["no_video"] + 0.05, s


def test_adapter_carries_the_background_and_the_detailed_caption_as_the_video_does(pipeline):
    """Where the 1,500-step baseline of the ablation table fell short of the video at 200 test clips
    (background caption -0.082, detailed -0.056: the background's colour), the shipped 3,000-step
    hypernetwork is within the equivalence margin (+0.001, -0.023). Here on 40 other test clips, paired
    per clip, the mean ``f2l - direct`` of each caption is above -0.05: measured +0.010 and -0.001 (SE
    0.01) for the shipped one; the 1,500-step baseline gives -0.100 (SE 0.017) and -0.030, and fails."""
    from f2l.answer import generate
    from f2l.data import load_frames

    examples = world_manifest("test", 40, frames=8, offset=7000)
    rows = [(e, r) for e in examples for r in clip_prompts(e, 1) if r.label in ("background", "detailed")]
    clips = {e.id: load_frames(e, num_frames=8, size=64) for e in examples}
    direct = generate(
        pipeline.base, [r.prompt for _, r in rows], videos=[clips[e.id] for e, _ in rows], max_new_tokens=40
    )
    adapters = {e.id: pipeline.internalize(clips[e.id]) for e in examples}
    gaps = {}
    for (e, r), d in zip(rows, direct, strict=True):
        f = pipeline.generate(adapters[e.id], r.prompt, max_new_tokens=40)
        gaps.setdefault(r.label, []).append(token_f1(f.text, r.reference) - token_f1(d.text, r.reference))
    means = {label: float(np.mean(g)) for label, g in gaps.items()}
    assert {label: len(g) for label, g in gaps.items()} == {"background": 40, "detailed": 40}
    assert all(m > -0.05 for m in means.values()), means
