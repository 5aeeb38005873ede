"""Figure of ``composition.nc``: do adapters made from separate segments compose in rank space?

Mean score per method at each number of segments, split by what the question needs (one segment or
both), next to the whole-clip adapter, the video in context and no video at all.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.style import (
    CI95,
    METHOD_COLORS,
    METHOD_ORDER,
    figure,
    frame,
    method_legend,
    metric_label,
    metric_of,
    no_data,
    ordered,
    palette,
    score_limits,
)

NEEDS_TITLES = {
    "one": "questions answered by one segment",
    "both": "questions that need both segments",
}


@figure("score", title="Composing segment adapters in rank space")
def composition_bars(ds: xr.Dataset) -> Figure:
    """Bars of the mean score (95% bootstrap interval across examples) per method and segment count."""
    methods = ordered(ds["method"].values, METHOD_ORDER)
    df = frame(ds["score"], "score")
    needs = ordered(df["needs"], ("one", "both")) if "needs" in df and len(df) else [None]
    fig, axes = plt.subplots(1, len(needs), figsize=(6.5 * len(needs), 5.0), sharey=True, squeeze=False)
    chunks = sorted(int(n) for n in ds["n_chunks"].values)
    metric = metric_of(ds)
    for ax, need in zip(axes[0], needs, strict=True):
        part = df if need is None else df[df["needs"] == need]
        ax.set_title(NEEDS_TITLES.get(need, "all questions"))
        ax.set_xlabel("segments composed (n_chunks)")
        if part.empty:
            no_data(ax)
            continue
        sns.barplot(
            data=part,
            x="n_chunks",
            y="score",
            hue="method",
            order=chunks,
            hue_order=methods,
            palette=palette(methods, METHOD_COLORS),
            **CI95,
            capsize=0.1,
            err_kws={"linewidth": 1.0},
            ax=ax,
            legend=False,
        )
        ax.set_ylabel(metric_label(metric))
    score_limits(axes[0][0], metric)
    method_legend(fig, methods, lines=False, ncol=3)
    return fig
