"""Figure of ``composition.nc``: do adapters made from separate segments of a long clip compose?

The mean score of each method against the number of segments, one panel per kind of question (needs one
object's run of segments, or several), the composed segment adapters next to the whole-clip adapter, the
video in context and no video at all. A clip's questions share its adapters, so each clip's mean is one
observation and the bands are 95% bootstrap intervals across clips.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.efficiency import log2_x_axis
from analyses.figures.style import (
    CI95,
    METHOD_COLORS,
    METHOD_ORDER,
    err_style,
    figure,
    frame,
    hue_lines,
    method_legend,
    method_markers,
    metric_label,
    metric_of,
    no_data,
    ordered,
    palette,
    score_limits,
)

NEEDS_TITLES = {
    "one": "questions one object's segments answer",
    "several": "questions that join several segments",
}


def clip_scores(ds: xr.Dataset):
    """A long table of per-clip mean scores: one row per clip, method, segment count and kind of question
    (the points the figure bootstraps over)."""
    df = frame(ds["score"], "score")
    keys = ["clip", "method", "n_chunks", *(["needs"] if "needs" in df else [])]
    return df.groupby(keys, as_index=False)["score"].mean()


@figure("score", title="Composing segment adapters of long clips in rank space")
def composition_curves(ds: xr.Dataset) -> Figure:
    """Mean per-clip score per method against the number of segments, with a 95% bootstrap band."""
    methods = ordered(ds["method"].values, METHOD_ORDER)
    df = clip_scores(ds)
    needs = ordered(df["needs"], tuple(NEEDS_TITLES)) if "needs" in df and len(df) else [None]
    fig, axes = plt.subplots(1, len(needs), figsize=(6.5 * len(needs), 5.0), sharey=True, squeeze=False)
    metric = metric_of(ds)
    for ax, need in zip(axes[0], needs, strict=True):
        part = df if need is None else df[df["needs"] == need]
        ax.set_title(NEEDS_TITLES.get(need, "all questions"))
        ax.set_xlabel("segments composed (n_chunks)")
        ax.set_ylabel(metric_label(metric))
        if part.empty:
            no_data(ax)
            continue
        sns.lineplot(
            data=part,
            x="n_chunks",
            y="score",
            **hue_lines("method", methods, palette(methods, METHOD_COLORS), method_markers(methods)),
            err_style=err_style(part["n_chunks"]),
            **CI95,
            ax=ax,
            legend=False,
        )
        log2_x_axis(ax, sorted(part["n_chunks"].unique()))
    score_limits(axes[0][0], metric)
    method_legend(fig, methods, ncol=3)
    return fig
