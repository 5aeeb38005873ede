"""Delta-W norms: the rank-space norms against a dense computation, the stable rank's range and its two
extremes, and the base weights' norms (the study command: tests/analyses/test_delta_norms.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import dense_norms

from f2l.adapter import TARGET_MODULES, Adapter, install_lora, text_model_of
from f2l.adapter.lora import SUBLAYER
from f2l.models import load_base
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
