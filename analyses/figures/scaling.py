"""Figure of ``scaling.nc``: does the adapter stay stable where video-in-context answering degrades?

Two sweeps, direct vs f2l: over the frame count (at one resolution) and over the resolution (at one
frame count). For each: the score and the paired difference f2l - direct, query time to first token,
answer-time input tokens, and the shares of degenerate (empty or repetitive) and shared answers. The
grid is sparse (NaN where a point was not run), so each sweep is drawn where the study ran it.

Scores, the difference and the shares are the study's own summary (``analyses.scaling.add_intervals``):
means across clips of each clip's mean over its prompts, each with its 95% bootstrap interval over
clips drawn as an error bar (none with one clip). Time and tokens are medians across prompts with
seaborn's bootstrap band.
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
    err_style,
    figure,
    frame,
    hue_lines,
    log_axis,
    method_legend,
    method_markers,
    metric_label,
    metric_name,
    metric_of,
    no_data,
    ordered,
    palette,
    score_limits,
    zero_line,
)

SWEEPS = {
    "frames": ("resolution", "frames per video", "{} px"),
    "resolution": ("frames", "resolution (pixels per side)", "{} frames"),
}


# sweep -> the dataset attr naming where the study ran it
SWEEP_ATTRS = {"frames": "training_resolution", "resolution": "resolution_frames"}

# panel -> (the study's mean across clips, its interval); the other panels are medians across prompts
CLIP_PANELS = {
    "score": ("mean_score", "score_ci"),
    "score_diff": ("score_diff", "score_diff_ci"),
    "degenerate": ("mean_degenerate", "degenerate_ci"),
    "same_answer": ("mean_same_answer", "same_answer_ci"),
}
PERCENT = ("degenerate", "same_answer")
DODGE = 0.04  # the methods' points side by side, in octaves of the x axis, so that their bars do not overlap


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


def clip_interval_lines(ax, ds: xr.Dataset, panel: str, along: str, at: dict, methods: list[str]) -> list:
    """Draw ``panel``'s means across clips along the ``along`` sweep (at the coordinates ``at``): a line
    per method (the difference: one line, in f2l's colour), each point with its interval as a vertical
    bar. Returns the sweep's values drawn (none when the dataset holds no such mean there)."""
    mean_name, ci_name = CLIP_PANELS[panel]
    if mean_name not in ds or ci_name not in ds:
        return []
    scale = 100.0 if panel in PERCENT else 1.0
    series = methods if "method" in ds[mean_name].dims else [None]
    drawn = set()
    for k, method in enumerate(series):
        sel = at if method is None else {**at, "method": method}
        mean, ci = ds[mean_name].sel(sel), ds[ci_name].sel(sel)
        keep = np.isfinite(mean.values)
        values = mean[along].values[keep]
        x = values * 2.0 ** (DODGE * (k - (len(series) - 1) / 2))
        look = method or "f2l"
        color = METHOD_COLORS.get(look, "0.3")
        if keep.any():
            ax.plot(x, scale * mean.values[keep], color=color, marker=METHOD_MARKERS.get(look, "o"))
        low, high = (scale * ci.sel(bound=b).values[keep] for b in ("low", "high"))
        bars = np.isfinite(low) & np.isfinite(high)
        if bars.any():
            ax.vlines(x[bars], low[bars], high[bars], color=color, linewidth=2.0, alpha=0.8)
        drawn |= set(values.tolist())
    return sorted(drawn)


@figure("score", title="Scaling with frames and resolution: video in context vs adapter only")
def scaling_curves(ds: xr.Dataset) -> Figure:
    """Along each sweep: token-F1 and the paired difference f2l - direct, the shares of degenerate and of
    shared answers (means across clips with their 95% bootstrap intervals over clips, as error bars),
    and TTFT and input tokens (medians across prompts with a 95% bootstrap band)."""
    methods = ordered(ds["method"].values, METHOD_ORDER)
    colors = palette(methods, METHOD_COLORS)
    metric = metric_of(ds)
    score_label = metric_label(metric)
    panels = (
        ("score", score_label),
        ("score_diff", f"f2l minus direct, paired by clip ({metric_name(metric)})"),
        ("ttft_s", "query time to first token (s)"),
        ("input_tokens", "input tokens at answer time (tokens)"),
        ("degenerate", "degenerate answers (% of examples)"),
        ("same_answer", "shared answers (% of a clip's prompts)"),
    )
    fig, axes = plt.subplots(2, len(panels), figsize=(25, 8.5))
    for row, along in zip(axes, SWEEPS, strict=True):
        other, xlabel, at = SWEEPS[along]
        point = sweep_point(ds, along)
        for ax, (name, ylabel) in zip(row, panels, strict=True):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if point is None:
                no_data(ax)
                continue
            ax.set_title(f"{ylabel.split(' (')[0]}, at {at.format(point)}", fontsize=11)
            if name in CLIP_PANELS:
                xs = clip_interval_lines(ax, ds, name, along, {other: point}, methods)
                if not xs:
                    no_data(ax)
                    continue
                log2_x_axis(ax, xs)
                if name in PERCENT:
                    ax.set_ylim(-5, 105)
                elif name == "score":
                    score_limits(ax, metric)
                else:
                    zero_line(ax)
                continue
            df = frame(ds[name].sel({other: point}).drop_vars(other), name)
            if df.empty:
                no_data(ax)
                continue
            sns.lineplot(
                data=df,
                x=along,
                y=name,
                **hue_lines("method", methods, colors, method_markers(methods)),
                estimator="median",
                err_style=err_style(df[along]),
                **CI95,
                ax=ax,
                legend=False,
            )
            log2_x_axis(ax, sorted(df[along].unique()))
            if (df[name] > 0).all():
                log_axis(ax)
    method_legend(fig, methods)
    return fig
