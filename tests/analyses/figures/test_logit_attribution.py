"""Figure of ``logit_attribution.nc``: each component's mean attribution per layer."""

from __future__ import annotations

import numpy as np
from figure_datasets import line_ys, logit_attribution_dataset

from analyses import figures


def test_dla_is_on_a_symlog_axis_and_averages_answer_tokens_only():
    ds = logit_attribution_dataset()
    fig = figures.dla_per_layer(ds)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    ys = line_ys(ax)
    for component in ds["component"].values:  # one line per component, each its mean over answer tokens
        mean = ds["dla"].sel(component=component).mean("position", skipna=True).mean("example_id").values
        assert sum(len(y) == len(mean) and np.allclose(y, mean) for y in ys) == 1, component
