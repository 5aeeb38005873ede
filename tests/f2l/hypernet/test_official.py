"""The authors' hypernetwork as f2l's ``official`` kind, checked against outputs the official code wrote
(``../shared/fixtures/official-frames2lora``: a checkpoint at the tiny base's shapes and its factors for
given layer states)."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import peft
import pytest
import torch
from safetensors.torch import load_file
from support import REPO

from f2l.adapter import export_peft, use_adapter
from f2l.chat import model_inputs, prompt_text
from f2l.encode import LayerStates, internalization_inputs
from f2l.hypernet import OFFICIAL_CONTEXT, OfficialHypernet, PerceiverHypernet, load_hypernet
from f2l.pipeline import Frames2LoRA
from f2l.world import render_clip


@pytest.fixture(scope="module")
def converted(official_hypernet) -> Path:
    return official_hypernet


@pytest.fixture(scope="module")
def hypernet(converted) -> OfficialHypernet:
    return load_hypernet(converted).eval()


@pytest.fixture(scope="module")
def io(official_fixtures) -> dict[str, torch.Tensor]:
    return load_file(official_fixtures / "tiny-official-io.safetensors")


def fixture_states(io, rows=slice(None), start: int = 0) -> list[LayerStates]:
    features, mask = io["features"][rows, :, start:], io["attention_mask"][rows, start:].bool()
    return [LayerStates(layer, features[:, layer], mask) for layer in range(features.shape[1])]


def test_converted_directory_is_an_official_kind_with_the_checkpoint_sizes(converted, hypernet):
    meta = json.loads((converted / "hypernet_config.json").read_text())
    assert meta["kind"] == "official" and meta["converted_from"]["base_model_name_or_path"] == "f2l/tiny"
    c = hypernet.config
    assert (c.rank, c.lora_alpha, c.latent, c.n_latent_queries, c.num_blocks) == (16, 128.0, 64, 8, 2)
    assert c.module_shapes == {"down_proj": (384, 128)} and c.base_id == "tiny"
    assert sum(p.numel() for p in hypernet.parameters()) == 1_494_272  # the fixture README's count
    assert c.context == OFFICIAL_CONTEXT and not c.context.generation_prompt


def test_generated_and_combined_factors_equal_the_official_outputs(hypernet, io):
    with torch.no_grad():
        generated = hypernet.factors_from_states(fixture_states(io))
        adapter = hypernet.to_adapter(generated)
    for i, name in enumerate("AB"):
        torch.testing.assert_close(
            generated["down_proj"][i], io[f"generated.down_proj.{name}"], rtol=0, atol=1e-5
        )
        torch.testing.assert_close(
            adapter.factors["down_proj"][i], io[f"combined.down_proj.{name}"], rtol=0, atol=1e-5
        )
    assert adapter.rank == 32 and adapter.scaling == 128.0  # lora_alpha as is, not divided by r
    assert io["generated.down_proj.B"].abs().max() > 0.1  # B is not the zero of a fresh head
    assert all(p["static_rank_slots"] == [16, 32] for p in adapter.provenance)


def test_two_chunk_composition_is_the_chunks_in_order_then_the_bias_once(hypernet, io):
    with torch.no_grad():
        generated = hypernet.factors_from_states(fixture_states(io))
        for row, order in ((0, [0, 1]), (1, [1, 0])):
            segments = {m: (a[order], b[order]) for m, (a, b) in generated.items()}
            composed = hypernet.compose_segments(segments, {"video_id": f"row{row}"})
            assert composed.rank == 48 and composed.provenance["static_rank_slots"] == [32, 48]
            for i, name in enumerate("AB"):
                expected = io[f"two_chunks.down_proj.{name}"][row]
                torch.testing.assert_close(composed.factors["down_proj"][i], expected, rtol=0, atol=1e-5)


def test_left_padding_changes_nothing(hypernet, io):
    """Row 1 of the fixture is left-padded by 5 tokens: read alone without them, it writes the same factors."""
    assert not io["attention_mask"][1, :5].any() and io["attention_mask"][1, 5:].all()
    with torch.no_grad():
        padded = hypernet.factors_from_states(fixture_states(io))["down_proj"]
        alone = hypernet.factors_from_states(fixture_states(io, rows=slice(1, 2), start=5))["down_proj"]
    for p, a in zip(padded, alone, strict=True):
        torch.testing.assert_close(a[0], p[1], rtol=0, atol=1e-5 * float(p.abs().max()))


def test_layers_read_in_groups_equal_layers_read_alone(hypernet, io):
    states = fixture_states(io)
    with torch.no_grad():
        alone = torch.cat([hypernet.read_layers([s]) for s in states], 1)
        together = hypernet.read_layers(states)
        with pytest.raises(ValueError, match="consecutive"):
            hypernet.read_layers([states[0], states[2]])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5 * float(alone.abs().max()))


def test_a_mutated_weight_breaks_the_match(hypernet, io):
    """The fixture comparison can fail: one scaled norm weight moves the factors far past 1e-5."""
    broken = copy.deepcopy(hypernet)
    with torch.no_grad():
        broken.aggregator.perceiver.encoder.layers[1].post_ff_layernorm.weight.mul_(1.5)
        moved = broken.factors_from_states(fixture_states(io))["down_proj"][0]
    assert (moved - io["generated.down_proj.A"]).abs().max() > 1e-3


def test_one_loader_for_every_kind(converted, tmp_path):
    assert type(load_hypernet(converted)) is OfficialHypernet
    assert type(load_hypernet(REPO / "f2l/checkpoints/tiny-hypernet")) is PerceiverHypernet
    meta = json.loads((converted / "hypernet_config.json").read_text())
    (tmp_path / "hypernet_config.json").write_text(json.dumps({**meta, "kind": "other"}))
    with pytest.raises(ValueError, match="unknown hypernetwork kind 'other'"):
        load_hypernet(tmp_path)


@pytest.fixture(scope="module")
def official_pipeline(converted, tiny_base):
    return Frames2LoRA.from_pretrained(converted, base=tiny_base)


def test_the_base_reads_the_video_the_official_way(official_pipeline, monkeypatch):
    """Internalization prompt without the assistant cue; files sampled at 1 fps, at most 12 frames."""
    seen = []
    real = internalization_inputs

    def spy(base, videos, context, **kwargs):
        seen.append(context)
        return real(base, videos, context, **kwargs)

    monkeypatch.setattr("f2l.pipeline.internalization_inputs", spy)
    clip = render_clip(1_010_000, num_frames=8, size=64).frames
    official_pipeline.internalize(clip)
    assert seen == [OFFICIAL_CONTEXT]
    text = prompt_text(
        official_pipeline.base.processor, OFFICIAL_CONTEXT.prompt, with_video=True, generation_prompt=False
    )
    assert text.rstrip().endswith("<end_of_utterance>") and "Assistant:" not in text

    long, short = np.zeros((100, 16, 16, 3), np.uint8), np.zeros((8, 16, 16, 3), np.uint8)  # arrays: 1 fps
    sampled = official_pipeline.sample_video(long)
    assert len(sampled.timestamps) == 12 and sampled.timestamps[0] < 10 and sampled.timestamps[-1] >= 90
    assert len(official_pipeline.sample_video(short).timestamps) == 8
    assert len(official_pipeline.sample_video(long, frames=5).timestamps) == 5  # the caller's choice wins


def test_f2l_kind_reads_every_frame_by_default(tiny_base):
    own = Frames2LoRA.from_pretrained("tiny", base=tiny_base)
    assert len(own.sample_video(np.zeros((100, 16, 16, 3), np.uint8)).timestamps) == 100


def test_tiny_base_under_the_converted_adapter_follows_the_official_formula_and_peft(hypernet, io, tmp_path):
    """Logits of the shipped tiny base with the fixture's combined adapter: f2l's wrappers, the official
    ``W x + lora_alpha B^T (A x)`` on every down_proj (forward hooks on a fresh copy), and PEFT loading
    ``export_peft``'s directory (lora_alpha converted to PEFT's alpha / r) agree."""
    from f2l.models import load_base

    with torch.no_grad():
        adapter = hypernet.to_adapter(hypernet.factors_from_states(fixture_states(io)))[0]
    ours, formula, fresh = (load_base("tiny", device="cpu") for _ in range(3))
    a, b = adapter.factors["down_proj"]
    alpha = hypernet.config.lora_alpha

    def official(layer):
        return lambda module, args, out: out + alpha * (args[0] @ a[layer].T) @ b[layer]

    for layer, block in enumerate(formula.text_model.layers):
        block.mlp.down_proj.register_forward_hook(official(layer))
    config = json.loads((export_peft(adapter, ours, tmp_path / "peft") / "adapter_config.json").read_text())
    assert config["lora_alpha"] == pytest.approx(alpha * adapter.rank) and config["r"] == 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = peft.PeftModel.from_pretrained(fresh.model, tmp_path / "peft")

    texts = [prompt_text(ours.processor, q, with_video=False) for q in ("what color is it?", "how many")]
    inputs = model_inputs(ours.processor, texts)
    with torch.no_grad():
        base_logits = ours.model(**inputs).logits
        with use_adapter(ours.model, adapter):
            our_logits = ours.model(**inputs).logits
        formula_logits = formula.model(**inputs).logits
        peft_logits = peft_model(**inputs).logits
    assert (our_logits - base_logits).abs().max() > 0.5  # the adapter changes the answer distribution
    scale = float(formula_logits.abs().max())
    torch.testing.assert_close(our_logits, formula_logits, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(peft_logits, formula_logits, rtol=0, atol=1e-5 * scale)


def test_manifest_videos_are_sampled_the_official_way_unless_the_caller_says(official_pipeline, tmp_path):
    from f2l.data import Example, VideoRef
    from f2l.video import write_video

    pixels = np.zeros((60, 32, 32, 3), np.uint8)
    write_video(tmp_path / "clip.mp4", pixels, fps=2.0)  # 30 s: 30 frames at 1 fps, capped to 12
    example = Example("clip", "files", VideoRef.file(str(tmp_path / "clip.mp4")))
    assert len(official_pipeline.example_frames(example).timestamps) == 12
    assert len(official_pipeline.example_frames(example, frames=5).timestamps) == 5


def test_the_chunked_path_composes_segments_the_official_way(official_pipeline):
    """``internalize(chunk_frames=)`` on an official-kind hypernetwork: the segments' generated ranks in
    order, then the static bias once, as composed from the segments' layer states directly."""
    from f2l.encode import collect_hidden_states
    from f2l.video import Frames

    clip = render_clip(1_010_001, num_frames=8, size=64).frames
    composed = official_pipeline.internalize(clip, chunk_frames=4)
    hypernet, r = official_pipeline.hypernet, official_pipeline.hypernet.config.rank
    segments = [Frames(clip.pixels[i : i + 4], clip.timestamps[i : i + 4], clip.source) for i in (0, 4)]
    with torch.no_grad():
        states = collect_hidden_states(
            official_pipeline.base, internalization_inputs(official_pipeline.base, segments, hypernet.context)
        )
        a, b = hypernet.factors_from_states(states)["down_proj"]
    assert composed.rank == 3 * r and composed.provenance["static_rank_slots"] == [2 * r, 3 * r]
    got_a, got_b = composed.factors["down_proj"]
    for i in range(2):
        torch.testing.assert_close(got_a[:, i * r : (i + 1) * r], a[i], rtol=0, atol=1e-5)
        torch.testing.assert_close(got_b[:, i * r : (i + 1) * r], b[i], rtol=0, atol=1e-5)
    torch.testing.assert_close(got_a[:, 2 * r :], hypernet.bias_A["down_proj"].detach(), rtol=0, atol=0)
    assert not torch.allclose(a[0], a[1])  # the two segments wrote different factors
