"""What a distillation run trains on: the pool of videos and held-out clips (``load_examples``), the rows a
video is trained on (``video_prompts``: a prompt, its reference, its label), the frames the teacher sees
and the segments the hypernetwork reads, the targets of every row (``build_targets``: the teacher's top-k
from ``f2l.teacher``'s cache, or the reference), and the frozen base's states of every segment
(``fill_state_cache``). Under DDP rank 0 writes the teacher's targets and every rank encodes its share
of the states; the others wait at a barrier and read them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from f2l.data import (
    Example,
    LongClip,
    clip_prompts,
    load_frames,
    long_clip_prompt,
    long_pool,
    read_manifest,
    world_manifest,
)
from f2l.distributed import rank as dist_rank
from f2l.distributed import world_size
from f2l.eval.metrics import score_answers
from f2l.models import Base, load_base
from f2l.state_cache import StateCache, encode_clip
from f2l.teacher import TeacherCache, TeacherRequest, TeacherTarget, teacher_targets
from f2l.train.config import TrainConfig
from f2l.video import Frames


class TrainRow(NamedTuple):
    """One prompt a video is trained on, its reference, and its ``label`` (a caption category or QA type;
    a long clip's item: its benchmark), which ``TrainConfig.prompt_weights`` weighs."""

    prompt: str
    reference: str
    label: str


def video_prompts(video: Example | LongClip, qa_per_type: int) -> list[TrainRow]:
    """The rows a video is trained on: a clip's ``clip_prompts``, a long clip's items."""
    if isinstance(video, LongClip):
        return [TrainRow(long_clip_prompt(it), it.answer, it.benchmark) for it in video.items]
    return [TrainRow(p.prompt, p.reference, p.label) for p in clip_prompts(video, qa_per_type)]


def video_frames(video: Example | LongClip, frames: int, size: int) -> Frames:
    """All of a video's frames (what the teacher sees): ``frames`` of a clip, ``frames`` a segment of a
    long one."""
    if isinstance(video, LongClip):
        return video.frames(frames, size)
    return load_frames(video, num_frames=frames, size=size)


def video_segments(video: Example | LongClip, frames: int, size: int) -> list[Frames]:
    """What the hypernetwork reads of a video, a clip each: a clip whole, a long clip segment by segment."""
    whole = video_frames(video, frames, size)
    if not isinstance(video, LongClip):
        return [whole]
    return [
        Frames(whole.pixels[i : i + frames], whole.timestamps[i : i + frames], whole.source)
        for i in range(0, len(whole.timestamps), frames)
    ]


def segment_ids(video: Example | LongClip) -> list[str]:
    return video.segment_ids if isinstance(video, LongClip) else [video.id]


def composition_weight(compose: str, segments: int) -> float:
    """Every segment adapter's weight in its clip's composition: ``1/n`` (``scaled``: the mean of the
    segments' weight changes) or 1 (``plain``: their sum)."""
    return 1.0 / segments if compose == "scaled" else 1.0


def load_examples(cfg: TrainConfig) -> tuple[list[Example | LongClip], list[Example]]:
    """The training pool (clips; in the chunk stage ``train_clips`` long clips, then as many single clips
    when it keeps some in its steps) and the held-out single clips."""
    if cfg.stage == "chunk":
        singles = world_manifest("train", cfg.train_clips, frames=cfg.frames) if cfg.single_clips else []
        pool = [*long_pool("train", cfg.train_clips, cfg.max_segments), *singles]
        return pool, world_manifest("val", cfg.val_clips, frames=cfg.frames)
    if cfg.manifest:
        examples = read_manifest(cfg.manifest)
        train = [e for e in examples if e.split in (None, "train")]
        val = [e for e in examples if e.split == "val"] or train[-cfg.val_clips :]
        return train[: cfg.train_clips], val[: cfg.val_clips]
    return world_manifest("train", cfg.train_clips, frames=cfg.frames), world_manifest(
        "val", cfg.val_clips, frames=cfg.frames
    )


def build_targets(base: Base, cfg: TrainConfig, examples: list[Example | LongClip], frame_size: int) -> dict:
    """Targets for every (video, prompt) of the pool, keyed by (video id, prompt), written by
    ``cfg.teacher_base`` when set (it must share the student's tokenizer: targets are token ids). The
    teacher sees the whole video: a long clip's every segment. ``cfg.targets_from`` says which the stage's own
    videos get; the single clips of a chunk stage get the teacher's, as in the single stage."""
    rows = [(e, row) for e in examples for row in video_prompts(e, cfg.qa_per_type)]
    eou = base.tokenizer.end_of_utterance_token
    targets = {
        (e.id, row.prompt): TeacherTarget(
            torch.tensor(base.tokenizer(f" {row.reference}{eou}", add_special_tokens=False)["input_ids"])
        )
        for e, row in rows
        if target_source(cfg, e, row.label) == "ground_truth"
    }
    pairs = [(e, row.prompt) for e, row in rows if target_source(cfg, e, row.label) == "teacher"]
    if not pairs:
        return targets
    if cfg.teacher_base not in (None, cfg.base):
        teacher = load_base(cfg.teacher_base, device=base.device)
        if teacher.tokenizer.get_vocab() != base.tokenizer.get_vocab():
            raise ValueError(f"teacher {cfg.teacher_base} and student {cfg.base} tokenize differently")
        base = teacher
    cache = TeacherCache(cfg.teacher_cache, base.digest, cfg.top_k, cfg.max_new_tokens)
    frames = {}
    requests = []
    for e, p in pairs:
        if e.id not in frames:
            frames[e.id] = video_frames(e, cfg.frames, frame_size)
        requests.append(TeacherRequest(e.id, p, frames[e.id]))
    # rank 0 fills the cache; the others wait and read it
    if dist_rank() == 0:
        teacher_targets(base, requests, cache, progress=cfg.progress)
    if dist.is_initialized():
        dist.barrier()
        cache = TeacherCache(cfg.teacher_cache, base.digest, cfg.top_k, cfg.max_new_tokens)
    targets.update(
        {(e.id, p): cache.get(r.key(cache.base_digest)) for (e, p), r in zip(pairs, requests, strict=True)}
    )
    return targets


def target_source(cfg: TrainConfig, video: Example | LongClip, label: str) -> str:
    """Where a row's target comes from: the reference for ``cfg.reference_labels``; else
    ``cfg.targets_from`` for the stage's own videos, and the teacher for the single clips a chunk stage
    keeps."""
    if label in cfg.reference_labels:
        return "ground_truth"
    return "teacher" if cfg.stage == "chunk" and not isinstance(video, LongClip) else cfg.targets_from


def target_scores(
    base: Base, cfg: TrainConfig, pool: list[Example | LongClip], targets: dict
) -> dict[int, float]:
    """Mean token-F1 of the targets' text against the references, by the videos' segment count: how right
    what the student is distilled toward is."""
    by_count: dict[int, list[float]] = {}
    for video in pool:
        rows = video_prompts(video, cfg.qa_per_type)
        texts = [
            base.tokenizer.decode(targets[(video.id, row.prompt)].tokens, skip_special_tokens=True).strip()
            for row in rows
        ]
        scores = score_answers("token_f1", texts, [row.reference for row in rows])
        by_count.setdefault(len(segment_ids(video)), []).extend(scores.tolist())
    return {n: float(np.mean(v)) for n, v in sorted(by_count.items())}


def fill_state_cache(
    base: Base, cfg: TrainConfig, pool: list[Example | LongClip], frame_size: int
) -> dict[str, Path]:
    """Every segment of every pool video (a clip is one) encoded alone into ``cfg.state_cache``
    (``f2l.state_cache``), each rank encoding its share of the videos with missing entries while the others
    wait; returns each segment's entry file."""
    cache, context = StateCache(cfg.state_cache, base.digest), cfg.hypernet.context
    keys = {s: cache.key(s, cfg.frames, frame_size, context) for e in pool for s in segment_ids(e)}
    missing = [
        e for e in pool[dist_rank() :: world_size()] if any(keys[s] not in cache for s in segment_ids(e))
    ]
    for e in tqdm(missing, desc="base states", unit="clip", disable=not cfg.progress or not missing):
        for s, frames in zip(segment_ids(e), video_segments(e, cfg.frames, frame_size), strict=True):
            if keys[s] not in cache:
                cache.put(keys[s], encode_clip(base, frames, context))
    if dist.is_initialized():
        dist.barrier()
    return {s: cache.path(key) for s, key in keys.items()}


def check_labels(cfg: TrainConfig, pool: list[Example | LongClip]) -> None:
    """A label in ``prompt_weights`` or ``reference_labels`` that the pool's prompts never carry is a typo,
    not a no-op: a one-line error."""
    labels = {row.label for video in pool for row in video_prompts(video, cfg.qa_per_type)}
    for name, named in (("prompt_weights", cfg.weights_by_label), ("reference_labels", cfg.reference_labels)):
        unknown = sorted(set(named) - labels)
        if unknown:
            raise ValueError(f"{name} names {unknown}, which no training prompt has; known: {sorted(labels)}")
