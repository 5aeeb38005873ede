"""Video input: decode with PyAV, sample frames, keep timestamps.

Everything downstream (processor, encoder, teacher) consumes :class:`Frames`, so this package is
the one place that knows about containers, codecs, pixel formats and broken files. Bad input
surfaces here as :class:`VideoDecodeError` naming the file, never as an error deep in a decoder.

Sampling rules (both work the same on a file, an array and a :class:`Frames`):

* ``num_frames=N``: the frames at the centres of N equal segments of the decoded frame list
  (or of its ``start``/``end`` window). Deterministic, covers the whole clip, and honours N even
  when the clip has fewer frames: segments then share a frame, so frames repeat (the VLM is
  built for a fixed frame count, so the count wins over uniqueness).
* ``fps=f``: the frame on screen at each instant ``t0, t0 + 1/f, ...`` up to the last frame,
  where ``t0`` is the first frame's time. Asking for more than the native rate repeats frames.
* neither: every frame.

Timestamps are always the true presentation times of the frames chosen, in seconds from the
stream's first frame, float64.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from f2l.video.files import _load_file, probe_video, write_video
from f2l.video.frames import (
    DEFAULT_ARRAY_FPS,
    Frames,
    Source,
    VideoDecodeError,
    VideoDecodeWarning,
    VideoInfo,
    _describe,
    frames_from_array,
)
from f2l.video.sampling import _resizer, _sample_frames, _selector

__all__ = [
    "DEFAULT_ARRAY_FPS",
    "Frames",
    "Source",
    "VideoDecodeError",
    "VideoDecodeWarning",
    "VideoInfo",
    "frames_from_array",
    "load_video",
    "probe_video",
    "write_video",
]


def load_video(
    source: Source,
    *,
    num_frames: int | None = None,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    longest_edge: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Frames:
    """Load and sample a video from a file path, a frames array or a :class:`Frames`.

    ``num_frames`` and ``fps`` choose the sampling (see the module docstring; at most one).
    ``size=(h, w)`` resizes exactly; ``longest_edge=L`` scales so the longer side is L pixels
    (up or down) keeping the aspect ratio. ``start``/``end`` (seconds, same clock as the
    timestamps) restrict sampling to frames with ``start <= t < end``.

    A file is decoded sequentially and only the chosen frames are converted and kept, so memory
    is bounded by the sample, not the clip. An array without timestamps is taken to run at
    :data:`DEFAULT_ARRAY_FPS`; use :func:`frames_from_array` to give its real timing.

    A file that cannot be read (missing, empty, not a container, no video stream, no frame
    decodes) raises :class:`VideoDecodeError`. One that decodes only in part (truncated,
    damaged) is sampled over the frames that do decode, with a :class:`VideoDecodeWarning`.
    A still image is a valid one-frame clip. Bad arguments raise ``ValueError`` before any I/O.
    """
    select = _selector(num_frames=num_frames, fps=fps, start=start, end=end)
    resize = _resizer(size=size, longest_edge=longest_edge)
    if isinstance(source, Frames):
        return _sample_frames(source, select, resize)
    if isinstance(source, np.ndarray):
        return _sample_frames(frames_from_array(source), select, resize)
    if isinstance(source, str | os.PathLike):
        return _load_file(Path(source), select, resize)
    raise TypeError(f"load_video expects a path, a numpy array or Frames, got {_describe(source)}")
