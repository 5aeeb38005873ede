"""Train the hypernetwork by distillation: ``python -m f2l.train`` (also under ``torchrun``).

    python -m f2l.train                                   # preset `tiny`: the shipped tiny base and the world
    python -m f2l.train --config my.yaml --steps 3000     # YAML file, then command-line overrides
    torchrun --nproc_per_node 2 -m f2l.train --preset tiny --out runs/ddp
    python -m f2l.train --out runs/tiny-v3 --ship f2l/checkpoints/tiny-hypernet   # the shipped one
    python -m f2l.train --preset tiny-chunk --ship f2l/checkpoints/tiny-chunk-hypernet   # the chunk stage

Each step: a batch of clips is encoded by the frozen base with the video in context; the hypernetwork
streams the per-layer states into one adapter per clip; the base *with that adapter and no visual
tokens* (the student) is scored on prompts about the clip against the teacher (the same base with the
video in context), whose greedy tokens and top-k log-probs are cached on disk. Only the hypernetwork
trains. The chunk stage (``--stage chunk``, as Doc-to-LoRA's second stage) trains composition: every
segment of a long world clip is internalized alone, the segment adapters are composed in rank space and
the student answers the clip's questions under the composed adapter.

The package, module by module: ``config`` (``TrainConfig``), ``recipes`` (the ``--preset`` recipes, one
YAML file each), ``cli`` (flags, ``main``), ``data`` (the pool, rows, targets, base states), ``batches`` (a
step's plan and tensors), ``losses`` (the step's forward and loss), ``schedule`` (the learning rate),
``checkpoints`` (resumable, atomic), ``evaluate`` (held-out scores), ``loop`` (``train``). What other code
uses is re-exported here.
"""

from f2l.train.batches import StepBatches, step_plan
from f2l.train.cli import main, parse_config
from f2l.train.config import TrainConfig, upgrade_config
from f2l.train.data import (
    build_targets,
    check_labels,
    fill_state_cache,
    load_examples,
    target_scores,
    video_prompts,
)
from f2l.train.evaluate import evaluate, evaluate_composed
from f2l.train.loop import build_hypernet, start_from, train
from f2l.train.losses import composed_clips, distillation_loss, student_loss
from f2l.train.recipes import PRESETS

__all__ = [
    "PRESETS",
    "StepBatches",
    "TrainConfig",
    "build_hypernet",
    "build_targets",
    "check_labels",
    "composed_clips",
    "distillation_loss",
    "evaluate",
    "evaluate_composed",
    "fill_state_cache",
    "load_examples",
    "main",
    "parse_config",
    "start_from",
    "step_plan",
    "student_loss",
    "target_scores",
    "train",
    "upgrade_config",
    "video_prompts",
]
