"""Linear probes of a base's visual tokens: the probe itself on known data, then the shipped base."""

from __future__ import annotations

import json

import pytest
import torch

from probes.linear_probes import ProbeConfig, fit_probe, run


def test_probe_reads_a_linear_label_and_not_a_random_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 16, generator=g)
    y = (x[:, :3] * torch.tensor([3.0, -2.0, 1.0])).argmax(1)  # a linear function of three features
    found = fit_probe(x, y, steps=200)
    assert found["accuracy"] > 0.9 and found["classes"] == 3 and found["n"] == 600
    noise = torch.randint(0, 3, (600,), generator=g)
    blind = fit_probe(x, noise, steps=200)
    assert abs(blind["accuracy"] - blind["baseline"]) < 0.12, blind  # nothing to read: about the baseline


@pytest.mark.slow
def test_shipped_base_knows_where_its_tokens_are_and_computes_motion_across_frames(tmp_path, one_thread):
    out = tmp_path / "probes.json"
    results = run(ProbeConfig(batches=20, batch_size=32, out=str(out)))
    cell = results["cell"]
    assert cell["accuracy"] > 3 / cell["classes"], cell
    motion = results["motion_by_layer"]
    # one frame's tokens say little about motion; after layer 2 the comparison across frames is there
    assert (
        motion[2]["accuracy"] > motion[0]["accuracy"] + 0.1
        and motion[2]["accuracy"] > motion[2]["baseline"] + 0.1
    )
    assert json.loads(out.read_text())["motion_by_layer"][2]["accuracy"] == motion[2]["accuracy"]
    # an object's own cells averaged (the named object's tokens found perfectly): its motion is there
    # after layer 2 and not in one frame's tokens
    objects = results["object_motion_by_layer"]
    assert objects[2]["n"] > 100 and objects[2]["classes"] == 5
    assert objects[2]["accuracy"] > max(objects[0]["accuracy"], objects[2]["baseline"]) + 0.1, objects
    # the answer position of "which way does the <object> move?": the video adds something after the
    # layers that compute motion (layer 2 on), above the same questions asked blind
    assert results["direction_answers"] == ["down", "in", "left", "out", "right", "still", "up"]
    seen, blind = results["direction_at_answer_by_layer"], results["direction_at_answer_blind_by_layer"]
    assert seen[0]["accuracy"] == blind[0]["accuracy"]  # embeddings of the same text: nothing seen yet
    assert max(s["accuracy"] - b["accuracy"] for s, b in zip(seen[2:], blind[2:], strict=True)) > 0.05


def test_a_camera_the_world_lacks_is_refused_before_loading_a_base():
    with pytest.raises(ValueError, match="--camera must be one of"):
        run(ProbeConfig(base="no-such-base", camera="sideways"))
