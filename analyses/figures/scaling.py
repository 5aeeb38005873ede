"""Figure of ``scaling.nc``: does the adapter stay stable where video-in-context answering degrades?

Two sweeps, direct vs f2l: over the frame count (at one resolution) and over the resolution (at one
frame count). For each: the score, query time to first token, answer-time input tokens, and the share
of degenerate (empty or repetitive) answers. The grid is sparse (NaN where a point was not run), so each
sweep is drawn at the value of the other axis where it has the most points.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.efficiency import log2_x_axis
from analyses.figures.style import (
    CI95,
    METHOD_COLORS,
    METHOD_MARKERS,
    METHOD_ORDER,
    figure,
    frame,
    log_axis,
    method_legend,
    metric_label,
    metric_of,
    no_data,
    ordered,
    palette,
    score_limits,
)

SWEEPS = {
    "frames": ("resolution", "frames per video", "{} px"),
    "resolution": ("frames", "resolution (pixels per side)", "{} frames"),
}


# sweep -> the dataset attr naming where the study ran it
SWEEP_ATTRS = {"frames": "training_resolution", "resolution": "resolution_frames"}


def sweep_point(ds: xr.Dataset, along: str) -> int | float | None:
    """The value of the other grid axis at which the ``along`` sweep was run: the one the study's attrs
    name, else the one with the most scored points (the smallest on a tie); ``None`` if nothing scored."""
    other = SWEEPS[along][0]
    scored = ds["score"].notnull().any([d for d in ds["score"].dims if d not in (along, other)])
    counts = scored.sum(along)
    named = ds.attrs.get(SWEEP_ATTRS[along])
    if named is not None and named in ds[other].values and int(counts.sel({other: named})) > 0:
        return named.item() if hasattr(named, "item") else named
    if int(counts.max()) == 0:
        return None
    return counts[other].values[int(np.argmax(counts.values))].item()


@figure("score", title="Scaling with frames and resolution: video in context vs adapter only")
def scaling_curves(ds: xr.Dataset) -> Figure:
    """Score, TTFT, input tokens, degenerate answers and answers shared across a clip's prompts along each
    sweep, mean (score, shares) or median (time, tokens) across examples with a 95% bootstrap interval."""
    methods = ordered(ds["method"].values, METHOD_ORDER)
    colors = palette(methods, METHOD_COLORS)
    metric = metric_of(ds)
    score_label = metric_label(metric)
    panels = (
        ("score", score_label, "mean"),
        ("ttft_s", "query time to first token (s)", "median"),
        ("input_tokens", "input tokens at answer time (tokens)", "median"),
        ("degenerate", "degenerate answers (% of examples)", "mean"),
        ("same_answer", "same answer as the clip's other prompts (%)", "mean"),
    )
    percent = ("degenerate", "same_answer")
    fig, axes = plt.subplots(2, len(panels), figsize=(21, 8.5))
    for row, along in zip(axes, SWEEPS, strict=True):
        other, xlabel, at = SWEEPS[along]
        point = sweep_point(ds, along)
        for ax, (name, ylabel, estimator) in zip(row, panels, strict=True):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if point is None or name not in ds:
                no_data(ax)
                continue
            ax.set_title(f"{ylabel.split(' (')[0]}, at {at.format(point)}", fontsize=11)
            da = ds[name].sel({other: point})
            if name in percent:
                da = 100 * da
            df = frame(da.drop_vars(other), name)
            if df.empty:
                no_data(ax)
                continue
            sns.lineplot(
                data=df,
                x=along,
                y=name,
                hue="method",
                style="method",
                hue_order=methods,
                style_order=methods,
                palette=colors,
                markers={m: METHOD_MARKERS.get(m, "o") for m in methods},
                dashes=False,
                estimator=estimator,
                err_style="band" if df[along].nunique() > 1 else "bars",  # a band needs two points
                **CI95,
                ax=ax,
                legend=False,
            )
            log2_x_axis(ax, sorted(df[along].unique()))
            if name in ("ttft_s", "input_tokens") and (df[name] > 0).all():
                log_axis(ax)
            if name in percent:
                ax.set_ylim(-5, 105)
            elif name == "score":
                score_limits(ax, metric)
    method_legend(fig, methods)
    return fig
