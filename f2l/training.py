"""What both training loops (``f2l.train``, ``f2l.basetrain.pretrain``) share: the learning-rate schedule
and the resumable checkpoint directory.

``warmup`` has one meaning in both: under 1 it is a fraction of the run's steps (at least one step), from
1 on a count of steps, as transformers' ``warmup_steps`` reads it. A checkpoint is one directory written
whole (``f2l.io.atomic_directory``): the loop's weights, the optimizer with the torch RNG
(``f2l.io.save_optimizer_state``) and ``trainer_state.json`` (the step and whatever else the loop needs
to continue exactly).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from f2l.io import atomic_directory, atomic_write_json, load_optimizer_state, save_optimizer_state

STATE_FILE = "trainer_state.json"


def warmup_steps(warmup: float, steps: int) -> int:
    """``warmup`` as a number of steps (a fraction of ``steps`` under 1, a count from 1 on)."""
    return max(int(warmup * steps), 1) if warmup < 1 else int(warmup)


def lr_factor(step: int, steps: int, warmup: float, min_lr_ratio: float) -> float:
    """The learning rate of ``step`` (0-based) over the peak: linear warm-up to 1, then a cosine down to
    ``min_lr_ratio`` at ``steps``."""
    ramp = warmup_steps(warmup, steps)
    if step < ramp:
        return (step + 1) / ramp
    progress = (step - ramp) / max(steps - ramp, 1)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_checkpoint(
    directory: str | Path, opt: torch.optim.Optimizer, state: dict, write_weights: Callable[[Path], None]
) -> Path:
    """Write the checkpoint ``directory`` whole: ``write_weights(tmp)`` puts the weights in the new
    directory, then the optimizer and torch RNG, then ``state`` as ``trainer_state.json``. A crash at any
    point leaves the previous directory (or none), never a torn one."""
    with atomic_directory(directory) as tmp:
        write_weights(tmp)
        save_optimizer_state(tmp, opt)
        atomic_write_json(tmp / STATE_FILE, state)
    return Path(directory)


def load_checkpoint(directory: str | Path, opt: torch.optim.Optimizer) -> dict:
    """Restore the optimizer and the torch RNG of ``save_checkpoint``'s directory; return its state.
    (The weights are the loop's to read, before this call.)"""
    load_optimizer_state(directory, opt)
    return json.loads((Path(directory) / STATE_FILE).read_text())
