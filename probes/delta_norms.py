"""Delta-W norms: how large is the generated update of each layer and module, and how many directions
does it really use?

``delta_norms(pipeline, examples, ...)`` makes each clip's adapter (batched, nothing generated) and
measures every layer's and module's ``dW`` from its singular values, in float64 through the ``r x r``
core: ``fro_norm``, ``spectral_norm``, ``stable_rank`` and ``relative_fro`` on ``(clip, layer, module)``,
and ``weight_fro(layer, module)``. The method and schema: docs/probes/delta_norms.md (Method).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from f2l.adapter import Adapter, text_model_of
from f2l.adapter.lora import SUBLAYER
from f2l.data import Example
from f2l.video import Frames

NORMS = ("fro_norm", "spectral_norm", "stable_rank", "relative_fro")


def adapter_norms(adapter: Adapter) -> dict[str, np.ndarray]:
    """``fro_norm``, ``spectral_norm`` and ``stable_rank`` of every layer's ``dW``, per module, each an array
    ``[L, M]`` (``[N, L, M]`` for a batched adapter; ``M`` follows ``adapter.modules``)."""
    decomposed = adapter.detach().to(torch.float64).svd()
    singular = torch.stack([decomposed[m].S for m in adapter.modules], dim=-2)  # [..., L, M, k]
    fro = singular.square().sum(-1).sqrt()
    spectral = singular[..., 0]
    stable = torch.where(spectral > 0, fro.square() / spectral.square(), torch.nan)
    return {
        "fro_norm": fro.cpu().numpy(),
        "spectral_norm": spectral.cpu().numpy(),
        "stable_rank": stable.cpu().numpy(),
    }


def weight_fro(model, modules: Sequence[str]) -> np.ndarray:
    """``||W||_F`` of the frozen base weight of every text-model layer and module in ``modules``: ``[L, M]``."""
    layers = text_model_of(model).layers
    return np.array(
        [
            [float(getattr(getattr(layer, SUBLAYER[m]), m).weight.detach().double().norm()) for m in modules]
            for layer in layers
        ]
    )


def _frames(pipeline, example: Example, frames: int) -> Frames:
    return pipeline.example_frames(example, frames)


def delta_norms(
    pipeline, examples: Sequence[Example], *, frames: int = 8, batch_size: int = 16
) -> xr.Dataset:
    """The delta-norms dataset (schema: docs/probes/delta_norms.md) of ``examples``, each internalized from
    ``frames`` frames (world clips at the base's frame size), ``batch_size`` clips per forward pass."""
    if not examples:
        raise ValueError("delta_norms needs at least one example")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in NORMS[:3]}
    modules: tuple[str, ...] = ()
    rank = 0
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        adapter = pipeline.internalize_batch([_frames(pipeline, e, frames) for e in batch])
        modules, rank = adapter.modules, adapter.rank
        for name, values in adapter_norms(adapter).items():
            parts[name].append(values)
    norms = {name: np.concatenate(values) for name, values in parts.items()}
    w_fro = weight_fro(pipeline.base.model, modules)
    cube = ("clip", "layer", "module")
    units = "same units as the base weights"
    ds = xr.Dataset(
        {
            "fro_norm": (cube, norms["fro_norm"], {"units": units, "description": "||dW||_F"}),
            "spectral_norm": (
                cube,
                norms["spectral_norm"],
                {"units": units, "description": "||dW||_2, the largest singular value"},
            ),
            "stable_rank": (
                cube,
                norms["stable_rank"],
                {
                    "units": "directions (1 to rank)",
                    "description": "||dW||_F^2 / ||dW||_2^2: the effective number of directions",
                },
            ),
            "relative_fro": (
                cube,
                norms["fro_norm"] / w_fro,
                {"units": "ratio", "description": "||dW||_F / ||W||_F of the frozen weight"},
            ),
            "weight_fro": (
                ("layer", "module"),
                w_fro,
                {"units": units, "description": "||W||_F of the frozen base weight"},
            ),
        },
        coords={
            "clip": [e.id for e in examples],
            "layer": np.arange(w_fro.shape[0]),
            "module": list(modules),
        },
        attrs={"probe": "delta_norms", "rank": rank, "frames": frames},
    )
    ds["clip"].attrs["description"] = "clip id"
    ds["layer"].attrs["description"] = "text-model decoder layer"
    ds["module"].attrs["description"] = "projection the LoRA targets"
    return ds
