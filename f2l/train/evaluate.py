"""Held-out evaluation during a run (``evaluate``): token-F1 against the references of the adapter alone
(``f2l``), the video in context (``direct``) and the question alone (``no_video``), answered by the
evaluation harness as every study is; in the chunk stage also the composed adapter on held-out long clips
(``evaluate_composed``). It reads no gradient and draws no training random number.
"""

from __future__ import annotations

import numpy as np
import torch

from f2l.answer import generate
from f2l.data import Example, LongClip, clip_prompts, load_frames, long_clip_prompt, long_pool
from f2l.eval.harness import answer_clip
from f2l.eval.metrics import score_answers
from f2l.hypernet import Hypernet
from f2l.models import Base
from f2l.pipeline import Frames2LoRA
from f2l.train.config import TrainConfig
from f2l.train.data import composition_weight


@torch.inference_mode()
def evaluate(
    base: Base, hypernet: Hypernet, examples: list[Example], cfg: TrainConfig, frame_size: int
) -> dict[str, float]:
    """Held-out token-F1 against the references for the adapter alone (``f2l``), the video in context
    (``direct``) and the question alone (``no_video``), plus f2l's agreement with direct; answered by
    the evaluation harness (``f2l.eval.harness``), as every study is."""
    was_training = hypernet.training
    pipeline = Frames2LoRA(base, hypernet, hypernet_id="training")  # a fresh adapter cache: weights moved
    methods = ("f2l", "direct", "no_video")
    preds: dict[str, list[str]] = {m: [] for m in methods}
    refs: list[str] = []
    for e in examples:
        prompts = clip_prompts(e, cfg.qa_per_type)
        frames = load_frames(e, num_frames=cfg.frames, size=frame_size)
        answers = answer_clip(
            pipeline, frames, [p.prompt for p in prompts], methods, max_new_tokens=cfg.max_new_tokens
        )
        for m in methods:
            preds[m] += [a.text for a in answers[m]]
        refs += [p.reference for p in prompts]
    scores = {m: float(score_answers("token_f1", preds[m], refs).mean()) for m in methods}
    scores["f2l_vs_direct"] = float(score_answers("token_f1", preds["f2l"], preds["direct"]).mean())
    if cfg.stage == "chunk":
        scores.update(
            evaluate_composed(pipeline, long_pool("val", cfg.val_clips, cfg.max_segments), cfg, frame_size)
        )
    hypernet.train(was_training)
    return scores


def evaluate_composed(
    pipeline: Frames2LoRA, clips: list[LongClip], cfg: TrainConfig, frame_size: int
) -> dict[str, float]:
    """Held-out token-F1 of the composed adapter (segments internalized alone, composed by ``cfg.compose``)
    on long clips' items, over all items (``composed``) and by what they need (``composed_one``,
    ``composed_several``)."""
    scores: dict[str, list[float]] = {"one": [], "several": []}
    for clip in clips:
        adapter = pipeline.internalize(clip.frames(cfg.frames, frame_size), chunk_frames=cfg.frames)
        adapter = adapter.scaled(composition_weight(cfg.compose, clip.segments))
        prompts = [long_clip_prompt(it) for it in clip.items]
        answers = generate(pipeline.base, prompts, adapter=adapter, max_new_tokens=cfg.max_new_tokens)
        f1 = score_answers("token_f1", [a.text for a in answers], [it.answer for it in clip.items])
        for item, score in zip(clip.items, f1.tolist(), strict=True):
            scores[item.needs].append(score)
    out = {"composed": float(np.mean(scores["one"] + scores["several"]))}
    out.update({f"composed_{need}": float(np.mean(v)) for need, v in scores.items() if v})
    return out
