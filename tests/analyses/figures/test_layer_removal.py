"""Figures of ``layer_removal.nc``: the mean removal effects (with the negative controls and the
||dW||_F panel) and the per-benchmark heatmap, read back off the axes and compared with the dataset."""

from __future__ import annotations

import numpy as np
import pytest
from figure_datasets import cartesian_axes, delta_norms_dataset, layer_removal_dataset
from matplotlib.collections import QuadMesh

from analyses import figures
from f2l.world import CAPTION_CATEGORIES, QA_TYPES
from probes.layer_removal import MODULE_GROUPS


def test_layer_removal_bars_are_mean_effects_and_norms_panel_is_optional():
    ds = layer_removal_dataset(n_clips=2)
    alone = figures.layer_removal_effects(ds)
    real, controls = cartesian_axes(alone)
    heights = sorted(p.get_height() for p in real.patches if p.get_width() > 0)
    expected = sorted(ds["effect"].sel(adapter="real").mean("example_id").values.ravel())
    np.testing.assert_allclose(heights, expected)
    # the negative controls: removing each layer (all modules) from each adapter, beside the real one
    heights = sorted(p.get_height() for p in controls.patches if p.get_width() > 0)
    expected = sorted(ds["effect"].sel(module_group="all").mean("example_id").values.ravel())
    np.testing.assert_allclose(heights, expected)
    labels = [t.get_text() for t in controls.get_legend().get_texts()]
    assert labels[1].startswith("f2l, another clip's adapter (control): token-F1 ")
    assert controls.get_title() == "negative controls (all modules)"
    norms = delta_norms_dataset()
    both = figures.layer_removal_effects(ds, norms=norms)
    assert len(cartesian_axes(both)) == 3
    assert "Frobenius" in both.axes[2].get_ylabel()
    # a line per module group: the group's stacked update's norm (root sum of squares over its modules),
    # mean across clips
    lines = both.axes[2].lines
    assert len(lines) == 3
    for line, group in zip(lines, ("all", "attention", "mlp"), strict=True):
        modules = list(MODULE_GROUPS[group])
        expected = np.sqrt((norms["fro_norm"].sel(module=modules) ** 2).sum("module")).mean("clip")
        np.testing.assert_allclose(line.get_xdata(), norms["layer"].values)
        np.testing.assert_allclose(line.get_ydata(), expected.values, err_msg=group)
    # a dataset without controls (or written before them) has no controls panel
    only_real = figures.layer_removal_effects(ds.sel(adapter="real", drop=True), norms=delta_norms_dataset())
    assert len(cartesian_axes(only_real)) == 2


def test_layer_removal_labels_a_group_by_the_modules_it_held():
    ds = layer_removal_dataset(n_clips=2, groups=("all", "mlp"))
    ds = ds.assign_coords(group_modules=("module_group", ["down_proj", "down_proj"]))
    fig = figures.layer_removal_effects(ds)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["all (down)", "mlp (down)"]  # not "MLP (gate, up, down)": only down_proj was there
    heat = figures.effects_by_benchmark(ds.sel(module_group=["mlp"]))  # no "all": the first group is drawn
    assert heat.axes[0].get_title() == "module group: mlp (down)"


def test_effects_by_benchmark_is_a_heatmap_of_mean_effects():
    ds = layer_removal_dataset(n_clips=2)
    fig = figures.effects_by_benchmark(ds, module_group="mlp")
    ax = fig.axes[0]
    expected = ds["effect"].sel(module_group="mlp", adapter="real").groupby("benchmark").mean("example_id")
    cells = {t.get_text() for t in ax.texts}
    assert f"{float(expected.sel(benchmark='count', layer=2)):.2f}" in cells
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["short", "detailed"]
    assert ax.get_title() == "module group: MLP (gate, up, down)"
    # every cell: the mean effect of its benchmark (rows, in the benchmarks' order) and layer (columns)
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == [*CAPTION_CATEGORIES, *QA_TYPES]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    table = expected.sel(benchmark=rows).transpose("benchmark", "layer").values
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(table.shape), table)
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in table.ravel())
    # a colour scale centred on zero, as wide as the largest effect either way
    assert mesh.norm.vmax == -mesh.norm.vmin == pytest.approx(np.abs(table).max())
