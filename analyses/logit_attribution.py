"""Where does the adapter push the answer's logit? Direct logit attribution of the adapter, per layer and
sublayer.

For each clip the hypernetwork's adapter is made once, every prompt of the clip (each caption category and
one question of each QA type) is answered greedily with it, and the answer's tokens are teacher-forced
through the base VLM with and without the adapter. At every answer token, the adapter's change to the
residual stream after each layer, and to each layer's attention and MLP outputs, is projected onto the
answer direction (the answer token's unembedding minus the mean unembedding, or minus the unembedding of
the base run's strongest other token with ``--contrast rival``, through the final RMSNorm linearised at
the adapted run's scale); see ``probes.logit_attribution``.

    python -m analyses.logit_attribution                        # shipped tiny checkpoints, 48 test clips
    python -m analyses.logit_attribution --full --out results   # the complete sweep (100 clips)
    python -m analyses.logit_attribution --backend transformer_lens   # TransformerLens bridge hooks
    python -m analyses.logit_attribution --contrast rival       # answer vs the base run's runner-up
    torchrun --nproc-per-node 4 -m analyses.logit_attribution --full  # clips sharded across ranks

Writes ``<out>/logit_attribution.nc``, ``<out>/logit_attribution.md`` (mean attribution per layer and
component) and figures. Interrupted runs resume where they stopped (one part file per clip).

Dataset schema (``logit_attribution.nc``; see ``probes.logit_attribution``):

- dims ``example_id`` (``"<clip>/<item_id>"``: one prompt of one clip), ``layer``, ``component``
  ("resid": the cumulative residual delta after the layer; "attn", "mlp": that layer's sublayer output
  deltas), ``position`` (answer-token index, NaN past a shorter answer's end), and ``failure``.
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa") on
  ``example_id``.
- ``dla(example_id, layer, component, position)`` (logits); ``logit_delta(example_id, position)`` (logits,
  the exact change of the answer's contrast logit); ``rms_ratio(example_id, position)`` (the final
  residual's RMS, adapted over base); ``answer_token(example_id, position)`` (and ``rival_token`` with
  ``--contrast rival``), ``answer_length``, ``prediction`` and ``reference`` (per example);
  ``failed_unit(failure)``, ``error(failure)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time), the
  contrast and direction used, the hook backend, and the study's config.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import AnswerStudyConfig, clip_mean_se, open_probe_study, study_main
from f2l.results import markdown_table
from probes.hooks import BACKENDS, make_capture
from probes.logit_attribution import CONTRASTS, logit_attribution

NAME = "logit_attribution"


@dataclass
class LogitAttributionConfig(AnswerStudyConfig):
    """Settings of the logit-attribution study (every field is a command-line flag)."""

    clips: int = 48
    contrast: str = "rival"
    backend: str = "nnsight"


def per_example(da: xr.DataArray) -> xr.DataArray:
    """Mean over each example's answer tokens (examples with an empty answer drop out)."""
    return da.mean("position", skipna=True)


def _tokens_mean_se(da: xr.DataArray) -> str:
    """Mean ± standard error across clips of each clip's mean of ``per_example`` (answer tokens first)."""
    return clip_mean_se(per_example(da))


def summary(ds: xr.Dataset) -> str:
    """Markdown: mean attribution per layer and component, the linearisation against the exact logit
    change, and the total per benchmark."""
    lines = ["# Direct logit attribution of the adapter\n"]
    failures = ds.sizes.get("failure", 0)
    if "dla" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    tokens = int(ds["answer_length"].sum())
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {tokens} answer tokens, {failures} failed "
        f"clips; hooks: {ds.attrs.get('backend', '?')}. Each value is the adapted-minus-base change "
        f"projected on the answer direction ({ds.attrs.get('contrast_description', '')}), in logits, "
        "averaged over each example's answer tokens, then mean ± standard error across clips. `resid` at layer l is the "
        "cumulative change after layer l; `attn` and `mlp` are that layer's own sublayers.\n"
    )
    rows = [
        {"layer": int(layer)}
        | {str(c): _tokens_mean_se(ds["dla"].sel(layer=layer, component=c)) for c in ds["component"].values}
        for layer in ds["layer"].values
    ]
    lines.append(markdown_table(rows))
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
    return "\n".join(lines)


def run(cfg: LogitAttributionConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/logit_attribution.nc``)."""
    if cfg.backend not in BACKENDS:
        raise ValueError(f"unknown backend {cfg.backend!r}; choose from {BACKENDS}")
    if cfg.contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {cfg.contrast!r}; choose from {list(CONTRASTS)}")
    f2l, examples, study = open_probe_study(cfg, NAME)
    # built at the first pending clip: a resumed run that has nothing to do skips it
    capture = functools.cache(lambda: make_capture(cfg.backend, f2l.base.model))

    def one_clip(clip_id: str) -> xr.Dataset:
        return logit_attribution(
            f2l,
            [examples[clip_id]],
            frames=cfg.frames,
            qa_per_type=cfg.qa_per_type,
            contrast=cfg.contrast,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            capture=capture(),
        )

    study.run(list(examples), one_clip, desc="logit attribution")
    return study.finish(list(examples), summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("logit_attribution", LogitAttributionConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
