"""Figure of ``layer_removal.nc`` (with ``delta_norms.nc`` when there is one): which layers carry the
internalized video, next to how large each layer's update is.

Left, the signed effect of zeroing one layer's generated LoRA (score without the layer minus the full
f2l score; below zero = the layer helps), per module group the adapter has modules in (a group holding
fewer modules than its name says, e.g. "mlp" of a ``down_proj``-only adapter, is labelled with those it
held), for the clip's own adapter. Beside it, when the dataset has them, the negative controls: the same
removal from another clip's adapter and from a blank video's. Right, ||dW||_F of the same layers and
groups, so that a reader can see whether the layers that matter are the layers the hypernetwork writes
most into.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analyses.figures.benchmark import BENCHMARK_ORDER
from analyses.figures.delta_norms import group_fro_norms
from analyses.figures.style import (
    ADAPTER_COLORS,
    ADAPTER_LABELS,
    CI95,
    GROUP_COLORS,
    GROUP_LABELS,
    adapters_of,
    as_dataset,
    by_adapter,
    figure,
    figure_legend,
    frame,
    hue_lines,
    integer_ticks,
    metric_name,
    metric_of,
    no_data,
    ordered,
    palette,
    zero_line,
)
from probes.layer_removal import MODULE_GROUPS

ZEROED = "text-model layer whose LoRA is zeroed"  # the x axis of every removal panel


def group_label(ds: xr.Dataset, group: str) -> str:
    """The legend label of a module group: its usual label, or, when the dataset's ``group_modules``
    says the adapter held fewer modules than the group's full set, the group with the modules it held."""
    label = GROUP_LABELS.get(group, group)
    if "group_modules" not in ds.coords or group not in ds["module_group"].values:
        return label
    held = str(ds["group_modules"].sel(module_group=group).values).split(", ")
    if group in MODULE_GROUPS and tuple(held) == MODULE_GROUPS[group]:
        return label
    return f"{group} ({', '.join(m.removesuffix('_proj') for m in held)})"


def _effect_bars(ax, df, layers, hue: str, order, colors) -> None:
    """Bars of the mean signed removal effect per layer and ``hue`` value (in ``order``, coloured by
    ``colors``), 95% bootstrap intervals, over a zero line."""
    zero_line(ax)
    if df.empty:
        no_data(ax)
    else:
        sns.barplot(
            data=df,
            x="layer",
            y="effect",
            hue=hue,
            order=sorted(layers),
            hue_order=order,
            palette=colors,
            **CI95,
            capsize=0.08,
            err_kws={"linewidth": 1.0},
            ax=ax,
            legend=False,
        )
    ax.set_xlabel(ZEROED)


@figure("effect", title="Removing one layer's adapter: effect on the score, and the update's size")
def layer_removal_effects(ds: xr.Dataset, norms: xr.Dataset | str | os.PathLike | None = None) -> Figure:
    """Bars of the mean signed removal effect per layer and module group (95% bootstrap interval across
    examples) of the clip's own adapter; with negative controls in the dataset, the effect of removing a
    layer (its first module group) from each adapter beside them; with ``norms`` (a delta_norms dataset or
    its path), the ||dW||_F profile."""
    norms = None if norms is None else as_dataset(norms)
    groups = ordered(ds["module_group"].values, tuple(GROUP_COLORS)) if "module_group" in ds.dims else ["all"]
    colors = palette(groups, GROUP_COLORS)
    layers = ds["layer"].values
    adapters = adapters_of(ds)
    panels = 1 + (len(adapters) > 1) + (norms is not None and "fro_norm" in norms)
    fig, axes = plt.subplots(
        1, panels, figsize=(8.5 + 5.0 * (panels - 1), 5.2), width_ratios=(3, 2, 2)[:panels], squeeze=False
    )
    ax = axes[0, 0]
    ax_controls = axes[0, 1] if len(adapters) > 1 else None
    ax_norm = axes[0, -1] if panels > 1 + (ax_controls is not None) else None
    effect = ds["effect"] if "module_group" in ds.dims else ds["effect"].expand_dims(module_group=["all"])
    _effect_bars(ax, frame(by_adapter(effect), "effect"), layers, "module_group", groups, colors)
    score = metric_name(metric_of(ds))
    ax.set_ylabel(f"signed effect on {score}\n(score without the layer - full f2l score)")
    ends = []
    if "full_score" in ds:
        ends.append(f"nothing removed (f2l): {float(by_adapter(ds['full_score']).mean()):.3f}")
    if "none_score" in ds:
        ends.append(f"everything removed (no video): {float(ds['none_score'].mean()):.3f}")
    ax.set_title("signed removal effect (below 0 = the layer helps)")
    if ends:
        ax.text(
            0.01,
            0.98,
            f"mean {score}: " + "; ".join(ends),
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=9,
            color="0.25",
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9},
        )
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.12 * (high - low))
    if ax_controls is not None:
        group = groups[0]
        control = frame(effect.sel(module_group=group, drop=True), "effect")
        _effect_bars(ax_controls, control, layers, "adapter", adapters, palette(adapters, ADAPTER_COLORS))
        full = ds["full_score"].mean("example_id") if "full_score" in ds else None
        ax_controls.legend(
            handles=[
                Patch(
                    color=ADAPTER_COLORS[a],
                    label=ADAPTER_LABELS[a]
                    + ("" if full is None else f": {score} {float(full.sel(adapter=a)):.3f}"),
                )
                for a in adapters
            ],
            loc="best",
            framealpha=0.9,
            fontsize=8,
            title="adapter (nothing removed)",
            title_fontsize=8,
        )
        ax_controls.set_ylabel(f"signed effect on {score}")
        ax_controls.set_title(f"negative controls ({group_label(ds, group)})")
    if ax_norm is not None:
        nf = group_fro_norms(norms)
        nf = nf[nf["module_group"].isin(groups)]
        if nf.empty:
            no_data(ax_norm)
        else:
            sns.lineplot(
                data=nf,
                x="layer",
                y="fro_norm",
                **hue_lines("module_group", groups, colors),
                **CI95,
                ax=ax_norm,
                legend=False,
            )
            integer_ticks(ax_norm, nf["layer"].unique())
            ax_norm.set_ylim(bottom=0)
        ax_norm.set_xlabel("text-model layer")
        ax_norm.set_ylabel(r"$\|\Delta W\|_F$ of the layer's group (Frobenius norm)")
        ax_norm.set_title("size of the generated update")
    handles = [Patch(color=colors[g], label=group_label(ds, g)) for g in groups]
    figure_legend(fig, handles, ncol=len(groups), title="module group")
    return fig


@figure("effect", title="Removing one layer's adapter, per benchmark")
def effects_by_benchmark(ds: xr.Dataset, module_group: str = "all") -> Figure:
    """A heatmap of the mean signed effect per benchmark (rows) and layer (columns), for one module
    group (the dataset's first group when it lacks ``module_group``) of the clip's own adapter: which
    layers matter for which kind of prompt. Red = removing the layer lowers the score (it helps)."""
    effect = by_adapter(ds["effect"])
    if "module_group" in effect.dims:
        if module_group not in ds["module_group"].values:
            module_group = str(ds["module_group"].values[0])
        effect = effect.sel(module_group=module_group)
    df = frame(effect, "effect")
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.42 * max(df["benchmark"].nunique() if len(df) else 1, 2)))
    if df.empty:
        no_data(ax)
        return fig
    table = df.pivot_table(index="benchmark", columns="layer", values="effect", aggfunc="mean")
    table = table.reindex(ordered(table.index, BENCHMARK_ORDER))
    limit = max(float(np.nanmax(np.abs(table.values))), 1e-9)
    sns.heatmap(
        table,
        cmap="vlag_r",
        center=0.0,
        vmin=-limit,
        vmax=limit,
        annot=True,
        fmt=".2f",
        annot_kws={"fontsize": 8},
        linewidths=0.5,
        cbar_kws={"label": f"mean signed effect on {metric_name(metric_of(ds))}\n(red: the layer helps)"},
        ax=ax,
    )
    ax.set_xlabel(ZEROED)
    ax.set_ylabel("benchmark (caption category or QA type)")
    ax.set_title(f"module group: {group_label(ds, module_group)}")
    ax.tick_params(axis="y", labelrotation=0)
    return fig
