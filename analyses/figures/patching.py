"""Figures of ``patching.nc``: which layer and site, patched from one run into another, closes the gap in
the answer's log-probability, and how large that gap is to begin with.

``patching_restored``: one panel per direction (direct -> base, f2l -> base, direct -> f2l), the restored
fraction against the layer, one line per site (resid_pre, attn_out, mlp_out), with the clip's own adapter;
the last layer position is the final residual stream, which restores exactly 1. ``patching_controls``:
the negative controls, the residual stream's restored fraction of the directions with an f2l run under
each adapter (the clip's own, another clip's, a blank video's). ``patching_effects``: the gap itself,
``logp_source - logp_target`` per example and adapter, with the threshold under which ``restored`` is NaN.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    ADAPTER_COLORS,
    ADAPTER_MARKERS,
    CI95,
    COMPONENT_COLORS,
    adapter_handles,
    adapters_of,
    by_adapter,
    figure,
    figure_legend,
    frame,
    hue_lines,
    layer_axis,
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
RESTORED_AXIS = "restored fraction of logp_source - logp_target\n(0 = nothing, 1 = all)"
DIRECTION_TITLES = {
    "direct->base": "direct -> base: where the video's effect is",
    "f2l->base": "f2l -> base: where the adapter's effect is",
    "direct->f2l": "direct -> f2l: what the adapter misses",
}


def with_f2l(ds: xr.Dataset) -> list[str]:
    """The directions of ``ds`` with an f2l run (the ones an adapter changes), in the dataset's order."""
    runs = zip(ds["direction"].values, ds["source"].values, ds["target"].values, strict=True)
    return [str(d) for d, source, target in runs if "f2l" in (source, target)]


def _restored_lines(ax, part, lines: dict, empty: str) -> None:
    """The restored fraction of ``part`` against the layer, a line per hue of ``lines`` (``hue_lines``)
    with 95% bootstrap bands, between marks at 0 and 1; ``empty`` says why where there is no data."""
    zero_line(ax)
    ax.axhline(1.0, color="0.5", linewidth=1.0, linestyle="--", zorder=1)
    if part.empty:
        no_data(ax, empty)
    else:
        sns.lineplot(data=part, x="layer", y="restored", **lines, **CI95, ax=ax, legend=False)


@figure("restored", title="Activation patching: the share of the gap one patched site restores")
def patching_restored(ds: xr.Dataset) -> Figure:
    """Per direction, the restored fraction of each site against the layer (mean across examples whose
    gap passes the threshold, 95% bootstrap interval), with the clip's own adapter."""
    ds = by_adapter(ds)
    directions = [str(d) for d in ds["direction"].values]
    sites = ordered(ds["site"].values, tuple(SITE_COLORS))
    colors = palette(sites, SITE_COLORS)
    fig, axes = plt.subplots(
        1, len(directions), figsize=(4.6 * len(directions) + 0.6, 4.8), squeeze=False, sharey=True
    )
    df = frame(ds["restored"], "restored")
    lines = hue_lines("site", sites, colors, SITE_MARKERS)
    for ax, direction in zip(axes[0], directions, strict=True):
        part = df[df["direction"] == direction]
        _restored_lines(ax, part, lines, "no data: no example's gap passes the threshold")
        n = int(np.isfinite(ds["restored"].sel(direction=direction).isel(layer=-1, site=0)).sum())
        ax.set_title(
            f"{DIRECTION_TITLES.get(direction, direction)}\n({n} of {ds.sizes['example_id']} examples)"
        )
        layer_axis(ax, ds["layer"].values, "text-model layer patched")
    axes[0, 0].set_ylabel(RESTORED_AXIS)
    handles = [
        Line2D([], [], color=colors[s], marker=SITE_MARKERS.get(s, "o"), label=SITE_LABELS.get(s, s))
        for s in sites
    ]
    figure_legend(
        fig, handles, ncol=len(handles), title="site patched (at the question and answer positions)"
    )
    return fig


@figure("restored", title="Activation patching, negative controls: the residual stream under each adapter")
def patching_controls(ds: xr.Dataset) -> Figure:
    """Per direction with an f2l run, the restored fraction of ``resid_pre`` against the layer, one line per
    adapter (mean across examples whose gap passes the threshold, 95% bootstrap interval): what the
    patching shows when the adapter carries nothing about the clip."""
    directions = with_f2l(ds)
    adapters = adapters_of(ds)
    restored = ds["restored"].sel(site="resid_pre")
    if "adapter" not in restored.dims:
        restored = restored.expand_dims(adapter=adapters)
    fig, axes = plt.subplots(
        1,
        max(1, len(directions)),
        figsize=(4.8 * max(1, len(directions)) + 0.6, 4.8),
        squeeze=False,
        sharey=True,
    )
    df = frame(restored, "restored")
    lines = hue_lines("adapter", adapters, palette(adapters, ADAPTER_COLORS), ADAPTER_MARKERS)
    for ax, direction in zip(axes[0], directions or [None], strict=True):
        part = df[df["direction"] == direction] if direction else df.iloc[:0]
        _restored_lines(ax, part, lines, "no data: no f2l direction, or no gap passes the threshold")
        ax.set_title(DIRECTION_TITLES.get(direction, direction or "no f2l direction"))
        layer_axis(ax, ds["layer"].values, "text-model layer whose resid_pre is patched")
    axes[0, 0].set_ylabel(RESTORED_AXIS)
    figure_legend(fig, adapter_handles(adapters), ncol=len(adapters), title="the f2l run's adapter")
    return fig


@figure("effect", title="Activation patching: the log-probability gap each direction measures")
def patching_effects(ds: xr.Dataset) -> Figure:
    """Per direction and adapter, ``logp_source - logp_target`` of every example (dots, box across
    examples), with the band ``|effect| < min_effect`` in which ``restored`` is left NaN. direct -> base
    uses no adapter: it is drawn once."""
    directions = [str(d) for d in ds["direction"].values]
    adapters = adapters_of(ds)
    effect = ds["effect"] if "adapter" in ds["effect"].dims else ds["effect"].expand_dims(adapter=adapters)
    df = frame(effect, "effect")
    if not df.empty:  # a direction without the f2l run is the same under every adapter: the real one's
        df = df[df["direction"].isin(with_f2l(ds)) | (df["adapter"] == "real")]
    fig, ax = plt.subplots(
        figsize=(max(6.0, 2.4 * len(directions) * (1 + 0.3 * (len(adapters) - 1)) + 1.5), 4.8)
    )
    zero_line(ax)
    threshold = float(ds.attrs.get("min_effect", np.nan))
    if np.isfinite(threshold):
        ax.axhspan(-threshold, threshold, color="0.85", zorder=0)
    colors = palette(adapters, ADAPTER_COLORS)
    if df.empty:
        no_data(ax)
    else:
        common = {
            "data": df,
            "x": "direction",
            "y": "effect",
            "order": directions,
            "hue": "adapter",
            "hue_order": adapters,
            "ax": ax,
            "legend": False,
        }
        sns.boxplot(**common, palette=colors, fill=False, showfliers=False, width=0.8, linewidth=1.0)
        sns.stripplot(**common, palette=colors, dodge=True, jitter=0.12, size=4, alpha=0.8)
    ax.set_xlabel("direction (source -> target)")
    ax.set_ylabel("logp_source - logp_target (nats)\nof the source's greedy answer")
    ax.set_title(
        f"grey band: |gap| < {threshold:g} nats, restored left NaN"
        if np.isfinite(threshold)
        else "per example"
    )
    figure_legend(fig, adapter_handles(adapters), ncol=len(adapters), title="the f2l run's adapter")
    return fig
