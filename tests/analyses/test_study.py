"""analyses.study: the helpers every probe study's summary uses (its metric, its counts, the per-layer
Markdown table) and how a ``ProbeRun`` fills its probe's keyword-only parameters from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr

from analyses.common import FramesConfig
from analyses.study import ProbeRun, counts, keywords, layer_columns, layer_table, metric_of
from probes.prompts import PromptSet


def per_layer(values: np.ndarray, clips: list[str], groups: list[str]) -> xr.DataArray:
    """``values[example, layer, group]`` of prompts labelled by their clip."""
    return xr.DataArray(
        values,
        dims=("example_id", "layer", "group"),
        coords={
            "example_id": [f"p{i}" for i in range(len(clips))],
            "clip": ("example_id", clips),
            "layer": np.arange(values.shape[1]),
            "group": groups,
        },
    )


def test_layer_table_has_a_row_per_layer_and_each_columns_clip_mean_and_se():
    values = np.array(
        [
            [[0.1, 1.0], [0.2, 2.0]],  # clip a, prompt 1
            [[0.3, 1.0], [0.4, 2.0]],  # clip a, prompt 2
            [[0.5, 3.0], [np.nan, 4.0]],  # clip b
        ]
    )
    da = per_layer(values, ["a", "a", "b"], ["attn", "mlp"])
    # layer 0, attn: clip means 0.2 and 0.5, mean 0.35, se = sd / sqrt(2) = 0.15; layer 1, attn: clip b's
    # NaN skipped, only clip a's 0.3 (no standard error of one clip)
    assert layer_table(da, "group") == (
        "| layer | attn | mlp |\n"
        "| --- | --- | --- |\n"
        "| 0 | +0.350 ± 0.150 | +2.000 ± 1.000 |\n"
        "| 1 | +0.300 ± nan | +3.000 ± 1.000 |\n"
    )
    by_max = layer_table(da, "group", cell=lambda cell: float(cell.max()))
    assert by_max.splitlines()[2:] == ["| 0 | 0.500 | 3.000 |", "| 1 | 0.400 | 4.000 |"]


def test_layer_columns_take_each_column_from_its_own_array():
    values = np.array([[[0.1, 1.0], [0.2, 2.0]], [[0.3, 1.0], [0.4, 2.0]], [[0.5, 3.0], [np.nan, 4.0]]])
    da = per_layer(values, ["a", "a", "b"], ["attn", "mlp"])
    columns = {"mlp first": da.sel(group="mlp"), "attn, doubled": 2 * da.sel(group="attn")}
    assert layer_columns([1, 0], columns, cell=lambda cell: float(cell.max())).splitlines() == [
        "| layer | mlp first | attn, doubled |",
        "| --- | --- | --- |",
        "| 1 | 4.000 | 0.800 |",
        "| 0 | 3.000 | 1.000 |",
    ]
    assert layer_columns(da["layer"].values, {str(g): da.sel(group=g) for g in ("attn", "mlp")}) == (
        layer_table(da, "group")
    )


def test_metric_and_counts_of_a_per_prompt_dataset():
    clips = ["a", "a", "b", "c", "c"]
    ds = xr.Dataset(
        {"score": ("example_id", np.zeros(5)), "failed_unit": ("failure", ["d"])},
        coords={"example_id": [f"p{i}" for i in range(5)], "clip": ("example_id", clips)},
    )
    assert counts(ds) == "3 clips, 5 prompts, 1 failed clips"
    assert metric_of(ds) == "score"  # none recorded
    assert metric_of(ds.assign_attrs(metric="exact_match")) == "exact_match"
    assert metric_of(ds.assign_coords(metric="token_f1").assign_attrs(metric="exact_match")) == "token_f1"


@dataclass
class Settings(FramesConfig):
    adapters: tuple[str, ...] = ("real", "blank")
    qa_per_type: int = 2
    layers: int = 3


def probe(example, *, frames: int, adapters, prompts, partners) -> None:
    """A probe's signature: positional inputs, then the keywords a run fills."""


def test_a_probe_run_fills_exactly_the_probes_keywords_from_the_settings():
    assert keywords(probe) == {"frames", "adapters", "prompts", "partners"} and keywords(None) == frozenset()
    partners = {"world-1": "world-2"}
    run = ProbeRun(Settings(frames=4), None, {}, None, partners, keywords(probe))
    filled = run.kwargs()
    assert set(filled) == keywords(probe)  # not layers, seed, ...: settings the probe does not take
    assert (
        filled["frames"] == 4 and filled["adapters"] == ("real", "blank") and filled["partners"] is partners
    )
    assert filled["prompts"] == PromptSet(2, None)
    reordered = ProbeRun(Settings(adapters=("blank", "real")), None, {}, None, {}, keywords(probe))
    assert reordered.kwargs()["adapters"] == ("real", "blank")  # checked: in the controls' order
    with pytest.raises(ValueError, match="unknown adapters"):
        ProbeRun(Settings(adapters=("real", "nonsense")), None, {}, None, {}, keywords(probe)).kwargs()
