"""Figure of ``efficiency.nc``: what answering costs at each video-token budget (frame count).

Six panels over the frame count, all on log axes because the costs span orders of magnitude: query
time to first token, the reusable per-video preprocessing (adapter generation; KV prefill), answer-time
input tokens, the token reduction of f2l against direct, the bytes stored per video, and peak memory.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.style import (
    METHOD_COLORS,
    METHOD_MARKERS,
    METHOD_ORDER,
    figure,
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
