"""An auxiliary grounding loss for pretraining the tiny base from scratch.

A VLM trained from nothing first learns the answer prior and only later learns to read its visual
tokens: the language loss gives the vision tower almost no signal until the text model attends to the
right tokens, and the text model has no reason to attend until the tokens say something (the plateau
DESIGN.md measured). The world's ground truth breaks that loop: every visual token covers a known
cell of a known frame, so small linear heads on the connector's output can be trained to say which
object colour and shape fill that cell, and which background colour and texture the frame has. The
vision tower then encodes what the questions ask about from the first steps (the main object's
colour, shape and size also from the frame's mean token, so a question about it can be answered by
attending anywhere in the frame), and the language loss
only has to learn where to look.

The heads are a training device only: they are not part of the saved checkpoint, which stays a plain
SmolVLM.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from f2l.world import BACKGROUNDS, COLORS, SHAPES, SIZES, TEXTURES, ClipTruth, object_mask
from f2l.world.render import frame_times

COLOR_CLASSES = ("none", *COLORS)  # what fills a cell: no object, or an object of that colour
SHAPE_CLASSES = ("none", *SHAPES)


def cell_targets(truth: ClipTruth, num_frames: int, size: int, grid: int) -> dict[str, np.ndarray]:
    """Per frame and visual-token cell (row-major ``grid x grid``, the connector's token order), the
    fraction of the cell covered by each colour / shape class; per frame, background colour and texture."""
    cell = size // grid
    colors = np.zeros((num_frames, grid * grid, len(COLOR_CLASSES)), np.float32)
    shapes = np.zeros((num_frames, grid * grid, len(SHAPE_CLASSES)), np.float32)
    for f, t in enumerate(frame_times(truth, num_frames)):
        color_map = np.zeros((size, size), np.int64)
        shape_map = np.zeros((size, size), np.int64)
        order = sorted(range(len(truth.objects)), key=lambda i: -SIZES[truth.objects[i].size])  # as drawn
        for i in order:
            mask = object_mask(truth, i, float(t), size)
            color_map[mask] = COLOR_CLASSES.index(truth.objects[i].color)
            shape_map[mask] = SHAPE_CLASSES.index(truth.objects[i].shape)
        for out, labels, n in (
            (colors, color_map, len(COLOR_CLASSES)),
            (shapes, shape_map, len(SHAPE_CLASSES)),
        ):
            onehot = np.eye(n, dtype=np.float32)[labels]  # (H, W, n)
            cells = onehot[: grid * cell, : grid * cell].reshape(grid, cell, grid, cell, n).mean((1, 3))
            out[f] = cells.reshape(grid * grid, n)
    main = truth.objects[0]
    return {
        "color": colors,
        "shape": shapes,
        "background": np.full(num_frames, list(BACKGROUNDS).index(truth.background)),
        "texture": np.full(num_frames, TEXTURES.index(truth.texture)),
        "main_color": np.full(num_frames, list(COLORS).index(main.color)),
        "main_shape": np.full(num_frames, SHAPES.index(main.shape)),
        "main_size": np.full(num_frames, list(SIZES).index(main.size)),
    }


class GroundingHeads(nn.Module):
    """Linear read-outs of the connector's visual tokens (cell contents) and of their frame mean."""

    def __init__(self, width: int):
        super().__init__()
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


NONE_WEIGHT = 0.2


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against cell-coverage fractions, the "none" class weighted by NONE_WEIGHT."""
    weights = torch.ones(target.shape[-1], device=target.device)
    weights[0] = NONE_WEIGHT
    return -(target * weights * logits.log_softmax(-1)).sum(-1).mean()
