"""Sampling rules shared by files and arrays: a selector maps a timestamp array to the chosen indices,
a resizer maps (h, w) to the output size. Arguments are validated here, before any decoding; the
rules themselves are stated in :mod:`f2l.video`'s docstring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from f2l.video.frames import Frames, _is_positive_int, _positive

_TS_TOLERANCE = 1e-6  # seconds; absorbs float error between k / fps and pts * time_base
_RESIZE_INTERPOLATION = "BILINEAR"  # swscale widens the filter when shrinking, so this antialiases

Selector = Callable[[np.ndarray], "_Selection"]
Resizer = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class _Selection:
    indices: np.ndarray  # chosen positions in the timestamp array, non-decreasing
    window_stop: int  # one past the last frame of the start/end window


def _selector(
    *, num_frames: int | None, fps: float | None, start: float | None, end: float | None
) -> Selector:
    """Validate the sampling arguments once, before any decoding, and return the rule."""
    if num_frames is not None and fps is not None:
        raise ValueError("num_frames and fps are mutually exclusive: give one of them, or neither")
    if num_frames is not None and not _is_positive_int(num_frames):
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
    if fps is not None:
        _positive("fps", fps)
    if start is not None and not (np.isfinite(start) and start >= 0):
        raise ValueError(f"start must be a finite number of seconds >= 0, got {start!r}")
    if end is not None and not end > (start or 0.0):
        raise ValueError(f"end must be greater than start ({start or 0.0}), got {end!r}")

    def select(ts: np.ndarray) -> _Selection:
        lo = 0 if start is None else int(np.searchsorted(ts, start - _TS_TOLERANCE, side="left"))
        hi = len(ts) if end is None else int(np.searchsorted(ts, end - _TS_TOLERANCE, side="left"))
        if hi <= lo:
            span = f"{ts[0]:.3f}..{ts[-1]:.3f} s" if len(ts) else "no frames"
            raise ValueError(f"no frames with start={start} <= t < end={end}; the clip spans {span}")
        if num_frames is not None:
            n = hi - lo
            i = np.arange(int(num_frames), dtype=np.int64)
            idx = lo + ((2 * i + 1) * n) // (2 * int(num_frames))  # floor of each segment's centre
        elif fps is not None:
            window = ts[lo:hi]
            count = int(np.floor((window[-1] - window[0]) * fps + _TS_TOLERANCE)) + 1
            targets = window[0] + np.arange(count, dtype=np.float64) / fps
            idx = lo + np.searchsorted(window, targets + _TS_TOLERANCE, side="right") - 1
        else:
            idx = np.arange(lo, hi, dtype=np.int64)
        return _Selection(indices=idx.astype(np.int64), window_stop=hi)

    return select


def _resizer(*, size: tuple[int, int] | None, longest_edge: int | None) -> Resizer:
    """Return ``(h, w) -> (new_h, new_w)``; identity when no resize was asked for."""
    if size is not None and longest_edge is not None:
        raise ValueError("size and longest_edge are mutually exclusive")
    if size is not None:
        if len(size) != 2 or not all(_is_positive_int(s) for s in size):
            raise ValueError(f"size must be (height, width) with positive integers, got {size!r}")
        target = (int(size[0]), int(size[1]))
        return lambda h, w: target
    if longest_edge is not None:
        if not _is_positive_int(longest_edge):
            raise ValueError(f"longest_edge must be a positive integer, got {longest_edge!r}")
        edge = int(longest_edge)

        def keep_aspect(h: int, w: int) -> tuple[int, int]:
            scale = edge / max(h, w)
            return max(1, round(h * scale)), max(1, round(w * scale))

        return keep_aspect
    return lambda h, w: (h, w)


def _sample_frames(frames: Frames, select: Selector, resize: Resizer) -> Frames:
    chosen = select(frames.timestamps).indices
    out_h, out_w = resize(frames.height, frames.width)
    unique, inverse = np.unique(chosen, return_inverse=True)
    images = frames.pixels[unique]
    if (out_h, out_w) != (frames.height, frames.width):
        images = np.stack([_resize_rgb(image, out_h, out_w) for image in images])
    indices = chosen if frames.indices is None else frames.indices[chosen]
    return Frames(
        pixels=np.ascontiguousarray(images[inverse]),
        timestamps=frames.timestamps[chosen],
        source=frames.source,
        indices=indices,
        source_fps=frames.source_fps,
    )


def _resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation=_RESIZE_INTERPOLATION)
