"""Figure of ``composition.nc``: each method's mean of clip means per segment count."""

from __future__ import annotations

import numpy as np
from figure_datasets import cartesian_axes, composition_dataset, line_ys

from analyses import figures


def test_composition_curves_are_the_mean_of_clip_means_per_method_over_segments():
    ds = composition_dataset(n_clips=3)
    fig = figures.composition_curves(ds)
    axes = cartesian_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "questions one object's segments answer",
        "questions that join several segments",
    ]
    for ax, need in zip(axes, ("one", "several"), strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]
        ys = line_ys(ax)
        assert len(ys) == ds.sizes["method"]
        for method, y in zip(ds["method"].values, ys, strict=True):
            part = ds["score"].sel({"method": method}).where(ds["needs"] == need)
            clip_means = part.groupby("clip").mean("example_id")  # NaN at other segment counts
            np.testing.assert_allclose(y, clip_means.mean("clip").values)
