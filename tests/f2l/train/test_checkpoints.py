"""The checkpoint both training loops share (f2l.train.checkpoints): a directory that is written whole and
restores the optimizer and the torch RNG."""

from __future__ import annotations

import pytest
import torch

from f2l.train.checkpoints import STATE_FILE, load_checkpoint, save_checkpoint


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
