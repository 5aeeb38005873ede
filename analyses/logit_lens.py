"""At which layer does each route already predict the video's answer? The logit lens over the direct, f2l
and base runs of the same question.

For each clip the hypernetwork's adapter is made once, and every prompt of the clip (each caption category
and one question of each QA type) runs three ways on the same question tokens: ``direct`` (the video in
context), ``f2l`` (the adapter, no visual tokens) and ``base`` (neither), each teacher-forced on the
direct run's greedy answer. At the positions predicting the answer, each layer's residual stream
(``blocks.{l}.hook_resid_pre``, then ``ln_final.hook_in``) is read through the final norm and the
unembedding: the answer token's probability and rank there, and the KL of the run's own final
distribution from that read-out; see ``probes.logit_lens``. Negative controls (``probes.controls``): the
f2l run also uses another clip's adapter (swapped: the next clip of the manifest) and a blank video's
(blank).

    python -m analyses.logit_lens                          # shipped tiny checkpoints, 8 test clips (~1 min)
    python -m analyses.logit_lens --full --out results     # the complete sweep (100 clips)
    python -m analyses.logit_lens --backend transformer_lens   # TransformerLens bridge hooks
    torchrun --nproc-per-node 4 -m analyses.logit_lens --full   # clips sharded across ranks

Writes ``<out>/logit_lens.nc``, ``<out>/logit_lens.md`` (per layer and route: probability and rank of
the video's answer, KL to the run's final distribution; mean ± standard error across clips) and figures.
Interrupted runs resume where they stopped (one part file per clip).

Dataset schema (``logit_lens.nc``; see ``probes.logit_lens``):

- dims ``example_id`` (``"<clip>/<item_id>"``: one prompt of one clip), ``adapter`` ("real", "swapped",
  "blank": the f2l run's adapter), ``run`` ("direct", "f2l", "base"), ``layer`` (0 .. L: the decoder
  layers' inputs, then the final residual stream), and ``failure``.
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa"), ``prompt``
  on ``example_id``; ``hook(layer)`` (the TransformerLens hook read).
- ``prob``, ``rank``, ``logp``, ``kl`` (``example_id, adapter, run, layer``): the answer token's read-out
  probability (mean over the answer's tokens), its rank (tokens above it, mean), the answer's summed
  read-out log-probability (nats), and ``KL(p_L || p_l)`` (nats, mean over the answer's positions); the
  direct and base runs are the same under every ``adapter`` label. ``answer_tokens``, ``answer`` (the
  direct run's greedy answer), ``reference`` on ``example_id``; ``failed_unit(failure)``,
  ``error(failure)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time), the
  definitions (``answer_definition``, ``readout``, ``kl_definition``), the backend, and the study's config.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import (
    AnswerStudyConfig,
    ControlsConfig,
    PromptSubsetConfig,
    clip_mean_se,
    open_probe_study,
    study_main,
    study_partners,
)
from f2l.results import markdown_table
from probes.controls import check_adapters
from probes.hooks import BACKENDS, make_capture
from probes.logit_lens import logit_lens

NAME = "logit_lens"


@dataclass
class LogitLensConfig(ControlsConfig, PromptSubsetConfig, AnswerStudyConfig):
    """Settings of the logit-lens study (every field is a command-line flag)."""

    backend: str = "nnsight"


def routes(da: xr.DataArray) -> dict[str, xr.DataArray]:
    """``{route: values over example_id and layer}``: the direct and base runs, and the f2l run under each
    adapter (``"f2l"`` for the real one, ``"f2l swapped"``, ``"f2l blank"``)."""
    out = {run: da.sel(run=run, adapter="real") for run in ("direct", "base")}
    for adapter in da["adapter"].values:
        out["f2l" if adapter == "real" else f"f2l {adapter}"] = da.sel(run="f2l", adapter=adapter)
    return out


def summary(ds: xr.Dataset) -> str:
    """Markdown: per layer and route, the probability and rank of the video's answer and the KL to the
    run's final distribution (mean ± standard error across clips of each clip's mean)."""
    lines = ["# Logit lens: direct, f2l and base runs read out layer by layer\n"]
    failures = ds.sizes.get("failure", 0)
    if "prob" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    last = int(ds["layer"].values[-1])
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips. The answer: "
        f"{ds.attrs.get('answer_definition', '')}. Read-out: {ds.attrs.get('readout', '')}. Values are means "
        f"over each clip's prompts, then mean ± standard error across clips. Layer 0 is the token embedding, "
        f"layer {last} the final residual stream (the model's own logits). Routes: direct (video in "
        f"context), base (neither), f2l (the clip's own adapter) and f2l under the control adapters.\n"
    )
    for name, title, fmt in (
        ("prob", "Probability of the video's answer tokens (mean over tokens)", ".3f"),
        ("rank", "Rank of the video's answer tokens (tokens ranked above; mean over tokens)", ".1f"),
        ("kl", "KL(final || layer) of the run's own distribution, nats", ".3f"),
    ):
        by_route = routes(ds[name])
        rows = [
            {"layer": int(layer)} | {r: clip_mean_se(v.sel(layer=layer), fmt) for r, v in by_route.items()}
            for layer in ds["layer"].values
        ]
        lines.append(f"## {title}\n")
        lines.append(markdown_table(rows))
    return "\n".join(lines)


def run(cfg: LogitLensConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/logit_lens.nc``)."""
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose from {list(BACKENDS)}")
    adapters = check_adapters(cfg.adapters)
    f2l, examples, study = open_probe_study(cfg, NAME)
    partners = study_partners(cfg, adapters)
    # built at the first pending clip: a resumed run that has nothing to do skips it
    capture = functools.cache(lambda: make_capture(cfg.backend, f2l.base.model))

    def one_clip(clip_id: str) -> xr.Dataset:
        return logit_lens(
            f2l,
            [examples[clip_id]],
            frames=cfg.frames,
            qa_per_type=cfg.qa_per_type,
            prompts_per_clip=cfg.prompts_per_clip,
            adapters=adapters,
            partners=partners,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            capture=capture(),
        )

    study.run(list(examples), one_clip, desc="logit lens")
    return study.finish(list(examples), summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main(NAME, LogitLensConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
