"""Figure of ``delta_norms.nc``: each module's norms per layer, read back off the axes."""

from __future__ import annotations

import numpy as np
from figure_datasets import MODULES, cartesian_axes, delta_norms_dataset

from analyses import figures


def test_delta_norms_profile_draws_each_modules_mean_across_clips_per_layer():
    """Each panel: one line per module (in the projection order, whatever the dataset's), its value per
    layer averaged over the clips that have it."""
    ds = delta_norms_dataset(n_clips=3, layers=4).sel(module=list(reversed(MODULES)))
    ds["fro_norm"][0, 1, 0] = np.nan  # one clip's down_proj at layer 1 missing: the mean of the other two
    ds.attrs["rank"] = 8
    fig = figures.delta_norms_profile(ds)
    axes = cartesian_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "Frobenius norm",
        "spectral norm",
        "size against the frozen weight",
        "stable rank (effective number of directions), 1 to 8",
    ]
    for ax, name in zip(axes, ("fro_norm", "spectral_norm", "relative_fro", "stable_rank"), strict=True):
        assert ax.get_xlabel() == "text-model layer"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
        assert len(ax.lines) == len(MODULES)
        for line, module in zip(ax.lines, MODULES, strict=True):
            np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
            expected = ds[name].sel(module=module).mean("clip").values
            np.testing.assert_allclose(line.get_ydata(), expected, err_msg=f"{name} {module}")
    mean = ds["fro_norm"].sel(module="down_proj", layer=1).values
    np.testing.assert_allclose(axes[0].lines[-1].get_ydata()[1], (mean[1] + mean[2]) / 2)
    assert axes[3].get_ylim() == (0.5, 8.5)  # 1 to the adapter's rank
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(MODULES)
