"""An auxiliary training signal aimed at the camera: a linear head names a world clip's camera motion from
what the hypernetwork read of the clip (its latents, averaged over layers and latents), and its
cross-entropy against the clip's ground truth joins the distillation loss (``TrainConfig.camera_weight``).

Why: the base's states hold the camera's motion (a linear probe reads it well on the small base) and the
adapter a hypernetwork trained without the head writes keeps little of it (docs/hypernetworks.md, "Where
it was lost: the hypernetwork"), while distillation asks for it in one prompt in eleven. The head asks
for it from every clip of every step, without taking rows from the other prompts; from the first step it
closes the small's camera gap (docs/hypernetworks.md, "How the camera was closed"). It exists in
training only: checkpoints hold it beside the hypernetwork so that a resumed run continues it, and a
packaged hypernetwork leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from f2l.data import Example
from f2l.hypernet import Hypernet
from f2l.io import atomic_save_safetensors
from f2l.world import CAMERAS

WEIGHTS_FILE = "camera_head.safetensors"


def camera_classes(videos: Sequence[Example]) -> Tensor:
    """Each world clip's ground-truth camera motion as an index into ``f2l.world.CAMERAS``; a video without
    the world's ground truth is a one-line error."""
    out = []
    for video in videos:
        camera = video.meta.get("truth", {}).get("camera") if isinstance(video, Example) else None
        if camera not in CAMERAS:
            raise ValueError(f"camera_weight needs world clips with their ground truth; {video.id} has none")
        out.append(CAMERAS.index(camera))
    return torch.tensor(out)


def pooled_read(read: Tensor) -> Tensor:
    """``Hypernet.read_all``'s output ``(N, L, latents, width)`` averaged over layers and latents: ``(N,
    width)``, what the head reads (and ``probes.adapter_probes`` probes)."""
    return read.flatten(1, 2).mean(1)


class CameraHead(nn.Module):
    """The hypernetwork (``hypernet``) and the head: ``forward`` returns its factors and the camera logits
    ``(N, len(CAMERAS))``, so one call (and one DDP forward) yields both."""

    def __init__(self, hypernet: Hypernet):
        super().__init__()
        self.hypernet = hypernet
        self.linear = nn.Linear(hypernet.read_width, len(CAMERAS))

    def forward(self, base, inputs=None, states=None):
        read = self.hypernet.read_all(base, inputs, states=states)  # (N, L, latents, width)
        return self.hypernet.write_all(read), self.linear(pooled_read(read))

    def save_head(self, directory: Path) -> None:
        """The head's weights into a training checkpoint ``directory``, beside the hypernetwork."""
        atomic_save_safetensors(directory / WEIGHTS_FILE, self.linear.state_dict())

    def load_head(self, directory: Path) -> bool:
        """The head's weights from ``directory`` when it holds them (a training checkpoint; a packaged
        hypernetwork does not); whether it did."""
        if not (directory / WEIGHTS_FILE).exists():
            return False
        self.linear.load_state_dict(
            load_file(directory / WEIGHTS_FILE, device=str(self.linear.weight.device))
        )
        return True


def hypernet_of(trained: Hypernet | CameraHead) -> Hypernet:
    """The hypernetwork inside what training's optimiser moves (itself, or a ``CameraHead``'s)."""
    return trained.hypernet if isinstance(trained, CameraHead) else trained
