"""f2l.basetrain.grow: a base grown into a bigger preset computes what it computed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from f2l.basetrain.grow import grow
from f2l.chat import model_inputs, prompt_text
from f2l.models.tiny import PRESETS


@pytest.fixture(scope="module")
def random_base(random_tiny_dir):
    """A private copy of the random tiny base: the session's one may carry other modules' LoRA wrappers."""
    from f2l.models import load_base

    return load_base(random_tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def inputs(random_base):
    rng = np.random.default_rng(0)
    from f2l.video import Frames

    frames = Frames(
        pixels=rng.integers(0, 255, size=(6, 64, 64, 3), dtype=np.uint8),
        timestamps=np.arange(6, dtype=np.float64) + 0.5,
    )
    texts = [prompt_text(random_base.processor, "which way does the red circle move?", with_video=True)]
    return model_inputs(random_base.processor, texts, [frames], device="cpu")


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits.double()


def test_grown_to_the_small_sizes_it_computes_the_same_logits(random_base, inputs):
    """Twice as wide (hidden, heads, key/value heads, MLP), two identity layers on top, no noise: the
    logits over a video and a question equal the tiny's to float32 precision."""
    small = PRESETS["small"]
    grown = grow(random_base.model, random_base.processor, small, noise=0.0)
    text = grown.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (256, 6, 8)
    assert sum(p.numel() for p in grown.parameters()) > 3 * sum(
        p.numel() for p in random_base.model.parameters()
    )
    before, after = logits(random_base.model, inputs), logits(grown, inputs)
    scale = before.abs().max()
    assert (after - before).abs().max() < 1e-4 * scale
    assert grown.config.f2l_preset["text_hidden"] == 256  # it records its own sizes


def test_the_noise_breaks_the_copies_apart_and_keeps_the_answers(random_base, inputs):
    """With the default noise the copies of a unit differ (else they would train as one), the logits
    move by a few percent of their range, and the greedy next token stays the same almost everywhere."""
    grown = grow(random_base.model, random_base.processor, PRESETS["small"])
    q = grown.model.text_model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(q[:128], q[128:])
    before, after = logits(random_base.model, inputs), logits(grown, inputs)
    assert 0 < (after - before).abs().max() < 0.1 * before.abs().max()
    assert (after.argmax(-1) == before.argmax(-1)).double().mean() > 0.9
    again = grow(random_base.model, random_base.processor, PRESETS["small"])
    assert torch.equal(q, again.model.text_model.layers[0].self_attn.q_proj.weight)  # seeded


def test_new_layers_are_identities_until_trained(random_base):
    grown = grow(random_base.model, random_base.processor, PRESETS["small"])
    layers = grown.model.text_model.layers
    for new in layers[4:]:
        assert not new.self_attn.o_proj.weight.any() and not new.mlp.down_proj.weight.any()
        assert new.self_attn.q_proj.weight.any()  # the rest is the last old layer's, so gradients flow


def test_sizes_that_are_no_whole_multiple_or_another_vision_tower_are_refused(random_base):
    tiny = PRESETS["tiny"]
    for bad, message in (
        (
            dataclasses.replace(tiny, name="x", text_hidden=192, text_heads=6, text_kv_heads=3),
            "whole multiple",
        ),
        (dataclasses.replace(tiny, name="x", text_hidden=256, text_heads=4), "attention heads"),
        (dataclasses.replace(tiny, name="x", text_layers=2), "layers"),
        (dataclasses.replace(tiny, name="x", vision_hidden=192), "vision tower"),
    ):
        with pytest.raises(ValueError, match=message):
            grow(random_base.model, random_base.processor, bad)


def test_pretraining_grows_its_start_from_a_smaller_base(tmp_path, random_tiny_dir):
    """``--grow-from`` starts a run at the preset's sizes from the grown smaller base (its tokenizer
    too) and ships a checkpoint of the preset's sizes; with ``--init-from`` as well it is refused."""
    from transformers import AutoConfig, AutoTokenizer

    from f2l.basetrain.pretrain import PretrainConfig, pretrain

    settings = dict(
        preset="small", steps=2, batch_size=2, eval_every=100, val_clips=1, test_clips=1, max_new_tokens=2
    )
    summary = pretrain(
        PretrainConfig(
            **settings, max_frames=4, threads=1, grow_from=str(random_tiny_dir), out=str(tmp_path / "s")
        )
    )
    config = AutoConfig.from_pretrained(tmp_path / "s")
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (256, 6)
    assert summary["config"]["grow_from"] == str(random_tiny_dir)
    tokenizers = [AutoTokenizer.from_pretrained(d) for d in (tmp_path / "s", random_tiny_dir)]
    assert tokenizers[0].get_vocab() == tokenizers[1].get_vocab()
    with pytest.raises(ValueError, match="pick one"):
        pretrain(PretrainConfig(**settings, grow_from="tiny", init_from="tiny", out=str(tmp_path / "x")))
