"""Auxiliary grounding losses for pretraining the tiny base from scratch.

Small linear heads read the visual tokens (``GroundingHeads``: per cell the object colour and shape, per
frame the background and the main object) and the text model's states at them (``TemporalHeads``: per
cell the object's motion, per frame the camera, counts and first events so far, optionally a colour's
motion on the frame mean and an object's place), trained on the world's ground truth so that a
from-scratch VLM learns to read its visual tokens. The heads are a training device only: they are not
part of the saved checkpoint, which stays a plain SmolVLM. Why each head, and what it taught:
docs/bases.md#the-grounding-losses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from f2l.world import (
    BACKGROUNDS,
    CAMERAS,
    COLORS,
    MOTIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    ClipTruth,
    object_mask,
)
from f2l.world.render import frame_times

COLOR_CLASSES = ("none", *COLORS)  # what fills a cell: no object, or an object of that colour
SHAPE_CLASSES = ("none", *SHAPES)
MOTION_CLASSES = ("none", *MOTIONS)  # the motion of the object filling a cell
EVENT_KINDS = ("none", "appears", "leaves")  # the first event so far: its kind ...
EVENT_COLORS = ("none", *COLORS)  # ... and its object's colour (colours are unique within a clip)
MAX_OBJECTS = 3
POSITION_BINS = 8  # the object-position target's bins per axis: 8 px at 64 px, a fifth of a clip's travel
IGNORE = -100  # a target that is not asked (F.cross_entropy's ignore_index)


def cell_targets(truth: ClipTruth, num_frames: int, size: int, grid: int) -> dict[str, np.ndarray]:
    """Per frame and visual-token cell (row-major ``grid x grid``, the connector's token order), the
    fraction of the cell covered by each colour / shape / motion class; per frame, the background's
    colour and texture, the main object's looks, the camera's motion, the number of objects visible
    and seen so far, and the first event so far (kind and colour; "none" before it happens)."""
    colors = np.zeros((num_frames, grid * grid, len(COLOR_CLASSES)), np.float32)
    shapes = np.zeros((num_frames, grid * grid, len(SHAPE_CLASSES)), np.float32)
    motions = np.zeros((num_frames, grid * grid, len(MOTION_CLASSES)), np.float32)
    position = np.full((num_frames, grid * grid, 2), IGNORE, np.int64)
    order = sorted(range(len(truth.objects)), key=lambda i: -SIZES[truth.objects[i].size])  # as drawn
    # per class list, the class of each object (row 0: no object), looked up through the object map
    lookups = [
        (out, classes, np.array([0, *(classes.index(getattr(o, attr)) for o in truth.objects)]))
        for out, classes, attr in (
            (colors, COLOR_CLASSES, "color"),
            (shapes, SHAPE_CLASSES, "shape"),
            (motions, MOTION_CLASSES, "motion"),
        )
    ]
    for f, t in enumerate(frame_times(truth, num_frames)):
        object_map = np.zeros((size, size), np.int64)  # 1 + the index of the object drawn there, 0: none
        for i in order:
            object_map[object_mask(truth, i, float(t), size)] = i + 1
        position[f] = _object_positions(object_map, len(truth.objects), grid)
        for out, classes, lookup in lookups:
            out[f] = _cell_coverage(lookup[object_map], len(classes), grid)
    main = truth.objects[0]
    taus = frame_times(truth, num_frames) / truth.duration
    # per frame and colour, the motion of the object of that colour, asked where it is visible in this
    # frame and the one before (its motion shows only then); IGNORE elsewhere
    color_motion = np.full((num_frames, len(COLORS)), IGNORE, np.int64)
    for o in truth.objects:
        shown = np.array([o.visible(float(t)) for t in taus])
        moved = shown & np.concatenate([[False], shown[:-1]])
        color_motion[moved, list(COLORS).index(o.color)] = MOTIONS.index(o.motion)
    visible = np.array([sum(o.visible(float(t)) for o in truth.objects) for t in taus])
    seen = np.array([sum(o.appear <= t for o in truth.objects) for t in taus])
    first_kind = np.zeros(num_frames, np.int64)
    first_color = np.zeros(num_frames, np.int64)
    events = truth.events()
    if events:
        first = events[0]
        happened = taus >= first.tau
        first_kind[happened] = EVENT_KINDS.index(first.kind)
        first_color[happened] = EVENT_COLORS.index(truth.objects[first.index].color)
    return {
        "color": colors,
        "shape": shapes,
        "motion": motions,
        "camera": np.full(num_frames, CAMERAS.index(truth.camera)),
        "visible": visible,
        "seen": seen,
        "first_kind": first_kind,
        "first_color": first_color,
        "background": np.full(num_frames, list(BACKGROUNDS).index(truth.background)),
        "texture": np.full(num_frames, TEXTURES.index(truth.texture)),
        "main_color": np.full(num_frames, list(COLORS).index(main.color)),
        "main_shape": np.full(num_frames, SHAPES.index(main.shape)),
        "main_size": np.full(num_frames, list(SIZES).index(main.size)),
        "color_motion": color_motion,
        "position": position,
    }


def _cell_coverage(labels: np.ndarray, n: int, grid: int) -> np.ndarray:
    """(grid * grid, n), row-major cells: the fraction of each cell's pixels of each label in 0..n-1."""
    cell = labels.shape[0] // grid
    onehot = np.eye(n, dtype=np.float32)[labels[: grid * cell, : grid * cell]]  # (H, W, n)
    return onehot.reshape(grid, cell, grid, cell, n).mean((1, 3)).reshape(grid * grid, n)


def _object_positions(object_map: np.ndarray, n_objects: int, grid: int) -> np.ndarray:
    """Per cell (row-major), the (x, y) bins of the on-screen centre of the object covering most of it
    (its visible pixels; ``POSITION_BINS`` per axis); ``IGNORE`` where no object covers a quarter."""
    size = object_map.shape[0]
    out = np.full((grid * grid, 2), IGNORE, np.int64)
    cover = _cell_coverage(object_map, n_objects + 1, grid)[:, 1:]
    owner = np.where(cover.max(1) >= 0.25, cover.argmax(1), -1)
    for i in range(n_objects):
        ys, xs = np.nonzero(object_map == i + 1)
        if len(xs):
            centre = np.array([xs.mean(), ys.mean()]) + 0.5
            out[owner == i] = np.minimum((centre / size * POSITION_BINS).astype(np.int64), POSITION_BINS - 1)
    return out


class GroundingHeads(nn.Module):
    """Linear read-outs of the connector's visual tokens (cell contents) and of their frame mean."""

    def __init__(self, width: int, position: bool = False):
        super().__init__()
        # where each token's object is on screen (``position_loss``); absent when off, as the binding head
        self.position = nn.Linear(width, 2 * POSITION_BINS) if position else None
        self.color = nn.Linear(width, len(COLOR_CLASSES))
        self.shape = nn.Linear(width, len(SHAPE_CLASSES))
        self.background = nn.Linear(width, len(BACKGROUNDS))
        self.texture = nn.Linear(width, len(TEXTURES))
        self.main_color = nn.Linear(width, len(COLORS))
        self.main_shape = nn.Linear(width, len(SHAPES))
        self.main_size = nn.Linear(width, len(SIZES))

    def loss(
        self, visual: torch.Tensor, targets: list[dict[str, np.ndarray]], tokens_per_frame: int
    ) -> torch.Tensor:
        """``visual``: (total frames x tokens_per_frame, width), clips and frames in batch order."""

        def stacked(key: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([t[key] for t in targets])).to(visual.device)

        cells = visual.view(-1, tokens_per_frame, visual.shape[-1]).float()
        frame = cells.mean(1)
        # most cells hold no object: weigh the "none" class down so objects are not drowned out
        loss = sum(
            (
                _soft_ce(head(cells), stacked(key))
                for key, head in (("color", self.color), ("shape", self.shape))
            ),
            start=torch.zeros((), device=visual.device),
        )
        for key in ("background", "texture", "main_color", "main_shape", "main_size"):
            loss = loss + F.cross_entropy(getattr(self, key)(frame), stacked(key))
        return loss

    def position_loss(self, visual: torch.Tensor, targets: list[dict[str, np.ndarray]]) -> torch.Tensor:
        """Cross-entropy of the (x, y) bins of the on-screen centre of the object covering each token
        (``cell_targets``' ``position``), ``visual`` laid out as in ``loss``. The probes found a connector
        token barely knows which of its frame's cells it is (docs/probes/linear_probes.md), and motion is
        a change of place: a token that says where its object is lets a later frame's token compare
        places across frames."""
        target = torch.from_numpy(np.concatenate([t["position"] for t in targets])).to(visual.device)
        logits = self.position(visual.float()).view(-1, 2, POSITION_BINS)
        return F.cross_entropy(logits.reshape(-1, POSITION_BINS), target.reshape(-1), ignore_index=IGNORE)


class TemporalHeads(nn.Module):
    """Linear read-outs of the text model's hidden states at the visual tokens (cells) and of their
    frame mean: what only comparing a frame with the earlier ones can tell."""

    def __init__(self, width: int, binding: bool = False):
        super().__init__()
        # per frame, each colour's motion (the binding head, docs/bases.md#the-grounding-losses); absent when
        # off, so checkpoints and snapshots of runs without it keep their keys
        self.color_motion = nn.Linear(width, len(COLORS) * len(MOTIONS)) if binding else None
        self.motion = nn.Linear(width, len(MOTION_CLASSES))
        self.camera = nn.Linear(width, len(CAMERAS))
        self.visible = nn.Linear(width, MAX_OBJECTS + 1)
        self.seen = nn.Linear(width, MAX_OBJECTS + 1)
        self.first_kind = nn.Linear(width, len(EVENT_KINDS))
        self.first_color = nn.Linear(width, len(EVENT_COLORS))

    def loss(
        self, hidden: torch.Tensor, targets: list[dict[str, np.ndarray]], tokens_per_frame: int
    ) -> dict[str, torch.Tensor]:
        """Loss per target (sum them to train). ``hidden``: (total frames x tokens_per_frame, width), the
        text model's states at the visual tokens in batch order. Motion and camera are scored from each
        clip's second frame on."""

        def stacked(key: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([t[key] for t in targets])).to(hidden.device)

        cells = hidden.view(-1, tokens_per_frame, hidden.shape[-1]).float()
        frame = cells.mean(1)
        moved = torch.from_numpy(np.concatenate([np.arange(len(t["camera"])) > 0 for t in targets]))
        moved = moved.to(hidden.device)
        parts = {
            "motion": _soft_ce(self.motion(cells[moved]), stacked("motion")[moved]),
            "camera": F.cross_entropy(self.camera(frame[moved]), stacked("camera")[moved]),
        }
        for key in ("visible", "seen", "first_kind", "first_color"):
            parts[key] = F.cross_entropy(getattr(self, key)(frame), stacked(key))
        return parts

    def binding_loss(
        self,
        hidden: torch.Tensor,
        targets: list[dict[str, np.ndarray]],
        tokens_per_frame: int,
        per_token: bool = False,
    ) -> torch.Tensor:
        """The binding head's loss: each visible colour's motion (``color_motion``), from the clip's second
        frame on, read off the frame mean of ``hidden`` (laid out as in ``loss``) or, ``per_token``, off
        every visual token of the frame. A mean of tokens that each hold their own colour and motion is a
        sum, from which no linear read can tell which motion goes with which colour; one token after a
        layer's attention and MLP can hold the pairs."""
        table = torch.from_numpy(np.concatenate([t["color_motion"] for t in targets])).to(hidden.device)
        moved = torch.from_numpy(np.concatenate([np.arange(len(t["camera"])) > 0 for t in targets]))
        moved = moved.to(hidden.device)
        cells = hidden.view(-1, tokens_per_frame, hidden.shape[-1]).float()[moved]
        table = table[moved]
        if per_token:
            table = table[:, None].expand(-1, tokens_per_frame, -1)
        else:
            cells = cells.mean(1)
        logits = self.color_motion(cells).view(*cells.shape[:-1], len(COLORS), len(MOTIONS))
        return F.cross_entropy(logits.reshape(-1, len(MOTIONS)), table.reshape(-1), ignore_index=IGNORE)


NONE_WEIGHT = 0.2


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against cell-coverage fractions, the "none" class weighted by NONE_WEIGHT."""
    weights = torch.ones(target.shape[-1], device=target.device)
    weights[0] = NONE_WEIGHT
    return -(target * weights * logits.log_softmax(-1)).sum(-1).mean()
