"""The one config of a distillation run, ``TrainConfig``: a recipe (``f2l.train.recipes``) fills it, a YAML
file and command-line flags override it (``f2l.train.cli``), and a run records it whole (``config.json``,
each checkpoint's ``hypernet_config.json``). ``upgrade_config`` reads a config written before the
per-kind hypernetwork sections into today's form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from f2l.hypernet import KINDS, HypernetConfig, OfficialConfig

STAGES = ("single", "chunk")
TARGETS = ("teacher", "ground_truth")
COMPOSITIONS = ("scaled", "plain")


@dataclass
class TrainConfig:
    """The one config of ``python -m f2l.train``; presets fill it, YAML and flags override it."""

    preset: str = "tiny"  # a recipe of f2l/train/recipes (listed below)
    base: str = "tiny"
    out: str = "runs/tiny"
    # data: the world's train split (a pool of clips), or a JSONL manifest of real videos
    manifest: str | None = None
    train_clips: int = 512
    val_clips: int = 24
    frames: int = 8  # a clip's frames; in the chunk stage, a segment's
    frame_size: int | None = None  # None: the base's own frame size
    # "single": clips, one adapter each; "chunk": long world clips of 1..max_segments segments, the segment
    # adapters composed (`compose`: "scaled", their mean; "plain", their sum) before the student answers, and
    # `single_clips` of stage 1's clips a step with their prompts and the teacher's targets, so that what the
    # single stage taught is kept
    stage: str = "single"
    max_segments: int = 8
    compose: str = "scaled"
    single_clips: int = 0  # chunk stage: single train clips beside the long ones in every step (stage 1's)
    init_from: str | None = (
        None  # a hypernetwork (directory or shipped name) whose weights the run starts from
    )
    prompts_per_clip: int = 2
    # "label=weight" (a caption category or QA type, e.g. "camera=3"): a video's prompts of a step are drawn
    # with probability proportional to their label's weight (1 unless named), without replacement
    prompt_weights: tuple[str, ...] = ()
    qa_per_type: int = 1  # teacher prompts per clip: every caption category + this many QA per type
    # labels (as prompt_weights names them) whose rows are distilled toward their reference answer (CE on
    # its tokens, no teacher): for a fact the teacher itself reads poorly, e.g. "camera"
    reference_labels: tuple[str, ...] = ()
    # hypernetwork: `kind` picks the section that builds it, f2l's perceiver (f2l.hypernet.perceiver) or
    # the authors' design (f2l.hypernet.official), each with its own settings and defaults
    kind: str = "f2l"
    f2l: HypernetConfig = field(default_factory=HypernetConfig)
    official: OfficialConfig = field(default_factory=OfficialConfig)
    # distillation
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    # an auxiliary loss (f2l.camera_head): a linear head names each world clip's camera motion from the
    # hypernetwork's read latents, its cross-entropy against the ground truth weighted this much; 0: off
    camera_weight: float = 0.0
    top_k: int = 16
    # or "ground_truth": the reference captions/answers instead (in the chunk stage, for the long clips)
    targets_from: str = "teacher"
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
    warmup: float = 0.05  # under 1 a fraction of the steps, from 1 on a count (f2l.train.schedule)
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
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {self.stage!r}")
        if self.compose not in COMPOSITIONS:
            raise ValueError(f"compose must be one of {', '.join(COMPOSITIONS)}, not {self.compose!r}")
        if self.targets_from not in TARGETS:
            raise ValueError(f"targets_from must be one of {', '.join(TARGETS)}, not {self.targets_from!r}")
        if self.stage == "chunk" and self.manifest:
            raise ValueError("the chunk stage trains on long world clips; a manifest has no long clips")
        if self.max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, not {self.max_segments}")
        if self.camera_weight < 0 or (self.camera_weight and self.stage == "chunk"):
            raise ValueError("camera_weight is a weight >= 0, for the single stage's world clips")
        self.weights_by_label  # noqa: B018 (a malformed weight is an error at parse time, not at step 1)

    @property
    def weights_by_label(self) -> dict[str, float]:
        """``prompt_weights`` as a mapping, label -> weight."""
        out = {}
        for item in self.prompt_weights:
            label, sep, value = item.partition("=")
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if not sep or not label or not weight > 0:
                raise ValueError(f"prompt_weights: {item!r} is not label=weight with a weight > 0")
            out[label] = weight
        return out

    @property
    def clips_per_step(self) -> int:
        """The videos of a global batch: ``batch_clips`` (long ones in the chunk stage, then its single
        clips)."""
        return self.batch_clips + (self.single_clips if self.stage == "chunk" else 0)

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
