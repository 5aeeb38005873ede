"""What both training loops share (f2l.training): one warm-up convention and schedule, and a checkpoint
directory that is written whole and restores the optimizer and the torch RNG."""

from __future__ import annotations

import math

import pytest
import torch

from f2l.basetrain.pretrain import PretrainConfig, _lr_at
from f2l.train import TrainConfig
from f2l.training import STATE_FILE, load_checkpoint, lr_factor, save_checkpoint, warmup_steps


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


def test_a_checkpoint_restores_the_optimizer_and_the_rng_and_a_failed_write_keeps_the_old_one(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    directory = tmp_path / "ckpt"
    save_checkpoint(directory, opt, {"step": 1}, lambda d: (d / "weights.txt").write_text("one"))
    expected_draw = torch.rand(3)  # what the RNG gives next after the save

    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-2)
    torch.manual_seed(123)
    assert load_checkpoint(directory, fresh) == {"step": 1}
    assert torch.equal(torch.rand(3), expected_draw)
    for a, b in zip(opt.state.values(), fresh.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])

    def broken(d):
        (d / "weights.txt").write_text("two")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(directory, opt, {"step": 2}, broken)
    assert (directory / "weights.txt").read_text() == "one" and (directory / STATE_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp directory left behind
