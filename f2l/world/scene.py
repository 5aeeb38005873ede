"""Ground truth of a world clip: what is in it and how it moves, as pure JSON-able data.

A clip is a continuous-time scene over normalized time ``tau`` in [0, 1] (``tau = t / duration``).
Rendering samples it at any frame count and resolution, so 12 and 1,024 frames of one seed show
the same scene. World coordinates are centred on the frame: the shorter frame side spans
[-0.5, 0.5] at camera zoom 1, x grows to the right and y grows downwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Saturated object colours, far apart in RGB and far from every background colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (40, 200, 50),
    "blue": (40, 80, 245),
    "yellow": (250, 225, 30),
    "purple": (165, 50, 225),
    "orange": (255, 135, 0),
    "white": (250, 250, 250),
    "cyan": (0, 215, 230),
}
# Dark, muted backgrounds so any object colour stands out against any of them.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grey": (105, 105, 105),
    "brown": (100, 68, 45),
    "navy": (28, 34, 88),
    "black": (30, 30, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
# Object extent (bounding-box side) as a fraction of the shorter frame side at zoom 1.
SIZES: dict[str, float] = {"small": 0.15, "medium": 0.22, "large": 0.30}
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "still")
CAMERAS: tuple[str, ...] = ("still", "pan_left", "pan_right", "zoom_in", "zoom_out")
TEXTURES: tuple[str, ...] = ("plain", "stripes", "checks", "dots", "noise")
TIMINGS: tuple[str, ...] = ("always", "appears", "leaves")

DURATION_S = 8.0
MOVE_DISTANCE = 0.4  # world units an object travels over the clip
PAN_DISTANCE = 0.24  # world units the camera travels: slower than objects, and it moves the texture
ZOOM_RANGE = (0.8, 1.3)  # camera zoom at the start/end of a zoom in (reversed for zoom out)
MIN_EVENT_GAP = 0.2  # events this far apart in tau are separated by a frame even at 8 frames

_MOTION_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class ObjectTruth:
    """One shape: its looks, a straight constant-speed path, and when it is on screen."""

    color: str
    shape: str
    size: str
    motion: str
    start: tuple[float, float]
    end: tuple[float, float]
    appear: float = 0.0  # tau at which it appears (0: there from the start)
    leave: float = 1.0  # tau at which it leaves (1: there until the end)

    @property
    def name(self) -> str:
        """Colour and shape: unique within a clip, so it names the object unambiguously."""
        return f"{self.color} {self.shape}"

    @property
    def timing(self) -> str:
        if self.appear > 0.0:
            return "appears"
        return "leaves" if self.leave < 1.0 else "always"

    def position(self, tau: float) -> tuple[float, float]:
        return (
            self.start[0] + (self.end[0] - self.start[0]) * tau,
            self.start[1] + (self.end[1] - self.start[1]) * tau,
        )

    def visible(self, tau: float) -> bool:
        return tau >= self.appear and (self.leave >= 1.0 or tau < self.leave)


@dataclass(frozen=True)
class Event:
    tau: float
    kind: str  # "appears" | "leaves"
    index: int  # into ClipTruth.objects


@dataclass(frozen=True)
class ClipTruth:
    """Everything a clip shows. ``objects[0]`` is the main object: the largest, there all clip."""

    seed: int
    duration: float
    background: str
    texture: str
    camera: str
    objects: tuple[ObjectTruth, ...]

    @property
    def main(self) -> ObjectTruth:
        return self.objects[0]

    def events(self) -> list[Event]:
        """Appearances and departures ordered by time."""
        out = [Event(o.appear, "appears", i) for i, o in enumerate(self.objects) if o.appear > 0.0]
        out += [Event(o.leave, "leaves", i) for i, o in enumerate(self.objects) if o.leave < 1.0]
        return sorted(out, key=lambda e: (e.tau, e.index))

    def camera_at(self, tau: float) -> tuple[float, float, float]:
        """(centre x, centre y, zoom) of the view in world coordinates at ``tau``."""
        if self.camera in ("pan_left", "pan_right"):
            sign = 1.0 if self.camera == "pan_right" else -1.0
            return sign * PAN_DISTANCE * (tau - 0.5), 0.0, 1.0
        if self.camera in ("zoom_in", "zoom_out"):
            z0, z1 = ZOOM_RANGE if self.camera == "zoom_in" else ZOOM_RANGE[::-1]
            return 0.0, 0.0, z0 + (z1 - z0) * tau
        return 0.0, 0.0, 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipTruth:
        objects = tuple(
            ObjectTruth(**{**o, "start": tuple(o["start"]), "end": tuple(o["end"])}) for o in d["objects"]
        )
        return cls(
            seed=int(d["seed"]),
            duration=float(d["duration"]),
            background=d["background"],
            texture=d["texture"],
            camera=d["camera"],
            objects=objects,
        )


def _rounded(p: tuple[float, float]) -> tuple[float, float]:
    return round(float(p[0]), 4), round(float(p[1]), 4)


def _path(rng: np.random.Generator, motion: str) -> tuple[tuple[float, float], tuple[float, float]]:
    if motion == "still":
        p = _rounded(tuple(rng.uniform(-0.25, 0.25, size=2)))
        return p, p
    dx, dy = _MOTION_VECTORS[motion]
    along = rng.uniform(-0.05, 0.05)  # shifts the whole path along its axis
    across = rng.uniform(-0.25, 0.25)
    half = MOVE_DISTANCE / 2
    a0, a1 = along - half, along + half
    if dx != 0:
        xs = (a0, a1) if dx > 0 else (a1, a0)
        start, end = (xs[0], across), (xs[1], across)
    else:
        ys = (a0, a1) if dy > 0 else (a1, a0)
        start, end = (across, ys[0]), (across, ys[1])
    return _rounded(start), _rounded(end)


def _timings(rng: np.random.Generator, n_others: int) -> list[tuple[float, float]]:
    """(appear, leave) per non-main object, with events at least MIN_EVENT_GAP apart."""
    for _ in range(100):
        kinds = [TIMINGS[int(rng.integers(len(TIMINGS)))] for _ in range(n_others)]
        out, times = [], []
        for k in kinds:
            if k == "appears":
                t = round(float(rng.uniform(0.2, 0.7)), 4)
                out.append((t, 1.0))
            elif k == "leaves":
                t = round(float(rng.uniform(0.3, 0.8)), 4)
                out.append((0.0, t))
            else:
                out.append((0.0, 1.0))
                continue
            times.append(t)
        if all(abs(a - b) >= MIN_EVENT_GAP for i, a in enumerate(times) for b in times[i + 1 :]):
            return out
    return [(0.0, 1.0)] * n_others


def _separated(objects: list[ObjectTruth], slack: float) -> bool:
    """True when no two objects come closer than ``slack`` times touching while both are visible."""
    taus = np.linspace(0.0, 1.0, 9)
    for i, a in enumerate(objects):
        for b in objects[i + 1 :]:
            both = np.array([a.visible(t) and b.visible(t) for t in taus])
            pa = np.array(a.start) + np.outer(taus, np.subtract(a.end, a.start))
            pb = np.array(b.start) + np.outer(taus, np.subtract(b.end, b.start))
            dist = np.hypot(*(pa - pb).T)
            if np.any(both & (dist < slack * ((SIZES[a.size] + SIZES[b.size]) / 2 + 0.02))):
                return False
    return True


def sample_truth(seed: int) -> ClipTruth:
    """The clip of ``seed``: every choice is drawn from ``numpy.random.default_rng(seed)``.

    Colours, shapes, motions, camera and background colour are uniform, so no answer prior
    dominates. Objects of a clip differ in colour and in shape. A moving camera never goes
    with a plain background: the texture is what makes camera motion visible.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    colors = [list(COLORS)[i] for i in rng.choice(len(COLORS), size=n, replace=False)]
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), size=n, replace=False)]
    main_size = "large" if rng.random() < 0.5 else "medium"
    smaller = ("small", "medium") if main_size == "large" else ("small",)
    sizes = [main_size] + [smaller[int(rng.integers(len(smaller)))] for _ in range(n - 1)]
    timings = [(0.0, 1.0)] + _timings(rng, n - 1)
    camera = CAMERAS[int(rng.integers(len(CAMERAS)))]
    textures = TEXTURES if camera == "still" else TEXTURES[1:]
    texture = textures[int(rng.integers(len(textures)))]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]

    objects: list[ObjectTruth] = []
    motions = [MOTIONS[int(rng.integers(len(MOTIONS)))] for _ in range(n)]
    for attempt in range(100):  # re-draw paths until shapes do not overlap (late tries: may touch)
        objects = []
        for c, s, z, m, (ta, tl) in zip(colors, shapes, sizes, motions, timings, strict=True):
            start, end = _path(rng, m)
            objects.append(ObjectTruth(c, s, z, m, start, end, ta, tl))
        if _separated(objects, 1.0 if attempt < 50 else 0.7):
            break
    return ClipTruth(
        seed=int(seed),
        duration=DURATION_S,
        background=background,
        texture=texture,
        camera=camera,
        objects=tuple(objects),
    )


MAX_LONG_OBJECTS = 4  # the world's counting vocabulary ends at four


def _window_path(
    rng: np.random.Generator, motion: str, window: tuple[float, float]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A path over the whole clip on which the object covers a normal clip's path during ``window``:
    positions are linear in tau, so the ends are extrapolated from the window's."""
    p0, p1 = _path(rng, motion)
    a, b = window
    v = ((p1[0] - p0[0]) / (b - a), (p1[1] - p0[1]) / (b - a))
    return _rounded((p0[0] - a * v[0], p0[1] - a * v[1])), _rounded(
        (p0[0] + (1 - a) * v[0], p0[1] + (1 - a) * v[1])
    )


def sample_long_truth(seed: int, segments: int) -> ClipTruth:
    """A clip ``segments`` world clips long, one scene throughout, its events spread over the
    segments: for composing the adapters of segments with no scene cut between them.

    Under a still camera over one background, ``min(segments, MAX_LONG_OBJECTS)`` objects take
    turns: the segments are split into that many runs of consecutive segments (cut points drawn
    uniformly) and object ``i`` is on screen for exactly run ``i``, moving as a normal clip's main
    object does there. Seen alone, every segment is an ordinary world clip with one object there
    all along (the kind of object the tiny base reads best); seen whole, the objects leave and
    appear in order. Colours and shapes are unique, so "the square" names one object.
    ``objects[0]`` is the first to be seen, not one there all clip.
    """
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    rng = np.random.default_rng([seed, segments, 11])
    n = min(segments, MAX_LONG_OBJECTS)
    colors = [list(COLORS)[i] for i in rng.choice(len(COLORS), size=n, replace=False)]
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), size=n, replace=False)]
    sizes = ["large" if rng.random() < 0.5 else "medium" for _ in range(n)]
    motions = [MOTIONS[int(rng.integers(len(MOTIONS)))] for _ in range(n)]
    cuts = [
        0,
        *sorted(int(c) for c in rng.choice(np.arange(1, segments), size=n - 1, replace=False)),
        segments,
    ]
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    objects = []
    for i, (c, s, z, m) in enumerate(zip(colors, shapes, sizes, motions, strict=True)):
        window = (round(cuts[i] / segments, 6), round(cuts[i + 1] / segments, 6))
        start, end = _window_path(rng, m, window)
        objects.append(ObjectTruth(c, s, z, m, start, end, *window))
    return ClipTruth(
        seed=int(seed),
        duration=DURATION_S * segments,
        background=background,
        texture=texture,
        camera="still",
        objects=tuple(objects),
    )
