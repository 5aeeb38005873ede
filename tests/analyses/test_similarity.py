"""``python -m analyses.similarity`` end to end on the shipped tiny checkpoints (the dataset, the
Markdown summary, resume), and the summary's numbers on a synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from figure_datasets import similarity_dataset
from support import clip_mean_se_by_hand

from analyses.similarity import summary
from f2l.results import read_netcdf
from probes.similarity import linear_cka

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.similarity as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "2", "--prompts-per-clip", "3", "--device", "cpu"]
    assert study.main(argv) == 0
    ds = read_netcdf(out / "similarity.nc")
    assert dict(ds.sizes) == {
        "example_id": 6,
        "adapter": 3,
        "layer": 5,
        "measure": 2,
        "run": 3,
        "hidden": 128,
        "failure": 0,
    }
    assert ds.attrs["base_model"].startswith("tiny@") and ds.attrs["backend"] == "nnsight"
    assert (out / "similarity_per_layer.png").exists() and (out / "similarity_cka.png").exists()
    # the CKA spans both clips (computed when the parts are merged)
    assert ds.attrs["cka_examples"] == 6 and np.isfinite(ds["cka"].values).all()
    summary = (out / "similarity.md").read_text()
    assert "| layer | cosine f2l | cosine base | share | CKA f2l | CKA base |" in summary
    cosine = ds["similarity"].sel(layer=4, measure="cosine", adapter="real")
    assert f"| 4 | {float(cosine.groupby('clip').mean().mean()):+.3f} ± " in summary
    # the negative controls: direct and base use no adapter, so their states are the same under every label;
    # the f2l run's differ, and the CKA is computed per adapter against the same direct states
    means = ds["mean_resid"]
    for control in ("swapped", "blank"):
        xr.testing.assert_equal(
            means.sel(adapter=control, run=["direct", "base"], drop=True),
            means.sel(adapter="real", run=["direct", "base"], drop=True),
        )
        assert (
            float(abs(means.sel(adapter=control, run="f2l") - means.sel(adapter="real", run="f2l")).max())
            > 0.1
        )
        cka = linear_cka(
            means.sel(adapter=control, run="f2l").transpose("layer", "example_id", "hidden").values,
            means.sel(adapter=control, run="direct").transpose("layer", "example_id", "hidden").values,
        )
        np.testing.assert_allclose(ds["cka"].sel(adapter=control), cka, rtol=1e-6)
    share = ds["similarity"].sel(measure="share", layer=4).groupby("clip").mean().mean("clip")
    controls = summary.split("## Negative controls")[1]
    header = "| layer | share real | share swapped | share blank | CKA real | CKA swapped | CKA blank |"
    assert header in controls
    line = next(line for line in controls.splitlines() if line.startswith("| 4 |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert [cell.split(" ± ")[0] for cell in cells[1:4]] == [f"{float(v):+.3f}" for v in share.values]
    assert cells[4:] == [f"{float(v):.3f}" for v in ds["cka"].sel(layer=4).values]

    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "clip_similarity", must_not_run)
    assert study.main(argv) == 0
    again = read_netcdf(out / "similarity.nc")
    xr.testing.assert_equal(again.drop_dims("failure"), ds.drop_dims("failure"))


def test_summary_tables_each_layers_cosine_share_and_cka_with_the_controls():
    """On a synthetic dataset of the study's schema: per layer the f2l and base cosines and the share
    (mean ± standard error across clips; the share is n/a at the embeddings, where the video moves
    nothing), the CKA of f2l and base, and the share and CKA under each adapter."""
    ds = similarity_dataset(n_clips=3)
    text = summary(ds)
    assert text.startswith("# Residual-stream similarity: the f2l run against the direct run\n")
    assert "| layer | cosine f2l | cosine base | share | CKA f2l | CKA base |" in text
    sim = ds["similarity"].sel(adapter="real")
    for layer in ds["layer"].values:
        share = sim.sel(layer=layer, measure="share")
        cells = [
            clip_mean_se_by_hand(sim.sel(layer=layer, measure="cosine")),
            clip_mean_se_by_hand(ds["cosine_base"].sel(layer=layer)),
            "n/a" if share.isnull().all() else clip_mean_se_by_hand(share),
            f"{float(ds['cka'].sel(layer=layer, adapter='real')):.3f}",
            f"{float(ds['cka_base'].sel(layer=layer)):.3f}",
        ]
        assert f"| {layer} | {' | '.join(cells)} |" in text, layer
    assert "| 0 | +1.000 ± 0.000 | " in text and " | n/a | 1.000 | 1.000 |" in text  # the same embeddings
    controls = text.split("## Negative controls")[1]
    adapters = ("real", "swapped", "blank")
    header = " | ".join([f"share {a}" for a in adapters] + [f"CKA {a}" for a in adapters])
    assert f"| layer | {header} |" in controls
    share = ds["similarity"].sel(measure="share", layer=3)
    cells = [clip_mean_se_by_hand(share.sel(adapter=a)) for a in adapters]
    cells += [f"{float(ds['cka'].sel(layer=3, adapter=a)):.3f}" for a in adapters]
    assert f"| 3 | {' | '.join(cells)} |" in controls
