"""One look for every figure: a colour-blind-safe palette with a fixed colour (and marker) per method,
module group and component, readable labels with units, and a footnote saying where the data came from.

Colours are fixed per *name*, not per position, so that ``f2l`` is the same orange in every figure
and a reader never has to re-learn a legend. Markers and line styles double the colour cue for readers
who cannot rely on colour at all.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator

from f2l.results import read_netcdf

PALETTE = sns.color_palette("colorblind")
_BLUE, _ORANGE, _GREEN, _RED, _PURPLE, _BROWN, _PINK, _GREY, _YELLOW, _CYAN = PALETTE

# Every method any study writes, in the order legends list them.
METHOD_COLORS: dict[str, Any] = {
    "direct": _BLUE,
    "f2l": _ORANGE,
    "f2l_whole": _ORANGE,
    "f2l_merged": _BROWN,
    "f2l_chunked": _GREEN,
    "f2l_composed": _GREEN,
    "f2l_composed_scaled": _CYAN,
    "kv_cache": _PURPLE,
    "token_merge": _RED,
    "f2l_token_merge": _PINK,
    "no_video": _GREY,
}
METHOD_ORDER: tuple[str, ...] = tuple(METHOD_COLORS)
METHOD_LABELS: dict[str, str] = {
    "direct": "direct (video in context)",
    "f2l": "f2l (adapter only)",
    "f2l_whole": "f2l, whole-clip adapter",
    "f2l_merged": "f2l, adapter merged",
    "f2l_chunked": "f2l, composed chunk adapters",
    "f2l_composed": "f2l, composed segment adapters",
    "f2l_composed_scaled": "f2l, composed and scaled",
    "kv_cache": "KV-cache reuse",
    "token_merge": "token merge (FrameFusion-style)",
    "f2l_token_merge": "f2l + token merge",
    "no_video": "no video (question only)",
}
METHOD_MARKERS: dict[str, str] = {
    "direct": "o",
    "f2l": "s",
    "f2l_whole": "s",
    "f2l_merged": "P",
    "f2l_chunked": "D",
    "f2l_composed": "D",
    "f2l_composed_scaled": "v",
    "kv_cache": "^",
    "token_merge": "X",
    "f2l_token_merge": "*",
    "no_video": "p",
}
GROUP_COLORS = {"all": _GREY, "attention": _BLUE, "mlp": _ORANGE}
GROUP_LABELS = {"all": "all modules", "attention": "attention (q, k, v, o)", "mlp": "MLP (gate, up, down)"}
COMPONENT_COLORS = {"resid": _PURPLE, "attn": _BLUE, "mlp": _ORANGE}
COMPONENT_LABELS = {
    "resid": "residual stream after the layer (cumulative delta)",
    "attn": "attention sublayer delta",
    "mlp": "MLP sublayer delta",
}
CONTROL_COLORS = {"svd": _ORANGE, "random": _GREY}
CONTROL_LABELS = {"svd": "singular direction removed", "random": "random direction, equal energy (control)"}
# The f2l run's adapter in the probes' negative controls (probes.controls): the clip's own in f2l's colour.
ADAPTER_COLORS = {"real": _ORANGE, "swapped": _PURPLE, "blank": _CYAN}
ADAPTER_LABELS = {
    "real": "f2l, the clip's own adapter",
    "swapped": "f2l, another clip's adapter (control)",
    "blank": "f2l, a blank video's adapter (control)",
}
ADAPTER_MARKERS = {"real": "s", "swapped": "X", "blank": "v"}
MODULE_ORDER = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Intervals of every aggregate: a 95% percentile bootstrap, seeded so that a figure redraws the same.
# 500 resamples pin an interval's ends down far more finely than its width, at half the cost of
# seaborn's default of 1,000 (seaborn bootstraps in a Python loop, per group of points).
CI95: dict[str, Any] = {"errorbar": ("ci", 95), "n_boot": 500, "seed": 0}

# metric -> (name on an axis, the range its scores can take)
METRICS: dict[str, tuple[str, tuple[float, float]]] = {
    "token_f1": ("token-F1", (0.0, 1.0)),
    "exact_match": ("exact match", (0.0, 1.0)),
    "embedding": ("embedding cosine similarity", (-1.0, 1.0)),
}


def rc() -> dict[str, Any]:
    """The matplotlib settings of every figure (seaborn's whitegrid at notebook scale, colour-blind
    cycle), applied in a context so that importing this package changes no global state."""
    settings = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook")}
    settings.update(
        {
            "axes.prop_cycle": cycler(color=PALETTE),
            "figure.dpi": 100,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "figure.titlesize": 14,
            "figure.titleweight": "bold",
            "legend.fontsize": 10,
            "legend.title_fontsize": 10,
            "svg.fonttype": "none",
            "figure.constrained_layout.use": True,
        }
    )
    return settings


def as_dataset(data: xr.Dataset | str | os.PathLike) -> xr.Dataset:
    """A dataset, read from a ``.nc`` path when given one."""
    return data if isinstance(data, xr.Dataset) else read_netcdf(Path(data))


def metric_of(ds: xr.Dataset, metric: str | None = None) -> str:
    """The score's metric: the one given, else the dataset's scalar ``metric`` coord or attr."""
    if metric is not None:
        return metric
    if "metric" in ds.coords and ds["metric"].ndim == 0:
        return str(ds["metric"].values)
    return str(ds.attrs.get("metric", "score"))


def metric_name(metric: str) -> str:
    """``token_f1`` -> ``token-F1``: a metric's name on an axis."""
    return METRICS[metric][0] if metric in METRICS else metric.replace("_", " ")


def metric_label(metric: str) -> str:
    """A score axis label: the metric's name and its range (``token-F1 (0 to 1)``)."""
    if metric not in METRICS:
        return metric_name(metric)
    low, high = METRICS[metric][1]
    return f"{metric_name(metric)} ({low:g} to {high:g})"


def score_limits(ax, metric: str) -> None:
    """Show a bounded score's whole range on the y axis, so that panels and figures compare at a glance
    (the upper end only for the embedding similarity, whose negative half is rarely used)."""
    if metric in METRICS:
        low, high = METRICS[metric][1]
        ax.set_ylim(low - 0.05 if low == 0 else None, high + 0.05)


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """``values`` in ``order`` first, the rest after them in the order met (unique)."""
    values = list(dict.fromkeys(str(v) for v in values))
    return [v for v in order if v in values] + [v for v in values if v not in order]


def frame(da: xr.DataArray, name: str = "value") -> pd.DataFrame:
    """A long table of ``da`` with one column per dim and coord, rows with NaN values dropped."""
    df = da.rename(name).to_dataframe().reset_index()
    return df.dropna(subset=[name])


def failures(ds: xr.Dataset) -> list[str]:
    """``unit: error`` for every unit recorded on the ``failure`` dim."""
    if "failed_unit" not in ds or ds.sizes.get("failure", 0) == 0:
        return []
    errors = ds["error"].values if "error" in ds else [""] * ds.sizes["failure"]
    return [f"{u}: {e}" for u, e in zip(ds["failed_unit"].values, errors, strict=True)]


def footnote(ds: xr.Dataset) -> str:
    """One line on where the data came from: clips and examples, failed units, models, date."""
    parts = []
    if "example_id" in ds.dims:
        n_examples = ds.sizes["example_id"]
        clips = np.unique(ds["clip"].values).size if "clip" in ds.coords else n_examples
        examples = f"{n_examples} example{'s' * (n_examples != 1)}"
        parts.append(f"{clips} clip{'s' * (clips != 1)}, {examples}" if clips < n_examples else examples)
    elif "clip" in ds.dims:  # a dataset of whole clips
        clips = ds.sizes["clip"]
        parts.append(f"{clips} clip{'s' * (clips != 1)}")
    n_failed = len(failures(ds))
    if n_failed:
        parts.append(f"{n_failed} failed unit{'s' * (n_failed != 1)} left out")
    for key in ("base_model", "hypernet"):
        if key in ds.attrs:
            parts.append(f"{key.replace('_', ' ')} {ds.attrs[key]}")
    if "created_utc" in ds.attrs:
        parts.append(str(ds.attrs["created_utc"])[:10])
    return " · ".join(parts)


def layout_bottom(fig: Figure, note: str) -> None:
    """Stack, from the bottom edge up: the footnote, the figure legends, then the panels.

    Matplotlib's own "outside" legends sit on the figure's edge whatever else is there, so the space is
    measured and reserved here instead: the legends are anchored above the footnote and the constrained
    layout is told to keep the panels above both."""
    height = fig.get_figheight()
    foot = 0.3 if note else 0.05  # inches
    legend = 0.0
    if fig.legends:
        renderer = fig.canvas.get_renderer()
        legend = max(leg.get_window_extent(renderer).height for leg in fig.legends) / fig.dpi + 0.05
        for leg in fig.legends:
            leg.set_bbox_to_anchor((0.5, foot / height), transform=fig.transFigure)
    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        reserved = (foot + legend) / height
        engine.set(rect=(0, reserved, 1, 1 - reserved))
    if note:
        fig.text(0.01, 0.06 / height, note, ha="left", va="bottom", fontsize=8, color="0.4")


def message_figure(title: str, lines: Sequence[str]) -> Figure:
    """A figure that says why there is nothing to plot (instead of raising after a long run)."""
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_axis_off()
    ax.set_title(title)
    text = "\n".join(lines[:8]) + ("\n..." if len(lines) > 8 else "")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes)
    return fig


def no_data(ax, what: str = "no data") -> None:
    """Mark an empty panel so that a reader sees it is empty on purpose."""
    ax.text(0.5, 0.5, what, ha="center", va="center", color="0.4", transform=ax.transAxes)


def zero_line(ax) -> None:
    ax.axhline(0.0, color="0.2", linewidth=1.0, zorder=1)


def integer_ticks(ax, values: Iterable[int]) -> None:
    """x ticks at exactly these integers (layers, ranks), not at matplotlib's fractional steps."""
    ax.set_xticks(sorted({int(v) for v in values}))


def binary_size(value: float, _pos=None) -> str:
    """1536 -> '1.5 KiB': sizes in memory read in binary units."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"


class _PlainLogFormatter(LogFormatter):
    """Log-axis labels written plainly (``300``, not ``3 x 10^2``); minor ticks get labels too when the
    axis spans less than a decade, so that a narrow axis is never left without numbers."""

    def __init__(self):
        super().__init__(labelOnlyBase=False, minor_thresholds=(1.0, 0.5))

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def log_axis(ax, *, unit: str = "count") -> None:
    """A log y axis with plain labels; ``unit="bytes"`` ticks powers of two (and 1.5 times them while
    the axis spans few of them) labelled in KiB, MiB, ... Call it after plotting: the byte ticks are
    placed for the data's range."""
    ax.set_yscale("log", base=2 if unit == "bytes" else 10)
    if unit == "bytes":
        ax.autoscale_view()
        low, high = np.log2(ax.get_ylim())
        powers = np.arange(np.ceil(low), np.floor(high) + 1)
        powers = powers[:: int(np.ceil(len(powers) / 7)) or 1]
        ticks = 2.0**powers
        if len(ticks) < 3:
            ticks = np.sort(np.concatenate([ticks, 1.5 * 2.0 ** np.arange(np.floor(low), np.ceil(high))]))
            ticks = ticks[(ticks >= 2**low) & (ticks <= 2**high)]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(binary_size))
        ax.yaxis.set_minor_locator(NullLocator())
        return
    ax.yaxis.set_major_formatter(_PlainLogFormatter())
    ax.yaxis.set_minor_formatter(_PlainLogFormatter())


def figure(*needs: str, title: str) -> Callable[[Callable[..., Figure]], Callable[..., Figure]]:
    """Decorate a figure function: accept a path or a dataset, draw inside the shared style, and answer
    a dataset without the ``needs`` variables (e.g. every unit failed) with a figure that says so."""

    def decorate(fn: Callable[..., Figure]) -> Callable[..., Figure]:
        @functools.wraps(fn)
        def wrapper(data: xr.Dataset | str | os.PathLike, *args: Any, **kwargs: Any) -> Figure:
            ds = as_dataset(data)
            with plt.rc_context(rc()):
                missing = [v for v in needs if v not in ds or ds[v].size == 0]
                if missing:
                    lines = [f"the dataset has no {', '.join(missing)}"]
                    fails = failures(ds)
                    if fails:
                        lines = [f"every unit failed ({len(fails)}):", *fails]
                    fig = message_figure(title, lines)
                else:
                    fig = fn(ds, *args, **kwargs)
                    fig.suptitle(title)
                layout_bottom(fig, footnote(ds))
            return fig

        wrapper.title = title
        return wrapper

    return decorate


def method_legend(
    fig: Figure, methods: Sequence[str], *, lines: bool = True, ncol: int | None = None
) -> None:
    """One legend for the whole figure, under the panels: every method drawn, with its fixed look."""
    if lines:
        handles = [
            Line2D(
                [], [], color=METHOD_COLORS.get(m, "0.3"), marker=METHOD_MARKERS.get(m, "o"), label=label(m)
            )
            for m in methods
        ]
    else:
        handles = [Patch(color=METHOD_COLORS.get(m, "0.3"), label=label(m)) for m in methods]
    figure_legend(fig, handles, ncol=ncol or min(len(methods), 4))


def figure_legend(fig: Figure, handles: Sequence[Any], *, ncol: int, title: str | None = None) -> None:
    """A legend under all panels (``layout_bottom`` makes room for it)."""
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, title=title)


def label(method: str) -> str:
    """A method's name in a legend."""
    return METHOD_LABELS.get(method, method.replace("_", " "))


def by_adapter(data, adapter: str = "real"):
    """``data`` (a dataset or an array) under one adapter label; data without an ``adapter`` dim (written
    before the negative controls) is the clip's own adapter's."""
    return data.sel(adapter=adapter, drop=True) if "adapter" in data.dims else data


def adapters_of(ds: xr.Dataset) -> list[str]:
    """The adapter labels of ``ds`` in their fixed order (just "real" without an ``adapter`` dim)."""
    return ordered(ds["adapter"].values, tuple(ADAPTER_COLORS)) if "adapter" in ds.dims else ["real"]


def adapter_handles(adapters) -> list[Line2D]:
    """Legend entries of the adapters, in their fixed look."""
    return [
        Line2D([], [], color=ADAPTER_COLORS[a], marker=ADAPTER_MARKERS[a], label=ADAPTER_LABELS[a])
        for a in adapters
    ]


def palette(names: Iterable[str], colors: dict[str, Any]) -> dict[str, Any]:
    """Colours for ``names``: the fixed ones, then unused palette colours for unknown names."""
    names = list(names)
    spare = iter([c for c in PALETTE if c not in colors.values()] + list(PALETTE))
    return {n: colors[n] if n in colors else next(spare) for n in names}


def method_markers(methods: Iterable[str]) -> dict[str, str]:
    """Each method's fixed marker ("o" for one without)."""
    return {m: METHOD_MARKERS.get(m, "o") for m in methods}


def hue_lines(
    column: str, order: Sequence[str], colors: dict[str, Any], markers: Any = True
) -> dict[str, Any]:
    """``sns.lineplot`` keywords for one solid line per value of ``column``, in ``order``: each value's
    colour from ``colors`` (a ``palette``) and marker from ``markers`` (a mapping, or ``True``: seaborn's)."""
    return {
        "hue": column,
        "style": column,
        "hue_order": order,
        "style_order": order,
        "palette": colors,
        "markers": markers,
        "dashes": False,
    }


def err_style(xs: pd.Series) -> str:
    """``sns.lineplot``'s ``err_style`` for lines at the x values ``xs``: a band, or bars where there is
    one point (a band needs two)."""
    return "band" if xs.nunique() > 1 else "bars"


def layer_axis(ax, layers: Iterable[int], label: str) -> None:
    """An x axis of text-model layers: ``label``, and integer ticks at every layer, the last one (the final
    residual stream) labelled "final"."""
    layers = sorted(int(v) for v in layers)
    ax.set_xlabel(label)
    ax.set_xticks(layers)
    ax.set_xticklabels([str(v) for v in layers[:-1]] + ["final"])
