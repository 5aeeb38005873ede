"""Figures of ``benchmark.nc``: is adapter-only answering as good as video-in-context answering?

Score distributions of ``direct`` and ``f2l`` side by side per benchmark; the per-example paired
difference with the equivalence verdict under each benchmark; and spider plots of every method's mean
score across caption categories and QA types.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analyses.figures.style import (
    METHOD_COLORS,
    METHOD_MARKERS,
    METRICS,
    figure,
    figure_legend,
    frame,
    label,
    method_legend,
    metric_label,
    metric_name,
    no_data,
    ordered,
    palette,
    score_limits,
    zero_line,
)
from f2l.world import CAPTION_CATEGORIES, QA_TYPES

KIND_TITLES = {"caption": "captioning", "qa": "question answering"}
KIND_AXIS = {"caption": "caption category", "qa": "QA type"}
KIND_PLURAL = {"caption": "caption categories", "qa": "QA types"}
BENCHMARK_ORDER = (*CAPTION_CATEGORIES, *QA_TYPES)
MARGIN_LINE = {"color": "0.35", "linestyle": "--", "linewidth": 1.0}


def _metric(ds: xr.Dataset, metric: str | None) -> str:
    """The metric to plot: the one asked for, else token-F1, else the first the dataset has."""
    metrics = [str(m) for m in ds["metric"].values]
    if metric is not None:
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} is not in the dataset ({metrics})")
        return metric
    return "token_f1" if "token_f1" in metrics else metrics[0]


def _kinds(df: pd.DataFrame) -> list[tuple[str | None, list[str]]]:
    """(kind, its benchmarks in reading order) for each kind of prompt in ``df``."""
    if "kind" not in df:
        return [(None, ordered(df["benchmark"], BENCHMARK_ORDER))]
    return [
        (kind, ordered(df.loc[df["kind"] == kind, "benchmark"], BENCHMARK_ORDER))
        for kind in ordered(df["kind"], ("caption", "qa"))
    ]


def _panels(groups: list[tuple[str | None, list[str]]], height: float = 4.8):
    widths = [max(len(b), 1) for _, b in groups]
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(max(6.5, 0.85 * sum(widths) + 2.5), height),
        sharey=True,
        width_ratios=widths,
        squeeze=False,
    )
    return fig, list(axes[0])


@figure("score", title="Score per example: video in context vs adapter only")
def score_distributions(
    ds: xr.Dataset, metric: str | None = None, methods: Sequence[str] = ("direct", "f2l")
) -> Figure:
    """Violins (the distribution) and dots (each example) of each method's score, per benchmark."""
    metric = _metric(ds, metric)
    methods = [m for m in methods if m in ds["method"].values]
    df = frame(ds["score"].sel({"metric": metric, "method": methods}), "score")
    groups = _kinds(df) if len(df) else [(None, [])]
    fig, axes = _panels(groups)
    colors = palette(methods, METHOD_COLORS)
    for ax, (kind, benchmarks) in zip(axes, groups, strict=True):
        part = df if kind is None else df[df["kind"] == kind]
        if part.empty:
            no_data(ax)
        else:
            common = dict(data=part, x="benchmark", y="score", hue="method", order=benchmarks, ax=ax)
            sns.violinplot(
                **common,
                hue_order=methods,
                palette=colors,
                cut=0,
                inner=None,
                density_norm="width",
                linewidth=0.8,
                saturation=0.9,
                legend=False,
            )
            for violin in ax.collections:
                violin.set_alpha(0.45)
            sns.stripplot(
                **common,
                hue_order=methods,
                palette=colors,
                dodge=True,
                jitter=0.15,
                size=3.5,
                linewidth=0.4,
                edgecolor="0.2",
                legend=False,
            )
        ax.set_title(KIND_TITLES.get(kind, "all prompts"))
        ax.set_xlabel(KIND_AXIS.get(kind, "benchmark"))
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    axes[0].set_ylabel(metric_label(metric))
    score_limits(axes[0], metric)
    method_legend(fig, methods, lines=False)
    return fig


def _statistics(ds: xr.Dataset, contrast: str, metric: str) -> pd.DataFrame | None:
    """The study's paired statistics of ``contrast`` at ``metric``, one row per benchmark (``None``
    when the dataset has none). The benchmark dim of the statistics is whichever dim of ``diff_mean``
    is neither ``contrast`` nor ``metric``."""
    if "diff_mean" not in ds or "contrast" not in ds["diff_mean"].dims:
        return None
    if contrast not in ds["contrast"].values or metric not in ds["metric"].values:
        return None
    dim = next(d for d in ds["diff_mean"].dims if d not in ("contrast", "metric"))
    names = [n for n in ("diff_mean", "ci_low", "ci_high", "verdict") if n in ds]
    table = ds[names].sel(contrast=contrast, metric=metric).to_dataframe().reset_index()
    return table.rename(columns={dim: "benchmark"}).set_index("benchmark")


@figure("score", title="Per-example paired difference, adapter only minus video in context")
def score_differences(
    ds: xr.Dataset, metric: str | None = None, contrast: tuple[str, str] = ("f2l", "direct")
) -> Figure:
    """Box and dots of the per-example difference ``a - b`` per benchmark; the study's mean per-clip
    difference with its interval (level ``1 - 2 alpha``, the interval TOST checks) as a black diamond, the
    equivalence margin as dashed lines, and the verdict under the benchmark's name."""
    metric = _metric(ds, metric)
    a, b = contrast
    have = set(map(str, ds["method"].values))
    missing = [m for m in contrast if m not in have]
    if missing:
        fig, ax = plt.subplots(figsize=(7, 3))
        no_data(ax, f"no {' or '.join(missing)} scores in this dataset")
        return fig
    diff = ds["score"].sel({"metric": metric, "method": a}) - ds["score"].sel({"metric": metric, "method": b})
    df = frame(diff.drop_vars("method", errors="ignore"), "difference")
    stats = _statistics(ds, f"{a} - {b}", metric)
    groups = _kinds(df) if len(df) else [(None, [])]
    fig, axes = _panels(groups, height=5.0)
    for ax, (kind, benchmarks) in zip(axes, groups, strict=True):
        part = df if kind is None else df[df["kind"] == kind]
        zero_line(ax)
        if part.empty:
            no_data(ax)
        else:
            common = dict(data=part, x="benchmark", y="difference", order=benchmarks, ax=ax)
            sns.boxplot(**common, color="0.85", width=0.55, showfliers=False, linewidth=0.9)
            sns.stripplot(
                **common,
                color=METHOD_COLORS.get(a, "C1"),
                jitter=0.18,
                size=3.5,
                linewidth=0.4,
                edgecolor="0.2",
            )
        names = list(benchmarks)
        if stats is not None:
            for i, bench in enumerate(benchmarks):
                if bench not in stats.index or not np.isfinite(stats.at[bench, "diff_mean"]):
                    continue
                row = stats.loc[bench]
                low, high = row.get("ci_low", np.nan), row.get("ci_high", np.nan)
                if np.isfinite(low) and np.isfinite(high):
                    ax.errorbar(
                        i + 0.32,
                        row["diff_mean"],
                        yerr=[[row["diff_mean"] - low], [high - row["diff_mean"]]],
                        fmt="D",
                        color="black",
                        markersize=5,
                        capsize=3,
                        zorder=5,
                    )
                else:
                    ax.plot(i + 0.32, row["diff_mean"], "D", color="black", markersize=5, zorder=5)
                if "verdict" in row and str(row["verdict"]):
                    names[i] = f"{bench}\n{row['verdict']}"
        ax.set_xticks(range(len(benchmarks)), names)
        ax.tick_params(axis="x", labelrotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
        ax.set_title(KIND_TITLES.get(kind, "all prompts"))
        ax.set_xlabel(KIND_AXIS.get(kind, "benchmark") + (" (and verdict)" if stats is not None else ""))
    axes[0].set_ylabel(f"{metric_name(metric)} difference, {a} minus {b}")
    margin = float(ds.attrs["margin"]) if "margin" in ds.attrs else None
    if margin is not None:
        for ax in axes:
            for side in (-margin, margin):
                ax.axhline(side, **MARGIN_LINE)
    # symmetric about zero and only as wide as the data: small differences stay visible
    ends = [df["difference"].abs().max() if len(df) else 0.0, margin or 0.0]
    if stats is not None:
        ends += [stats[c].abs().max() for c in ("ci_low", "ci_high") if c in stats]
    reach = min(max([e for e in ends if np.isfinite(e)] + [0.05]) * 1.15, 2.0)
    axes[0].set_ylim(-reach, reach)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=METHOD_COLORS.get(a, "C1"), label="one example"),
    ]
    if stats is not None:
        level = f"{100 * (1 - 2 * float(ds.attrs['alpha'])):.0f}% " if "alpha" in ds.attrs else ""
        handles.append(
            Line2D([], [], marker="D", color="black", label=f"mean per-clip difference, {level}bootstrap CI")
        )
    if margin is not None:
        handles.append(Line2D([], [], **MARGIN_LINE, label=f"equivalence margin ±{margin:g}"))
    figure_legend(fig, handles, ncol=3)
    return fig


@figure("score", title="Mean score per caption category and QA type")
def spider(
    ds: xr.Dataset, metric: str | None = None, methods: Sequence[str] = ("direct", "f2l", "no_video")
) -> Figure:
    """Radar plots of each method's mean score: one for the caption categories, one for the QA types."""
    metric = _metric(ds, metric)
    methods = [m for m in methods if m in ds["method"].values]
    df = frame(ds["score"].sel({"metric": metric, "method": methods}), "score")
    groups = [(k, b) for k, b in _kinds(df) if b] if len(df) else [(None, [])]
    fig, axes = plt.subplots(
        1, len(groups), figsize=(5.2 * len(groups), 5.6), subplot_kw={"projection": "polar"}, squeeze=False
    )
    fig.get_layout_engine().set(h_pad=0.15, w_pad=0.15)  # room for the spoke labels outside the circle
    top = (
        METRICS[metric][1][1]
        if metric in METRICS
        else max(float(df["score"].max()) if len(df) else 1.0, 1e-9)
    )
    for ax, (kind, benchmarks) in zip(axes[0], groups, strict=True):
        if not benchmarks:
            no_data(ax)
            continue
        part = df if kind is None else df[df["kind"] == kind]
        means = part.groupby(["method", "benchmark"])["score"].mean()
        angles = np.linspace(0, 2 * np.pi, len(benchmarks), endpoint=False)
        closed = np.append(angles, angles[:1])
        for method in methods:
            values = np.array([means.get((method, bench), np.nan) for bench in benchmarks])
            values = np.append(values, values[:1])
            color = METHOD_COLORS.get(method, "0.3")
            ax.plot(
                closed,
                values,
                color=color,
                marker=METHOD_MARKERS.get(method, "o"),
                linewidth=1.8,
                markersize=5,
                label=label(method),
            )
            ax.fill(closed, np.nan_to_num(values), color=color, alpha=0.08)
        ax.set_xticks(angles, [b.replace("_", " ") for b in benchmarks])
        ax.set_ylim(0, top)
        ax.set_rlabel_position(180 / len(benchmarks))  # between two spokes, clear of the labels
        ax.tick_params(axis="y", labelsize=8, labelcolor="0.35")
        ax.tick_params(axis="x", pad=7)
        ax.set_title(f"{KIND_PLURAL.get(kind, 'benchmarks')}: mean {metric_name(metric)}", pad=18)
    method_legend(fig, methods)
    return fig
