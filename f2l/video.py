"""Video input: decode with PyAV, sample frames, keep timestamps.

Everything downstream (processor, encoder, teacher) consumes :class:`Frames`, so this module is
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

import numbers
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from f2l.io import atomic_path

DEFAULT_ARRAY_FPS = 1.0
"""Frame rate assumed for an in-memory array given without timestamps or fps."""

_TS_TOLERANCE = 1e-6  # seconds; absorbs float error between k / fps and pts * time_base
_RESIZE_INTERPOLATION = "BILINEAR"  # swscale widens the filter when shrinking, so this antialiases

# Codecs whose 4:2:0 / 4:2:2 modes reject odd frame sizes; write_video switches them to 4:4:4.
_EVEN_SIZE_CODECS = frozenset({"libx264", "libx265", "h264", "hevc"})
_CODEC_BY_SUFFIX = {".webm": "libvpx-vp9", ".avi": "mjpeg", ".gif": "gif"}
_PIX_FMT_BY_CODEC = {"gif": "rgb8", "mjpeg": "yuvj420p", "png": "rgb24", "ffv1": "yuv420p"}
# FFmpeg's MPEG-4 default is a 200 kb/s bit rate that repeats frames of slow-changing clips;
# a constant quantiser (q=4, in lambda units of 118) encodes every frame at any size.
_OPTIONS_BY_CODEC = {"mpeg4": {"flags": "qscale", "global_quality": str(4 * 118)}}


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


# --------------------------------------------------------------------------------------------
# Public entry points


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


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata without decoding pixels.

    The frame count comes from the container header when it has one (MP4, AVI); otherwise
    (Matroska/WebM, GIF) packets are counted by demuxing, which reads the file but decodes nothing.
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        count = int(stream.frames or 0)
        if count <= 0:
            count = sum(1 for p in _safe_demux(container, stream) if p.size > 0)
        ctx = stream.codec_context
        return VideoInfo(
            path=str(path),
            num_frames=count,
            fps=_stream_rate(stream),
            duration=_stream_duration(container, stream),
            width=int(ctx.width),
            height=int(ctx.height),
            codec=str(ctx.name),
            pix_fmt=ctx.pix_fmt,
        )


def write_video(
    path: str | os.PathLike,
    frames: Frames | np.ndarray,
    *,
    fps: float = 25.0,
    codec: str | None = None,
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode frames to a video file at a constant ``fps``, atomically (temp file, then rename).

    ``frames`` is a :class:`Frames` (its timestamps are not used) or any array that
    :func:`frames_from_array` accepts. ``codec`` defaults by file suffix: ``.webm`` ->
    libvpx-vp9, ``.avi`` -> mjpeg, ``.gif`` -> gif, anything else -> libx264. H.264/H.265 in
    4:2:0 reject odd sizes, so for odd sizes they switch to 4:4:4 (``yuv444p``) and the frame
    size is kept exactly (FFmpeg decodes it; some hardware players do not). ``options`` go to
    the encoder, e.g. ``{"crf": "0"}`` for near-lossless x264; MPEG-4 defaults to constant
    quality rather than FFmpeg's low default bit rate.
    """
    path = Path(path)
    pixels = frames.pixels if isinstance(frames, Frames) else _to_rgb_uint8(frames)
    rate = Fraction(_positive("fps", fps)).limit_denominator(1_000_000)
    codec = codec or _CODEC_BY_SUFFIX.get(path.suffix.lower(), "libx264")
    _, height, width, _ = pixels.shape
    if pix_fmt is None:
        pix_fmt = _PIX_FMT_BY_CODEC.get(codec, "yuv420p")
        if codec in _EVEN_SIZE_CODECS and (height % 2 or width % 2):
            pix_fmt = "yuv444p"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:  # muxer follows the suffix
        encoder_options = {**_OPTIONS_BY_CODEC.get(codec, {}), **(options or {})}
        stream = container.add_stream(codec, rate=rate, options=encoder_options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i, image in enumerate(pixels):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i  # in units of 1 / rate: a constant frame rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# --------------------------------------------------------------------------------------------
# Sampling: a selector maps a timestamp array to the chosen indices; shared by files and arrays.

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


# --------------------------------------------------------------------------------------------
# Files


@dataclass
class _Decoded:
    """One sequential decoding pass: every frame's time, the kept frames, and what went wrong."""

    timestamps: np.ndarray
    kept: dict[int, np.ndarray]
    errors: list[str]
    complete: bool  # reached the end of the stream (not stopped early)
    expected_frames: int  # from the header; 0 when unknown
    expected_duration: float | None
    first_time: float  # the first frame's presentation time on the container's clock, seconds
    rate: float | None


def _load_file(path: Path, select: Selector, resize: Resizer) -> Frames:
    """Plan from a cheap demux pass, decode once, and re-plan only if the decode disagrees.

    The packet timestamps of a healthy file are exactly the decoded frames' timestamps, so the
    plan holds and the file is decoded once. Corrupt or oddly muxed files (undecodable packets,
    edit lists, missing pts) make the decoded list differ; then the selection is redone on the
    true decoded timestamps, so the result always follows the sampling rule on what decodes.
    """
    planned = _packet_timestamps(path)
    truth: _Decoded | None = None
    if planned is not None and len(planned) > 0:
        plan = select(planned)
        stop = plan.window_stop if plan.window_stop < len(planned) else None
        result = _decode(path, set(plan.indices.tolist()), resize, stop=stop)
        n = len(result.timestamps)
        if np.array_equal(result.timestamps, planned[:n]) and (n == len(planned) or n == stop):
            return _assemble(path, plan, result)
        truth = result if result.complete else None
    if truth is None:
        truth = _decode(path, set(), resize, stop=None)
    if len(truth.timestamps) == 0:
        raise VideoDecodeError(path, f"no frame could be decoded{_first_error(truth)}")
    plan = select(truth.timestamps)
    result = _decode(path, set(plan.indices.tolist()), resize, stop=None)
    if not np.array_equal(result.timestamps, truth.timestamps):
        raise VideoDecodeError(path, "decoding is not repeatable (frame timestamps changed)")
    return _assemble(path, plan, result)


def _assemble(path: Path, plan: _Selection, result: _Decoded) -> Frames:
    _warn_if_partial(path, result)
    images = np.stack([result.kept[i] for i in plan.indices.tolist()])
    return Frames(
        pixels=images,
        timestamps=result.timestamps[plan.indices],
        source=str(path),
        indices=plan.indices,
        source_fps=result.rate,
    )


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[Any, Any]]:
    """Open ``path`` and yield (container, first video stream), turning every failure typed."""
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(path, f"not a readable video container ({exc})") from exc
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            found = f"only {', '.join(kinds)} streams" if kinds else "no streams at all (truncated?)"
            raise VideoDecodeError(path, f"no video stream ({found})")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoDecodeError(path, "FFmpeg has no decoder for its video codec")
        yield container, stream
    finally:
        container.close()


def _safe_demux(container: Any, stream: Any, errors: list[str] | None = None) -> Iterator[Any]:
    """Demux packets of ``stream``, stopping (and recording why in ``errors``) at a container error.

    A demuxer that stops on an error does not emit the final empty packet that flushes the
    decoder, so callers that decode must flush themselves when ``errors`` is not empty.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            if errors is not None:
                errors.append(f"demuxing stopped: {exc}")
            return
        yield packet


def _packet_timestamps(path: Path) -> np.ndarray | None:
    """Presentation times of the video packets (sorted, from 0), or ``None`` if any lacks a pts."""
    with _open_video(path) as (container, stream):
        pts = []
        for packet in _safe_demux(container, stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
        if not pts:
            return np.zeros(0)
        return _pts_to_seconds(sorted(pts), stream.time_base, _stream_rate(stream))


def _decode(path: Path, keep: set[int], resize: Resizer, stop: int | None) -> _Decoded:
    """Decode sequentially, converting to RGB only the frames whose index is in ``keep``."""
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        rate = _stream_rate(stream)
        times: list[int | None] = []  # pts, in the stream's time base
        kept: dict[int, np.ndarray] = {}
        errors: list[str] = []
        demux_errors: list[str] = []
        out_hw: tuple[int, int] | None = None
        complete = True

        def take(frame: Any) -> None:
            nonlocal out_hw
            if out_hw is None:  # later frames follow the first, even if the stream changes size
                out_hw = resize(frame.height, frame.width)
            index = len(times)
            times.append(frame.pts)
            if index in keep:
                kept[index] = frame.to_ndarray(
                    format="rgb24", height=out_hw[0], width=out_hw[1], interpolation=_RESIZE_INTERPOLATION
                )

        for packet in _safe_demux(container, stream, demux_errors):
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:
                errors.append(f"packet at pts {packet.pts}: {exc}")
                continue
            for frame in decoded:
                try:
                    take(frame)
                except (av.FFmpegError, ValueError) as exc:
                    raise VideoDecodeError(
                        path, f"cannot convert a {frame.format.name} frame to RGB"
                    ) from exc
            if stop is not None and len(times) >= stop:
                complete = False
                break
        if demux_errors:  # demuxing ended on an error: drain the frames still inside the decoder
            errors.extend(demux_errors)
            try:
                for frame in stream.decode(None):
                    take(frame)
            except av.FFmpegError as exc:
                errors.append(f"flushing the decoder: {exc}")
        if stop is not None:
            del times[stop:]
            kept = {i: a for i, a in kept.items() if i < stop}
        return _Decoded(
            timestamps=_pts_to_seconds(times, stream.time_base, rate),
            kept=kept,
            errors=errors,
            complete=complete,
            expected_frames=int(stream.frames or 0),
            expected_duration=_stream_duration(container, stream),
            first_time=float(times[0] * stream.time_base) if times and times[0] is not None else 0.0,
            rate=rate,
        )


def _pts_to_seconds(pts: list[int | None], time_base: Fraction | None, rate: float | None) -> np.ndarray:
    """Seconds from the first frame; frame index / rate when pts are missing or go backwards.

    Packets and frames go through this same arithmetic, so a healthy file's plan and its
    decode agree bit for bit.
    """
    if not pts:
        return np.zeros(0)
    ticks = None if time_base is None or any(p is None for p in pts) else np.asarray(pts, dtype=np.int64)
    if ticks is None or np.any(np.diff(ticks) < 0):
        return np.arange(len(pts), dtype=np.float64) / (rate or 25.0)
    return (ticks - ticks[0]) * float(time_base)


def _warn_if_partial(path: Path, result: _Decoded) -> None:
    """Warn when fewer frames decoded than the file promised: truncated or corrupt input."""
    n = len(result.timestamps)
    reasons = list(result.errors[:3])
    if result.complete and result.expected_frames > n:
        reasons.append(f"the header lists {result.expected_frames} frames but {n} decoded")
    if result.complete and result.expected_duration and result.rate and n:
        # Containers disagree on whether a stream's start offset counts in its duration, so the
        # duration is read as an end time: lenient for offset streams, exact for the usual case.
        decoded_end = result.first_time + result.timestamps[-1] + 1.0 / result.rate
        if decoded_end < result.expected_duration - 2.0 / result.rate:
            reasons.append(f"frames end at {decoded_end:.2f} s of a stated {result.expected_duration:.2f} s")
    if reasons:
        warnings.warn(
            f"video {str(path)!r} decoded only in part ({n} frames used): " + "; ".join(reasons),
            VideoDecodeWarning,
            stacklevel=5,  # _assemble, _load_file, load_video, caller
        )


def _first_error(result: _Decoded) -> str:
    return f" ({result.errors[0]})" if result.errors else ""


def _stream_rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def _stream_duration(container: Any, stream: Any) -> float | None:
    """The video stream's stated duration; the container's only when it holds nothing else."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


# --------------------------------------------------------------------------------------------
# Arrays


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
