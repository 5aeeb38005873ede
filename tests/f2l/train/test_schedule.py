"""The learning-rate schedule both training loops read (f2l.train.schedule): one warm-up convention and
one schedule."""

from __future__ import annotations

import math

import pytest

from f2l.basetrain.pretrain import PretrainConfig, _lr_at
from f2l.train import TrainConfig
from f2l.train.schedule import lr_factor, warmup_steps


def test_warmup_is_a_fraction_under_one_and_a_step_count_from_one_on():
    assert [warmup_steps(w, 1000) for w in (0.03, 0.05, 30, 100)] == [30, 50, 30, 100]
    assert warmup_steps(0.05, 6) == 1  # a fraction rounding to no step still warms up one
    # a fraction and the count it stands for give the same schedule
    assert [lr_factor(s, 1000, 0.03, 0.1) for s in range(1000)] == [
        lr_factor(s, 1000, 30, 0.1) for s in range(1000)
    ]


def test_the_schedule_ramps_linearly_then_follows_a_cosine_to_its_floor():
    f = [lr_factor(s, 200, 20, 0.05) for s in range(200)]
    assert f[:3] == [1 / 20, 2 / 20, 3 / 20] and f[19] == 1.0 == f[20]
    assert f[110] == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 90 / 180)))
    assert all(a >= b for a, b in zip(f[20:], f[21:], strict=False)) and f[-1] == pytest.approx(
        0.05, abs=1e-3
    )


def test_both_loops_read_the_same_schedule():
    """The distillation loop and the base's pretraining (past its head warm-up) ask the same function."""
    train = TrainConfig(steps=300, lr=2e-3, warmup=0.1, min_lr_ratio=0.05)
    pre = PretrainConfig(steps=340, lr=2e-3, warmup=0.1, head_warmup=40, min_lr_ratio=0.05)
    for step in range(300):
        assert _lr_at(step + 40, pre) == train.lr * lr_factor(
            step, train.steps, train.warmup, train.min_lr_ratio
        )
    assert _lr_at(39, pre) == 0.0 and _lr_at(39, pre, heads=True) == pre.lr
