"""How large is the generated update in each layer and module, and how many directions does it use?

For each clip the hypernetwork's adapter is made (batches of clips in one forward pass; nothing is
generated, so the study covers many clips quickly), and every layer's and module's update
``dW = scaling * B^T A`` is measured from its singular values (taken through the ``r x r`` core, never
forming ``dW``): Frobenius norm, spectral norm, stable rank (``||dW||_F^2 / ||dW||_2^2``, 1 to ``r``) and
size against the frozen weight (``||dW||_F / ||W||_F``).

    python -m analyses.delta_norms                        # shipped tiny checkpoints, 32 test clips
    python -m analyses.delta_norms --full --out results   # the complete sweep (500 clips)
    torchrun --nproc-per-node 4 -m analyses.delta_norms --full   # clips sharded across ranks

Writes ``<out>/delta_norms.nc``, ``<out>/delta_norms.md`` (mean of each norm per layer and module) and
figures. Interrupted runs resume where they stopped (one part file per clip).

Dataset schema (``delta_norms.nc``; see ``probes.delta_norms``):

- dims ``clip`` (the clip's id), ``layer`` (text-model decoder layer), ``module`` (``q_proj`` ...
  ``down_proj``), and ``failure`` (clips whose computation raised).
- ``fro_norm``, ``spectral_norm`` (units of the base weights), ``stable_rank`` (directions, 1 to the rank),
  ``relative_fro`` (ratio): all ``(clip, layer, module)``; ``weight_fro(layer, module)``: ``||W||_F``
  of the frozen weight; ``failed_unit(failure)``, ``error(failure)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time), the
  adapter ``rank`` and the study's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import xarray as xr

from analyses.common import BatchConfig, FramesConfig, open_probe_study, study_main
from f2l.results import markdown_table
from probes.delta_norms import NORMS, delta_norms

NAME = "delta_norms"


@dataclass
class DeltaNormsConfig(BatchConfig, FramesConfig):
    """Settings of the delta-norms study (every field is a command-line flag)."""

    full_clips: ClassVar[int] = 500
    clips: int = 32


def summary(ds: xr.Dataset) -> str:
    """Markdown: per norm, its mean across clips for every layer (rows) and module (columns)."""
    lines = ["# Delta-W norms\n"]
    failures = ds.sizes.get("failure", 0)
    if "fro_norm" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    lines.append(
        f"{ds.sizes['clip']} clips, adapter rank {ds.attrs.get('rank', '?')}, {failures} failed "
        "clips. Means across clips.\n"
    )
    stable = ds["stable_rank"]
    lines.append(
        f"Stable rank over every clip, layer and module: min {float(stable.min()):.6f}, "
        f"max {float(stable.max()):.6f}.\n"
    )
    titles = {
        "fro_norm": "||dW||_F",
        "spectral_norm": "||dW||_2 (largest singular value)",
        "stable_rank": "stable rank ||dW||_F^2 / ||dW||_2^2 (1 to the rank)",
        "relative_fro": "||dW||_F / ||W||_F",
    }
    for name in NORMS:
        mean = ds[name].mean("clip")
        rows = [
            {"layer": int(layer)}
            | {str(m): float(mean.sel(layer=layer, module=m)) for m in ds["module"].values}
            for layer in ds["layer"].values
        ]
        lines.append(f"Mean {titles[name]}:\n")
        lines.append(markdown_table(rows))
    return "\n".join(lines)


def run(cfg: DeltaNormsConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/delta_norms.nc``)."""
    # how many clips go through one forward pass does not change a clip's numbers
    f2l, examples, study = open_probe_study(cfg, NAME, dim="clip", ignore=("batch_size",))
    units = list(examples)
    pending = study.shard(units)  # the order in which study.run asks for this rank's clips
    ready: dict[str, xr.Dataset] = {}

    def one_clip(clip_id: str) -> xr.Dataset:
        """Clips are internalized a batch at a time; each is then written as its own unit."""
        if clip_id not in ready:
            start = pending.index(clip_id)
            batch = [examples[c] for c in pending[start : start + cfg.batch_size]]
            try:
                ds = delta_norms(f2l, batch, frames=cfg.frames, batch_size=cfg.batch_size)
            except Exception:  # a failing clip fails alone, not the clips batched with it
                ds = delta_norms(f2l, [examples[clip_id]], frames=cfg.frames)
            ready.update({str(c): ds.sel(clip=[c]) for c in ds["clip"].values})
        return ready.pop(clip_id)

    study.run(units, one_clip, desc="delta norms")
    return study.finish(units, summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("delta_norms", DeltaNormsConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
