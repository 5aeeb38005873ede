"""The figures package (``analyses.figures``): every study has figures, and every registered figure on
its study's schema is titled, labelled and drawn, copes with NaN, one example, no data and failed units,
says when methods are missing, and is written to files by ``save_study_figures``. What each figure
draws is checked in the test file of its module."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from figure_datasets import (
    DATASETS,
    SMALL,
    benchmark_dataset,
    cartesian_axes,
    delta_norms_dataset,
    drawn,
    efficiency_dataset,
    finish,
    layer_removal_dataset,
)

from analyses import figures
from analyses.figures import FIGURES, save_study_figures
from f2l.results import write_netcdf

ALL_FIGURES = [(study, fn) for study, fns in FIGURES.items() for fn in fns]
IDS = [f"{study}-{fn.__name__}" for study, fn in ALL_FIGURES]


def test_every_study_has_figures_and_a_dataset_factory():
    assert (
        set(FIGURES)
        == set(DATASETS)
        == {
            "benchmark",
            "efficiency",
            "scaling",
            "composition",
            "layer_removal",
            "delta_norms",
            "rank_ablation",
            "logit_attribution",
            "patching",
            "similarity",
            "logit_lens",
        }
    )


@pytest.mark.parametrize(("study", "fn"), ALL_FIGURES, ids=IDS)
def test_figure_on_its_schema_is_titled_labelled_and_drawn(study, fn):
    fig = fn(DATASETS[study]())
    assert fig._suptitle is not None and fig._suptitle.get_text() == fn.title
    axes = cartesian_axes(fig)
    for ax in axes:
        assert ax.get_xlabel(), (study, ax.get_title())
        assert ax.get_ylabel(), (study, ax.get_title())
        assert ax.get_title(), study
    assert all(drawn(ax) > 0 for ax in fig.axes if ax.axison), "an empty panel on complete data"
    footnote = " ".join(t.get_text() for t in fig.texts)
    assert "tiny@0000" in footnote
    fig.canvas.draw()


def _with_nans(ds: xr.Dataset, share: float = 0.4) -> xr.Dataset:
    rng = np.random.default_rng(1)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f" and var.size:
            out[name] = var.where(rng.uniform(0, 1, var.shape) > share)
    return out


def _one(ds: xr.Dataset) -> xr.Dataset:
    dim = next(d for d in ("example_id", "clip", "frames") if d in ds.dims)  # the dataset's unit
    return ds.isel({dim: [0]})


@pytest.mark.parametrize(("study", "fn"), ALL_FIGURES, ids=IDS)
@pytest.mark.parametrize("case", ["nan", "one", "all_nan", "all_failed"])
def test_figure_copes_with_nan_one_example_and_failures(study, fn, case):
    small = DATASETS[study](**SMALL.get(study, {"n_clips": 1}))
    if case == "nan":
        ds = _with_nans(small)
    elif case == "one":
        ds = _one(small)
    elif case == "all_nan":
        ds = _with_nans(small, share=1.1)
    else:  # what Study.merge writes when every unit raised
        ds = finish(xr.Dataset(), failed=2)
    fig = fn(ds)
    fig.canvas.draw()
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    if case == "all_failed":
        assert "every unit failed (2)" in text and "synthetic failure" in text
    if case == "all_nan":
        assert "no data" in text or "not measured (NaN)" in text
    if case in ("nan", "one"):  # every panel still has data to draw (none is NaN throughout)
        panels = [ax for ax in fig.axes if ax.axison]
        assert panels and all(drawn(ax) > 0 for ax in panels), [drawn(ax) for ax in panels]


def test_missing_methods_are_left_out_or_said():
    ds = benchmark_dataset(n_clips=2, methods=("direct", "no_video"))
    fig = figures.score_differences(ds)
    assert "no f2l scores in this dataset" in " ".join(t.get_text() for t in fig.axes[0].texts)
    spider_fig = figures.spider(ds)
    assert len(spider_fig.axes[0].lines) == 2
    eff = efficiency_dataset().sel({"method": ["direct", "f2l"]})
    labels = [t.get_text() for t in figures.efficiency_budgets(eff).legends[0].get_texts()]
    assert labels == ["direct (video in context)", "f2l (adapter only)"]


def test_save_study_figures_writes_png_and_svg_and_finds_the_norms(tmp_path):
    write_netcdf(delta_norms_dataset(), tmp_path / "delta_norms.nc")
    paths = save_study_figures("layer_removal", layer_removal_dataset(), tmp_path, svg=True)
    assert sorted(p.name for p in paths) == [
        "layer_removal_effects.png",
        "layer_removal_effects.svg",
        "layer_removal_effects_by_benchmark.png",
        "layer_removal_effects_by_benchmark.svg",
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "size of the generated update" in (tmp_path / "layer_removal_effects.svg").read_text()
    with pytest.raises(ValueError, match="no figures for study"):
        save_study_figures("nonsense", layer_removal_dataset(), tmp_path)
