"""Figure of ``scaling.nc``: where each sweep is drawn, the study's means and intervals, and the median
time and tokens across prompts, read back off the axes."""

from __future__ import annotations

import numpy as np
from figure_datasets import scaling_dataset
from matplotlib.collections import LineCollection

from analyses import figures
from analyses.figures.scaling import CLIP_PANELS as SCALING_CLIP_PANELS
from analyses.figures.scaling import sweep_point as scaling_sweep_point


def test_scaling_sweeps_are_drawn_where_the_study_ran_them():
    ds = scaling_dataset(n_clips=1)
    assert scaling_sweep_point(ds, "frames") == 64 and scaling_sweep_point(ds, "resolution") == 8
    ds.attrs.update(training_resolution=128)  # the study's word wins over the count of points
    assert scaling_sweep_point(ds, "frames") == 128
    ds.attrs.update(training_resolution=999)  # not on the grid: the count decides
    assert scaling_sweep_point(ds, "frames") == 64
    assert scaling_sweep_point(ds.where(ds["frames"] > 100), "frames") == 64  # only the 256-frame row
    assert scaling_sweep_point(ds.where(ds["frames"] < 0), "frames") is None


def test_scaling_draws_the_studys_means_and_intervals_across_clips():
    """The score, difference and share panels draw the study's stored means across clips, and each point's
    bootstrap interval as a bar from its low to its high end (one line and one set of bars a series)."""
    ds = scaling_dataset(n_clips=4)
    fig = figures.scaling_curves(ds)
    rows = np.asarray(fig.axes).reshape(2, -1)
    for row, along, at in ((rows[0], "frames", {"resolution": 64}), (rows[1], "resolution", {"frames": 8})):
        panels = {"score": row[0], "score_diff": row[1], "degenerate": row[4], "same_answer": row[5]}
        titles = [ax.get_title().split(",")[0] for ax in panels.values()]
        assert titles == [
            "score",
            "f2l minus direct",
            "degenerate answers",
            "shared answers",
        ]
        for panel, ax in panels.items():
            mean_name, ci_name = SCALING_CLIP_PANELS[panel]
            scale = 100 if panel in ("degenerate", "same_answer") else 1
            mean, ci = ds[mean_name].sel(at), ds[ci_name].sel(at)
            series = list(ds["method"].values) if "method" in mean.dims else [None]
            bars = [c for c in ax.collections if isinstance(c, LineCollection)]
            lines = [line for line in ax.lines if line.get_marker() not in (None, "None", "")]  # no zero line
            assert len(lines) == len(bars) == len(series), (along, panel)
            for line, collection, method in zip(lines, bars, series, strict=True):
                m = mean if method is None else mean.sel({"method": method})
                c = ci if method is None else ci.sel({"method": method})
                run = np.isfinite(m.values)
                assert run.sum() == len(ds[along]) > 1  # every point of the sweep, each with an interval
                np.testing.assert_allclose(line.get_ydata(), scale * m.values[run])
                ends = np.array([[seg[0, 1], seg[1, 1]] for seg in collection.get_segments()])
                np.testing.assert_allclose(ends, scale * c.values[run], err_msg=f"{along} {panel} {method}")
                if panel.startswith("score"):
                    assert (ends[:, 1] > ends[:, 0]).all()  # four clips' scores: intervals of some width
    # one clip: the means alone, no interval
    one = figures.scaling_curves(scaling_dataset(n_clips=1))
    assert not any(isinstance(c, LineCollection) for ax in one.axes[:2] for c in ax.collections)
    assert all(len(ax.lines) for ax in one.axes[:2])


def test_scaling_draws_the_median_time_and_input_tokens_across_prompts_per_method():
    """The time and token panels: a line per method (the legend's order) through the median across
    prompts at each point of the sweep, on a log axis (every value is positive)."""
    ds = scaling_dataset(n_clips=3)
    rng = np.random.default_rng(5)  # prompts of different costs, so that the median is not the mean
    for name in ("ttft_s", "input_tokens"):
        ds[name] = ds[name] * rng.uniform(0.5, 2.0, ds[name].shape)
    fig = figures.scaling_curves(ds)
    rows = np.asarray(fig.axes).reshape(2, -1)
    for row, along, at in ((rows[0], "frames", {"resolution": 64}), (rows[1], "resolution", {"frames": 8})):
        for ax, name in ((row[2], "ttft_s"), (row[3], "input_tokens")):
            assert ax.get_yscale() == "log", (along, name)
            assert len(ax.lines) == 2, (along, name)
            for line, method in zip(ax.lines, ("direct", "f2l"), strict=True):
                values = ds[name].sel(at).sel({"method": method})
                median = values.median("example_id").values
                assert not np.allclose(median, values.mean("example_id").values)
                np.testing.assert_allclose(line.get_xdata(), ds[along].values)
                np.testing.assert_allclose(line.get_ydata(), median, err_msg=f"{along} {name} {method}")
