"""How large is the generated update in each layer and module, and how many directions does it use?

Per clip the adapter is made (batches of clips in one forward pass, nothing generated) and each layer's
and module's update ``dW`` is measured from its singular values: Frobenius and spectral norm, stable rank
and size against the frozen weight. ``python -m analyses.delta_norms [--full]`` writes
``<out>/delta_norms.nc`` (schema: ``probes.delta_norms``), ``.md`` and figures; method:
docs/probes/delta_norms.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import xarray as xr

from analyses.common import BatchConfig, FramesConfig
from analyses.study import ProbeRun, ProbeStudy, layer_table
from f2l.data import Example
from probes.delta_norms import NORMS, delta_norms

NAME = "delta_norms"
TITLES = {
    "fro_norm": "||dW||_F",
    "spectral_norm": "||dW||_2 (largest singular value)",
    "stable_rank": "stable rank ||dW||_F^2 / ||dW||_2^2 (1 to the rank)",
    "relative_fro": "||dW||_F / ||W||_F",
}


@dataclass
class DeltaNormsConfig(BatchConfig, FramesConfig):
    """Settings of the delta-norms study (every field is a command-line flag)."""

    full_clips: ClassVar[int] = 500
    clips: int = 32


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    """Clips are internalized a batch at a time (of the clips still pending); each is written alone."""
    ready: dict[str, xr.Dataset] = run.scratch
    if example.id not in ready:
        start = run.pending.index(example.id)
        batch = [run.examples[c] for c in run.pending[start : start + run.cfg.batch_size]]
        try:
            ds = delta_norms(run.pipeline, batch, frames=run.cfg.frames, batch_size=run.cfg.batch_size)
        except Exception:  # a failing clip fails alone, not the clips batched with it
            ds = delta_norms(run.pipeline, [example], frames=run.cfg.frames)
        ready.update({str(c): ds.sel(clip=[c]) for c in ds["clip"].values})
    return ready.pop(example.id)


def report(ds: xr.Dataset) -> list[str]:
    """Per norm, its mean across clips for every layer (rows) and module (columns)."""
    stable = ds["stable_rank"]
    lines = [
        f"{ds.sizes['clip']} clips, adapter rank {ds.attrs.get('rank', '?')}, {ds.sizes.get('failure', 0)} "
        "failed clips. Means across clips.\n",
        f"Stable rank over every clip, layer and module: min {float(stable.min()):.6f}, "
        f"max {float(stable.max()):.6f}.\n",
    ]
    for name in NORMS:
        lines.append(f"Mean {TITLES[name]}:\n")
        lines.append(layer_table(ds[name].mean("clip"), "module", float))
    return lines


# how many clips share a forward pass does not change a clip's numbers
STUDY = ProbeStudy(
    NAME, DeltaNormsConfig, one_clip, report, __doc__, title="Delta-W norms", needs="fro_norm", dim="clip",
    ignore=("batch_size",),
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
