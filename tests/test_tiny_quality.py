"""Does the shipped tiny base really see? Held-out world clips it never trained on, answered with the
video in context and without it: the video must carry most of the score."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from f2l.answer import generate_answers
from f2l.data import iter_prompts, load_frames, world_manifest
from f2l.eval.metrics import exact_match, token_f1
from f2l.world.pretrain import PretrainConfig, pretrain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out_rows():
    # test-split clips beyond the 200 the pretrain script scores itself on
    examples = world_manifest("test", 24, frames=8, offset=5000)
    return list(iter_prompts(examples, categories=("short", "background", "main_object", "camera")))


def test_tiny_base_sees_the_video(tiny_base, held_out_rows):
    rows = held_out_rows
    videos = [load_frames(r.example, size=64) for r in rows]
    questions = [r.prompt for r in rows]
    direct = generate_answers(tiny_base, questions, videos, max_new_tokens=32, batch_size=48)
    blind = generate_answers(tiny_base, questions, None, max_new_tokens=32, batch_size=48)
    f1_direct = np.mean([token_f1(p, r.reference) for p, r in zip(direct, rows, strict=True)])
    f1_blind = np.mean([token_f1(p, r.reference) for p, r in zip(blind, rows, strict=True)])
    assert f1_direct > 0.6, f1_direct
    assert f1_direct > f1_blind + 0.2, (f1_direct, f1_blind)

    colour = [
        i for i, r in enumerate(rows) if r.kind == "qa" and r.example.qa and "what color is the" in r.prompt
    ]
    acc_direct = np.mean([exact_match(direct[i], rows[i].reference) for i in colour])
    acc_blind = np.mean([exact_match(blind[i], rows[i].reference) for i in colour])
    assert len(colour) >= 24
    assert acc_direct > 0.6 and acc_direct > acc_blind + 0.3, (acc_direct, acc_blind)


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
