"""Figures of ``similarity.nc``: how close the f2l run's residual stream is to the direct run's, per layer,
at the question positions.

``similarity_per_layer``: the cosine of f2l against direct (base against direct for reference), and the
share of the video's effect the adapter reproduces, ``1 - ||h_f2l - h_direct|| / ||h_base - h_direct||``,
against the layer (each clip's mean over its prompts, then mean ± standard error across clips).
``similarity_cka``: linear CKA across examples between f2l and direct (and base and direct) per layer. The
last layer position is the final residual stream; layer 0 is the token embedding, the same in every run.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.patching import _layer_ticks
from analyses.figures.style import (
    METHOD_COLORS,
    METHOD_MARKERS,
    figure,
    figure_legend,
    frame,
    no_data,
    zero_line,
)

RUN_STYLE = {  # the run compared with direct -> (its look, its label)
    "f2l": ("f2l", "f2l (adapter) vs direct"),
    "base": ("no_video", "base (no video) vs direct: reference"),
}
SE = {"errorbar": "se"}


def _clip_means(da: xr.DataArray) -> xr.DataArray:
    """Each clip's mean over its prompts (NaN skipped): clips are the independent replicates."""
    return da.groupby("clip").mean("example_id", skipna=True)


def _line(ax, df, y: str, run: str, *, errorbar=True) -> None:
    method, label = RUN_STYLE[run]
    sns.lineplot(
        data=df,
        x="layer",
        y=y,
        color=METHOD_COLORS[method],
        marker=METHOD_MARKERS[method],
        label=label,
        **(SE if errorbar else {"errorbar": None}),
        ax=ax,
        legend=False,
    )


def _legend(fig: Figure, runs) -> None:
    handles = [
        Line2D(
            [],
            [],
            color=METHOD_COLORS[RUN_STYLE[r][0]],
            marker=METHOD_MARKERS[RUN_STYLE[r][0]],
            label=RUN_STYLE[r][1],
        )
        for r in runs
    ]
    figure_legend(fig, handles, ncol=len(handles))


@figure("similarity", title="Residual-stream similarity to the direct run, per layer (question positions)")
def similarity_per_layer(ds: xr.Dataset) -> Figure:
    """Cosine (f2l and base against direct) and share of the video's effect reproduced, per layer: mean ±
    standard error across clips of each clip's mean."""
    fig, (cos_ax, share_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    cosine = {
        "f2l": frame(_clip_means(ds["similarity"].sel(measure="cosine", drop=True)), "cosine"),
        "base": frame(_clip_means(ds["cosine_base"]), "cosine"),
    }
    for run, df in cosine.items():
        if not df.empty:
            _line(cos_ax, df, "cosine", run)
    cos_ax.set_ylabel("cosine with the direct run\n(per position, mean over positions)")
    cos_ax.set_title("cosine similarity")
    share = frame(_clip_means(ds["similarity"].sel(measure="share", drop=True)), "share")
    zero_line(share_ax)
    share_ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
    if share.empty:
        no_data(share_ax, "no data: the video moves nothing")
    else:
        _line(share_ax, share, "share", "f2l")
    share_ax.set_ylabel(
        "1 - ||h_f2l - h_direct|| / ||h_base - h_direct||\n(0 = no closer than base, 1 = direct)"
    )
    share_ax.set_title("share of the video's effect reproduced")
    for ax in (cos_ax, share_ax):
        ax.set_xlabel("text-model layer (resid_pre; last: final residual)")
        _layer_ticks(ax, ds["layer"].values)
    _legend(fig, ("f2l", "base"))
    return fig


@figure("cka", title="Linear CKA with the direct run across examples, per layer (question positions)")
def similarity_cka(ds: xr.Dataset) -> Figure:
    """Linear CKA across every example (each example's residual stream averaged over its question
    positions) between f2l and direct, and between base and direct."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    runs = [r for r, var in (("f2l", "cka"), ("base", "cka_base")) if var in ds]
    for run in runs:
        df = frame(ds["cka" if run == "f2l" else "cka_base"], "cka")
        if not df.empty:
            _line(ax, df, "cka", run, errorbar=False)
    if not ax.lines:
        no_data(ax, "no data: CKA needs two examples")
    ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("text-model layer (resid_pre; last: final residual)")
    ax.set_ylabel("linear CKA with the direct run")
    ax.set_title(f"across {int(ds.attrs.get('cka_examples', ds.sizes['example_id']))} examples")
    _layer_ticks(ax, ds["layer"].values)
    _legend(fig, runs)
    return fig
