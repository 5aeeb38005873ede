"""Does each shipped base (the tiny, and the small grown from it) really see? Held-out world clips it
never trained on, answered with the video in context and without it: the video must carry most of the
score."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from f2l.basetrain.pretrain import PretrainConfig, eval_rows, evaluate, pretrain
from f2l.train.checkpoints import STATE_FILE

pytestmark = pytest.mark.slow

# How much the video must add, by QA type and scale. The small's blind answers to "which came first?"
# name an object in the right template (0.70 token-F1 on these clips against the tiny's 0.3-0.4), so
# the video's margin there is smaller at that scale although it answers as well (0.85).
MARGINS = {
    "tiny": {"attribute": 0.3, "background": 0.1, "count": 0.3, "temporal_order": 0.3, "all": 0.15},
    "tiny-small": {"attribute": 0.5, "background": 0.1, "count": 0.4, "temporal_order": 0.08, "all": 0.15},
}


@pytest.fixture(scope="module", params=sorted(MARGINS))
def held_out_scores(request, tiny_base, small_base):
    """Token-F1 by caption category and QA type on test-split clips beyond the 200 the pretrain script
    scores itself on, with the video in context and without it, for one shipped scale."""
    base = {"tiny": tiny_base, "tiny-small": small_base}[request.param]
    rows = eval_rows("test", 24, frames=8, offset=5000)
    scores = evaluate(base, rows, frame_size=64, max_new_tokens=40, batch_size=48)
    return request.param, {m: {"all": s["token_f1"], **s["by_category"]} for m, s in scores.items()}


def test_each_shipped_base_sees_the_video(held_out_scores):
    """What one frame shows (colours, the background) and what only the sequence shows (how many objects
    came and went, which event came first), at both scales. The camera caption is not asserted: the
    shipped bases tell pans from zooms only a little better than their prior (docs/bases.md, "Known gap:
    texture and camera")."""
    scale, scores = held_out_scores
    direct, blind = scores["direct"], scores["no_video"]
    for key, margin in MARGINS[scale].items():  # attribute: "what color is the <shape>?"
        assert direct[key] > blind[key] + margin, (scale, key, direct, blind)


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


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """A run interrupted after its step-2 snapshot and started again ends with exactly the weights of an
    uninterrupted run (temporal heads, the position head and the per-turn loss on, so every saved part is
    exercised)."""
    import f2l.basetrain.pretrain as pretrain_module

    def config(name: str) -> PretrainConfig:
        return PretrainConfig(
            steps=4,
            batch_size=2,
            save_every=2,
            eval_every=100,
            val_clips=1,
            test_clips=1,
            tokenizer_clips=100,
            max_new_tokens=2,
            max_frames=4,
            temporal_weight=1.0,
            position_weight=1.0,
            motion_weight=2.0,
            head_warmup=1,
            per_turn_loss=True,
            out=str(tmp_path / name),
        )

    pretrain(config("straight"))
    real_batch, calls = pretrain_module.training_batch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # step 4, after the step-2 snapshot
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "training_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(config("resumed"))
    assert (tmp_path / ".resumed.resume" / STATE_FILE).is_file() and not (tmp_path / "resumed").exists()
    monkeypatch.setattr(pretrain_module, "training_batch", real_batch)
    with pytest.raises(SystemExit, match="other settings"):
        pretrain(replace(config("resumed"), lr=1e-4))
    pretrain(config("resumed"))

    from safetensors.torch import load_file

    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    log = (tmp_path / "resumed" / "pretrain_log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in log]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    with_video = [r for r in records if "grounding_loss" in r]
    assert with_video and all(r["position_loss"] > 0 for r in with_video)
    for r in with_video:  # the logged total is the weighted sum of the logged parts
        temporal = sum(
            v * (2.0 if k == "temporal_motion" else 1.0) for k, v in r.items() if k.startswith("temporal_")
        )
        total = r["lm_loss"] + r["grounding_loss"] + r["position_loss"] + temporal
        assert r["loss"] == pytest.approx(total, rel=1e-5)
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed)  # the clock carries over the interruption rather than restarting
    assert not (tmp_path / ".resumed.resume").exists()  # a finished run leaves no snapshot behind
