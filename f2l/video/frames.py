"""The frames every part of f2l consumes, and the typed errors of video input.

:class:`Frames` holds sampled (T, H, W, 3) uint8 RGB pixels with their presentation times in seconds;
:func:`frames_from_array` wraps an in-memory clip as one. :mod:`f2l.video` is the public entry point.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_ARRAY_FPS = 1.0
"""Frame rate assumed for an in-memory array given without timestamps or fps."""


class VideoDecodeError(ValueError):
    """A video file could not be opened or decoded; the message names the file and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot decode video {self.path!r}: {cause}")


class VideoDecodeWarning(UserWarning):
    """A video decoded only in part (truncated or corrupt); the frames that decoded are used."""


@dataclass(frozen=True, eq=False)
class Frames:
    """Sampled video frames: ``pixels`` is (T, H, W, 3) uint8 RGB, ``timestamps`` (T,) seconds.

    ``indices`` are the positions of these frames in the source's decoded frame list (repeats
    allowed) and ``source_fps`` is the source's average frame rate; both are provenance and may
    be ``None`` when unknown. Equality is identity: compare ``pixels`` explicitly.
    """

    pixels: np.ndarray
    timestamps: np.ndarray
    source: str = "<array>"
    indices: np.ndarray | None = None
    source_fps: float | None = None

    def __post_init__(self) -> None:
        px = self.pixels
        if not isinstance(px, np.ndarray) or px.dtype != np.uint8:
            raise TypeError(f"Frames.pixels must be a uint8 numpy array, got {_describe(px)}")
        if px.ndim != 4 or px.shape[-1] != 3 or min(px.shape) < 1:
            raise ValueError(f"Frames.pixels must have shape (T>=1, H, W, 3), got {px.shape}")
        ts = np.asarray(self.timestamps, dtype=np.float64)
        if ts.shape != (px.shape[0],):
            raise ValueError(f"Frames.timestamps must have shape ({px.shape[0]},), got {ts.shape}")
        if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) < 0):
            raise ValueError("Frames.timestamps must be finite and non-decreasing")
        object.__setattr__(self, "timestamps", ts)
        if self.indices is not None:
            idx = np.asarray(self.indices, dtype=np.int64)
            if idx.shape != ts.shape:
                raise ValueError(f"Frames.indices must have shape {ts.shape}, got {idx.shape}")
            object.__setattr__(self, "indices", idx)

    @property
    def num_frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[2])


Source = str | os.PathLike | np.ndarray | Frames


@dataclass(frozen=True)
class VideoInfo:
    """Cheap metadata of a video file's first video stream (see :func:`probe_video`)."""

    num_frames: int
    fps: float | None
    duration: float | None  # seconds
    width: int
    height: int
    codec: str
    pix_fmt: str | None = None
    path: str = ""


def frames_from_array(
    array: np.ndarray,
    *,
    timestamps: np.ndarray | None = None,
    fps: float | None = None,
    source: str = "<array>",
) -> Frames:
    """Wrap an in-memory clip as :class:`Frames`, converting it to (T, H, W, 3) uint8 RGB.

    Accepts (T, H, W, 3) RGB, (T, H, W) or (T, H, W, 1) grayscale; integer arrays must hold
    0..255 and float arrays 0..1 (scaled by 255 and rounded). Timing is ``timestamps`` or
    ``arange(T) / fps`` (``fps`` defaults to :data:`DEFAULT_ARRAY_FPS`), not both.
    """
    pixels = _to_rgb_uint8(array)
    if timestamps is not None and fps is not None:
        raise ValueError("give either timestamps or fps for an array, not both")
    if timestamps is None:
        rate = DEFAULT_ARRAY_FPS if fps is None else _positive("fps", fps)
        timestamps = np.arange(pixels.shape[0], dtype=np.float64) / rate
    else:
        rate = None
    return Frames(pixels, np.asarray(timestamps, dtype=np.float64), source=source, source_fps=rate)


def _to_rgb_uint8(array: Any) -> np.ndarray:
    """(T, H, W[, 1|3]) uint8/int/float -> (T, H, W, 3) uint8, with clear errors for anything else."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array of frames, got {_describe(array)}")
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or min(array.shape) < 1:
        raise ValueError(
            f"frames must have shape (T, H, W), (T, H, W, 1) or (T, H, W, 3) with T, H, W >= 1, "
            f"got {array.shape}"
        )
    if array.dtype == np.uint8:
        out = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError("float frames must hold values in [0, 1]")
        out = np.rint(array * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError("integer frames must hold values in [0, 255]")
        out = array.astype(np.uint8)
    else:
        raise TypeError(f"frames must be uint8, integer or float, got dtype {array.dtype}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _describe(obj: Any) -> str:
    shape = getattr(obj, "shape", None)
    return f"{type(obj).__name__}" + (f" of shape {shape}" if shape is not None else "")
