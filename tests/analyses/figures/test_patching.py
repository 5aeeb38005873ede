"""Figures of ``patching.nc``: the share restored per site and direction, the controls, and the
effects, read back off the axes and compared with the dataset drawn."""

from __future__ import annotations

import numpy as np
from figure_datasets import cartesian_axes, line_ys, patching_dataset
from matplotlib.collections import PathCollection

from analyses import figures
from probes.controls import ADAPTERS


def test_patching_draws_each_sites_mean_restored_per_direction_and_the_threshold():
    ds = patching_dataset()
    fig = figures.patching_restored(ds)
    axes = cartesian_axes(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["direct -> base", "f2l -> base", "direct -> f2l"]
    for ax, direction in zip(axes, ds["direction"].values, strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()][-1] == "final"
        mean = ds["restored"].sel(direction=direction, adapter="real").mean("example_id", skipna=True)
        ys = line_ys(ax)
        assert sum(len(y) == 5 and np.allclose(y, mean.sel(site="resid_pre").values) for y in ys) == 1
        for site in ("attn_out", "mlp_out"):
            sub = mean.sel(site=site).values[:-1]  # no sublayer point at the final residual
            assert sum(len(y) == 4 and np.allclose(y, sub) for y in ys) == 1, site
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("resid_pre") and len(legend) == 3
    fig = figures.patching_effects(ds)
    (ax,) = cartesian_axes(fig)
    assert "0.5 nats" in ax.get_title()
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if isinstance(c, PathCollection)])
    # direct -> base uses no adapter: drawn once; the others under each adapter
    effect = ds["effect"]
    expected = [effect.sel(direction="direct->base", adapter="real").values.ravel()]
    expected += [effect.sel(direction=["f2l->base", "direct->f2l"]).values.ravel()]
    np.testing.assert_allclose(np.sort(points), np.sort(np.concatenate(expected)))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "f2l, the clip's own adapter",
        "f2l, another clip's adapter (control)",
        "f2l, a blank video's adapter (control)",
    ]


def test_patching_controls_draw_the_residual_stream_under_each_adapter():
    ds = patching_dataset()
    fig = figures.patching_controls(ds)
    axes = cartesian_axes(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["f2l -> base", "direct -> f2l"]
    for ax, direction in zip(axes, ["f2l->base", "direct->f2l"], strict=True):
        mean = ds["restored"].sel(direction=direction, site="resid_pre").mean("example_id", skipna=True)
        ys = line_ys(ax)
        for adapter in ADAPTERS:
            assert any(len(y) == 5 and np.allclose(y, mean.sel(adapter=adapter).values) for y in ys), adapter
