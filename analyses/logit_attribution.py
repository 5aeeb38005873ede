"""Where does the adapter push the answer's logit? Direct logit attribution of the adapter, per layer and
sublayer.

Per clip every prompt is answered greedily with the adapter and the answer teacher-forced with and
without it; the adapter's change to the residual stream after each layer, and to each attention and MLP
output, is projected on the answer direction (``--contrast``, through the final norm linearised).
``python -m analyses.logit_attribution [--full] [--backend transformer_lens]`` writes
``<out>/logit_attribution.nc`` (schema: ``probes.logit_attribution``), ``.md`` and figures; method:
docs/probes/logit_attribution.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import AnswerStudyConfig, clip_mean_se
from analyses.study import ProbeRun, ProbeStudy, layer_table
from f2l.data import Example
from f2l.results import markdown_table
from probes.logit_attribution import CONTRASTS, logit_attribution

NAME = "logit_attribution"


@dataclass
class LogitAttributionConfig(AnswerStudyConfig):
    """Settings of the logit-attribution study (every field is a command-line flag)."""

    clips: int = 48
    contrast: str = "rival"
    backend: str = "nnsight"


def prepare(cfg: LogitAttributionConfig) -> LogitAttributionConfig:
    if cfg.contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {cfg.contrast!r}; choose from {list(CONTRASTS)}")
    return cfg


def per_example(da: xr.DataArray) -> xr.DataArray:
    """Mean over each example's answer tokens (examples with an empty answer drop out)."""
    return da.mean("position", skipna=True)


def _tokens_mean_se(da: xr.DataArray) -> str:
    """Mean ± standard error across clips of each clip's mean of ``per_example`` (answer tokens first)."""
    return clip_mean_se(per_example(da))


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    return logit_attribution(run.pipeline, [example], **run.kwargs())


def report(ds: xr.Dataset) -> list[str]:
    """Mean attribution per layer and component, the linearisation against the exact logit change, and
    the total per benchmark."""
    n_clips = len(np.unique(ds["clip"].values))
    failures = ds.sizes.get("failure", 0)
    tokens = int(ds["answer_length"].sum())
    lines = [
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {tokens} answer tokens, {failures} failed "
        f"clips; hooks: {ds.attrs.get('backend', '?')}. Each value is the adapted-minus-base change "
        f"projected on the answer direction ({ds.attrs.get('contrast_description', '')}), in logits, "
        "averaged over each example's answer tokens, then mean ± standard error across clips. `resid` at "
        "layer l is the cumulative change after layer l; `attn` and `mlp` are that layer's own sublayers.\n"
    ]
    lines.append(layer_table(ds["dla"], "component", _tokens_mean_se))
    last = ds["dla"].sel(component="resid").isel(layer=-1)
    finite = np.isfinite(last.values) & np.isfinite(ds["logit_delta"].values)
    corr = (
        float(np.corrcoef(last.values[finite], ds["logit_delta"].values[finite])[0, 1])
        if finite.sum() > 1
        else float("nan")
    )
    lines.append(
        "Linearisation check (per answer token): the last layer's `resid` attribution against the exact "
        "change of the contrast logit; they differ only through the final norm's change of scale "
        "(`rms_ratio` = adapted / base RMS of the final residual).\n"
    )
    lines.append(
        markdown_table(
            [
                {
                    "linearised (resid, last layer)": _tokens_mean_se(last),
                    "exact logit_delta": _tokens_mean_se(ds["logit_delta"]),
                    "correlation": corr,
                    "rms_ratio": _tokens_mean_se(ds["rms_ratio"]),
                }
            ]
        )
    )
    by_benchmark = per_example(last).groupby("benchmark").mean("example_id", skipna=True)
    exact = per_example(ds["logit_delta"]).groupby("benchmark").mean("example_id", skipna=True)
    rows = [
        {
            "benchmark": str(b),
            "linearised total": float(by_benchmark.sel(benchmark=b)),
            "exact logit_delta": float(exact.sel(benchmark=b)),
        }
        for b in by_benchmark["benchmark"].values
    ]
    lines.append("Per benchmark (mean over examples of the mean over answer tokens):\n")
    lines.append(markdown_table(rows))
    return lines


STUDY = ProbeStudy(
    NAME, LogitAttributionConfig, one_clip, report, __doc__, probe=logit_attribution,
    title="Direct logit attribution of the adapter", needs="dla", prepare=prepare,
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
