"""Figures of ``similarity.nc``: the per-layer cosine and share, and the CKA, read back off the axes."""

from __future__ import annotations

import numpy as np
from figure_datasets import cartesian_axes, line_ys, similarity_dataset

from analyses import figures
from probes.controls import ADAPTERS


def test_similarity_draws_each_clips_mean_per_layer_and_the_cka():
    ds = similarity_dataset()
    fig = figures.similarity_per_layer(ds)
    cos_ax, share_ax = cartesian_axes(fig)
    clip_means = ds["similarity"].groupby("clip").mean("example_id").mean("clip")
    cosines = [y for y in line_ys(cos_ax) if len(y) == ds.sizes["layer"]]
    shares = [y for y in line_ys(share_ax) if len(y) == ds.sizes["layer"] - 1]
    for i, adapter in enumerate(ADAPTERS):  # one line per adapter, the real one first, then base's cosine
        np.testing.assert_allclose(cosines[i], clip_means.sel(measure="cosine", adapter=adapter))
        np.testing.assert_allclose(shares[i], clip_means.sel(measure="share", adapter=adapter).values[1:])
    base = ds["cosine_base"].groupby("clip").mean("example_id").mean("clip")
    np.testing.assert_allclose(cosines[3], base)
    assert share_ax.get_xticklabels()[-1].get_text() == "final"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[1] == "f2l, another clip's adapter (control)" and legend[3].startswith("base")
    fig = figures.similarity_cka(ds)
    (ax,) = cartesian_axes(fig)
    ys = line_ys(ax)
    for i, adapter in enumerate(ADAPTERS):
        np.testing.assert_allclose(ys[i], ds["cka"].sel(adapter=adapter).values)
    np.testing.assert_allclose(ys[3], ds["cka_base"].values)
