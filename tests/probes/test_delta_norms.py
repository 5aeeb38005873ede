"""Delta-W norms: the rank-space norms against a dense computation, the stable rank's range and its two
extremes, the base weights' norms, and the study command end to end on the shipped tiny checkpoints
(batched internalization against one clip at a time, Markdown, resume, a failing clip failing alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from f2l.adapter import TARGET_MODULES, Adapter, install_lora, text_model_of
from f2l.adapter.lora import SUBLAYER
from f2l.data import load_frames, world_manifest
from f2l.models import load_base
from f2l.pipeline import Frames2LoRA
from f2l.results import read_netcdf
from probes.delta_norms import adapter_norms, weight_fro

pytestmark = pytest.mark.usefixtures("one_thread")


def random_adapter(
    model, rank: int, seed: int, scaling: float | torch.Tensor, batch: int | None = None
) -> Adapter:
    """Gaussian factors shaped for ``model``'s text layers (``batch`` samples when given)."""
    text = text_model_of(model)
    g = torch.Generator().manual_seed(seed)
    lead = (len(text.layers), rank) if batch is None else (batch, len(text.layers), rank)
    factors = {}
    for m in TARGET_MODULES:
        lin = getattr(getattr(text.layers[0], SUBLAYER[m]), m)
        factors[m] = (
            torch.randn(*lead, lin.in_features, generator=g),
            torch.randn(*lead, lin.out_features, generator=g),
        )
    return Adapter(factors, scaling=scaling)


def dense_norms(adapter: Adapter, module: str, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``||dW||_F`` and ``||dW||_2`` from the formed ``d_out x d_in`` matrix (per sample when batched)."""
    dw = adapter.to(torch.float64).delta_weight(module, layer)
    return torch.linalg.matrix_norm(dw, "fro"), torch.linalg.matrix_norm(dw, 2)


@pytest.mark.parametrize(
    "batch, scaling", [(None, 0.5), (3, torch.tensor([0.5, -2.0, 3.0]))], ids=["single", "batched"]
)
def test_norms_match_a_dense_computation(random_base, batch, scaling):
    rank = 4
    adapter = random_adapter(random_base.model, rank, seed=1, scaling=scaling, batch=batch)
    norms = adapter_norms(adapter)
    lead = () if batch is None else (batch,)
    assert {k: v.shape for k, v in norms.items()} == dict.fromkeys(
        ("fro_norm", "spectral_norm", "stable_rank"), (*lead, adapter.num_layers, len(TARGET_MODULES))
    )
    for j, m in enumerate(adapter.modules):
        for layer in range(adapter.num_layers):
            fro, spectral = dense_norms(adapter, m, layer)
            np.testing.assert_allclose(norms["fro_norm"][..., layer, j], fro.numpy(), rtol=1e-6)
            np.testing.assert_allclose(norms["spectral_norm"][..., layer, j], spectral.numpy(), rtol=1e-6)
            np.testing.assert_allclose(
                norms["stable_rank"][..., layer, j], (fro**2 / spectral**2).numpy(), rtol=1e-6
            )
    # Gaussian rank-4 factors spread their energy: strictly between one direction and four
    assert (norms["stable_rank"] > 1.2).all() and (norms["stable_rank"] < rank).all()


def test_stable_rank_extremes_one_direction_all_directions_and_none():
    d, r, layers = 12, 3, 2
    eye = torch.eye(d)[:r].expand(layers, r, d)
    one = torch.zeros(layers, r, d)
    one[:, 0, 5] = 2.0  # a single nonzero row: dW has one direction
    zero = torch.zeros(layers, r, d)
    adapter = Adapter(
        {"q_proj": (eye, eye), "k_proj": (one, torch.randn(layers, r, d)), "v_proj": (zero, zero)}
    )
    norms = adapter_norms(adapter)
    np.testing.assert_allclose(norms["stable_rank"][:, 0], r, rtol=1e-12)  # r equal orthogonal directions
    np.testing.assert_allclose(norms["stable_rank"][:, 1], 1.0, rtol=1e-12)
    assert np.isnan(norms["stable_rank"][:, 2]).all() and (norms["fro_norm"][:, 2] == 0).all()


def test_weight_fro_is_the_frozen_weights_norm_wrapped_or_not(random_tiny_dir):
    base = load_base(random_tiny_dir, device="cpu")  # a private copy: LoRA wrappers are installed below
    layers = text_model_of(base.model).layers
    plain = weight_fro(base.model, TARGET_MODULES)
    assert plain.shape == (len(layers), len(TARGET_MODULES))
    np.testing.assert_allclose(
        plain[2, TARGET_MODULES.index("up_proj")], float(layers[2].mlp.up_proj.weight.double().norm())
    )
    install_lora(base.model)
    np.testing.assert_array_equal(weight_fro(base.model, TARGET_MODULES), plain)


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
