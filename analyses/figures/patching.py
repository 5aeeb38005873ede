"""Figures of ``patching.nc``: which layer and site, patched from one run into another, closes the gap in
the answer's log-probability, and how large that gap is to begin with.

``patching_restored``: one panel per direction (direct -> base, f2l -> base, direct -> f2l), the restored
fraction against the layer, one line per site (resid_pre, attn_out, mlp_out); the last layer position is
the final residual stream, which restores exactly 1. ``patching_effects``: the gap itself,
``logp_source - logp_target`` per example, with the threshold under which ``restored`` is NaN.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    CI95,
    COMPONENT_COLORS,
    figure,
    figure_legend,
    frame,
    no_data,
    ordered,
    palette,
    zero_line,
)

SITE_COLORS = {
    "resid_pre": COMPONENT_COLORS["resid"],
    "attn_out": COMPONENT_COLORS["attn"],
    "mlp_out": COMPONENT_COLORS["mlp"],
}
SITE_LABELS = {
    "resid_pre": "resid_pre (the layer's input)",
    "attn_out": "attn_out (attention output)",
    "mlp_out": "mlp_out (MLP output)",
}
SITE_MARKERS = {"resid_pre": "o", "attn_out": "s", "mlp_out": "D"}
KIND_COLORS = {"caption": sns.color_palette("colorblind")[0], "qa": sns.color_palette("colorblind")[1]}
DIRECTION_TITLES = {
    "direct->base": "direct -> base: where the video's effect is",
    "f2l->base": "f2l -> base: where the adapter's effect is",
    "direct->f2l": "direct -> f2l: what the adapter misses",
}


def _layer_ticks(ax, layers) -> None:
    """Integer ticks at every layer; the last one (the final residual stream) labelled "final"."""
    layers = sorted(int(v) for v in layers)
    ax.set_xticks(layers)
    ax.set_xticklabels([str(v) for v in layers[:-1]] + ["final"])


@figure("restored", title="Activation patching: the share of the gap one patched site restores")
def patching_restored(ds: xr.Dataset) -> Figure:
    """Per direction, the restored fraction of each site against the layer (mean across examples whose
    gap passes the threshold, 95% bootstrap interval)."""
    directions = [str(d) for d in ds["direction"].values]
    sites = ordered(ds["site"].values, tuple(SITE_COLORS))
    colors = palette(sites, SITE_COLORS)
    fig, axes = plt.subplots(
        1, len(directions), figsize=(4.6 * len(directions) + 0.6, 4.8), squeeze=False, sharey=True
    )
    df = frame(ds["restored"], "restored")
    for ax, direction in zip(axes[0], directions, strict=True):
        zero_line(ax)
        ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
        part = df[df["direction"] == direction]
        if part.empty:
            no_data(ax, "no data: no example's gap passes the threshold")
        else:
            sns.lineplot(
                data=part,
                x="layer",
                y="restored",
                hue="site",
                style="site",
                hue_order=sites,
                style_order=sites,
                palette=colors,
                markers=SITE_MARKERS,
                dashes=False,
                **CI95,
                ax=ax,
                legend=False,
            )
        n = int(np.isfinite(ds["restored"].sel(direction=direction).isel(layer=-1, site=0)).sum())
        ax.set_title(
            f"{DIRECTION_TITLES.get(direction, direction)}\n({n} of {ds.sizes['example_id']} examples)"
        )
        ax.set_xlabel("text-model layer patched")
        _layer_ticks(ax, ds["layer"].values)
    axes[0, 0].set_ylabel("restored fraction of logp_source - logp_target\n(0 = nothing, 1 = all)")
    handles = [
        Line2D([], [], color=colors[s], marker=SITE_MARKERS.get(s, "o"), label=SITE_LABELS.get(s, s))
        for s in sites
    ]
    figure_legend(
        fig, handles, ncol=len(handles), title="site patched (at the question and answer positions)"
    )
    return fig


@figure("effect", title="Activation patching: the log-probability gap each direction measures")
def patching_effects(ds: xr.Dataset) -> Figure:
    """Per direction, ``logp_source - logp_target`` of every example (dots by prompt kind, box across
    examples), with the band ``|effect| < min_effect`` in which ``restored`` is left NaN."""
    directions = [str(d) for d in ds["direction"].values]
    df = frame(ds["effect"], "effect")
    kinds = ordered(df["kind"].unique() if not df.empty else [], tuple(KIND_COLORS))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.4 * len(directions) + 1.5), 4.8))
    zero_line(ax)
    threshold = float(ds.attrs.get("min_effect", np.nan))
    if np.isfinite(threshold):
        ax.axhspan(-threshold, threshold, color="0.85", zorder=0)
    if df.empty:
        no_data(ax)
    else:
        sns.boxplot(
            data=df,
            x="direction",
            y="effect",
            order=directions,
            color="white",
            linecolor="0.35",
            showfliers=False,
            width=0.55,
            ax=ax,
        )
        sns.stripplot(
            data=df,
            x="direction",
            y="effect",
            hue="kind",
            order=directions,
            hue_order=kinds,
            palette=palette(kinds, KIND_COLORS),
            dodge=False,
            jitter=0.18,
            size=4,
            alpha=0.8,
            ax=ax,
            legend=False,
        )
    ax.set_xlabel("direction (source -> target)")
    ax.set_ylabel("logp_source - logp_target (nats)\nof the source's greedy answer")
    ax.set_title(
        f"grey band: |gap| < {threshold:g} nats, restored left NaN"
        if np.isfinite(threshold)
        else "per example"
    )
    handles = [
        Line2D([], [], color=c, marker="o", linestyle="", label=f"{k} prompts")
        for k, c in palette(kinds, KIND_COLORS).items()
    ]
    if handles:
        figure_legend(fig, handles, ncol=len(handles))
    return fig
