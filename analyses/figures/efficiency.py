"""Figures of ``efficiency.nc``: what answering costs at each video-token budget (frame count).

``efficiency_budgets``: six panels over the frame count, all on log axes because the costs span orders
of magnitude: query time to first token, the reusable per-video preprocessing (adapter generation; KV
prefill), answer-time input tokens, the token reduction of f2l against direct, the bytes stored per
video, and peak memory.

``efficiency_overhead``: the adapter's query time over the base's with no adapter, paired within each
timing round, unmerged and merged. Merged serving does exactly the base's work, so its spread is the
measurement's noise: the band the unmerged adapter is read against.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.style import (
    METHOD_COLORS,
    METHOD_MARKERS,
    METHOD_ORDER,
    figure,
    frame,
    label,
    log_axis,
    method_legend,
    no_data,
    ordered,
)

PANELS = (
    ("ttft_s", "query time to first token", "seconds"),
    ("preprocess_s", "reusable preprocessing per video", "seconds"),
    ("input_tokens", "input tokens at answer time", "tokens"),
    ("token_reduction", "input-token reduction, direct / f2l", "times fewer tokens"),
    ("stored_bytes", "stored per video (adapter or KV cache)", "bytes"),
    ("peak_memory_bytes", "peak memory", "MiB"),
)


def log2_x_axis(ax, values) -> None:
    """Frame counts (or resolutions) on a log-2 x axis, ticked at the values that were run."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(int(v)) for v in values])
    ax.minorticks_off()


@figure("ttft_s", title="Cost of answering across video-token budgets")
def efficiency_budgets(ds: xr.Dataset) -> Figure:
    """Each cost of each method against the number of frames (log-log; non-positive values, e.g. zero
    stored bytes without a video, are left out rather than drawn at the axis floor)."""
    methods = ordered(ds["method"].values, METHOD_ORDER)
    frames = np.asarray(ds["frames"].values, float)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    drawn: list[str] = []
    for ax, (name, title, unit) in zip(axes.flat, PANELS, strict=True):
        ax.set_title(title)
        ax.set_xlabel("frames per video (video-token budget)")
        ax.set_ylabel(unit)
        log2_x_axis(ax, frames)
        if name not in ds:
            no_data(ax, f"no {name} in this dataset")
            continue
        da = ds[name]
        series = (
            [(m, da.sel({"method": m}).values) for m in methods]
            if "method" in da.dims
            else [(name, da.values)]
        )
        any_drawn = False
        for i, (method, values) in enumerate(series):
            values = np.asarray(values, float) / (2**20 if unit == "MiB" else 1)
            keep = np.isfinite(values) & (values > 0)
            if not keep.any():
                continue
            ax.plot(
                frames[keep],
                values[keep],
                color=METHOD_COLORS.get(method, "0.3") if "method" in da.dims else "0.2",
                marker=METHOD_MARKERS.get(method, "o") if "method" in da.dims else "o",
                # later methods drawn smaller, so that methods with equal costs stay visible
                linewidth=2.4 - 0.25 * i,
                markersize=9 - i,
                zorder=3 + i,
            )
            any_drawn = True
            if "method" in da.dims and method not in drawn:
                drawn.append(method)
        if not any_drawn:
            no_data(ax, "not measured (NaN)" if bool(da.isnull().all()) else "no positive values")
            continue
        if unit == "MiB":  # peak memory differs by little: a linear axis from zero shows how little
            ax.set_ylim(bottom=0)
            continue
        log_axis(ax, unit=unit if unit == "bytes" else "count")
    method_legend(fig, ordered(drawn, methods), ncol=5)
    return fig


# The bound for the unmerged adapter's query time over the base's.
UNMERGED_TARGET = 1.2


@figure("ttft_rounds_s", title="The adapter's query overhead, paired within each timing round")
def efficiency_overhead(ds: xr.Dataset) -> Figure:
    """TTFT of ``f2l`` (unmerged) and ``f2l_merged`` over ``no_video`` in the same round, one point per
    round, per frame count; lines at 1 (the floor) and at the 1.2x bound for unmerged serving."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.set_xlabel("frames per video (the adapter was made from)")
    ax.set_ylabel("TTFT / base with no adapter (same round)")
    ax.set_title("unmerged LoRA wrappers vs the adapter merged into the weights")
    rounds = ds["ttft_rounds_s"]
    methods = [m for m in ("f2l", "f2l_merged") if m in rounds["method"].values]
    if "no_video" not in rounds["method"].values or not methods:
        no_data(ax, "needs no_video and f2l or f2l_merged")
        return fig
    ratios = rounds.sel({"method": methods}) / rounds.sel({"method": "no_video"}).drop_vars("method")
    df = frame(ratios, "ratio")
    if df.empty:
        no_data(ax, "not measured (NaN)")
        return fig
    df["method"] = df["method"].map(label)
    ax.axhline(1.0, color="0.2", linewidth=1.0, zorder=1)
    ax.axhline(UNMERGED_TARGET, color="0.4", linewidth=1.0, linestyle="--", zorder=1)
    ax.text(1.0, UNMERGED_TARGET, f" {UNMERGED_TARGET}x", transform=ax.get_yaxis_transform(), va="center")
    colors = {label(m): METHOD_COLORS.get(m, "0.3") for m in methods}
    common = dict(data=df, x="frames", y="ratio", hue="method", hue_order=list(colors), palette=colors, ax=ax)
    sns.boxplot(**common, dodge=True, fill=False, showfliers=False, linewidth=0.9, legend=False)
    sns.stripplot(**common, dodge=True, jitter=0.12, size=4, linewidth=0.4, edgecolor="0.2", legend=False)
    method_legend(fig, methods, ncol=len(methods))
    return fig
