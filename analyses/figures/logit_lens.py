"""Figures of ``logit_lens.nc``: at which layer each route's residual stream, read through the final norm
and the unembedding, already predicts the video's answer, and how settled it is there.

Routes: ``direct`` (the video in context), ``base`` (neither), and the f2l run under the clip's own
adapter and under the negative controls' (another clip's, a blank video's). ``logit_lens_answer``: the
read-out probability of the video's answer tokens and their rank, against the layer. ``logit_lens_kl``:
the KL of each run's own final distribution from its read-out at the layer. Each clip's mean over its
prompts, then mean ± standard error across clips; layer 0 is the token embedding, the last position the
final residual stream (the model's own logits).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    ADAPTER_COLORS,
    ADAPTER_LABELS,
    ADAPTER_MARKERS,
    METHOD_COLORS,
    METHOD_LABELS,
    METHOD_MARKERS,
    adapters_of,
    figure,
    figure_legend,
    layer_axis,
    no_data,
)
from probes.prompts import clip_means

LAYER_READ = "text-model layer read (resid_pre; last: final residual)"
# route -> (colour, marker, line style, label)
_RUNS = {
    "direct": (METHOD_COLORS["direct"], METHOD_MARKERS["direct"], "-", METHOD_LABELS["direct"]),
    "base": (METHOD_COLORS["no_video"], METHOD_MARKERS["no_video"], "--", "base (no video, no adapter)"),
}


def _look(route: str) -> tuple:
    if route in _RUNS:
        return _RUNS[route]
    adapter = route.removeprefix("f2l ")
    return ADAPTER_COLORS[adapter], ADAPTER_MARKERS[adapter], "-", ADAPTER_LABELS[adapter]


def route_frame(ds: xr.Dataset, name: str) -> pd.DataFrame:
    """A long table of ``ds[name]``: each clip's mean over its prompts per layer and route (``direct``,
    ``base``, ``f2l <adapter>``), NaN rows dropped."""
    da = ds[name] if "adapter" in ds[name].dims else ds[name].expand_dims(adapter=["real"])
    parts = []
    for run in ("direct", "base"):
        parts.append((run, da.sel(run=run, adapter="real", drop=True)))
    for adapter in adapters_of(ds):
        parts.append((f"f2l {adapter}", da.sel(run="f2l", adapter=adapter, drop=True)))
    frames = []
    for route, values in parts:
        clips = clip_means(values)
        df = clips.rename(name).to_dataframe().reset_index()[["clip", "layer", name]]
        frames.append(df.assign(route=route))
    return pd.concat(frames, ignore_index=True).dropna(subset=[name])


def _routes(df: pd.DataFrame) -> list[str]:
    order = ["direct", "base", *(f"f2l {a}" for a in ADAPTER_COLORS)]
    return [r for r in order if r in set(df["route"])]


def _draw(ax, df: pd.DataFrame, y: str) -> None:
    if df.empty:
        no_data(ax)
        return
    for route in _routes(df):
        color, marker, style, _ = _look(route)
        sns.lineplot(
            data=df[df["route"] == route],
            x="layer",
            y=y,
            color=color,
            marker=marker,
            linestyle=style,
            errorbar="se",
            ax=ax,
            legend=False,
        )


def _legend(fig: Figure, ds: xr.Dataset) -> None:
    routes = ["direct", "base", *(f"f2l {a}" for a in adapters_of(ds))]
    handles = []
    for route in routes:
        color, marker, style, label = _look(route)
        handles.append(Line2D([], [], color=color, marker=marker, linestyle=style, label=label))
    figure_legend(
        fig, handles, ncol=min(len(handles), 3), title="run (each teacher-forced on the video's answer)"
    )


@figure("prob", title="Logit lens: when each run's residual stream predicts the video's answer")
def logit_lens_answer(ds: xr.Dataset) -> Figure:
    """The read-out probability of the video's answer tokens and their rank, per layer and route (mean ±
    standard error across clips of each clip's mean)."""
    fig, (prob_ax, rank_ax) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    _draw(prob_ax, route_frame(ds, "prob"), "prob")
    prob_ax.set_ylim(-0.02, 1.02)
    prob_ax.set_ylabel("probability of the answer token\n(read-out, mean over the answer's tokens)")
    prob_ax.set_title("probability of the video's answer")
    _draw(rank_ax, route_frame(ds, "rank"), "rank")
    rank_ax.set_yscale("symlog", linthresh=1.0)
    rank_ax.set_ylim(bottom=0)
    rank_ax.set_ylabel("tokens ranked above the answer token\n(0 = top; mean over tokens, symlog)")
    rank_ax.set_title("rank of the video's answer")
    for ax in (prob_ax, rank_ax):
        layer_axis(ax, ds["layer"].values, LAYER_READ)
    _legend(fig, ds)
    return fig


@figure("kl", title="Logit lens: how far each layer's read-out is from the run's own final distribution")
def logit_lens_kl(ds: xr.Dataset) -> Figure:
    """``KL(p_final || p_layer)`` per layer and route (mean ± standard error across clips of each clip's
    mean); 0 at the final residual by definition."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    _draw(ax, route_frame(ds, "kl"), "kl")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("KL(final || layer read-out), nats\n(mean over the answer's positions)")
    ax.set_title("distance to the run's own final distribution")
    layer_axis(ax, ds["layer"].values, LAYER_READ)
    _legend(fig, ds)
    return fig
