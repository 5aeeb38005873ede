"""Train the hypernetwork by distillation: ``python -m f2l.train`` (also under ``torchrun``).

    python -m f2l.train                                   # preset `tiny`: the shipped tiny base and the world
    python -m f2l.train --config my.yaml --steps 3000     # YAML file, then command-line overrides
    torchrun --nproc_per_node 2 -m f2l.train --preset tiny --out runs/ddp
    python -m f2l.train --out runs/tiny-v3 --ship f2l/checkpoints/tiny-hypernet   # how the shipped one is made

Each step: a batch of clips is encoded by the frozen base with the video in context; the
hypernetwork streams the per-layer states into one adapter per clip; the base *with that adapter
and no visual tokens* (the student) is scored on prompts about the clip against the teacher (the
same base with the video in context), whose greedy tokens and top-k log-probs are cached on disk:

    loss = kl_weight · KL(teacher top-k ‖ student) + ce_weight · CE(teacher tokens)

per answer token, averaged per row then over rows (so a global batch split across ranks gives the
same gradient as one process). Only the hypernetwork trains.

Runs are resumable to the bit: the data of step ``s`` is a pure function of (seed, s), and a
checkpoint holds the hypernetwork, the optimizer, the step and the RNG states (safetensors + JSON,
written atomically; the last ``keep_last`` kept). A run killed at any point and restarted with the
same command continues from its last checkpoint and ends with the same weights.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from f2l import training
from f2l.adapter import install_lora, use_adapter
from f2l.answer import teacher_forced
from f2l.chat import model_inputs, prompt_text
from f2l.cli import entry_point
from f2l.config import config_dict
from f2l.config import parse_config as _parse_config
from f2l.data import Example, clip_prompts, load_frames, read_manifest, world_manifest
from f2l.distributed import init_distributed, world_size
from f2l.distributed import rank as dist_rank
from f2l.encode import ContextFormat
from f2l.eval.harness import answer_clip
from f2l.eval.metrics import score_answers
from f2l.hypernet import KINDS, Hypernet, HypernetConfig, OfficialConfig
from f2l.io import atomic_write_json
from f2l.models import Base, load_base
from f2l.pipeline import Frames2LoRA
from f2l.state_cache import StateCache, as_layers, encode_clip, layer_states
from f2l.state_cache import read as read_states
from f2l.teacher import TeacherCache, TeacherRequest, TeacherTarget, teacher_targets


@dataclass
class TrainConfig:
    """The one config of ``python -m f2l.train``; presets fill it, YAML and flags override it."""

    preset: str = "tiny"
    base: str = "tiny"
    out: str = "runs/tiny"
    # data: the world's train split (a pool of clips), or a JSONL manifest of real videos
    manifest: str | None = None
    train_clips: int = 512
    val_clips: int = 24
    frames: int = 8
    frame_size: int | None = None  # None: the base's own frame size
    prompts_per_clip: int = 2
    qa_per_type: int = 1  # teacher prompts per clip: every caption category + this many QA per type
    # hypernetwork: `kind` picks the section that builds it, f2l's perceiver (f2l.hypernet.perceiver) or
    # the authors' design (f2l.hypernet.official), each with its own settings and defaults
    kind: str = "f2l"
    f2l: HypernetConfig = field(default_factory=HypernetConfig)
    official: OfficialConfig = field(default_factory=OfficialConfig)
    # distillation
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    top_k: int = 16
    targets_from: str = "teacher"  # or "ground_truth": the reference captions/answers instead
    teacher_base: str | None = None  # the base that writes teacher targets (default: the student's)
    max_new_tokens: int = 48
    teacher_cache: str = "runs/teacher-cache"
    # the frozen base's per-layer states of every pool clip, encoded once (f2l.state_cache); None or "":
    # the base encodes the step's clips in every step
    state_cache: str | None = "runs/state-cache"
    # optimisation
    steps: int = 1500
    batch_clips: int = 8  # global batch, split across ranks
    lr: float = 1e-3
    warmup: float = 0.05  # under 1 a fraction of the steps, from 1 on a count (f2l.training)
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.95)
    grad_clip: float = 1.0
    # bookkeeping
    log_every: int = 1  # steps between host syncs (logging, the non-finite check); >1 on GPU
    eval_every: int = 250
    save_every: int = 250
    keep_last: int = 2
    seed: int = 0
    device: str | None = None
    workers: int = 0  # DataLoader workers preparing steps ahead (0: in the training process)
    bf16: bool = False  # autocast on CUDA
    tensorboard: bool = True
    progress: bool = True
    ship: str | None = None  # after training, package the hypernetwork here (f2l/checkpoints/tiny-hypernet)

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def hypernet(self) -> HypernetConfig | OfficialConfig:
        """The settings of the hypernetwork this run trains (the section of ``kind``)."""
        return getattr(self, self.kind)


# The flat hypernetwork fields of run configs written before the sections, by kind: a config.json of
# such a run still reads with --config (upgrade_config).
_FLAT_FIELDS = {
    "f2l": {
        "rank": "rank",
        "alpha": "alpha",
        "width": "width",
        "latents": "num_latents",
        "heads": "num_heads",
        "self_blocks": "self_blocks",
        "targets": "target_modules",
    },
    "official": {
        "rank": "rank",
        "alpha": "lora_alpha",
        "width": "latent",
        "latents": "n_latent_queries",
        "blocks": "num_blocks",
        "targets": "target_modules",
    },
}


def upgrade_config(values: dict[str, Any]) -> dict[str, Any]:
    """A run config in today's form: the flat hypernetwork fields of older runs (``width``, ``latents``,
    ``heads``, ``self_blocks``, ``blocks``, ``rank``, ``alpha``, ``targets``) moved into the section of
    their ``kind`` under its names; the fields the kind did not read are dropped."""
    flat = {k for names in _FLAT_FIELDS.values() for k in names}
    if not flat & set(values):
        return values
    kind = values.get("kind", "f2l")
    section = dict(values.get(kind) or {})
    for old, new in _FLAT_FIELDS.get(kind, {}).items():
        if old in values:
            section[new] = values[old]
    upgraded = {k: v for k, v in values.items() if k not in flat}
    upgraded[kind] = section
    return upgraded


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"f2l.width": 128, "f2l.num_latents": 16, "f2l.self_blocks": 1},
    "tiny-small": {
        "base": "tiny-small",
        "out": "runs/tiny-small",
        "f2l.width": 256,
        "f2l.num_latents": 32,
        "f2l.self_blocks": 2,
    },
    # paper-like: SmolVLM2 on GPU, 12 frames at the processor's 384 px, bf16
    "smolvlm2-500m": {
        "base": "smolvlm2-500m",
        "out": "runs/smolvlm2-500m",
        "frames": 12,
        "f2l.width": 512,
        "f2l.num_latents": 64,
        "f2l.num_heads": 8,
        "f2l.self_blocks": 2,
        "f2l.rank": 8,
        "f2l.alpha": 16.0,
        "batch_clips": 16,
        "lr": 3e-4,
        "steps": 20000,
        "train_clips": 20000,
        "bf16": True,
        "workers": 8,  # the processor (frames to 384/512 px) runs on the CPU: keep it off the step's path
        "state_cache": None,  # tens of MB of states a clip over 20,000 clips: the base encodes each step
        "log_every": 10,
        "eval_every": 1000,
        "save_every": 1000,
    },
    "smolvlm2-2.2b": {
        "base": "smolvlm2-2.2b",
        "out": "runs/smolvlm2-2.2b",
        "frames": 12,
        "f2l.width": 768,
        "f2l.num_latents": 64,
        "f2l.num_heads": 12,
        "f2l.self_blocks": 2,
        "f2l.rank": 8,
        "f2l.alpha": 16.0,
        "batch_clips": 16,
        "lr": 2e-4,
        "steps": 20000,
        "train_clips": 20000,
        "bf16": True,
        "workers": 8,  # the processor (frames to 384/512 px) runs on the CPU: keep it off the step's path
        "state_cache": None,  # tens of MB of states a clip over 20,000 clips: the base encodes each step
        "log_every": 10,
        "eval_every": 1000,
        "save_every": 1000,
    },
}

# The authors' released recipe (Frames2LoRA, stage 1): their hypernetwork on down_proj, r = 16 with
# lora_alpha = 2 r^1.5, CE on greedy 64-token text of SmolVLM2-2.2B (no KL), AdamW lr 1e-4 with default
# betas, weight decay 0.01, 3% warm-up, cosine to 0, clip 1.0, bf16, global batch 64, 1,000 steps, 12 frames.
_PAPER_RECIPE: dict[str, Any] = {
    "kind": "official",
    "official.target_modules": ("down_proj",),
    "official.rank": 16,
    "official.lora_alpha": 2 * 16**1.5,
    "kl_weight": 0.0,
    "ce_weight": 1.0,
    "max_new_tokens": 64,
    "lr": 1e-4,
    "betas": (0.9, 0.999),
    "weight_decay": 0.01,
    "warmup": 0.03,
    "min_lr_ratio": 0.0,
    "grad_clip": 1.0,
}
PRESETS.update(
    {
        f"paper-{size}": {
            **_PAPER_RECIPE,
            "base": f"smolvlm2-{size}",
            "teacher_base": "smolvlm2-2.2b",
            "out": f"runs/paper-{size}",
            "official.latent": 512,
            "official.n_latent_queries": 8,
            "official.num_blocks": 9,
            "frames": 12,
            "batch_clips": 64,
            "prompts_per_clip": 1,
            "steps": 1000,
            "train_clips": 64000,
            "bf16": True,
            "workers": 8,
            "state_cache": None,  # tens of MB of states a clip over 64,000 clips
            "log_every": 10,
            "eval_every": 250,
            "save_every": 100,
        }
        for size in ("500m", "2.2b")
    }
)
# The same recipe on the tiny world, on a CPU: the official design sized down to the tiny base (latent 64,
# 8 queries, 2 blocks: 1.5M parameters, a 6 MB file), the tiny base as its own teacher (the world has no
# larger one), and the batch and step budget of the `tiny` preset so that the two designs train for
# comparable time.
PRESETS["paper-tiny"] = {
    **_PAPER_RECIPE,
    "out": "runs/paper-tiny",
    "official.latent": 64,
    "official.n_latent_queries": 8,
    "official.num_blocks": 2,
}


# ------------------------------------------------------------------------------------------ set-up


def load_examples(cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    if cfg.manifest:
        examples = read_manifest(cfg.manifest)
        train = [e for e in examples if e.split in (None, "train")]
        val = [e for e in examples if e.split == "val"] or train[-cfg.val_clips :]
        return train[: cfg.train_clips], val[: cfg.val_clips]
    return world_manifest("train", cfg.train_clips, frames=cfg.frames), world_manifest(
        "val", cfg.val_clips, frames=cfg.frames
    )


# ------------------------------------------------------------------------------------------ targets


def build_targets(base: Base, cfg: TrainConfig, examples: list[Example], frame_size: int) -> dict:
    """Targets for every (clip, prompt) of the pool, keyed by (example id, prompt), written by
    ``cfg.teacher_base`` when set (it must share the student's tokenizer: targets are token ids)."""
    pairs = [
        (e, p, ref)
        for e in examples
        for p, ref in [(r.prompt, r.reference) for r in clip_prompts(e, cfg.qa_per_type)]
    ]
    if cfg.targets_from == "ground_truth":
        eou = base.tokenizer.end_of_utterance_token
        return {
            (e.id, p): TeacherTarget(
                torch.tensor(base.tokenizer(f" {ref}{eou}", add_special_tokens=False)["input_ids"])
            )
            for e, p, ref in pairs
        }
    if cfg.targets_from != "teacher":
        raise ValueError(f"targets_from must be 'teacher' or 'ground_truth', not {cfg.targets_from!r}")
    if cfg.teacher_base not in (None, cfg.base):
        teacher = load_base(cfg.teacher_base, device=base.device)
        if teacher.tokenizer.get_vocab() != base.tokenizer.get_vocab():
            raise ValueError(f"teacher {cfg.teacher_base} and student {cfg.base} tokenize differently")
        base = teacher
    cache = TeacherCache(cfg.teacher_cache, base.digest, cfg.top_k, cfg.max_new_tokens)
    frames = {}
    requests = []
    for e, p, _ in pairs:
        if e.id not in frames:
            frames[e.id] = load_frames(e, num_frames=cfg.frames, size=frame_size)
        requests.append(TeacherRequest(e.id, p, frames[e.id]))
    # rank 0 fills the cache; the others wait and read it
    if dist_rank() == 0:
        teacher_targets(base, requests, cache, progress=cfg.progress)
    if dist.is_initialized():
        dist.barrier()
        cache = TeacherCache(cfg.teacher_cache, base.digest, cfg.top_k, cfg.max_new_tokens)
    return {
        (e.id, p): cache.get(r.key(cache.base_digest)) for (e, p, _), r in zip(pairs, requests, strict=True)
    }


def fill_state_cache(base: Base, cfg: TrainConfig, pool: list[Example], frame_size: int) -> dict[str, Path]:
    """Every pool clip's base states in ``cfg.state_cache`` (``f2l.state_cache``), each rank encoding its
    share of the missing ones while the others wait; returns each clip's entry file."""
    cache, context = StateCache(cfg.state_cache, base.digest), cfg.hypernet.context
    keys = {e.id: cache.key(e.id, cfg.frames, frame_size, context) for e in pool}
    missing = [e for e in pool[dist_rank() :: world_size()] if keys[e.id] not in cache]
    for e in tqdm(missing, desc="base states", unit="clip", disable=not cfg.progress or not missing):
        cache.put(
            keys[e.id], encode_clip(base, load_frames(e, num_frames=cfg.frames, size=frame_size), context)
        )
    if dist.is_initialized():
        dist.barrier()
    return {clip: cache.path(key) for clip, key in keys.items()}


# ------------------------------------------------------------------------------------------ the step


def step_plan(cfg: TrainConfig, step: int, pool: list[Example]) -> list[tuple[int, list[int]]]:
    """The global batch of ``step``: (clip index, prompt indices) pairs, a pure function of (seed, step)."""
    rng = np.random.default_rng([cfg.seed, step])
    clips = rng.choice(len(pool), size=cfg.batch_clips, replace=len(pool) < cfg.batch_clips)
    plan = []
    for c in clips:
        n_prompts = len(clip_prompts(pool[c], cfg.qa_per_type))
        plan.append((int(c), rng.choice(n_prompts, size=cfg.prompts_per_clip, replace=False).tolist()))
    return plan


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is this rank's share of step ``start + i``: the clips' base states read from the state
    cache (``states``: clip id -> its entry) or else their processor inputs for internalization, and the
    student rows (prompt tokens + targets). A pure function of (seed, step), so DataLoader workers can
    prepare steps ahead (reading, decoding, rendering, the processor) and pinned host memory can feed the
    GPU, while resuming needs no sampler state."""

    def __init__(
        self,
        cfg: TrainConfig,
        base: Base,
        pool: list[Example],
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
            options = clip_prompts(e, cfg.qa_per_type)
            for k in prompt_idx:
                prompts.append(options[k].prompt)
                row_targets.append(self.targets[(e.id, options[k].prompt)])
                row_clip.append(j)
        student = teacher_forced(self.processor, prompts, [t.tokens for t in row_targets])
        return {
            "step": step,
            **self.clip_inputs(clips),
            "input_ids": student.input_ids,
            "attention_mask": student.attention_mask,
            "target_pos": student.answer_positions(),
            "targets": row_targets,
            "row_clip": torch.tensor(row_clip),
            "video_ids": [clips[j].id for j in row_clip],
        }

    def clip_inputs(self, clips: list[Example]) -> dict:
        """``states`` (N, L, T, d) float16 and ``state_mask`` (N, T) from the state cache, or ``encode``:
        the processor's inputs for the base."""
        if self.states is not None:
            hidden, mask = layer_states([read_states(self.states[e.id]) for e in clips])
            return {"states": hidden, "state_mask": mask}
        frames = [load_frames(e, num_frames=self.cfg.frames, size=self.frame_size) for e in clips]
        context = self.context
        text = prompt_text(
            self.processor, context.prompt, with_video=True, generation_prompt=context.generation_prompt
        )
        return {"encode": dict(model_inputs(self.processor, [text] * len(frames), frames))}


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


def student_loss(
    model, base: Base, batch: dict, hypernet: Hypernet, cfg: TrainConfig, device
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One step's forward: the hypernetwork (``model``, DDP-wrapped or not; ``hypernet`` unwrapped) writes an adapter per clip
    of ``batch`` (a ``StepBatches`` item), each student row answers under its clip's adapter with no
    visual token, and ``distillation_loss`` scores it. Nothing here reads a value back to the host, so
    the GPU never waits on Python within a step (``tests/test_train.py`` checks the f2l code for it)."""
    if "states" in batch:  # read from the state cache
        hidden = batch["states"].to(device, non_blocking=True)
        factors = model(base, states=as_layers(hidden, batch["state_mask"].to(device, non_blocking=True)))
    else:
        factors = model(base, {k: v.to(device, non_blocking=True) for k, v in batch["encode"].items()})
    index = batch["row_clip"].to(device, non_blocking=True)
    rows = {m: (a.index_select(0, index), b.index_select(0, index)) for m, (a, b) in factors.items()}
    adapter = hypernet.to_adapter(rows, [{"video_id": v} for v in batch["video_ids"]])
    with use_adapter(base.model, adapter):
        logits = base.model(
            input_ids=batch["input_ids"].to(device, non_blocking=True),
            attention_mask=batch["attention_mask"].to(device, non_blocking=True),
        ).logits
    return distillation_loss(logits, batch["target_pos"], batch["targets"], cfg)


# ------------------------------------------------------------------------------------------ checkpoints


def save_checkpoint(
    run_dir: Path,
    step: int,
    hypernet: Hypernet,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    keep_last: int,
) -> Path:
    """``run_dir/checkpoints/step-XXXXXXX/`` (``f2l.training.save_checkpoint``: all or nothing), then
    all but the last ``keep_last`` removed."""
    root = run_dir / "checkpoints"

    def write(directory: Path) -> None:
        hypernet.save(directory, extra={"train_config": config_dict(cfg), "step": step})

    final = training.save_checkpoint(root / f"step-{step:07d}", opt, {"step": step}, write)
    for old in sorted(root.glob("step-*"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def load_checkpoint(path: Path, hypernet: Hypernet, opt: torch.optim.Optimizer) -> int:
    loaded = type(hypernet).load(path, device=next(hypernet.parameters()).device)
    hypernet.load_state_dict(loaded.state_dict())
    return int(training.load_checkpoint(path, opt)["step"])


# ------------------------------------------------------------------------------------------ evaluation


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
    hypernet.train(was_training)
    scores = {m: float(score_answers("token_f1", preds[m], refs).mean()) for m in methods}
    scores["f2l_vs_direct"] = float(score_answers("token_f1", preds["f2l"], preds["direct"]).mean())
    return scores


# ------------------------------------------------------------------------------------------ the loop


def build_hypernet(cfg: TrainConfig, base: Base) -> Hypernet:
    """A fresh hypernetwork of ``cfg.kind`` with its section's settings, shaped for ``base``."""
    settings = cfg.hypernet
    config = type(settings).for_base(base, base_id=f"{cfg.base}@{base.digest}", **settings.settings())
    return KINDS[cfg.kind](config)


def train(cfg: TrainConfig) -> dict[str, Any]:
    init_distributed()
    rank, world = dist_rank(), world_size()
    if cfg.batch_clips % world:
        raise ValueError(f"batch_clips={cfg.batch_clips} must divide evenly across {world} ranks")
    device = cfg.device or (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    run_dir = cfg.out_dir
    base = load_base(cfg.base, device=device)
    install_lora(base.model, cfg.hypernet.target_modules)
    frame_size = cfg.frame_size or base.model.config.vision_config.image_size
    pool, val = load_examples(cfg)
    targets = build_targets(base, cfg, pool, frame_size)
    states = fill_state_cache(base, cfg, pool, frame_size) if cfg.state_cache else None

    torch.manual_seed(cfg.seed)
    hypernet = build_hypernet(cfg, base).to(device).train()
    model = hypernet
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            hypernet, device_ids=[torch.cuda.current_device()] if torch.cuda.is_available() else None
        )
    opt = torch.optim.AdamW(
        hypernet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas)
    )
    start = 0
    resume_from = latest_checkpoint(run_dir)
    if resume_from is not None:
        start = load_checkpoint(resume_from, hypernet, opt)
        if rank == 0:
            print(f"f2l.train: resuming {run_dir} from step {start}", file=sys.stderr)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config_dict(cfg))
    writer = None
    if cfg.tensorboard and rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(run_dir / "tensorboard")
        except ImportError:
            writer = None
    log_path = run_dir / "log.jsonl"
    autocast = torch.autocast(
        "cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and str(device).startswith("cuda")
    )

    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc="f2l.train",
        unit="step",
        disable=not cfg.progress or rank != 0,
        dynamic_ncols=True,
    )
    last_time, last_logged = time.time(), start
    loader = torch.utils.data.DataLoader(
        StepBatches(cfg, base, pool, targets, start, frame_size, rank, world, hypernet.context, states),
        batch_size=None,  # every item is already one step's batch
        num_workers=cfg.workers,
        pin_memory=str(device).startswith("cuda"),
    )
    for step, batch in zip(bar, loader, strict=True):
        assert batch["step"] == step
        for group in opt.param_groups:
            group["lr"] = cfg.lr * training.lr_factor(step, cfg.steps, cfg.warmup, cfg.min_lr_ratio)
        with autocast:
            loss, stats = student_loss(model, base, batch, hypernet, cfg, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # after backward the gradients are all-reduced, so grad_norm is the same number on every rank:
        # a non-finite loss anywhere makes it non-finite everywhere, and all ranks stop together
        grad_norm = torch.nn.utils.clip_grad_norm_(hypernet.parameters(), cfg.grad_clip)
        evaluating = (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps
        saving = (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps
        if (step + 1) % cfg.log_every == 0 or evaluating or saving:  # the only host syncs of a step
            if not torch.isfinite(grad_norm):
                raise FloatingPointError(
                    f"non-finite loss or gradient (loss {loss.item()}, grad norm {grad_norm.item()}) at step "
                    f"{step + 1}: stopping before the update. The last good checkpoint "
                    f"({latest_checkpoint(run_dir) or 'none yet'}) is untouched; lower --lr or check the "
                    f"data, then rerun the same command to resume from it."
                )
            opt.step()
            if rank == 0:
                now = time.time()
                record = {
                    "step": step + 1,
                    "loss": loss.item(),
                    "grad_norm": float(grad_norm),
                    "lr": opt.param_groups[0]["lr"],
                    "sec_per_step": (now - last_time) / (step + 1 - last_logged),
                    **{k: float(v) for k, v in stats.items()},
                }
                last_time, last_logged = now, step + 1
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                if evaluating:
                    scores = evaluate(base, hypernet, val, cfg, frame_size)
                    record.update({f"val_{k}": v for k, v in scores.items()})
                    bar.write(f"step {step + 1}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for k, v in record.items():
                        if k != "step":
                            writer.add_scalar(k, v, step + 1)
                if saving:
                    save_checkpoint(run_dir, step + 1, hypernet, opt, cfg, cfg.keep_last)
        else:
            opt.step()
        if dist.is_initialized():
            dist.barrier()

    summary = {}
    if rank == 0:
        final = latest_checkpoint(run_dir)
        summary = {"steps": cfg.steps, "checkpoint": str(final)}
        records = (
            [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
        )
        evals = [r for r in records if "val_f2l" in r]
        if evals:
            summary["val"] = {k[4:]: v for k, v in evals[-1].items() if k.startswith("val_")}
            print(
                "held-out token-F1 (val): " + ", ".join(f"{k} {v:.3f}" for k, v in summary["val"].items()),
                file=sys.stderr,
            )
        atomic_write_json(run_dir / "summary.json", summary)
        if cfg.ship:
            from f2l.pipeline import package_hypernet

            shipped = {"steps": cfg.steps, "val_token_f1": summary.get("val", {})}
            package_hypernet(final, cfg.ship, base=cfg.base, extra={"summary": shipped})
            print(f"f2l.train: packaged {final} -> {cfg.ship}", file=sys.stderr)
        if writer is not None:
            writer.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary


# ------------------------------------------------------------------------------------------ the CLI


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Preset, then YAML file (a run's ``config.json`` too, older ones upgraded), then command-line flags:
    later wins."""
    return _parse_config(
        TrainConfig,
        argv,
        prog="python -m f2l.train",
        description=__doc__.split("\n\n")[0],
        presets=PRESETS,
        default_preset="tiny",
        upgrade=upgrade_config,
    )


@entry_point
def main(argv: list[str]) -> int:
    train(parse_config(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
