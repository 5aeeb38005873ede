"""Atomic file writing: every checkpoint and result is written to a temporary file in the
same directory and renamed into place, so an interrupted run never leaves a torn file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer the format from it
    still work); when the block succeeds it is renamed onto ``path``, when it fails it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; when the block succeeds it replaces the
    directory ``path`` whole (the old one is renamed away first, then removed, so a crash leaves either
    the old directory or the new one), when it fails it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a same-directory temp file, flushed to disk, then ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_safetensors(
    path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None
) -> Path:
    """Save a dict of torch tensors as safetensors, atomically."""
    from safetensors.torch import save

    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write_bytes(path, save(contiguous, metadata=metadata))


def save_optimizer_state(directory: str | os.PathLike, opt) -> None:
    """An optimizer's state as ``optimizer.safetensors`` (moments, steps, the torch RNG state) and
    ``optimizer.json`` (param groups): resumable without pickle."""
    import torch

    state = opt.state_dict()
    tensors = {
        f"state.{pid}.{name}": value if torch.is_tensor(value) else torch.tensor(value)
        for pid, entries in state["state"].items()
        for name, value in entries.items()
    }
    tensors["rng.torch"] = torch.get_rng_state()
    atomic_save_safetensors(Path(directory) / "optimizer.safetensors", tensors)
    atomic_write_json(Path(directory) / "optimizer.json", {"param_groups": state["param_groups"]})


def load_optimizer_state(directory: str | os.PathLike, opt) -> None:
    """Restore what ``save_optimizer_state`` wrote into ``opt`` (built over the same parameters), and the
    torch RNG state."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(Path(directory) / "optimizer.safetensors")
    groups = json.loads((Path(directory) / "optimizer.json").read_text())["param_groups"]
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
