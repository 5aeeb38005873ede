"""Does the shipped tiny base really see? Held-out world clips it never trained on, answered with the
video in context and without it: the video must carry most of the score."""

from __future__ import annotations

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from f2l.world.pretrain import PretrainConfig, eval_rows, evaluate, pretrain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out_scores(tiny_base):
    """Token-F1 by caption category and QA type on test-split clips beyond the 200 the pretrain script
    scores itself on, with the video in context and without it."""
    rows = eval_rows("test", 24, frames=8, offset=5000)
    scores = evaluate(tiny_base, rows, frame_size=64, max_new_tokens=40, batch_size=48)
    return {m: {"all": s["token_f1"], **s["by_category"]} for m, s in scores.items()}


def test_tiny_base_sees_the_video(held_out_scores):
    direct, blind = held_out_scores["direct"], held_out_scores["no_video"]
    assert direct["background"] >= 0.9 and direct["background"] > blind["background"] + 0.15, (direct, blind)
    assert direct["camera"] > blind["camera"] + 0.1, (direct, blind)
    assert direct["attribute"] > blind["attribute"] + 0.3, (direct, blind)  # "what color is the <shape>?"
    assert direct["all"] > blind["all"] + 0.08, (direct, blind)


def test_pretrain_script_builds_a_loadable_checkpoint(tmp_path):
    cfg = PretrainConfig(
        steps=3,
        batch_size=4,
        eval_every=3,
        val_clips=1,
        test_clips=1,
        tokenizer_clips=100,
        max_new_tokens=4,
        out=str(tmp_path / "ckpt"),
    )
    summary = pretrain(cfg)
    assert set(summary["test"]) == {"direct", "no_video"}
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "ckpt")
    processor = AutoProcessor.from_pretrained(tmp_path / "ckpt")
    assert model.config.text_config.num_hidden_layers == 4 and processor.image_seq_len == 16
    assert (tmp_path / "ckpt" / "pretrain_scores.json").is_file()
    assert not list(tmp_path.glob(".ckpt.*")), "no temp directory left behind"
