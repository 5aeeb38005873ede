"""Resumable checkpoints: one directory written whole or not at all.

``save_checkpoint`` / ``load_checkpoint`` are what both training loops (``f2l.train``,
``f2l.basetrain.pretrain``) share: the loop's weights, the optimizer with the torch RNG
(``f2l.io.save_optimizer_state``) and ``trainer_state.json`` (the step and whatever else the loop needs to
continue exactly), written through ``f2l.io.atomic_directory``. ``save_run_checkpoint`` /
``load_run_checkpoint`` / ``latest_checkpoint`` are the distillation run's: ``run_dir/checkpoints/
step-XXXXXXX/`` holding the hypernetwork (its config and the run's config beside it), a camera head's
linear layer when the run trains one, and the last ``keep_last`` of them kept.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from f2l.camera_head import CameraHead, hypernet_of
from f2l.config import config_dict
from f2l.io import atomic_directory, atomic_write_json, load_optimizer_state, save_optimizer_state

if TYPE_CHECKING:
    from f2l.hypernet import Hypernet
    from f2l.train.config import TrainConfig

STATE_FILE = "trainer_state.json"


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


def save_run_checkpoint(
    run_dir: Path,
    step: int,
    trained: Hypernet | CameraHead,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    keep_last: int,
) -> Path:
    """``run_dir/checkpoints/step-XXXXXXX/`` (``save_checkpoint``: all or nothing): the hypernetwork, and a
    ``CameraHead``'s linear head beside it; then all but the last ``keep_last`` removed."""
    root = run_dir / "checkpoints"

    def write(directory: Path) -> None:
        hypernet_of(trained).save(directory, extra={"train_config": config_dict(cfg), "step": step})
        if isinstance(trained, CameraHead):
            trained.save_head(directory)

    final = save_checkpoint(root / f"step-{step:07d}", opt, {"step": step}, write)
    for old in sorted(root.glob("step-*"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def load_run_checkpoint(path: Path, trained: Hypernet | CameraHead, opt: torch.optim.Optimizer) -> int:
    """Restore ``save_run_checkpoint``'s weights into ``trained`` and the optimizer; the step it saved."""
    hypernet = hypernet_of(trained)
    hypernet.load_state_dict(
        type(hypernet).load(path, device=next(hypernet.parameters()).device).state_dict()
    )
    if isinstance(trained, CameraHead) and not trained.load_head(path):
        raise FileNotFoundError(f"{path} holds no camera head to resume")
    return int(load_checkpoint(path, opt)["step"])
