"""Video files: decode with PyAV (sequentially, keeping only the chosen frames), read metadata, encode.

Every failure to read a file surfaces as :class:`~f2l.video.frames.VideoDecodeError` naming it; a file
that decodes only in part is used with a :class:`~f2l.video.frames.VideoDecodeWarning`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from f2l.io import atomic_path
from f2l.video.frames import (
    Frames,
    VideoDecodeError,
    VideoDecodeWarning,
    VideoInfo,
    _positive,
    _to_rgb_uint8,
)
from f2l.video.sampling import _RESIZE_INTERPOLATION, Resizer, Selector, _Selection

# Codecs whose 4:2:0 / 4:2:2 modes reject odd frame sizes; write_video switches them to 4:4:4.
_EVEN_SIZE_CODECS = frozenset({"libx264", "libx265", "h264", "hevc"})
_CODEC_BY_SUFFIX = {".webm": "libvpx-vp9", ".avi": "mjpeg", ".gif": "gif"}
_PIX_FMT_BY_CODEC = {"gif": "rgb8", "mjpeg": "yuvj420p", "png": "rgb24", "ffv1": "yuv420p"}
# FFmpeg's MPEG-4 default is a 200 kb/s bit rate that repeats frames of slow-changing clips;
# a constant quantiser (q=4, in lambda units of 118) encodes every frame at any size.
_OPTIONS_BY_CODEC = {"mpeg4": {"flags": "qscale", "global_quality": str(4 * 118)}}


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
