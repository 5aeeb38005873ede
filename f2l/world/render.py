"""Draw a clip's ground truth into frames: numpy masks on a pixel grid in world coordinates.

Geometry lives in normalized world units (the shorter frame side spans 1 at zoom 1), so any
resolution and aspect ratio shows the same picture, and every frame is the continuous-time
scene at its own timestamp, so any frame count samples the same clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from f2l.video import Frames
from f2l.world.scene import BACKGROUNDS, COLORS, SIZES, ClipTruth, ObjectTruth, sample_truth

TEXTURE_AMPLITUDE = 16.0  # +- intensity levels: visible (shows camera motion) but never hides a shape
_NOISE_CELLS = 16  # value-noise grid, tiled with period _NOISE_CELLS * _NOISE_CELL world units
_NOISE_CELL = 0.1


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    ang = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    rad = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)


_POLYGONS = {
    "triangle": np.array([(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)]),
    "star": _star(),
}


@dataclass(frozen=True)
class Clip:
    """A rendered clip: its ground truth and its frames."""

    truth: ClipTruth
    frames: Frames


def _in_polygon(x: np.ndarray, y: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(verts, np.roll(verts, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > y) != (y2 > y)
        inside ^= crosses & (x < (x2 - x1) * (y - y1) / (y2 - y1) + x1)
    return inside


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Inside test in object-local units: the shape fills the square [-1, 1]^2."""
    if shape == "circle":
        return dx * dx + dy * dy <= 1.0
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.0
    if shape == "cross":
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 1.0) & (ay <= 0.33)) | ((ax <= 0.33) & (ay <= 1.0))
    if shape in _POLYGONS:
        return _in_polygon(dx, dy, _POLYGONS[shape])
    raise ValueError(f"unknown shape {shape!r}")


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    if h < 1 or w < 1:
        raise ValueError(f"frame size must be positive, got {size!r}")
    return int(h), int(w)


class _Canvas:
    """Pixel-centre view coordinates of one frame size (shorter side spans [-0.5, 0.5])."""

    def __init__(self, h: int, w: int):
        self.h, self.w, self.s = h, w, float(min(h, w))
        self.vx = (np.arange(w) + 0.5 - w / 2) / self.s
        self.vy = (np.arange(h) + 0.5 - h / 2) / self.s

    def object_window(self, truth: ClipTruth, obj: ObjectTruth, tau: float):
        """(row slice, col slice, local dx, local dy) of the pixels around ``obj``, or None off-screen."""
        cx, cy, z = truth.camera_at(tau)
        ox, oy = obj.position(tau)
        r = SIZES[obj.size] / 2
        sx, sy, sr = (ox - cx) * z * self.s + self.w / 2, (oy - cy) * z * self.s + self.h / 2, r * z * self.s
        c0, c1 = max(int(np.floor(sx - sr)), 0), min(int(np.ceil(sx + sr)) + 1, self.w)
        r0, r1 = max(int(np.floor(sy - sr)), 0), min(int(np.ceil(sy + sr)) + 1, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        dx = ((cx + self.vx[c0:c1] / z) - ox) / r
        dy = ((cy + self.vy[r0:r1] / z) - oy) / r
        return slice(r0, r1), slice(c0, c1), dx[None, :], dy[:, None]


def _noise_grid(seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 11]).uniform(-1.0, 1.0, size=(_NOISE_CELLS, _NOISE_CELLS))


def _pattern(texture: str, wx: np.ndarray, wy: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Texture in [-1, 1] as a function of world position, so it moves with the camera."""
    if texture == "plain":
        return np.zeros(np.broadcast(wx, wy).shape)
    if texture == "stripes":
        return np.sin(2 * np.pi * (wx + wy) / 0.14)
    if texture == "checks":
        return ((np.floor(wx / 0.125) + np.floor(wy / 0.125)) % 2) * 2.0 - 1.0
    if texture == "dots":
        fx, fy = wx / 0.1 - np.floor(wx / 0.1) - 0.5, wy / 0.1 - np.floor(wy / 0.1) - 0.5
        return np.where(fx * fx + fy * fy < 0.09, 1.0, -1.0)
    if texture == "noise":
        gx, gy = wx / _NOISE_CELL, wy / _NOISE_CELL
        x0, y0 = np.floor(gx), np.floor(gy)
        fx, fy = gx - x0, gy - y0
        i0, j0 = x0.astype(int) % _NOISE_CELLS, y0.astype(int) % _NOISE_CELLS
        i1, j1 = (i0 + 1) % _NOISE_CELLS, (j0 + 1) % _NOISE_CELLS
        top = noise[j0, i0] * (1 - fx) + noise[j0, i1] * fx
        bottom = noise[j1, i0] * (1 - fx) + noise[j1, i1] * fx
        return top * (1 - fy) + bottom * fy
    raise ValueError(f"unknown texture {texture!r}")


def _draw(truth: ClipTruth, canvas: _Canvas, tau: float, noise: np.ndarray) -> np.ndarray:
    cx, cy, z = truth.camera_at(tau)
    wx, wy = cx + canvas.vx[None, :] / z, cy + canvas.vy[:, None] / z
    base = np.asarray(BACKGROUNDS[truth.background], dtype=np.float32)
    pat = _pattern(truth.texture, wx, wy, noise).astype(np.float32)
    img = np.clip(base[None, None, :] + TEXTURE_AMPLITUDE * pat[:, :, None], 0, 255).astype(np.uint8)
    for obj in sorted(truth.objects, key=lambda o: -SIZES[o.size]):  # larger first: small ones stay seen
        if not obj.visible(tau):
            continue
        win = canvas.object_window(truth, obj, tau)
        if win is None:
            continue
        rows, cols, dx, dy = win
        mask = shape_mask(obj.shape, dx, dy)
        img[rows, cols][mask] = COLORS[obj.color]  # basic slicing gives a view: paints in place
    return img


def _truth(seed_or_truth: int | ClipTruth) -> ClipTruth:
    return seed_or_truth if isinstance(seed_or_truth, ClipTruth) else sample_truth(int(seed_or_truth))


def frame_times(truth: ClipTruth, num_frames: int) -> np.ndarray:
    """Centres of ``num_frames`` equal segments of the clip, in seconds."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return (np.arange(num_frames) + 0.5) / num_frames * truth.duration


def render_frames(
    seed_or_truth: int | ClipTruth, times_s: np.ndarray, size: int | tuple[int, int] = 64
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 at arbitrary times in seconds; ``size`` is an int or (height, width)."""
    truth = _truth(seed_or_truth)
    canvas = _Canvas(*_hw(size))
    noise = _noise_grid(truth.seed)
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    out = np.empty((len(times), canvas.h, canvas.w, 3), dtype=np.uint8)
    for i, t in enumerate(times):
        out[i] = _draw(truth, canvas, float(t) / truth.duration, noise)
    return out


def render_clip(
    seed_or_truth: int | ClipTruth, num_frames: int = 8, size: int | tuple[int, int] = 64
) -> Clip:
    """Render ``num_frames`` frames at the segment centres; ``size`` is an int or (height, width)."""
    truth = _truth(seed_or_truth)
    times = frame_times(truth, num_frames)
    pixels = render_frames(truth, times, size)
    return Clip(truth=truth, frames=Frames(pixels=pixels, timestamps=times, source=f"world:{truth.seed}"))


def object_mask(
    seed_or_truth: int | ClipTruth, index: int, time_s: float, size: int | tuple[int, int] = 64
) -> np.ndarray:
    """(H, W) bool: where object ``index`` covers the frame at ``time_s`` (ignoring occlusion).

    All False when the object is not on screen then. For grounding checks and probes.
    """
    truth = _truth(seed_or_truth)
    canvas = _Canvas(*_hw(size))
    tau = float(time_s) / truth.duration
    obj = truth.objects[index]
    out = np.zeros((canvas.h, canvas.w), dtype=bool)
    win = canvas.object_window(truth, obj, tau) if obj.visible(tau) else None
    if win is not None:
        rows, cols, dx, dy = win
        out[rows, cols] = shape_mask(obj.shape, dx, dy)
    return out
