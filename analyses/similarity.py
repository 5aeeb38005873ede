"""How close is the adapter's residual stream to the video's? Per layer, at the question positions, the f2l
run's residual stream against the direct run's: cosine, linear CKA and the share of the video's effect
reproduced.

For each clip the hypernetwork's adapter is made once, and every prompt of the clip (each caption category
and one question of each QA type) runs three ways on the same question tokens: ``direct`` (the video in
context), ``f2l`` (the adapter, no visual tokens) and ``base`` (neither). At each decoder layer's
``resid_pre`` and the final residual stream, over the prompt's aligned question span (aligned from the end,
as in ``probes.patching``; no answer tokens), the study records the cosine of f2l against direct (mean
over positions), the share of the video's effect the adapter reproduces, ``1 - ||h_f2l - h_direct||_F /
||h_base - h_direct||_F``, and linear CKA across all examples of the position-averaged residual streams;
base against direct is the reference. See ``probes.similarity`` for the definitions. Negative controls
(``probes.controls``): the f2l run also uses another clip's adapter (swapped: the next clip of the
manifest) and a blank video's (blank).

    python -m analyses.similarity                          # shipped tiny checkpoints, 8 test clips (~1 min)
    python -m analyses.similarity --full --out results     # the complete sweep (100 clips)
    torchrun --nproc-per-node 4 -m analyses.similarity --full   # clips sharded across ranks

Writes ``<out>/similarity.nc``, ``<out>/similarity.md`` (per layer: cosine and share, mean ± standard
error across clips, and the CKA; then share and CKA under each control adapter) and figures.
Interrupted runs resume where they stopped (one part file per clip); the CKA, which spans clips, is
computed when the parts are merged.

Dataset schema (``similarity.nc``; see ``probes.similarity``):

- dims ``example_id`` (``"<clip>/<item_id>"``), ``adapter`` ("real", "swapped", "blank": the f2l run's
  adapter), ``layer`` (0 .. L: the decoder layers' ``resid_pre``, then the final residual stream),
  ``measure`` ("cosine", "share"), ``run`` ("direct", "f2l", "base"), ``hidden``, and ``failure``.
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa"), ``prompt`` on
  ``example_id``.
- ``similarity(example_id, adapter, layer, measure)``: f2l against direct (share NaN where the video
  moves nothing, ``min_gap`` in attrs); ``cosine_base(example_id, layer)``: base against direct;
  ``cka(adapter, layer)``, ``cka_base(layer)``: linear CKA across every finished example;
  ``mean_resid(example_id, adapter, run, layer, hidden)``: the position-averaged residual streams CKA
  reads; ``question_tokens(example_id)``; ``failed_unit(failure)``, ``error(failure)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time), the
  definitions (``positions``, ``cosine_definition``, ``share_definition``, ``cka_definition``,
  ``min_gap``), the backend, and the study's config.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import (
    ControlsConfig,
    FramesConfig,
    PromptSubsetConfig,
    clip_mean_se,
    open_probe_study,
    study_main,
    study_partners,
)
from f2l.results import markdown_table
from probes.controls import check_adapters
from probes.hooks import NNsightCapture
from probes.similarity import MIN_GAP, add_cka, clip_similarity

NAME = "similarity"


@dataclass
class SimilarityConfig(ControlsConfig, PromptSubsetConfig, FramesConfig):
    """Settings of the residual-stream similarity study (every field is a command-line flag)."""

    min_gap: float = MIN_GAP  # relative: share is NaN where ||h_base - h_direct||_F <= min_gap ||h_direct||_F


def summary(ds: xr.Dataset) -> str:
    """Markdown: per layer, the cosine and share of f2l against direct and base's cosine (mean ± standard
    error across clips of each clip's mean), and the CKA of f2l and of base against direct, with the real
    adapter; then the share and the CKA under each adapter."""
    lines = ["# Residual-stream similarity: the f2l run against the direct run\n"]
    failures = ds.sizes.get("failure", 0)
    if "similarity" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    last = int(ds["layer"].values[-1])
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips. Positions: "
        f"{ds.attrs.get('positions', '')}. cosine: {ds.attrs.get('cosine_definition', '')}; share: "
        f"{ds.attrs.get('share_definition', '')} (NaN where the video moves nothing); values are means over "
        f"each clip's prompts, then mean ± standard error across clips. CKA: {ds.attrs.get('cka_definition', '')}, "
        f"over all {ds.sizes['example_id']} prompts. Layer 0 is the token embedding (the same in every run); "
        f"layer {last} is the final residual stream (before the final norm).\n"
    )
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
    return "\n".join(lines)


def run(cfg: SimilarityConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/similarity.nc``)."""
    adapters = check_adapters(cfg.adapters)
    f2l, examples, study = open_probe_study(cfg, NAME)
    partners = study_partners(cfg, adapters)
    # built at the first pending clip: a resumed run that has nothing to do skips it
    capture = functools.cache(lambda: NNsightCapture(f2l.base.model))

    def one_clip(clip_id: str) -> xr.Dataset:
        return clip_similarity(
            f2l,
            examples[clip_id],
            cfg.frames,
            cfg.qa_per_type,
            cfg.prompts_per_clip,
            cfg.min_gap,
            capture(),
            adapters=adapters,
            partner=partners.get(clip_id),
        )

    study.run(list(examples), one_clip, desc="similarity")
    return study.finish(list(examples), derive=add_cka, summary=summary)  # CKA spans clips


def main(argv: list[str] | None = None) -> int:
    return study_main(NAME, SimilarityConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
