"""What reaches the adapter: the labels and the reduction, then the shipped tiny hypernetwork."""

from __future__ import annotations

import json

import pytest
import torch

from probes.adapter_probes import AdapterProbeConfig, labels, main, principal_components, run


def test_labels_read_each_fact_off_the_ground_truth():
    truths = [
        {
            "camera": "still",
            "background": "red",
            "objects": [{"color": "blue", "shape": "star", "motion": "up"}],
        },
        {
            "camera": "zoom_in",
            "background": "red",
            "objects": [{"color": "green", "shape": "circle", "motion": "left"}, {}],
        },
    ]
    found = labels(truths)
    assert found["camera"][1] == ["still", "zoom_in"] and found["camera"][0].tolist() == [0, 1]
    assert found["background"][0].tolist() == [0, 0]
    assert found["object_color"][1] == ["blue", "green"]
    assert found["objects"][1] == ["1", "2"] and found["objects"][0].tolist() == [0, 1]


def test_principal_components_keep_the_large_directions():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(200, 3, generator=g) * torch.tensor([10.0, 5.0, 3.0])
    x = torch.cat([signal, 0.01 * torch.randn(200, 40, generator=g)], dim=1) + 7.0
    z = principal_components(x, 3)
    assert z.shape == (200, 3)
    assert z.mean(0).abs().max() < 1e-4  # centred
    # the three components span the three signal features: projecting them back loses under 0.1%
    fit = torch.linalg.lstsq(z, signal - signal.mean(0)).solution
    residual = (z @ fit - (signal - signal.mean(0))).square().sum() / (signal - signal.mean(0)).square().sum()
    assert residual < 1e-3
    assert principal_components(x[:5], 32).shape == (5, 5)  # never more components than clips


def test_too_few_clips_is_a_one_line_error(capsys):
    assert main(["--clips", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: need --clips >= 4")


@pytest.mark.slow
def test_the_shipped_tiny_hypernetwork_keeps_the_background_and_drops_the_camera(tmp_path, one_thread):
    """docs/hypernetworks.md, "Where it was lost: the hypernetwork": the base's states hold the camera's
    motion from layer 2 on and the adapter does not, while the background's colour is in all three sides."""
    out = tmp_path / "probes.json"
    facts = run(AdapterProbeConfig(clips=160, out=str(out)))["facts"]
    background, camera = facts["background"], facts["camera"]
    assert background["adapter"]["accuracy"] > background["adapter"]["baseline"] + 0.5, background["adapter"]
    assert background["latents"]["accuracy"] > background["latents"]["baseline"] + 0.5, background["latents"]
    assert max(s["accuracy"] for s in background["states_by_layer"]) > 0.8
    seen = max(s["accuracy"] for s in camera["states_by_layer"][2:])
    assert seen > camera["states_by_layer"][2]["baseline"] + 0.2  # the base has computed it
    assert camera["adapter"]["accuracy"] < seen - 0.2, (camera["adapter"], seen)  # and the adapter lost it
    assert json.loads(out.read_text())["facts"]["camera"]["classes"] == camera["classes"]
