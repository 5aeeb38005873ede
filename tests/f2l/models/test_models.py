"""The base loader and the tiny SmolVLM2 checkpoint: real Hugging Face classes, offline only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from f2l.models import CheckpointNotFoundError, load_base, resolve_checkpoint
from f2l.models.tiny import PRESETS


def test_shipped_tiny_loads_through_the_auto_classes():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_checkpoint("tiny")
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    assert type(model).__name__ == "SmolVLMForConditionalGeneration"
    assert type(processor).__name__ == "SmolVLMProcessor"
    assert type(processor.video_processor).__name__ == "SmolVLMVideoProcessor"
    assert model.config.model_type == "smolvlm" and model.config.text_config.model_type == "llama"
    assert processor.image_seq_len == PRESETS["tiny"].image_seq_len == 16
    files = {p.name for p in path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    size_mb = sum(p.stat().st_size for p in path.iterdir()) / 2**20
    assert size_mb < 20, f"the shipped tiny checkpoint should be a few MB, is {size_mb:.1f} MB"


# What docs/bases.md states of each shipped scale: vision layers x width, frame side, patch; text layers x
# width.
SHIPPED_SHAPES = {
    "tiny": ("tiny", (2, 128, 64, 8), (4, 128)),
    "small": ("small", (2, 128, 64, 8), (6, 256)),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_SHAPES))
def test_each_shipped_base_is_its_preset_and_has_the_parameters_it_records(name, tiny_base, small_base):
    """The checkpoint is what its ``PRESETS`` entry builds (its config rebuilt from the preset and the
    shipped tokenizer), with the parameter count and preset its ``pretrain_scores.json`` records. Their
    held-out scores are measured, not read, in test_tiny_quality."""
    from transformers import AutoModelForImageTextToText

    from f2l.models.tiny import build_config

    preset_name, vision_shape, text_shape = SHIPPED_SHAPES[name]
    base = tiny_base if name == "tiny" else small_base
    shipped = base.model.config
    rebuilt = build_config(PRESETS[preset_name], base.tokenizer)
    for ours, theirs in (
        (rebuilt.text_config, shipped.text_config),
        (rebuilt.vision_config, shipped.vision_config),
    ):
        a, b = ours.to_dict(), theirs.to_dict()
        diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if k != "dtype" and a.get(k) != b.get(k)}
        assert not diff, diff
    assert (shipped.scale_factor, shipped.image_token_id) == (rebuilt.scale_factor, rebuilt.image_token_id)
    vision, text = shipped.vision_config, shipped.text_config
    assert (
        vision.num_hidden_layers,
        vision.hidden_size,
        vision.image_size,
        vision.patch_size,
    ) == vision_shape
    assert (text.num_hidden_layers, text.hidden_size) == text_shape

    record = json.loads((resolve_checkpoint(name) / "pretrain_scores.json").read_text())
    count = sum(p.numel() for p in base.model.parameters())
    with torch.device("meta"):
        built = AutoModelForImageTextToText.from_config(rebuilt)
    assert count == sum(p.numel() for p in built.parameters()) == record["parameters"]
    preset = dataclasses.asdict(PRESETS[preset_name])
    assert {k: preset[k] for k in record["preset"]} == record["preset"]
    size_mb = sum(p.stat().st_size for p in resolve_checkpoint(name).iterdir()) / 2**20
    assert size_mb < 30, f"a shipped base should be a few tens of MB at most, {name} is {size_mb:.1f} MB"


def test_the_second_scale_has_several_times_the_tiny_text_model(tiny_base, small_base):
    """The issue's "several times the tiny's parameters (wider and deeper text model)"."""
    small = small_base
    tiny_text = sum(p.numel() for p in tiny_base.text_model.parameters())
    small_text = sum(p.numel() for p in small.text_model.parameters())
    assert small_text > 4 * tiny_text, (small_text, tiny_text)
    assert len(small.text_model.layers) > len(tiny_base.text_model.layers)
    assert small.model.config.text_config.hidden_size > tiny_base.model.config.text_config.hidden_size


def test_a_frame_is_image_seq_len_visual_tokens_through_processor_and_model(tiny_base):
    """The processor's placeholders, the vision tower's patches and the connector's tokens, frame for
    frame: (64 / 8)^2 = 64 patches, pixel-shuffled by 2 into 16 tokens of the text width."""
    processor, frames = tiny_base.processor, 3
    inputs = video_inputs(processor, frames, 64)
    per_frame = PRESETS["tiny"].image_seq_len
    assert visual_tokens(processor, inputs) == frames * per_frame == frames * 16
    with torch.no_grad():
        out = tiny_base.model.model.get_image_features(inputs["pixel_values"])
    assert tuple(out.last_hidden_state.shape) == (frames, 64, 128)  # the vision tower's patches
    (tokens,) = out.pooler_output  # the connector's, one entry per video
    assert tuple(tokens.shape) == (frames * per_frame, 128)


def video_inputs(processor, frames: int, size: int):
    from f2l.chat import model_inputs, prompt_text
    from f2l.video import Frames

    video = Frames(np.zeros((frames, size, size, 3), np.uint8), np.arange(frames, dtype=float))
    return model_inputs(processor, [prompt_text(processor, "q", with_video=True)], [video])


def visual_tokens(processor, inputs) -> int:
    from f2l.chat import count_tokens

    return count_tokens(processor, inputs["input_ids"][0], inputs["attention_mask"][0])["visual"]


def test_load_base_freezes_the_model(random_tiny_dir):
    base = load_base(random_tiny_dir, device="cpu")
    assert not base.model.training
    assert not any(p.requires_grad for p in base.model.parameters())
    assert base.dtype == torch.float32
    assert len(base.text_model.layers) == PRESETS["tiny"].text_layers


def test_tokenizer_is_byte_level_and_knows_the_smolvlm_special_tokens(random_base):
    tok = random_base.tokenizer
    text = "Ünïcödé 🎥 a question nobody trained on?"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    for name in ("image_token", "fake_image_token", "global_image_token", "end_of_utterance_token"):
        token = getattr(tok, name)
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1, name
    assert random_base.processor.image_token_id == random_base.model.config.image_token_id


def test_unknown_names_and_missing_checkpoints_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        CheckpointNotFoundError, match="hf download HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    ):
        resolve_checkpoint("smolvlm2-500m")
    with pytest.raises(CheckpointNotFoundError, match="Unknown base 'nonsense'"):
        resolve_checkpoint("nonsense")
    (tmp_path / "not-a-checkpoint").mkdir()
    with pytest.raises(CheckpointNotFoundError, match="no config.json"):
        resolve_checkpoint(tmp_path / "not-a-checkpoint")


def test_the_small_bases_old_name_resolves_to_it():
    """`tiny-small`, the name older records store for the `small` base (``f2l.models.RENAMED``), is the same
    checkpoint; only a whole old name or an old name's prefix of a shipped name is renamed."""
    from f2l.models import CHECKPOINTS_DIR, current_name

    assert resolve_checkpoint("tiny-small") == resolve_checkpoint("small") == CHECKPOINTS_DIR / "small"
    assert current_name("tiny-small-chunk", {"small-chunk"}) == "small-chunk"
    assert current_name("tiny-small-chunk", {"small"}) == "tiny-small-chunk"
    assert current_name("tiny-smallest", {"small", "smallest"}) == "tiny-smallest"
    with pytest.raises(CheckpointNotFoundError, match="Unknown base 'tiny-small-chunk'"):
        resolve_checkpoint("tiny-small-chunk")


@pytest.mark.parametrize(
    "name, repo",
    [("smolvlm2-500m", "SmolVLM2-500M-Video-Instruct"), ("smolvlm2-256m", "SmolVLM2-256M-Video-Instruct")],
)
def test_hub_cache_checkpoints_resolve_offline(tmp_path, monkeypatch, random_tiny_dir, name, repo):
    """A real checkpoint in the Hugging Face cache layout is found without the network (256M: the real
    VLM built on the smol base's text model)."""
    cache = tmp_path / "hub"
    snapshot = cache / f"models--HuggingFaceTB--{repo}" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    for f in random_tiny_dir.iterdir():
        (snapshot / f.name).symlink_to(f)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert resolve_checkpoint(name) == snapshot


@pytest.mark.parametrize(
    ("shape", "params", "tokens_per_frame"),
    [("smolvlm2-500m", 507e6, 64), ("smolvlm2-2.2b", 2.25e9, 81)],
)
def test_real_size_shapes_have_the_published_parameter_counts_and_tokens_a_frame(
    shape, params, tokens_per_frame, tiny_base
):
    """The GPU check's stand-ins for the real checkpoints: same architecture, so the same costs. A frame
    is ``tokens_per_frame`` tokens both as the processor lays out the prompt and as the connector maps
    the vision tower's patches (any tokenizer with SmolVLM's special tokens lays out the same)."""
    from transformers import AutoModelForImageTextToText

    from f2l.models.shapes import REAL_VOCAB, SHAPES, shape_config
    from f2l.models.tiny import build_processor
    from f2l.world import split_seeds, world_text_corpus

    preset, config = SHAPES[shape], shape_config(shape, world_text_corpus(split_seeds("train", 200)))
    with torch.device("meta"):  # sizes only: no memory, no initialisation
        model = AutoModelForImageTextToText.from_config(config)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - params) / params < 0.01, count
    assert model.config.text_config.vocab_size == REAL_VOCAB == 49_280

    patches = (preset.frame_size // preset.patch_size) ** 2
    connected = model.model.connector(torch.empty(1, patches, preset.vision_hidden, device="meta"))
    assert tuple(connected.shape) == (1, tokens_per_frame, preset.text_hidden)
    processor = build_processor(preset, tiny_base.tokenizer)
    inputs = video_inputs(processor, 2, preset.frame_size)
    assert visual_tokens(processor, inputs) == 2 * tokens_per_frame
    assert tuple(inputs["pixel_values"].shape[-2:]) == (preset.frame_size,) * 2


def test_build_shape_writes_a_loadable_untrained_checkpoint(tmp_path, monkeypatch):
    """The shape builder's own path, at the tiny sizes (the real ones are built on a GPU machine)."""
    from f2l.models import shapes

    monkeypatch.setitem(shapes.SHAPES, "tiny-rows", dataclasses.replace(PRESETS["tiny"], embedding_rows=2048))
    assert shapes.main(["tiny-rows", "--out", str(tmp_path / "shape"), "--dtype", "bfloat16"]) == 0
    from safetensors import safe_open

    with safe_open(tmp_path / "shape" / "model.safetensors", "pt") as f:  # written as asked
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # noqa: SIM118 (not a dict)
    base = load_base(tmp_path / "shape", device="cpu")  # float32 on CPU, as any base
    assert base.model.get_input_embeddings().weight.shape[0] == 2048 > len(base.tokenizer)
    ids = base.tokenizer("a red circle", return_tensors="pt").input_ids
    assert torch.isfinite(base.model(input_ids=ids).logits.float()).all()
