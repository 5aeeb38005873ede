"""Figures of ``benchmark.nc``: the score distributions, the paired differences with the study's
verdicts, and the spider plots, read back off the axes and compared with the dataset drawn."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from figure_datasets import benchmark_dataset, cartesian_axes
from matplotlib.collections import LineCollection, PathCollection

from analyses import figures
from f2l.world import CAPTION_CATEGORIES, QA_TYPES


def test_score_distributions_draw_each_examples_score_and_its_range_per_benchmark_and_method():
    """Per benchmark, each method's dots are its examples' scores at the metric asked for, on its side of
    the benchmark's tick, and its violin (cut at the data) spans exactly their range; methods not asked
    for (no_video) are left out."""
    ds = benchmark_dataset(n_clips=3, methods=("direct", "f2l", "no_video"))
    for metric, ylabel in (
        ("token_f1", "token-F1 (0 to 1)"),
        ("embedding", "embedding cosine similarity (-1 to 1)"),
    ):
        fig = figures.score_distributions(ds, metric=metric)
        axes = cartesian_axes(fig)
        assert [ax.get_title() for ax in axes] == ["captioning", "question answering"]
        assert [ax.get_xlabel() for ax in axes] == ["caption category", "QA type"]
        assert axes[0].get_ylabel() == ylabel
        drawn = 0
        for ax, benchmarks in zip(axes, (CAPTION_CATEGORIES, QA_TYPES), strict=True):
            assert [t.get_text() for t in ax.get_xticklabels()] == list(benchmarks)
            dots = [c for c in ax.collections if isinstance(c, PathCollection)]
            violins = [c for c in ax.collections if not isinstance(c, PathCollection)]
            assert len(dots) == len(violins) == 2 * len(benchmarks)
            for i, benchmark in enumerate(benchmarks):
                for side, method in ((-1, "direct"), (1, "f2l")):

                    def on_its_side(xs, i=i, side=side):
                        return 0 < side * (np.mean(xs) - i) < 0.4

                    scores = ds["score"].sel({"method": method, "metric": metric})
                    scores = scores.where(ds["benchmark"] == benchmark, drop=True).values
                    (points,) = [c.get_offsets() for c in dots if on_its_side(c.get_offsets()[:, 0])]
                    np.testing.assert_allclose(np.sort(points[:, 1]), np.sort(scores), err_msg=benchmark)
                    drawn += len(points)
                    (violin,) = [c for c in violins if on_its_side(c.get_paths()[0].vertices[:, 0])]
                    ys = violin.get_paths()[0].vertices[:, 1]
                    np.testing.assert_allclose([ys.min(), ys.max()], [scores.min(), scores.max()])
        assert drawn == 2 * ds.sizes["example_id"]  # every example of direct and f2l, once
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["direct (video in context)", "f2l (adapter only)"]
        plt.close(fig)


def test_score_differences_plots_each_paired_difference_and_the_study_verdicts():
    """Per panel (captions, QA): a dot per example at its f2l - direct difference; under each benchmark's
    tick the study's verdict; beside it the study's mean difference (a diamond) with its interval."""
    ds = benchmark_dataset(n_clips=3)
    fig = figures.score_differences(ds)
    captions = fig.axes[0]
    diff = (ds["score"].sel({"method": "f2l"}) - ds["score"].sel({"method": "direct"})).sel(metric="token_f1")
    expected = diff.where(ds["kind"] == "caption", drop=True).values
    strips = [c for c in captions.collections if isinstance(c, PathCollection)]
    points = np.concatenate([c.get_offsets()[:, 1] for c in strips])
    np.testing.assert_allclose(np.sort(points), np.sort(expected))
    labels = [t.get_text() for t in captions.get_xticklabels()]
    verdict = str(ds["verdict"].sel(contrast="f2l - direct", suite="short", metric="token_f1").values)
    assert labels[0] == f"short\n{verdict}"
    assert captions.get_ylabel() == "token-F1 difference, f2l minus direct"
    stats = ds[["diff_mean", "ci_low", "ci_high", "verdict"]].sel(contrast="f2l - direct", metric="token_f1")
    axes = cartesian_axes(fig)
    assert len(axes) == 2
    for ax, kind, benchmarks in zip(axes, ("caption", "qa"), (CAPTION_CATEGORIES, QA_TYPES), strict=True):
        dots = np.concatenate(
            [c.get_offsets()[:, 1] for c in ax.collections if isinstance(c, PathCollection)]
        )
        np.testing.assert_allclose(np.sort(dots), np.sort(diff.where(ds["kind"] == kind, drop=True).values))
        part = stats.sel(suite=list(benchmarks))
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            f"{b}\n{v}" for b, v in zip(benchmarks, part["verdict"].values, strict=True)
        ]
        diamonds = [line for line in ax.lines if line.get_marker() == "D"]
        assert len(diamonds) == len(benchmarks), kind
        np.testing.assert_allclose([d.get_xdata()[0] for d in diamonds], np.arange(len(benchmarks)) + 0.32)
        np.testing.assert_allclose([d.get_ydata()[0] for d in diamonds], part["diff_mean"].values)
        bars = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
        ends = np.array([np.sort(seg[:, 1]) for seg in bars])
        np.testing.assert_allclose(ends, np.stack([part["ci_low"].values, part["ci_high"].values], 1))


def test_spider_draws_each_methods_mean_per_category():
    ds = benchmark_dataset(n_clips=3)
    fig = figures.spider(ds)
    qa_axis = fig.axes[1]
    assert qa_axis.name == "polar" and [t.get_text() for t in qa_axis.get_xticklabels()][0] == "attribute"
    assert len(qa_axis.lines) == 3  # the spider's methods: direct, f2l, no_video
    for method, line in zip(["direct", "f2l", "no_video"], qa_axis.lines, strict=True):
        scores = ds["score"].sel({"method": method, "metric": "token_f1"})
        expected = [float(scores.where(ds["benchmark"] == t).mean()) for t in QA_TYPES]
        np.testing.assert_allclose(line.get_ydata()[:-1], expected, err_msg=method)
        assert line.get_ydata()[-1] == line.get_ydata()[0]  # closed polygon
    # the caption categories' spider alike, each category on its own spoke
    caption_axis = fig.axes[0]
    assert caption_axis.name == "polar" and len(caption_axis.lines) == 3
    spokes = [t.get_text() for t in caption_axis.get_xticklabels()]
    assert spokes == [c.replace("_", " ") for c in CAPTION_CATEGORIES]
    angles = np.linspace(0, 2 * np.pi, len(CAPTION_CATEGORIES), endpoint=False)
    for method, line in zip(["direct", "f2l", "no_video"], caption_axis.lines, strict=True):
        scores = ds["score"].sel({"method": method, "metric": "token_f1"})
        expected = [float(scores.where(ds["benchmark"] == c).mean()) for c in CAPTION_CATEGORIES]
        np.testing.assert_allclose(line.get_xdata()[:-1], angles)
        np.testing.assert_allclose(line.get_ydata()[:-1], expected, err_msg=method)
