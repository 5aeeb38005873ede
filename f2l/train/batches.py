"""What one step trains on: ``step_plan`` draws a step's global batch (videos and their prompts) as a pure
function of (seed, step), so a resumed run draws what the uninterrupted one drew; ``StepBatches`` turns
it into this rank's share of tensors (base states from the state cache or processor inputs, the student's
token rows and their targets), in the training process or in DataLoader workers ahead of the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from f2l.answer import teacher_forced
from f2l.camera_head import camera_classes
from f2l.chat import model_inputs, prompt_text
from f2l.data import Example, LongClip
from f2l.encode import ContextFormat
from f2l.models import Base
from f2l.state_cache import layer_states
from f2l.state_cache import read as read_states
from f2l.train.config import TrainConfig
from f2l.train.data import composition_weight, segment_ids, video_prompts, video_segments


def step_plan(cfg: TrainConfig, step: int, pool: list[Example | LongClip]) -> list[tuple[int, list[int]]]:
    """The global batch of ``step``: (video index, prompt indices) pairs, a pure function of (seed, step).
    In the chunk stage ``batch_clips`` long clips come first, then ``single_clips`` single ones."""
    rng = np.random.default_rng([cfg.seed, step])
    longs = sum(isinstance(v, LongClip) for v in pool) or len(pool)
    clips = rng.choice(longs, size=cfg.batch_clips, replace=longs < cfg.batch_clips).tolist()
    if cfg.clips_per_step > cfg.batch_clips:
        singles = len(pool) - longs
        clips += (
            longs + rng.choice(singles, size=cfg.single_clips, replace=singles < cfg.single_clips)
        ).tolist()
    weights = cfg.weights_by_label
    plan = []
    for c in clips:
        rows = video_prompts(pool[c], cfg.qa_per_type)
        p = np.array([weights.get(row.label, 1.0) for row in rows])
        p = None if (p == 1).all() else p / p.sum()  # unweighted: the draws of runs before the weights
        picked = rng.choice(len(rows), size=cfg.prompts_per_clip, replace=False, p=p)
        plan.append((int(c), picked.tolist()))
    return plan


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is this rank's share of step ``start + i``: the videos' segments (a clip is one) as base
    states read from the state cache (``states``: segment id -> its entry) or else as processor inputs for
    internalization, and the student rows (prompt tokens + targets); in the chunk stage also each video's
    segment count and composition weight. A pure function of (seed, step), so DataLoader workers can
    prepare steps ahead (reading, decoding, rendering, the processor) and pinned host memory can feed the
    GPU, while resuming needs no sampler state."""

    def __init__(
        self,
        cfg: TrainConfig,
        base: Base,
        pool: list[Example | LongClip],
        targets: dict,
        start: int,
        frame_size: int,
        rank: int,
        world: int,
        context: ContextFormat,
        states: Mapping[str, Path] | None = None,
    ):
        self.cfg, self.processor = cfg, base.processor
        self.pool, self.targets, self.start = pool, targets, start
        self.frame_size, self.rank, self.world = frame_size, rank, world
        self.context, self.states = context, states

    def __len__(self) -> int:
        return max(self.cfg.steps - self.start, 0)

    def __getitem__(self, i: int) -> dict:
        cfg, step = self.cfg, self.start + i
        plan = step_plan(cfg, step, self.pool)
        local = plan[self.rank * len(plan) // self.world : (self.rank + 1) * len(plan) // self.world]
        clips = [self.pool[c] for c, _ in local]
        prompts, row_targets, row_clip = [], [], []
        for j, (e, (_, prompt_idx)) in enumerate(zip(clips, local, strict=True)):
            options = video_prompts(e, cfg.qa_per_type)
            for k in prompt_idx:
                prompts.append(options[k].prompt)
                row_targets.append(self.targets[(e.id, options[k].prompt)])
                row_clip.append(j)
        student = teacher_forced(self.processor, prompts, [t.tokens for t in row_targets])
        batch = {
            "step": step,
            **self.clip_inputs(clips),
            "input_ids": student.input_ids,
            "attention_mask": student.attention_mask,
            "target_pos": student.answer_positions(),
            "targets": row_targets,
            "row_clip": torch.tensor(row_clip),
            "video_ids": [clips[j].id for j in row_clip],
        }
        if cfg.camera_weight:
            batch["camera"] = camera_classes(clips)
        if cfg.stage == "chunk":
            counts = [len(segment_ids(e)) for e in clips]
            batch["segments"] = counts
            batch["weights"] = torch.tensor([composition_weight(cfg.compose, n) for n in counts])
        return batch

    def clip_inputs(self, clips: list[Example | LongClip]) -> dict:
        """Every segment of ``clips`` in order: ``states`` (S, L, T, d) float16 and ``state_mask`` (S, T)
        from the state cache, or ``encode``: the processor's inputs for the base."""
        if self.states is not None:
            entries = [read_states(self.states[s]) for e in clips for s in segment_ids(e)]
            hidden, mask = layer_states(entries)
            return {"states": hidden, "state_mask": mask}
        frames = [f for e in clips for f in video_segments(e, self.cfg.frames, self.frame_size)]
        context = self.context
        text = prompt_text(
            self.processor, context.prompt, with_video=True, generation_prompt=context.generation_prompt
        )
        return {"encode": dict(model_inputs(self.processor, [text] * len(frames), frames))}
