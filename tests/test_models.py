"""The base loader and the tiny SmolVLM2 checkpoint: real Hugging Face classes, offline only."""

from __future__ import annotations

import dataclasses
import json

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


def test_shipped_tiny_records_its_held_out_scores():
    scores = json.loads((resolve_checkpoint("tiny") / "pretrain_scores.json").read_text())
    direct, no_video = scores["test"]["direct"]["token_f1"], scores["test"]["no_video"]["token_f1"]
    assert direct > no_video + 0.1, (direct, no_video)
    by_type = scores["test"]["direct"]["by_category"], scores["test"]["no_video"]["by_category"]
    assert by_type[0]["attribute"] > by_type[1]["attribute"] + 0.4  # colours and shapes come from the frames


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


def test_hub_cache_checkpoints_resolve_offline(tmp_path, monkeypatch, random_tiny_dir):
    """A real checkpoint in the Hugging Face cache layout is found without the network."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--HuggingFaceTB--SmolVLM2-500M-Video-Instruct" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("a" * 40)
    for f in random_tiny_dir.iterdir():
        (snapshot / f.name).symlink_to(f)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    assert resolve_checkpoint("smolvlm2-500m") == snapshot


@pytest.mark.parametrize(
    ("shape", "params", "tokens_per_frame"),
    [("smolvlm2-500m", 507e6, 64), ("smolvlm2-2.2b", 2.25e9, 81)],
)
def test_real_size_shapes_have_the_published_parameter_counts(shape, params, tokens_per_frame):
    """The GPU check's stand-ins for the real checkpoints: same architecture, so the same costs."""
    from transformers import AutoModelForImageTextToText

    from f2l.models.shapes import SHAPES, shape_config

    config = shape_config(shape)
    with torch.device("meta"):  # sizes only: no memory, no initialisation
        model = AutoModelForImageTextToText.from_config(config)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - params) / params < 0.01, count
    assert SHAPES[shape].image_seq_len == tokens_per_frame
    assert model.config.text_config.vocab_size == 49_280


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
