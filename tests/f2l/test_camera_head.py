"""The auxiliary camera head: what it reads, where its gradient goes, and which videos it can label."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from f2l.camera_head import CameraHead, camera_classes
from f2l.data import world_manifest
from f2l.hypernet import HypernetConfig, PerceiverHypernet
from f2l.state_cache import as_layers
from f2l.world import CAMERAS, sample_truth


def test_the_heads_loss_moves_what_reads_the_states_and_not_what_writes_the_factors(random_base):
    torch.manual_seed(0)
    hypernet = PerceiverHypernet(HypernetConfig.for_base(random_base, "random-tiny", width=64, num_latents=8))
    model = CameraHead(hypernet).train()
    n, c = 3, hypernet.config
    states = as_layers(torch.randn(n, c.num_layers, 7, c.d_model), torch.ones(n, 7, dtype=torch.bool))
    factors, logits = model(None, states=states)
    assert logits.shape == (n, len(CAMERAS))
    plain = hypernet(None, states=states)  # the factors are the hypernetwork's own
    assert all(torch.equal(factors[m][i], plain[m][i]) for m in plain for i in (0, 1))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3, 4])).backward()
    assert hypernet.latents.grad.abs().sum() > 0 and hypernet.in_proj.weight.grad.abs().sum() > 0
    assert all(h.weight.grad is None for h in [*hypernet.head_a.values(), *hypernet.head_b.values()])


def test_camera_classes_are_the_world_truths_and_a_video_without_one_is_refused():
    pool = world_manifest("train", 6, frames=3)
    expected = [CAMERAS.index(sample_truth(e.video.world_seed).camera) for e in pool]
    assert camera_classes(pool).tolist() == expected
    with pytest.raises(ValueError, match="camera_weight needs world clips"):
        camera_classes([dataclasses.replace(pool[0], meta={})])  # a real video's record: no ground truth
