"""Figures of ``similarity.nc``: how close the f2l run's residual stream is to the direct run's, per layer,
at the question positions, under the clip's own adapter and the negative controls' (another clip's, a
blank video's).

``similarity_per_layer``: the cosine of f2l against direct (base against direct for reference), and the
share of the video's effect the adapter reproduces, ``1 - ||h_f2l - h_direct|| / ||h_base - h_direct||``,
against the layer, one line per adapter (each clip's mean over its prompts, then mean ± standard error
across clips). ``similarity_cka``: linear CKA across examples between f2l and direct, per adapter (and
base and direct) per layer. The last layer position is the final residual stream; layer 0 is the token
embedding, the same in every run.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    ADAPTER_COLORS,
    ADAPTER_MARKERS,
    METHOD_COLORS,
    METHOD_MARKERS,
    adapter_handles,
    adapters_of,
    figure,
    figure_legend,
    frame,
    layer_axis,
    no_data,
    zero_line,
)
from probes.prompts import clip_means

BASE = ("no_video", "base (no video) vs direct: reference")  # the reference line's look and label
SE = {"errorbar": "se"}
LAYER = "text-model layer (resid_pre; last: final residual)"


def _per_adapter(da: xr.DataArray, adapters) -> xr.DataArray:
    """``da`` with an ``adapter`` dim (data written before the negative controls: the real adapter's)."""
    return da if "adapter" in da.dims else da.expand_dims(adapter=adapters)


def _line(ax, df, y: str, adapter: str | None, *, errorbar=True) -> None:
    """One line of ``df``: the f2l run under ``adapter``, or (``None``) the base run's reference."""
    color, marker = (
        (METHOD_COLORS[BASE[0]], METHOD_MARKERS[BASE[0]])
        if adapter is None
        else (ADAPTER_COLORS[adapter], ADAPTER_MARKERS[adapter])
    )
    sns.lineplot(
        data=df,
        x="layer",
        y=y,
        color=color,
        marker=marker,
        linestyle="--" if adapter is None else "-",
        **(SE if errorbar else {"errorbar": None}),
        ax=ax,
        legend=False,
    )


def _legend(fig: Figure, adapters) -> None:
    base = Line2D(
        [], [], color=METHOD_COLORS[BASE[0]], marker=METHOD_MARKERS[BASE[0]], linestyle="--", label=BASE[1]
    )
    handles = [*adapter_handles(adapters), base]
    figure_legend(fig, handles, ncol=min(len(handles), 2), title="vs the direct run (video in context)")


@figure("similarity", title="Residual-stream similarity to the direct run, per layer (question positions)")
def similarity_per_layer(ds: xr.Dataset) -> Figure:
    """Cosine (f2l under each adapter, and base, against direct) and share of the video's effect
    reproduced, per layer: mean ± standard error across clips of each clip's mean."""
    adapters = adapters_of(ds)
    similarity = _per_adapter(ds["similarity"], adapters)
    fig, (cos_ax, share_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for adapter in adapters:
        cosine = frame(clip_means(similarity.sel(adapter=adapter, measure="cosine", drop=True)), "cosine")
        if not cosine.empty:
            _line(cos_ax, cosine, "cosine", adapter)
    base = frame(clip_means(ds["cosine_base"]), "cosine")
    if not base.empty:
        _line(cos_ax, base, "cosine", None)
    cos_ax.set_ylabel("cosine with the direct run\n(per position, mean over positions)")
    cos_ax.set_title("cosine similarity")
    zero_line(share_ax)
    share_ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
    drawn = False
    for adapter in adapters:
        share = frame(clip_means(similarity.sel(adapter=adapter, measure="share", drop=True)), "share")
        if not share.empty:
            _line(share_ax, share, "share", adapter)
            drawn = True
    if not drawn:
        no_data(share_ax, "no data: the video moves nothing")
    share_ax.set_ylabel(
        "1 - ||h_f2l - h_direct|| / ||h_base - h_direct||\n(0 = no closer than base, 1 = direct)"
    )
    share_ax.set_title("share of the video's effect reproduced")
    for ax in (cos_ax, share_ax):
        layer_axis(ax, ds["layer"].values, LAYER)
    _legend(fig, adapters)
    return fig


@figure("cka", title="Linear CKA with the direct run across examples, per layer (question positions)")
def similarity_cka(ds: xr.Dataset) -> Figure:
    """Linear CKA across every example (each example's residual stream averaged over its question
    positions) between f2l (under each adapter) and direct, and between base and direct."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    adapters = adapters_of(ds)
    if "cka" in ds:
        cka = _per_adapter(ds["cka"], adapters)
        for adapter in adapters:
            df = frame(cka.sel(adapter=adapter, drop=True), "cka")
            if not df.empty:
                _line(ax, df, "cka", adapter, errorbar=False)
    if "cka_base" in ds:
        df = frame(ds["cka_base"], "cka")
        if not df.empty:
            _line(ax, df, "cka", None, errorbar=False)
    if not ax.lines:
        no_data(ax, "no data: CKA needs two examples")
    ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("linear CKA with the direct run")
    ax.set_title(f"across {int(ds.attrs.get('cka_examples', ds.sizes['example_id']))} examples")
    layer_axis(ax, ds["layer"].values, LAYER)
    _legend(fig, adapters)
    return fig
