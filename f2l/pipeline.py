"""Internalize a video into an adapter, then answer from the adapter alone.

    f2l = Frames2LoRA.from_pretrained("tiny")            # the shipped hypernetwork and its base
    adapter = f2l.internalize("clip.mp4", frames=12)     # one forward pass of base + hypernetwork
    f2l.generate(adapter, "What happens first?")         # zero visual tokens in context

``internalize`` is content-addressed: asking about the same clip again (same pixels, timestamps and
hypernetwork) reuses the adapter instead of re-encoding the video.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from f2l.adapter import Adapter, merged_adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, Answer, answer
from f2l.encode import internalization_inputs
from f2l.hypernet import Hypernet, load_hypernet, module_shapes_of, read_kind_config
from f2l.models import CHECKPOINTS_DIR, Base, current_name, load_base
from f2l.video import Frames, load_video

SHIPPED_HYPERNETS = {
    "tiny": "tiny-hypernet",
    "paper-tiny": "paper-tiny-hypernet",
    "tiny-chunk": "tiny-chunk-hypernet",  # `tiny` continued by the chunk stage (--preset tiny-chunk)
    "small": "small-hypernet",  # the second scale's (SHIPPED_RECIPES, on the `small` base)
    # the shipped recipe's first stage (--preset small-head) continued by the chunk stage
    "small-chunk": "small-chunk-hypernet",
}  # and their old names (f2l.models.RENAMED: `tiny-small` is `small`)
# The `f2l.train` presets that build a shipped hypernetwork, in order, where it is more than its own name's:
# each of the small scale's later stages continues the last checkpoint of the one before it.
SHIPPED_RECIPES = {
    "small": ("small-head", "small-head-continued", "small-head-third-truth"),
    "small-chunk": ("small-head", "small-head-chunk"),
}


class InputsTransform(Protocol):
    """A change to the encoder's inputs before internalization (hashable: adapters are cached under it)."""

    def __call__(self, base: Base, inputs): ...

    def provenance(self) -> dict: ...


class HypernetMismatchError(ValueError):
    """A hypernetwork loaded onto a base it was not built for."""


def resolve_hypernet(name_or_path: str | os.PathLike) -> Path:
    """A shipped hypernetwork's name (or an old name of one: ``f2l.models.RENAMED``) or a directory -> the
    directory holding it."""
    key = current_name(str(name_or_path), SHIPPED_HYPERNETS)
    path = CHECKPOINTS_DIR / SHIPPED_HYPERNETS[key] if key in SHIPPED_HYPERNETS else Path(key).expanduser()
    if not (path / "hypernet_config.json").is_file():
        hint = ""
        if key in SHIPPED_HYPERNETS:
            commands = [f"python -m f2l.train --preset {p}" for p in SHIPPED_RECIPES.get(key, (key,))]
            hint = f" Rebuild it with `{' && '.join(commands)} --ship {path}`."
        raise FileNotFoundError(f"no hypernetwork at {path} (hypernet_config.json missing).{hint}")
    return path


def package_hypernet(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, base: str, extra: dict | None = None
) -> Path:
    """Write a training checkpoint's hypernetwork (with its run's loss log) to ``out_dir``, replacing
    that directory whole, for use by ``from_pretrained``. The base is named by ``base`` (a shipped name,
    Hub id or path valid where it will be used); the base's weight digest recorded at training time
    still guards against a mismatched base."""
    from f2l.io import atomic_directory, atomic_write_json

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    meta = json.loads((checkpoint / "hypernet_config.json").read_text())
    digest = meta["config"]["base_id"].rsplit("@", 1)[-1]
    meta["config"]["base_id"] = f"{base}@{digest}"
    meta.setdefault("train_config", {})["base"] = base
    meta.update(extra or {})
    log = checkpoint.parent.parent / "log.jsonl"  # the training run's loss log, when there is one
    with atomic_directory(out_dir) as tmp:
        shutil.copyfile(checkpoint / "hypernet.safetensors", tmp / "hypernet.safetensors")
        atomic_write_json(tmp / "hypernet_config.json", meta)
        if log.is_file():
            shutil.copyfile(log, tmp / "train_log.jsonl")
    return out_dir


def check_compatible(c, base: Base) -> None:
    """Refuse a base whose width, depth, target shapes or weights differ from the hypernetwork's."""
    text = base.model.config.text_config
    problems = []
    if text.hidden_size != c.d_model:
        problems.append(f"hidden size {text.hidden_size} != {c.d_model}")
    if text.num_hidden_layers != c.num_layers:
        problems.append(f"{text.num_hidden_layers} layers != {c.num_layers}")
    if not problems:
        shapes = module_shapes_of(base, c.target_modules)
        if shapes != dict(c.module_shapes):
            problems.append(f"target module shapes {shapes} != {c.module_shapes}")
    digest = base.digest
    if "@" in c.base_id and c.base_id.rsplit("@", 1)[1] != digest:
        problems.append(f"base weights {digest} != {c.base_id.rsplit('@', 1)[1]} (trained for {c.base_id})")
    if problems:
        raise HypernetMismatchError(
            f"hypernetwork built for {c.base_id} cannot drive base {base.name}: " + "; ".join(problems)
        )


def frames_digest(frames: Frames) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(frames.pixels).tobytes())
    h.update(np.asarray(frames.timestamps, dtype=np.float64).tobytes())
    h.update(str(frames.pixels.shape).encode())
    return h.hexdigest()[:24]


class Frames2LoRA:
    """A frozen base VLM and the hypernetwork that writes its adapters (``hypernet`` None: the base alone,
    for the methods that answer without an adapter; ``from_base``)."""

    def __init__(self, base: Base, hypernet: Hypernet | None, hypernet_id: str, cache_size: int = 64):
        if hypernet is not None:
            check_compatible(hypernet.config, base)
            hypernet = hypernet.eval()
        self.base, self.hypernet, self.hypernet_id = base, hypernet, hypernet_id
        self._cache: OrderedDict[tuple, Adapter] = OrderedDict()
        self.cache_size = cache_size

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = "tiny",
        *,
        base: str | Base | None = None,
        device: str | None = None,
    ) -> Frames2LoRA:
        """Load a hypernetwork directory (or a shipped name) and the base it names (or ``base``)."""
        path = resolve_hypernet(name_or_path)
        meta = json.loads((path / "hypernet_config.json").read_text())
        if not isinstance(base, Base):
            base_name = (
                base or meta.get("train_config", {}).get("base") or meta["config"]["base_id"].split("@")[0]
            )
            base = load_base(base_name, device=device)
        check_compatible(read_kind_config(path)[1], base)  # before any weight is read
        hypernet = load_hypernet(path, device=base.device)
        digest = hashlib.sha256((path / "hypernet.safetensors").read_bytes()).hexdigest()[:16]
        return cls(base, hypernet, hypernet_id=f"{path.name}@{digest}")

    @classmethod
    def from_base(cls, base: str | Base, *, device: str | None = None) -> Frames2LoRA:
        """The base alone (``hypernet_id`` "none"): video in context, the question alone, the KV cache;
        internalizing is an error. How a base is judged before it has a hypernetwork."""
        return cls(base if isinstance(base, Base) else load_base(base, device=device), None, "none")

    @property
    def _context(self):
        """The hypernetwork's context format (how a video file is sampled); None for the base alone."""
        return None if self.hypernet is None else self.hypernet.context

    def sample_video(self, video, frames: int | None = None) -> Frames:
        """``video`` sampled at ``frames`` frames; by default a ``Frames`` as it is, and a file or array the
        way the hypernetwork's context format samples (all frames when it says nothing)."""
        if frames is not None:
            return load_video(video, num_frames=frames)
        if isinstance(video, Frames):
            return video
        return self._at_most_max_frames(load_video(video, fps=self._context and self._context.fps))

    def _at_most_max_frames(self, clip: Frames) -> Frames:
        cap = self._context and self._context.max_frames
        return clip if cap is None or len(clip.timestamps) <= cap else load_video(clip, num_frames=cap)

    def example_frames(self, example, frames: int | None = None, size: int | None = None) -> Frames:
        """A manifest example's frames as this base sees them: world clips render at ``size`` (default: the
        base's own frame size), video files decode at their native size (the processor resizes them). With
        no frame count from the caller or the example, a video file is sampled the way the hypernetwork's
        context format says (``sample_video``)."""
        from f2l.data import load_frames

        if example.is_world:
            return load_frames(
                example, num_frames=frames, size=size or self.base.model.config.vision_config.image_size
            )
        if frames is not None or example.frames is not None:
            return load_frames(example, num_frames=frames, size=size)
        if example.fps is None and self._context is not None and self._context.fps is not None:
            example = dataclasses.replace(example, fps=self._context.fps)
        return self._at_most_max_frames(load_frames(example, size=size))

    @torch.inference_mode()
    def internalize(
        self,
        video,
        *,
        frames: int | None = None,
        chunk_frames: int | None = None,
        transform: InputsTransform | None = None,
    ) -> Adapter:
        """One adapter for ``video`` (a path, an array, or ``Frames``), sampled at ``frames`` frames.

        ``chunk_frames``: split the frames into non-overlapping segments of that many frames, internalize
        each, and compose the segment adapters along the rank (``Adapter.compose``).
        ``transform``: applied to the encoder inputs before the base reads them (a baseline's change to
        the context, such as ``f2l.eval.token_merge.TokenMerge``); part of the cache key and provenance.
        """
        if self.hypernet is None:
            raise ValueError("this pipeline is a base alone (Frames2LoRA.from_base): it writes no adapter")
        clip = self.sample_video(video, frames)
        key = (frames_digest(clip), chunk_frames, transform)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if chunk_frames is None:
            adapter = self.internalize_batch([clip], transform=transform)[0]
        else:
            if chunk_frames < 1:
                raise ValueError(f"chunk_frames must be >= 1, not {chunk_frames}")
            segments = [
                Frames(clip.pixels[i : i + chunk_frames], clip.timestamps[i : i + chunk_frames], clip.source)
                for i in range(0, len(clip.timestamps), chunk_frames)
            ]
            factors = self.hypernet(self.base, self._inputs(segments, transform))
            adapter = self.hypernet.compose_segments(factors, self.provenance(clip, transform))
        self._cache[key] = adapter
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return adapter

    @torch.inference_mode()
    def internalize_batch(self, clips: list[Frames], transform: InputsTransform | None = None) -> Adapter:
        """A batched adapter, one sample per clip, from one forward pass of base + hypernetwork
        (over the visual tokens merged ``token_merge``-fold when given)."""
        factors = self.hypernet(self.base, self._inputs(clips, transform))
        return self.hypernet.to_adapter(factors, [self.provenance(c, transform) for c in clips])

    def _inputs(self, clips: list[Frames], transform: InputsTransform | None):
        inputs = internalization_inputs(self.base, clips, self.hypernet.context)
        return inputs if transform is None else transform(self.base, inputs)

    def provenance(self, clip: Frames, transform: InputsTransform | None = None) -> dict:
        """What an adapter of ``clip`` records of how it was made."""
        return {
            "base": self.base.name,
            "hypernet": self.hypernet_id,
            "video_id": clip.source,
            "frames": len(clip.timestamps),
            "resolution": [int(clip.pixels.shape[1]), int(clip.pixels.shape[2])],
            **({} if transform is None else transform.provenance()),
        }

    def generate(
        self,
        adapter: Adapter,
        question: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        merged: bool = False,
    ) -> Answer:
        """Answer ``question`` from the adapter alone: the prompt holds no visual token.

        ``merged=True`` folds the adapter into the weights for the call (zero per-token overhead) and
        restores them exactly afterwards.
        """
        if not merged:
            return answer(self.base, None, question, adapter=adapter, max_new_tokens=max_new_tokens)
        with merged_adapter(self.base.model, adapter):
            return answer(self.base, None, question, max_new_tokens=max_new_tokens)
