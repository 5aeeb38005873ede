"""The distillation step's forward and loss. ``student_loss``: the hypernetwork writes an adapter per
segment of a ``StepBatches`` item (a chunk-stage video's segments composed, ``composed_clips``), each
student row answers under its video's adapter with no visual token, and ``distillation_loss`` scores it:

    loss = kl_weight · KL(teacher top-k ‖ student) + ce_weight · CE(teacher tokens)

per answer token, averaged per row then over rows (so a global batch split across ranks gives the same
gradient as one process), plus ``camera_weight`` times the camera head's cross-entropy when it trains.
Nothing here reads a value back to the host.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from f2l.adapter import Adapter, use_adapter
from f2l.hypernet import Hypernet
from f2l.models import Base
from f2l.state_cache import as_layers
from f2l.teacher import TeacherTarget
from f2l.train.config import TrainConfig


def distillation_loss(
    logits: torch.Tensor, target_pos: list[torch.Tensor], targets: list[TeacherTarget], cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per row: mean over answer tokens of kl_weight·KL(teacher top-k ‖ student) + ce_weight·CE; then
    mean over rows. The teacher's top-k log-probs are renormalised over their k tokens."""
    rows, kls, ces = [], [], []
    for i, (pos, t) in enumerate(zip(target_pos, targets, strict=True)):
        logp = logits[i, pos - 1].float().log_softmax(-1)  # the logits at p-1 predict the token at p
        ce = F.nll_loss(logp, t.tokens.to(logp.device))
        loss = cfg.ce_weight * ce
        if t.topk_ids is not None and cfg.kl_weight:
            p_teacher = t.topk_logprobs.to(logp.device).log_softmax(-1)
            q_student = logp.gather(-1, t.topk_ids.to(logp.device))
            kl = (p_teacher.exp() * (p_teacher - q_student)).sum(-1).mean()
            loss = loss + cfg.kl_weight * kl
            kls.append(kl.detach())
        ces.append(ce.detach())
        rows.append(loss)
    stats = {"ce": torch.stack(ces).mean()}
    if kls:
        stats["kl"] = torch.stack(kls).mean()
    return torch.stack(rows).mean(), stats


def composed_clips(hypernet: Hypernet, factors, segments: list[int], weights: torch.Tensor) -> Adapter:
    """One adapter per video of the chunk stage, batched (ranks zero-padded): the generated factors of its
    ``segments[i]`` segments (consecutive rows of ``factors``) composed by the kind's rule
    (``compose_segments``: along the rank) and scaled by its composition weight ``weights[i]``. The
    segment counts are host integers, so composing reads nothing back from the device."""
    ends = np.cumsum(segments).tolist()
    videos = [
        hypernet.compose_segments({m: (a[s:e], b[s:e]) for m, (a, b) in factors.items()}, {})
        for s, e in zip([0, *ends[:-1]], ends, strict=True)
    ]
    return Adapter.stack(videos).scaled(weights)


def student_loss(
    model, base: Base, batch: dict, hypernet: Hypernet, cfg: TrainConfig, device
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step's forward: the hypernetwork (``model``, DDP-wrapped or not, a ``CameraHead`` around it when
    ``cfg.camera_weight``; ``hypernet`` unwrapped) writes an adapter per segment of ``batch`` (a
    ``StepBatches`` item), a video's segments composed in the chunk stage (``composed_clips``); each student
    row answers under its video's adapter with no visual token, and ``distillation_loss`` scores it, plus
    the camera head's cross-entropy. Nothing here reads a value back to the host, so the GPU never waits
    on Python within a step (``tests/f2l/train/test_losses.py`` checks the f2l code for it)."""
    if "states" in batch:  # read from the state cache
        hidden = batch["states"].to(device, non_blocking=True)
        out = model(base, states=as_layers(hidden, batch["state_mask"].to(device, non_blocking=True)))
    else:
        out = model(base, {k: v.to(device, non_blocking=True) for k, v in batch["encode"].items()})
    factors, camera_logits = out if cfg.camera_weight else (out, None)
    index = batch["row_clip"].to(device, non_blocking=True)
    provenance = [{"video_id": v} for v in batch["video_ids"]]
    if "segments" in batch:
        videos = composed_clips(
            hypernet, factors, batch["segments"], batch["weights"].to(device, non_blocking=True)
        )
        rows = {
            m: (a.index_select(0, index), b.index_select(0, index)) for m, (a, b) in videos.factors.items()
        }
        adapter = Adapter(rows, scaling=videos.scaling.index_select(0, index), provenance=provenance)
    else:
        rows = {m: (a.index_select(0, index), b.index_select(0, index)) for m, (a, b) in factors.items()}
        adapter = hypernet.to_adapter(rows, provenance)
    with use_adapter(base.model, adapter):
        logits = base.model(
            input_ids=batch["input_ids"].to(device, non_blocking=True),
            attention_mask=batch["attention_mask"].to(device, non_blocking=True),
        ).logits
    loss, stats = distillation_loss(logits, batch["target_pos"], batch["targets"], cfg)
    if camera_logits is not None:
        camera_ce = F.cross_entropy(camera_logits.float(), batch["camera"].to(device, non_blocking=True))
        loss = loss + cfg.camera_weight * camera_ce
        stats["camera_ce"] = camera_ce.detach()
    return loss, stats
