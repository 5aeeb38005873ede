"""``python -m analyses.patching`` end to end on the shipped tiny checkpoints (the dataset, the Markdown
summary, resume)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from f2l.data import clip_prompts, world_manifest
from f2l.results import read_netcdf
from probes.patching import (
    DIRECTIONS,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.patching as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "1", "--prompts-per-clip", "4", "--max-new-tokens", "8"]
    assert study.main([*argv, "--device", "cpu"]) == 0
    ds = read_netcdf(out / "patching.nc")
    example = world_manifest("test", 1)[0]
    prompts = clip_prompts(example)[:4]
    sizes = {"example_id": 4, "adapter": 3, "layer": 5, "site": 3, "direction": 3, "run": 2, "failure": 0}
    assert dict(ds.sizes) == sizes and list(ds["adapter"].values) == ["real", "swapped", "blank"]
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert ds.attrs["base_model"].startswith("tiny@") and ds.attrs["backend"] == "nnsight"
    assert (out / "patching_restored.png").exists() and (out / "patching_effects.png").exists()
    final = ds["restored"].isel(layer=-1).sel(site="resid_pre")
    np.testing.assert_allclose(final.values[np.isfinite(final.values)], 1.0, atol=1e-3)
    assert np.isfinite(final.sel(adapter="real").values).sum() >= 4  # the trained adapter moves the logp
    # the negative controls: direct -> base uses no adapter, the same under every label; another clip's
    # adapter (the next test clip's) answers otherwise, and gives the video's answer less probability
    for name in ("logp_patched", "logp_source", "logp_target"):
        direct_base = ds[name].sel(direction="direct->base")
        for control in ("swapped", "blank"):
            xr.testing.assert_equal(
                direct_base.sel(adapter=control, drop=True), direct_base.sel(adapter="real", drop=True)
            )
    f2l_answers = ds["prediction"].sel(run="f2l")
    assert (f2l_answers.sel(adapter="swapped") != f2l_answers.sel(adapter="real")).sum() >= 3
    missed = ds["logp_target"].sel(direction="direct->f2l")  # the direct answer's logp in the f2l run
    assert float(missed.sel(adapter="real").mean()) > float(missed.sel(adapter="swapped").mean()) + 1.0

    summary = (out / "patching.md").read_text()
    assert "| layer | resid_pre | attn_out | mlp_out |" in summary
    for direction in DIRECTIONS:
        assert f"## {direction}:" in summary
    # one clip: each cell is that clip's mean over its prompts (no standard error across one clip)
    restored = ds["restored"].sel(layer=2, direction="f2l->base")
    means = restored.sel(adapter="real").mean("example_id", skipna=True).values
    row = "| 2 | " + " | ".join(f"{v:+.3f} ± nan" if np.isfinite(v) else "n/a" for v in means) + " |"
    assert row in summary.split("## f2l->base:")[1].split("##")[0]
    controls = summary.split("## Negative controls")[1]
    means = restored.sel(site="resid_pre").mean("example_id", skipna=True).values  # real, swapped, blank
    row = "| 2 | " + " | ".join(f"{v:+.3f} ± nan" if np.isfinite(v) else "n/a" for v in means) + " |"
    assert row in controls.split("### f2l->base: resid_pre restored, per adapter")[1].split("###")[0]

    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "patching", must_not_run)
    assert study.main([*argv, "--device", "cpu"]) == 0
    again = read_netcdf(out / "patching.nc")
    xr.testing.assert_equal(again.drop_dims("failure"), ds.drop_dims("failure"))
