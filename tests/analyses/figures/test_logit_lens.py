"""Figures of ``logit_lens.nc``: each route's probability, rank and KL per layer, read back off the
axes."""

from __future__ import annotations

import numpy as np
from figure_datasets import cartesian_axes, line_ys, logit_lens_dataset

from analyses import figures
from probes.controls import ADAPTERS


def test_logit_lens_draws_each_routes_clip_mean_per_layer():
    ds = logit_lens_dataset()
    fig = figures.logit_lens_answer(ds)
    prob_ax, rank_ax = cartesian_axes(fig)
    assert rank_ax.get_yscale() == "symlog" and prob_ax.get_xticklabels()[-1].get_text() == "final"

    def mean(name, run, adapter="real"):
        return ds[name].sel(run=run, adapter=adapter).groupby("clip").mean("example_id").mean("clip").values

    # routes in order: direct, base, then f2l under each adapter
    expected = [("direct", "real"), ("base", "real")] + [("f2l", a) for a in ADAPTERS]
    for ax, name in ((prob_ax, "prob"), (rank_ax, "rank")):
        ys = [y for y in line_ys(ax) if len(y) == ds.sizes["layer"]]
        assert len(ys) == 5
        for y, (run, adapter) in zip(ys, expected, strict=True):
            np.testing.assert_allclose(y, mean(name, run, adapter))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "direct (video in context)",
        "base (no video, no adapter)",
        "f2l, the clip's own adapter",
        "f2l, another clip's adapter (control)",
        "f2l, a blank video's adapter (control)",
    ]
    fig = figures.logit_lens_kl(ds)
    (ax,) = cartesian_axes(fig)
    ys = [y for y in line_ys(ax) if len(y) == ds.sizes["layer"]]
    np.testing.assert_allclose(ys[2], mean("kl", "f2l"))
    np.testing.assert_allclose([y[-1] for y in ys], 0.0)  # the final read-out is the run's own


def test_logit_lens_kl_draws_every_routes_mean_and_standard_error_across_clips():
    """One line per route (direct, base, f2l under each adapter): the mean across clips of each clip's
    mean KL per layer, in a band of one standard error across clips."""
    ds = logit_lens_dataset(n_clips=3)
    fig = figures.logit_lens_kl(ds)
    (ax,) = cartesian_axes(fig)
    assert ax.get_title() == "distance to the run's own final distribution"
    assert ax.get_xlabel() == "text-model layer read (resid_pre; last: final residual)"
    assert ax.get_ylabel().startswith("KL(final || layer read-out), nats")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "final"]
    routes = [("direct", "real"), ("base", "real")] + [("f2l", a) for a in ADAPTERS]
    lines = [line for line in ax.lines if len(line.get_ydata()) == ds.sizes["layer"]]
    assert len(lines) == len(ax.collections) == len(routes)
    layers = ds["layer"].values
    for line, band, (run, adapter) in zip(lines, ax.collections, routes, strict=True):
        clips = ds["kl"].sel(run=run, adapter=adapter).groupby("clip").mean("example_id")
        mean = clips.mean("clip").values
        se = clips.std("clip", ddof=1).values / np.sqrt(clips.sizes["clip"])
        np.testing.assert_array_equal(line.get_xdata(), layers)
        np.testing.assert_allclose(line.get_ydata(), mean, err_msg=f"{run} {adapter}")
        edge = band.get_paths()[0].vertices
        low = [edge[edge[:, 0] == x, 1].min() for x in layers]
        high = [edge[edge[:, 0] == x, 1].max() for x in layers]
        np.testing.assert_allclose(low, mean - se, atol=1e-12)
        np.testing.assert_allclose(high, mean + se, atol=1e-12)
        assert (se[:-1] > 0).all() and se[-1] == 0  # clips that differ; KL 0 at the final read-out
