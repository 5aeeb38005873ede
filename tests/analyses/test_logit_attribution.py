"""``python -m analyses.logit_attribution`` end to end on the shipped tiny checkpoints (the dataset, the
Markdown summary, resume)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from f2l.data import clip_prompts, world_manifest
from f2l.results import read_netcdf
from probes.logit_attribution import (
    COMPONENTS,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.logit_attribution as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "1", "--max-new-tokens", "12", "--device", "cpu"]
    assert study.main(argv) == 0
    ds = read_netcdf(out / "logit_attribution.nc")
    example = world_manifest("test", 1)[0]
    prompts = clip_prompts(example)
    lengths = ds["answer_length"].values
    assert dict(ds.sizes) == {
        "example_id": len(prompts),
        "layer": 4,
        "component": 3,
        "position": lengths.max(),
        "failure": 0,
    }
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert list(ds["benchmark"].values) == [p.label for p in prompts]
    assert list(ds["component"].values) == list(COMPONENTS)
    assert ds.attrs["contrast"] == "rival" and ds.attrs["backend"] == "nnsight"
    assert ds.attrs["base_model"].startswith("tiny@") and "units" in ds["dla"].attrs

    # NaN exactly past each answer's end; the tokens spell the answer
    for i, n in enumerate(lengths):
        row = ds.isel(example_id=i)
        assert np.isfinite(row["dla"].isel(position=slice(0, n))).all()
        assert np.isnan(row["dla"].isel(position=slice(n, None))).all()
        assert "".join(row["answer_token"].values[:n]).strip() == str(row["prediction"].values)
        assert not any(row["answer_token"].values[n:])

    # the decomposition in the stored numbers: sublayers add up to the cumulative residual delta
    dla = ds["dla"]
    sublayers = dla.sel(component="attn") + dla.sel(component="mlp")
    np.testing.assert_allclose(
        dla.sel(component="resid").values,
        np.cumsum(sublayers.values, axis=sublayers.get_axis_num("layer")),  # NaN stays NaN
        atol=1e-5 * float(abs(dla).max()),
        equal_nan=True,
    )
    assert float(abs(dla).max()) > 0.1 and (ds["rms_ratio"] > 0).sum() == lengths.sum()

    summary = (out / "logit_attribution.md").read_text()
    assert "| layer | resid | attn | mlp |" in summary
    mean_mlp_0 = float(dla.sel(layer=0, component="mlp").mean("position").mean())
    assert f"| 0 | {float(dla.sel(layer=0, component='resid').mean('position').mean()):+.3f} ±" in summary
    assert f"{mean_mlp_0:+.3f} ±" in summary

    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])  # drawn once above is enough

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "logit_attribution", must_not_run)
    assert study.main(argv) == 0
    again = read_netcdf(out / "logit_attribution.nc")
    xr.testing.assert_equal(again.drop_dims("failure"), ds.drop_dims("failure"))

    # the TransformerLens bridge backend writes the same numbers on the shipped checkpoints
    monkeypatch.undo()
    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])
    bridge_out = tmp_path / "bridge"
    assert study.main(["--out", str(bridge_out), *argv[2:], "--backend", "transformer_lens"]) == 0
    bridged = read_netcdf(bridge_out / "logit_attribution.nc")
    assert bridged.attrs["backend"] == "transformer_lens"
    assert list(bridged["prediction"].values) == list(ds["prediction"].values)
    for name in ("dla", "logit_delta", "rms_ratio"):
        np.testing.assert_allclose(
            bridged[name].values,
            ds[name].values,
            rtol=0,
            atol=1e-4 * float(abs(ds[name]).max()),
            equal_nan=True,
        )
