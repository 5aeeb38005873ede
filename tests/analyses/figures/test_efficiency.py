"""Figures of ``efficiency.nc``: the per-cost budgets and the adapter's overhead over the base, read
back off the axes and compared with the dataset drawn."""

from __future__ import annotations

import numpy as np
from figure_datasets import cartesian_axes, efficiency_dataset, line_ys

from analyses import figures
from analyses.figures.efficiency import PANELS
from analyses.figures.style import label as method_label


def test_efficiency_overhead_draws_every_round_paired_with_the_base():
    ds = efficiency_dataset()
    fig = figures.efficiency_overhead(ds)
    (ax,) = cartesian_axes(fig)
    points = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())]))
    r = ds["ttft_rounds_s"]
    expected = r.sel({"method": ["f2l", "f2l_merged"]}) / r.sel({"method": "no_video"}).drop_vars("method")
    np.testing.assert_allclose(points, np.sort(expected.values.ravel()))
    assert (
        expected.sel({"method": "f2l"}).min() > 1.14 and expected.sel({"method": "f2l_merged"}).max() < 1.04
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        method_label("f2l"),
        method_label("f2l_merged"),
    ]
    assert {line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1} >= {1.0, 1.2}
    no_base = figures.efficiency_overhead(ds.sel({"method": ["direct", "f2l"]}))
    assert "needs no_video" in " ".join(t.get_text() for a in no_base.axes for t in a.texts)


def test_efficiency_uses_log_axes_and_leaves_out_zero_bytes():
    ds = efficiency_dataset()
    fig = figures.efficiency_budgets(ds)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    stored = by_title["stored per video (adapter or KV cache)"]
    assert stored.get_yscale() == "log" and stored.get_xscale() == "log"
    ys = line_ys(stored)
    assert len(ys) == 3  # f2l, f2l_merged, kv_cache: no_video and direct store nothing and are left out
    np.testing.assert_allclose(ys[-1], ds["stored_bytes"].sel({"method": "kv_cache"}).values)
    assert by_title["query time to first token"].get_ylabel() == "seconds"


def test_efficiency_budgets_draw_one_line_per_method_that_has_each_cost():
    ds = efficiency_dataset()
    fig = figures.efficiency_budgets(ds)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    for name, title, unit in PANELS:
        ys = line_ys(by_title[title])
        da = ds[name]
        if "method" not in da.dims:  # token_reduction: one line
            expected = [da.values]
        else:  # a line per method with a positive value, in the legend's order; the rest left out
            values = [
                da.sel({"method": m}).values for m in ["direct", "f2l", "f2l_merged", "kv_cache", "no_video"]
            ]
            expected = [v[np.isfinite(v) & (v > 0)] for v in values if (np.isfinite(v) & (v > 0)).any()]
        assert len(ys) == len(expected) > 0, title
        scale = 2**20 if unit == "MiB" else 1
        for y, e in zip(ys, expected, strict=True):
            np.testing.assert_allclose(y, np.asarray(e, float) / scale, err_msg=title)
    assert len(line_ys(by_title["reusable preprocessing per video"])) == 3  # f2l, f2l_merged, kv_cache
