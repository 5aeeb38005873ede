"""How close is the adapter's residual stream to the video's? Per layer, at the question positions, the f2l
run's residual stream against the direct run's: cosine, linear CKA and the share of the video's effect
reproduced.

Per clip every prompt runs three ways on the same question tokens (direct: the video in context; f2l:
the adapter; base: neither); at each layer's ``resid_pre`` and the final residual stream the study
records f2l's cosine to direct, the share of the video's effect it reproduces and, across all examples,
linear CKA, with base as the reference and the swapped and blank controls. ``python -m
analyses.similarity [--full]`` writes ``<out>/similarity.nc`` (schema: ``probes.similarity``; the CKA is
computed when the parts are merged), ``.md`` and figures; method: docs/probes/similarity.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from analyses.common import ControlsConfig, FramesConfig, PromptSubsetConfig, clip_mean_se
from analyses.study import ProbeRun, ProbeStudy, counts
from f2l.data import Example
from f2l.results import markdown_table
from probes.similarity import MIN_GAP, add_cka, clip_similarity

NAME = "similarity"


@dataclass
class SimilarityConfig(ControlsConfig, PromptSubsetConfig, FramesConfig):
    """Settings of the residual-stream similarity study (every field is a command-line flag)."""

    min_gap: float = MIN_GAP  # relative: share is NaN where ||h_base - h_direct||_F <= min_gap ||h_direct||_F


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    """One clip's rows; the CKA, which spans clips, is derived when the parts are merged."""
    return clip_similarity(run.pipeline, example, partner=run.partners.get(example.id), **run.kwargs())


def report(ds: xr.Dataset) -> list[str]:
    """Per layer, the cosine and share of f2l against direct and base's cosine (mean ± standard error
    across clips of each clip's mean), and the CKA of f2l and of base against direct, with the real
    adapter; then the share and the CKA under each adapter."""
    last = int(ds["layer"].values[-1])
    lines = [
        f"{counts(ds)}. Positions: "
        f"{ds.attrs.get('positions', '')}. cosine: {ds.attrs.get('cosine_definition', '')}; share: "
        f"{ds.attrs.get('share_definition', '')} (NaN where the video moves nothing); values are means over "
        f"each clip's prompts, then mean ± standard error across clips. CKA: {ds.attrs.get('cka_definition', '')}, "
        f"over all {ds.sizes['example_id']} prompts. Layer 0 is the token embedding (the same in every run); "
        f"layer {last} is the final residual stream (before the final norm).\n"
    ]
    sim = ds["similarity"].sel(adapter="real")
    rows = [
        {
            "layer": int(layer),
            "cosine f2l": clip_mean_se(sim.sel(layer=layer, measure="cosine")),
            "cosine base": clip_mean_se(ds["cosine_base"].sel(layer=layer)),
            "share": clip_mean_se(sim.sel(layer=layer, measure="share")),
            "CKA f2l": f"{float(ds['cka'].sel(layer=layer, adapter='real')):.3f}" if "cka" in ds else "n/a",
            "CKA base": f"{float(ds['cka_base'].sel(layer=layer)):.3f}" if "cka_base" in ds else "n/a",
        }
        for layer in ds["layer"].values
    ]
    lines.append(markdown_table(rows))
    controls = [str(a) for a in ds["adapter"].values if a != "real"]
    if controls:
        lines.append(
            "## Negative controls: the f2l run under another clip's adapter (swapped) and a blank video's "
            "(blank)\n"
        )
        adapters = [str(a) for a in ds["adapter"].values]
        share = ds["similarity"].sel(measure="share")
        rows = [
            {"layer": int(layer)}
            | {f"share {a}": clip_mean_se(share.sel(layer=layer, adapter=a)) for a in adapters}
            | {
                f"CKA {a}": f"{float(ds['cka'].sel(layer=layer, adapter=a)):.3f}"
                for a in adapters
                if "cka" in ds
            }
            for layer in ds["layer"].values
        ]
        lines.append(markdown_table(rows))
    return lines


# the CKA spans clips
STUDY = ProbeStudy(
    NAME, SimilarityConfig, one_clip, report, __doc__, probe=clip_similarity,
    title="Residual-stream similarity: the f2l run against the direct run", needs="similarity",
    derive=add_cka,
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
