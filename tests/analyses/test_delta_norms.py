"""``python -m analyses.delta_norms`` end to end on the shipped tiny checkpoints: batched internalization
against one clip at a time formed densely, the Markdown summary, resume, and a failing clip failing alone;
and the summary's numbers on a synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from figure_datasets import MODULES, delta_norms_dataset
from support import dense_norms

from analyses.delta_norms import TITLES, summary
from f2l.data import load_frames, world_manifest
from f2l.pipeline import Frames2LoRA
from f2l.results import read_netcdf
from probes.delta_norms import weight_fro

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_batches_resume_and_failures(tmp_path, monkeypatch):
    import analyses.delta_norms as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "3", "--batch-size", "2", "--device", "cpu"]
    assert study.main(argv) == 0  # batches [c0, c1], [c2]
    ds = read_netcdf(out / "delta_norms.nc")
    examples = world_manifest("test", 3)
    assert dict(ds.sizes) == {"clip": 3, "layer": 4, "module": 7, "failure": 0}
    assert list(ds["clip"].values) == [e.id for e in examples]
    assert ds.attrs["rank"] == 8 and ds.attrs["hypernet"].startswith("tiny-hypernet@")
    for name in ("fro_norm", "spectral_norm", "stable_rank", "relative_fro", "weight_fro"):
        assert ("units" in ds[name].attrs) and bool(ds[name].notnull().all())

    # each clip alone, its update formed densely: the same numbers as the batched, rank-space study
    pipeline = Frames2LoRA.from_pretrained("tiny", device="cpu")
    size = pipeline.base.model.config.vision_config.image_size
    for e in examples:
        adapter = pipeline.internalize(load_frames(e, num_frames=8, size=size))
        for m in ("q_proj", "down_proj"):
            for layer in (0, 3):
                fro, spectral = dense_norms(adapter, m, layer)
                cell = ds.sel(clip=e.id, layer=layer, module=m)
                np.testing.assert_allclose(float(cell["fro_norm"]), float(fro), rtol=1e-4)
                np.testing.assert_allclose(float(cell["spectral_norm"]), float(spectral), rtol=1e-4)
    np.testing.assert_allclose(ds["weight_fro"].values, weight_fro(pipeline.base.model, ds["module"].values))
    xr.testing.assert_allclose(ds["relative_fro"], ds["fro_norm"] / ds["weight_fro"])
    assert float(ds["stable_rank"].min()) >= 1.0 - 1e-9 and float(ds["stable_rank"].max()) <= 8.0
    assert (ds["fro_norm"] >= ds["spectral_norm"] * (1 - 1e-12)).all() and (ds["spectral_norm"] > 0).all()

    summary = (out / "delta_norms.md").read_text()
    assert "| layer | q_proj | k_proj | v_proj | o_proj | gate_proj | up_proj | down_proj |" in summary
    assert f"| 0 | {float(ds['fro_norm'].sel(layer=0, module='q_proj').mean()):.3f} |" in summary

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "delta_norms", must_not_run)
    assert study.main(argv) == 0
    xr.testing.assert_equal(read_netcdf(out / "delta_norms.nc").drop_dims("failure"), ds.drop_dims("failure"))

    # a clip that raises fails alone: the clips batched with it are still measured
    from probes.delta_norms import delta_norms

    bad = examples[1].id

    def fails_on_bad(pipeline, clips, **kwargs):
        if bad in [e.id for e in clips]:
            raise RuntimeError("undecodable video")
        return delta_norms(pipeline, clips, **kwargs)

    monkeypatch.setattr(study, "delta_norms", fails_on_bad)
    other = tmp_path / "failing"
    assert study.main(["--out", str(other), *argv[2:4], "--batch-size", "3", "--device", "cpu"]) == 0
    failed = read_netcdf(other / "delta_norms.nc")
    assert list(failed["clip"].values) == [examples[0].id, examples[2].id]
    assert list(failed["failed_unit"].values) == [bad] and "undecodable video" in str(
        failed["error"].values[0]
    )
    np.testing.assert_allclose(
        failed["fro_norm"].values, ds["fro_norm"].sel(clip=failed["clip"]).values, rtol=1e-4
    )


def test_summary_tables_each_norms_mean_across_clips_and_the_stable_ranks_range():
    ds = delta_norms_dataset(n_clips=3, layers=4)
    ds.attrs["rank"] = 8
    text = summary(ds)
    assert text.startswith("# Delta-W norms\n")
    assert "3 clips, adapter rank 8, 0 failed clips. Means across clips." in text
    stable = ds["stable_rank"].values
    assert (
        f"Stable rank over every clip, layer and module: min {stable.min():.6f}, max {stable.max():.6f}."
        in text
    )
    header = "| layer | " + " | ".join(MODULES) + " |"
    for name, title in TITLES.items():
        section = text.split(f"Mean {title}:\n")[1].split("\nMean ")[0]
        assert header in section, name
        mean = ds[name].values.mean(0)  # (layer, module), across clips
        for layer in range(4):
            row = f"| {layer} | " + " | ".join(f"{v:.3f}" for v in mean[layer]) + " |"
            assert row in section, (name, layer)
