"""The learning-rate schedule both training loops (``f2l.train``, ``f2l.basetrain.pretrain``) read.

``warmup`` has one meaning in both: under 1 it is a fraction of the run's steps (at least one step), from
1 on a count of steps, as transformers' ``warmup_steps`` reads it. After the warm-up a cosine falls to
``min_lr_ratio`` of the peak at the last step.
"""

from __future__ import annotations

import math


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
