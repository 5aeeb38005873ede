"""Atomic writes (f2l.io): a write that fails midway leaves the old file or directory as it was and no
temporary behind; JSON, safetensors and optimizer state read back as written."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from f2l.io import (
    atomic_directory,
    atomic_path,
    atomic_save_safetensors,
    atomic_write_json,
    atomic_write_text,
    load_optimizer_state,
    save_optimizer_state,
)


class WriterFailed(Exception):
    pass


def entries(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ``KeyboardInterrupt`` is no ``Exception``: the temporary must go on any ``BaseException``
FAILURES = pytest.mark.parametrize("failure", [WriterFailed, KeyboardInterrupt])


@FAILURES
def test_a_writer_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    path = tmp_path / "scores.json"
    atomic_write_text(path, "old\n")
    with pytest.raises(failure), atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".json" and tmp != path
        tmp.write_text("half a new fi")  # the writer gets this far, then fails
        raise failure
    assert path.read_text() == "old\n"
    assert entries(tmp_path) == ["scores.json"]


def test_a_failed_flush_keeps_the_old_json(tmp_path, monkeypatch):
    """The bytes are written but not yet on disk when the system call fails: nothing is renamed."""
    path = tmp_path / "state.json"
    atomic_write_json(path, {"step": 1})

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(path, {"step": 2})
    assert json.loads(path.read_text()) == {"step": 1}
    assert entries(tmp_path) == ["state.json"]


def test_a_successful_write_replaces_the_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "nested" / "out.txt"  # parents are created
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert entries(path.parent) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


@FAILURES
def test_a_directory_write_failing_midway_leaves_the_old_directory(tmp_path, failure):
    ckpt = tmp_path / "checkpoint"
    with atomic_directory(ckpt) as tmp:
        (tmp / "weights.bin").write_bytes(b"old weights")
        (tmp / "config.json").write_text("{}")
    with pytest.raises(failure), atomic_directory(ckpt) as tmp:
        (tmp / "weights.bin").write_bytes(b"new weights")  # one file written, the next never comes
        raise failure
    assert entries(ckpt) == ["config.json", "weights.bin"]
    assert (ckpt / "weights.bin").read_bytes() == b"old weights"
    assert entries(tmp_path) == ["checkpoint"]


def test_a_directory_write_replaces_the_directory_whole(tmp_path):
    ckpt = tmp_path / "checkpoint"
    with atomic_directory(ckpt) as tmp:
        (tmp / "stale.txt").write_text("from the first save")
        (tmp / "weights.bin").write_bytes(b"1")
    with atomic_directory(ckpt) as tmp:
        assert entries(tmp) == []  # the writer starts from an empty directory, not a copy
        (tmp / "weights.bin").write_bytes(b"2")
    assert entries(ckpt) == ["weights.bin"] and (ckpt / "weights.bin").read_bytes() == b"2"
    assert entries(tmp_path) == ["checkpoint"]  # neither the temporary nor the renamed-away old one
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700


def test_json_reads_back_and_is_the_same_text_whatever_the_key_order(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"z": "ü", "y": True}}
    atomic_write_json(tmp_path / "one.json", obj)
    atomic_write_json(tmp_path / "two.json", dict(reversed(list(obj.items()))))
    assert json.loads((tmp_path / "one.json").read_text()) == obj
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert (tmp_path / "one.json").read_text().endswith("}\n")


def test_safetensors_round_trip_keeps_values_dtypes_and_metadata(tmp_path):
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 5, generator=g, requires_grad=True)
    tensors = {
        "transposed": weight.t(),  # not contiguous
        "half": torch.randn(4, generator=g).half(),
        "bf16": torch.randn(2, 2, generator=g).bfloat16(),
        "ids": torch.arange(7, dtype=torch.int64),
    }
    path = atomic_save_safetensors(tmp_path / "t.safetensors", tensors, metadata={"base": "tiny@abc"})
    back = load_file(path)
    assert back.keys() == tensors.keys()
    for name, value in tensors.items():
        assert back[name].dtype == value.dtype and torch.equal(back[name], value.detach()), name
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"base": "tiny@abc"}
    assert entries(tmp_path) == ["t.safetensors"]


def _model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def _step(model, opt, x):
    opt.zero_grad()
    model(x).pow(2).sum().backward()
    opt.step()


def test_optimizer_state_round_trip_continues_exactly_and_restores_the_rng(tmp_path):
    model, opt = _model_and_optimizer(0)
    x = torch.randn(8, 4)
    for _ in range(3):
        _step(model, opt, x)
    opt.param_groups[0]["lr"] = 3e-3  # as a schedule leaves it
    save_optimizer_state(tmp_path, opt)
    assert entries(tmp_path) == ["optimizer.json", "optimizer.safetensors"]  # nothing pickled
    expected_draw = torch.rand(5)  # what the RNG gives next after the save

    resumed, opt2 = _model_and_optimizer(1)  # other initial weights and a fresh optimizer
    resumed.load_state_dict(model.state_dict())
    load_optimizer_state(tmp_path, opt2)
    assert torch.equal(torch.rand(5), expected_draw)
    assert opt2.param_groups[0]["lr"] == 3e-3 and opt2.param_groups[0]["weight_decay"] == 0.1
    before = opt.state_dict()["state"]
    after = opt2.state_dict()["state"]
    assert before.keys() == after.keys() and len(before) == 4
    for pid in before:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(after[pid][name]), torch.as_tensor(before[pid][name]))
    # the moments matter: one more step on both lands on the same weights, bit for bit
    _step(model, opt, x)
    _step(resumed, opt2, x)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
