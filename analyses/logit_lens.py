"""At which layer does each route already predict the video's answer? The logit lens over the direct, f2l
and base runs of the same question.

Per clip every prompt runs three ways on the same question tokens (direct: the video in context; f2l:
the adapter; base: neither), each teacher-forced on the direct run's greedy answer; each layer's residual
stream is read through the final norm and the unembedding: the answer's probability and rank there, and
the KL of the run's own final distribution from it, with the swapped and blank controls. ``python -m
analyses.logit_lens [--full] [--backend transformer_lens]`` writes ``<out>/logit_lens.nc`` (schema:
``probes.logit_lens``), ``.md`` and figures; method: docs/probes/logit_lens.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import xarray as xr

from analyses.common import AnswerStudyConfig, ControlsConfig, PromptSubsetConfig, clip_mean_se
from analyses.study import ProbeRun, ProbeStudy, counts, layer_columns
from f2l.data import Example
from probes.logit_lens import logit_lens

NAME = "logit_lens"


@dataclass
class LogitLensConfig(ControlsConfig, PromptSubsetConfig, AnswerStudyConfig):
    """Settings of the logit-lens study (every field is a command-line flag)."""

    backend: str = "nnsight"


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    return logit_lens(run.pipeline, [example], **run.kwargs())


def routes(da: xr.DataArray) -> dict[str, xr.DataArray]:
    """``{route: values over example_id and layer}``: the direct and base runs, and the f2l run under each
    adapter (``"f2l"`` for the real one, ``"f2l swapped"``, ``"f2l blank"``)."""
    out = {run: da.sel(run=run, adapter="real") for run in ("direct", "base")}
    for adapter in da["adapter"].values:
        out["f2l" if adapter == "real" else f"f2l {adapter}"] = da.sel(run="f2l", adapter=adapter)
    return out


def report(ds: xr.Dataset) -> list[str]:
    """Per layer and route, the probability and rank of the video's answer and the KL to the run's final
    distribution (mean ± standard error across clips of each clip's mean)."""
    last = int(ds["layer"].values[-1])
    lines = [
        f"{counts(ds)}. The answer: "
        f"{ds.attrs.get('answer_definition', '')}. Read-out: {ds.attrs.get('readout', '')}. Values are means "
        f"over each clip's prompts, then mean ± standard error across clips. Layer 0 is the token embedding, "
        f"layer {last} the final residual stream (the model's own logits). Routes: direct (video in "
        f"context), base (neither), f2l (the clip's own adapter) and f2l under the control adapters.\n"
    ]
    for name, title, fmt in (
        ("prob", "Probability of the video's answer tokens (mean over tokens)", ".3f"),
        ("rank", "Rank of the video's answer tokens (tokens ranked above; mean over tokens)", ".1f"),
        ("kl", "KL(final || layer) of the run's own distribution, nats", ".3f"),
    ):
        lines.append(f"## {title}\n")
        cell = functools.partial(clip_mean_se, fmt=fmt)
        lines.append(layer_columns(ds["layer"].values, routes(ds[name]), cell))
    return lines


STUDY = ProbeStudy(
    NAME, LogitLensConfig, one_clip, report, __doc__, probe=logit_lens,
    title="Logit lens: direct, f2l and base runs read out layer by layer", needs="prob",
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
