"""``python -m analyses.logit_lens`` end to end on the shipped tiny checkpoints (the dataset, the trained
adapter raising the video's answer, the Markdown summary, resume), and the summary's numbers on a
synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from figure_datasets import finish, logit_lens_dataset
from support import clip_mean_se_by_hand

from analyses.logit_lens import summary
from f2l.data import clip_prompts, world_manifest
from f2l.results import read_netcdf

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.logit_lens as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "1", "--prompts-per-clip", "3", "--frames", "4"]
    argv += ["--max-new-tokens", "8", "--device", "cpu"]
    assert study.main(argv) == 0
    ds = read_netcdf(out / "logit_lens.nc")
    example = world_manifest("test", 1)[0]
    assert dict(ds.sizes) == {"example_id": 3, "adapter": 3, "run": 3, "layer": 5, "failure": 0}
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in clip_prompts(example)[:3]]
    assert list(ds["adapter"].values) == ["real", "swapped", "blank"]
    assert ds.attrs["base_model"].startswith("tiny@") and ds.attrs["backend"] == "nnsight"
    assert (out / "logit_lens_answer.png").exists() and (out / "logit_lens_kl.png").exists()
    np.testing.assert_array_equal(ds["kl"].isel(layer=-1), 0.0)
    np.testing.assert_array_equal(ds["rank"].isel(layer=-1).sel(run="direct"), 0.0)
    for run in ("direct", "base"):  # no adapter in these runs: the same under every label
        for control in ("swapped", "blank"):
            xr.testing.assert_equal(
                ds["logp"].sel(run=run, adapter=control, drop=True),
                ds["logp"].sel(run=run, adapter="real", drop=True),
            )
    # the trained adapter raises the video's answer over the base run; another clip's adapter does not
    # raise it as much
    logp = ds["logp"].isel(layer=-1).sel(run="f2l").mean("example_id")
    assert float(logp.sel(adapter="real")) > float(
        ds["logp"].isel(layer=-1).sel(run="base", adapter="real").mean()
    )
    assert float(logp.sel(adapter="real")) > float(logp.sel(adapter="swapped"))

    summary = (out / "logit_lens.md").read_text()
    assert "| layer | direct | base | f2l | f2l swapped | f2l blank |" in summary
    prob = ds["prob"].sel(layer=2, run="f2l", adapter="swapped").mean("example_id")
    section = summary.split("## Probability")[1].split("##")[0]
    assert f"| {float(prob):.3f} ± nan |" in section

    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "logit_lens", must_not_run)
    assert study.main(argv) == 0
    again = read_netcdf(out / "logit_lens.nc")
    xr.testing.assert_equal(again.drop_dims("failure"), ds.drop_dims("failure"))


def test_summary_tables_each_routes_clip_mean_and_standard_error_per_layer():
    """On a synthetic dataset of the study's schema: a row per layer and a column per route (direct, base,
    f2l under each adapter), each cell the mean ± standard error across clips of each clip's mean."""
    ds = logit_lens_dataset(n_clips=3)
    text = summary(ds)
    assert text.startswith("# Logit lens: direct, f2l and base runs read out layer by layer\n")
    assert f"3 clips, {ds.sizes['example_id']} prompts, 0 failed clips" in text
    routes = [("direct", "real"), ("base", "real"), ("f2l", "real"), ("f2l", "swapped"), ("f2l", "blank")]
    for name, title, fmt in (
        ("prob", "## Probability", ".3f"),
        ("rank", "## Rank", ".1f"),
        ("kl", "## KL", ".3f"),
    ):
        section = text.split(title)[1].split("##")[0]
        assert "| layer | direct | base | f2l | f2l swapped | f2l blank |" in section
        for layer in ds["layer"].values:
            cells = [
                clip_mean_se_by_hand(ds[name].sel(run=r, adapter=a, layer=layer), fmt) for r, a in routes
            ]
            assert f"| {layer} | {' | '.join(cells)} |" in section, (name, layer)
    final = text.split("## KL")[1].split("\n| 4 |")[1].split("\n")[0]
    assert final == " 0.000 ± 0.000 |" * 5  # every run's own final distribution: KL 0
    assert summary(finish(xr.Dataset(), failed=2)).endswith("No clip finished; 2 failed.\n")
