"""Figure of ``delta_norms.nc``: how large is the generated update ``dW = scaling * B^T A`` in each layer
and module, in absolute terms, against the frozen weight, and how many directions it really uses."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    MODULE_ORDER,
    PALETTE,
    figure,
    figure_legend,
    frame,
    hue_lines,
    integer_ticks,
    no_data,
    ordered,
    palette,
)
from probes.layer_removal import MODULE_GROUPS

PANELS = (
    ("fro_norm", "Frobenius norm", r"$\|\Delta W\|_F$"),
    ("spectral_norm", "spectral norm", r"$\|\Delta W\|_2$"),
    ("relative_fro", "size against the frozen weight", r"$\|\Delta W\|_F \,/\, \|W\|_F$"),
    (
        "stable_rank",
        "stable rank (effective number of directions)",
        r"$\|\Delta W\|_F^2 \,/\, \|\Delta W\|_2^2$",
    ),
)
MARKERS = "osD^vPX*p"


def group_fro_norms(ds: xr.Dataset) -> pd.DataFrame:
    """||dW||_F of each layer's update per module group (clip, layer, module_group, fro_norm): the
    root sum of squares over the group's modules, i.e. the norm of the group's stacked update, so that it
    lines up with the groups that layer removal zeroes."""
    rows = []
    for group, modules in MODULE_GROUPS.items():
        present = [m for m in modules if m in ds["module"].values]
        if not present:
            continue
        norm = np.sqrt((ds["fro_norm"].sel(module=present) ** 2).sum("module", min_count=1))
        rows.append(frame(norm.expand_dims(module_group=[group]), "fro_norm"))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


@figure("fro_norm", title="Size of the generated update per layer and module (mean across clips)")
def delta_norms_profile(ds: xr.Dataset) -> Figure:
    """Four views of dW across layers, one line per module (mean across clips: seven intervals on one
    panel would hide the lines they qualify)."""
    modules = ordered(ds["module"].values, MODULE_ORDER)
    colors = palette(modules, dict(zip(MODULE_ORDER, PALETTE, strict=False)))
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(modules)}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, (name, title, ylabel) in zip(axes.flat, PANELS, strict=True):
        ax.set_xlabel("text-model layer")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if name not in ds:
            no_data(ax, f"no {name} in this dataset")
            continue
        df = frame(ds[name], name)
        if df.empty:
            no_data(ax)
            continue
        sns.lineplot(
            data=df,
            x="layer",
            y=name,
            **hue_lines("module", modules, colors, markers),
            errorbar=None,
            ax=ax,
            legend=False,
        )
        integer_ticks(ax, ds["layer"].values)
        if name == "stable_rank":  # 1 to the adapter's rank: show the whole range, or where 1 is
            rank = float(ds.attrs.get("rank", max(float(df[name].max()), 2.0)))
            ax.set_ylim(0.5, rank + 0.5)
            ax.set_title(f"{title}, 1 to {rank:g}")
    handles = [Line2D([], [], color=colors[m], marker=markers[m], label=m) for m in modules]
    figure_legend(fig, handles, ncol=min(len(modules), 7))
    return fig
