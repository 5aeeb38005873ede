"""Figure of ``logit_attribution.nc``: where, layer by layer, does the adapter push the answer's logit?

The adapter's change to the residual stream after each layer, and the attention and MLP sublayers'
output deltas of that layer, projected onto the answer direction. Values span orders of magnitude and
both signs, hence a symmetric-log axis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure

from analyses.figures.style import (
    CI95,
    COMPONENT_COLORS,
    COMPONENT_LABELS,
    figure,
    frame,
    hue_lines,
    integer_ticks,
    no_data,
    ordered,
    palette,
    zero_line,
)


def symlog_threshold(values: np.ndarray) -> float:
    """The linear range of a symlog axis: the power of ten below the 10th percentile of the non-zero
    magnitudes, so that small values stay readable and large ones stay on the log part."""
    magnitudes = np.abs(values[np.isfinite(values) & (values != 0)])
    if magnitudes.size == 0:
        return 1.0
    return float(10 ** np.floor(np.log10(np.percentile(magnitudes, 10))))


@figure("dla", title="Direct logit attribution of the adapter's effect, per layer")
def dla_per_layer(ds: xr.Dataset) -> Figure:
    """Per component, the projection onto the answer direction averaged over each example's answer
    tokens, then across examples (mean, 95% bootstrap interval), against the layer."""
    components = ordered(ds["component"].values, tuple(COMPONENT_COLORS))
    per_example = ds["dla"].mean("position", skipna=True) if "position" in ds["dla"].dims else ds["dla"]
    df = frame(per_example, "dla")
    fig, ax = plt.subplots(figsize=(9, 5.4))
    zero_line(ax)
    if df.empty:
        no_data(ax)
    else:
        sns.lineplot(
            data=df,
            x="layer",
            y="dla",
            **hue_lines("component", components, palette(components, COMPONENT_COLORS)),
            **CI95,
            ax=ax,
        )
        ax.set_yscale(
            "symlog", linthresh=symlog_threshold(df.groupby(["layer", "component"])["dla"].mean().values)
        )
        integer_ticks(ax, ds["layer"].values)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles, [COMPONENT_LABELS.get(lbl, lbl) for lbl in labels], loc="best", fontsize=9)
    ax.set_xlabel("text-model layer")
    ax.set_ylabel("projection onto the answer direction\n(logit units, symmetric log scale)")
    ax.set_title("adapted minus unadapted run, mean over answer tokens")
    return fig
