"""Figure of ``rank_ablation.nc``: how many singular directions of the generated update carry the
video, and does removing a particular direction matter more than removing a random one of equal energy?
For an adapter with a static rank block (``slot_score``), the top-k panel also marks the score with only
the generated slots kept and with only the static (video-independent) slots kept.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    CI95,
    CONTROL_COLORS,
    CONTROL_LABELS,
    METHOD_COLORS,
    PALETTE,
    figure,
    frame,
    hue_lines,
    integer_ticks,
    metric_label,
    metric_of,
    no_data,
    ordered,
    palette,
    score_limits,
)

_FULL = {"color": "0.3", "linestyle": "--", "linewidth": 1.2}
_SLOTS = {
    "generated": ("generated slots only (static block removed)", {"color": PALETTE[2], "linestyle": "-."}),
    "static": ("static slots only (video-independent)", {"color": PALETTE[4], "linestyle": ":"}),
}


def _thinned(values, most: int = 17) -> list[int]:
    """Every n-th of ``values`` so that at most ``most`` ticks label an axis (an applied rank of 32 is
    unreadable tick by tick)."""
    values = sorted(int(v) for v in values)
    step = -(-len(values) // most)
    return values[::step]


def _slot_lines(ax, ds: xr.Dataset) -> list[Line2D]:
    """Horizontal lines at the mean score of each kept block of rank slots; their legend handles."""
    if "slot_score" not in ds:
        return []
    handles = []
    for name in ds["slots"].values:
        label, style = _SLOTS.get(str(name), (str(name), {"color": "0.5", "linestyle": ":"}))
        score = ds["slot_score"].sel(slots=name)
        if score.notnull().any():
            ax.axhline(float(score.mean()), linewidth=1.4, **style)
            handles.append(Line2D([], [], label=label, linewidth=1.4, **style))
    return handles


def _full_line(ax, ds: xr.Dataset) -> None:
    if "full_score" in ds and ds["full_score"].notnull().any():
        ax.axhline(float(ds["full_score"].mean()), **_FULL)


def _score_lines(ax, ds: xr.Dataset, name: str, x: str, **look) -> None:
    """The score ``ds[name]`` against ``x`` (95% bootstrap bands; ``look``: ``sns.lineplot``'s colours,
    markers, hue...), at thinned integer ticks, with the full adapter's mean score as a line."""
    df = frame(ds[name], "score")
    if df.empty:
        no_data(ax)
    else:
        sns.lineplot(data=df, x=x, y="score", **look, **CI95, ax=ax)
        integer_ticks(ax, _thinned(ds[x].values))
    _full_line(ax, ds)


@figure("topk_score", title="Rank-direction ablation of the generated adapter")
def rank_ablation_curves(ds: xr.Dataset) -> Figure:
    """Score keeping the top-k directions (k = 0 is the base without video, k = r the full adapter);
    score removing one direction, singular vs random control; and, when stored, each direction's share
    of the update's energy. Means across examples with 95% bootstrap intervals."""
    spectrum = "singular_values" in ds
    fig, axes = plt.subplots(1, 3 if spectrum else 2, figsize=(17 if spectrum else 12, 5.0))
    axes[1].sharey(axes[0])
    metric = metric_of(ds)
    score = metric_label(metric)

    ax = axes[0]
    _score_lines(ax, ds, "topk_score", "k", color=METHOD_COLORS["f2l"], marker="s")
    slot_handles = _slot_lines(ax, ds)
    ax.set_title("keep only the top-k singular directions")
    ax.set_xlabel("directions kept, k (0 = no adapter)")
    ax.set_ylabel(score)

    ax = axes[1]
    if "remove_score" in ds:
        controls = ordered(ds["control"].values, tuple(CONTROL_COLORS))
        lines = hue_lines("control", controls, palette(controls, CONTROL_COLORS))
        _score_lines(ax, ds, "remove_score", "singular_direction", **lines, legend=False)
        ax.legend(
            handles=[
                Line2D(
                    [],
                    [],
                    color=palette(controls, CONTROL_COLORS)[c],
                    marker="o",
                    label=CONTROL_LABELS.get(c, c),
                )
                for c in controls
            ]
            + [Line2D([], [], label="full adapter (nothing removed)", **_FULL)],
            loc="lower right",
            fontsize=9,
        )
    else:
        no_data(ax, "no remove_score in this dataset")
    ax.set_title("remove one direction")
    ax.set_xlabel("direction removed (0 = largest singular value)")
    ax.set_ylabel(score)
    axes[0].legend(
        handles=[Line2D([], [], label="full adapter (k = r)", **_FULL), *slot_handles],
        loc="lower right",
        fontsize=9,
    )
    score_limits(axes[0], metric)  # the two score panels share their y axis

    if spectrum:
        ax = axes[2]
        sv = ds["singular_values"]
        energy = 100 * sv**2 / (sv**2).sum("singular_direction")
        df = frame(energy, "energy")
        if df.empty:
            no_data(ax)
        else:
            sns.barplot(
                data=df,
                x="singular_direction",
                y="energy",
                color=METHOD_COLORS["f2l"],
                **CI95,
                ax=ax,
            )
            shown = set(_thinned(range(len(ax.get_xticklabels()))))
            for i, label in enumerate(ax.get_xticklabels()):
                label.set_visible(i in shown)
        ax.set_title("energy per singular direction")
        ax.set_xlabel("singular direction (0 = largest)")
        ax.set_ylabel(r"share of $\|\Delta W\|_F^2$ (%, per layer and module)")
    return fig
