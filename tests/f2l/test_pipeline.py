"""The inference API: internalize a clip, answer from the adapter with zero visual tokens."""

from __future__ import annotations

import json

import pytest
import torch

from f2l.answer import answer
from f2l.hypernet import HypernetConfig, PerceiverHypernet
from f2l.models import checkpoint_digest, load_base
from f2l.pipeline import Frames2LoRA, HypernetMismatchError
from f2l.world import render_clip


@pytest.fixture(scope="module")
def random_f2l(tmp_path_factory, random_tiny_dir):
    base = load_base(random_tiny_dir, device="cpu")
    torch.manual_seed(0)
    cfg = HypernetConfig.for_base(
        base, f"random@{checkpoint_digest(random_tiny_dir)}", width=32, num_latents=4
    )
    hypernet = PerceiverHypernet(cfg)
    for head in hypernet.head_b.values():
        torch.nn.init.normal_(head.weight, std=0.05)
    path = hypernet.save(
        tmp_path_factory.mktemp("hypernet"), extra={"train_config": {"base": str(random_tiny_dir)}}
    )
    return Frames2LoRA.from_pretrained(path), path


def test_generate_puts_zero_visual_tokens_in_context(random_f2l):
    pipeline, _ = random_f2l
    clip = render_clip(1_010_000, num_frames=6, size=64).frames
    adapter = pipeline.internalize(clip)
    assert adapter.batch_size is None and adapter.num_layers == 4
    assert adapter.provenance["frames"] == 6 and adapter.provenance["video_id"] == "world:1010000"
    out = pipeline.generate(adapter, "what color is the circle?", max_new_tokens=4)
    assert out.input_tokens["visual"] == 0
    direct = answer(pipeline.base, clip, "what color is the circle?", max_new_tokens=4)
    assert direct.input_tokens["visual"] == 6 * 16


def test_merged_generation_equals_unmerged(random_f2l):
    pipeline, _ = random_f2l
    adapter = pipeline.internalize(render_clip(1_010_001, num_frames=4, size=64).frames)
    before = {k: v.clone() for k, v in pipeline.base.model.state_dict().items()}
    a = pipeline.generate(adapter, "Describe the video in detail.", max_new_tokens=8)
    b = pipeline.generate(adapter, "Describe the video in detail.", max_new_tokens=8, merged=True)
    assert a.text == b.text
    after = pipeline.base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_adapter_cache_skips_re_encoding(random_f2l, monkeypatch):
    pipeline, _ = random_f2l
    clip = render_clip(1_010_002, num_frames=4, size=64).frames
    first = pipeline.internalize(clip)
    calls = []
    monkeypatch.setattr(pipeline, "internalize_batch", lambda clips: calls.append(clips))
    assert pipeline.internalize(clip) is first and calls == []


def test_chunked_internalization_composes_segment_adapters(random_f2l):
    pipeline, _ = random_f2l
    clip = render_clip(1_010_003, num_frames=8, size=64).frames
    chunked = pipeline.internalize(clip, chunk_frames=4)
    halves = pipeline.internalize_batch(
        [type(clip)(clip.pixels[:4], clip.timestamps[:4]), type(clip)(clip.pixels[4:], clip.timestamps[4:])]
    )
    assert chunked.rank == 2 * halves.rank
    for m in ("q_proj", "down_proj"):
        expected = halves[0].delta_weight(m, 1) + halves[1].delta_weight(m, 1)
        torch.testing.assert_close(chunked.delta_weight(m, 1), expected, atol=1e-5, rtol=1e-4)


def test_a_mismatched_base_is_refused_at_load_time(random_f2l, tmp_path):
    _, path = random_f2l
    meta = json.loads((path / "hypernet_config.json").read_text())
    meta["config"]["num_layers"] = 6
    (tmp_path / "hypernet_config.json").write_text(json.dumps(meta))
    (tmp_path / "hypernet.safetensors").write_bytes((path / "hypernet.safetensors").read_bytes())
    with pytest.raises(HypernetMismatchError, match="4 layers != 6"):
        Frames2LoRA.from_pretrained(tmp_path)
    meta = json.loads((path / "hypernet_config.json").read_text())
    meta["config"]["base_id"] = "random@0000000000000000"
    (tmp_path / "hypernet_config.json").write_text(json.dumps(meta))
    with pytest.raises(HypernetMismatchError, match="base weights"):
        Frames2LoRA.from_pretrained(tmp_path)


def test_a_bfloat16_base_works_with_a_float32_hypernetwork(random_f2l, random_tiny_dir):
    """No hidden float32 assumption: the GPU presets run the base in bf16 beside an fp32 hypernetwork."""
    _, path = random_f2l
    base = load_base(random_tiny_dir, device="cpu", dtype=torch.bfloat16)
    pipeline = Frames2LoRA.from_pretrained(path, base=base)
    adapter = pipeline.internalize(render_clip(1_010_004, num_frames=4, size=64).frames)
    assert adapter.dtype == torch.float32 and pipeline.base.dtype == torch.bfloat16
    out = pipeline.generate(adapter, "what color is the circle?", max_new_tokens=3)
    assert out.input_tokens["visual"] == 0 and out.new_tokens >= 1
    merged = pipeline.generate(adapter, "what color is the circle?", max_new_tokens=3, merged=True)
    assert merged.new_tokens >= 1


def test_the_small_hypernetworks_old_names_resolve_to_them():
    """`tiny-small` and `tiny-small-chunk`, the small scale's hypernetworks' names before `small` and
    `small-chunk` (``f2l.models.RENAMED``), are the same directories; the records name the new base."""
    from f2l.models import CHECKPOINTS_DIR
    from f2l.pipeline import resolve_hypernet

    for old, new in (("tiny-small", "small"), ("tiny-small-chunk", "small-chunk")):
        path = resolve_hypernet(new)
        assert resolve_hypernet(old) == path == CHECKPOINTS_DIR / f"{new}-hypernet"
        meta = json.loads((path / "hypernet_config.json").read_text())
        assert meta["train_config"]["base"] == meta["config"]["base_id"].split("@")[0] == "small"


def test_a_missing_shipped_hypernetwork_names_the_presets_that_rebuild_it(tmp_path, monkeypatch):
    """Each shipped name's recipe is presets of f2l.train, in order; a stage that continues another reads
    the checkpoint the stage before it writes."""
    from f2l import pipeline
    from f2l.train import PRESETS, parse_config

    monkeypatch.setattr(pipeline, "CHECKPOINTS_DIR", tmp_path)
    for name in ("small", "tiny-small"):  # the old name too
        with pytest.raises(FileNotFoundError) as missing:
            pipeline.resolve_hypernet(name)
        assert str(missing.value).endswith(
            "Rebuild it with `python -m f2l.train --preset small-head && python -m f2l.train --preset "
            "small-head-continued && python -m f2l.train --preset small-head-third-truth --ship "
            f"{tmp_path}/small-hypernet`."
        )
    with pytest.raises(FileNotFoundError, match=r"`python -m f2l.train --preset tiny --ship "):
        pipeline.resolve_hypernet("tiny")
    for name in pipeline.SHIPPED_HYPERNETS:
        recipe = pipeline.SHIPPED_RECIPES.get(name, (name,))
        assert all(p in PRESETS for p in recipe)
        stages = [parse_config(["--preset", p]) for p in recipe]
        for before, after in zip(stages, stages[1:], strict=False):
            assert after.init_from.startswith(f"{before.out}/checkpoints/step-{before.steps:07d}")
