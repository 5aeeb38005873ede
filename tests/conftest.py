"""Shared fixtures: a randomly initialised tiny SmolVLM2 (fast, for wiring tests) and the shipped,
trained tiny base (for tests of real behaviour)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The suite runs as two pytest-xdist workers (pyproject's addopts), one per core: each worker and every
# process it starts (torchrun ranks, CLI runs) keeps to one thread, since two workers of two threads on
# two cores wait on each other's threads. Run alone (`-n 0`), a test process takes both cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """For modules that generate with 128-wide models: a second thread gains nothing there, and on a
    shared machine the threads' waiting for each other costs up to 100x. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def random_tiny_dir(tmp_path_factory):
    """An untrained tiny SmolVLM2 checkpoint directory built from nothing, as the pretrain script does."""
    from f2l.models.tiny import PRESETS, build_untrained, save_checkpoint
    from f2l.world import split_seeds, world_text_corpus

    model, processor = build_untrained(PRESETS["tiny"], world_text_corpus(split_seeds("train", 200)), seed=0)
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("random_tiny"))


@pytest.fixture(scope="session")
def random_base(random_tiny_dir):
    from f2l.models import load_base

    return load_base(random_tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def base_f64(random_tiny_dir):
    """A private float64 copy of the random tiny base (one per test module), so that the probes' identities
    and sums hold to float64 precision."""
    from f2l.models import load_base

    base = load_base(random_tiny_dir, device="cpu")
    base.model.double()
    return base


@pytest.fixture(scope="module")
def adapter_f64(base_f64):
    """A random adapter on every projection of ``base_f64``, in float64."""
    from support import random_adapter

    return random_adapter(base_f64.model).to(torch.float64)


@pytest.fixture(scope="module")
def random_video(base_f64):
    """Two frames of random pixels at ``base_f64``'s image size (``support.random_frames``, seed 0)."""
    from support import random_frames

    return random_frames(size=base_f64.model.config.vision_config.image_size)


@pytest.fixture(scope="module")
def capture_f64(base_f64):
    """The probes' nnsight reader of ``base_f64``'s residual stream (``probes.hooks.NNsightCapture``)."""
    from probes.hooks import NNsightCapture

    return NNsightCapture(base_f64.model)


@pytest.fixture(scope="module")
def runs_f64(base_f64, random_video, adapter_f64):
    """For each of ``support.QUESTIONS`` teacher-forced on its ``support.ANSWERS``: the direct (video in
    context), f2l (``adapter_f64``) and base runs by name, as ``probes.patching.make_runs`` aligns them."""
    from support import ANSWERS, QUESTIONS

    from probes.patching import make_runs

    return [
        make_runs(base_f64, q, a, random_video, adapter_f64) for q, a in zip(QUESTIONS, ANSWERS, strict=True)
    ]


@pytest.fixture(scope="module")
def loud_random_f2l(random_tiny_dir):
    """A private copy of the random tiny base (adapters install wrappers in it) and a random hypernetwork
    whose B heads are far from zero (std 2), so that its adapters visibly change the answers."""
    from f2l.hypernet import HypernetConfig, PerceiverHypernet
    from f2l.models import load_base
    from f2l.pipeline import Frames2LoRA

    base = load_base(random_tiny_dir, device="cpu")
    torch.manual_seed(0)
    hypernet = PerceiverHypernet(HypernetConfig.for_base(base, "random-tiny", width=64, num_latents=8))
    with torch.no_grad():
        for head in hypernet.head_b.values():
            torch.nn.init.normal_(head.weight, std=2.0)
    return Frames2LoRA(base, hypernet, hypernet_id="random-tiny")


@pytest.fixture(scope="session")
def tiny_base():
    """The shipped, trained tiny base."""
    from f2l.models import load_base

    return load_base("tiny", device="cpu")


@pytest.fixture(scope="session")
def small_base():
    """The shipped second-scale base (grown from the tiny)."""
    from f2l.models import load_base

    return load_base("small", device="cpu")


# Test data written by the authors' official code, kept beside the checkout and never regenerated here
# (its README states the format): a checkpoint at the tiny base's shapes and its outputs for given inputs.
OFFICIAL_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official-frames2lora"


@pytest.fixture(scope="session")
def official_fixtures() -> Path:
    return OFFICIAL_FIXTURES


@pytest.fixture(scope="session")
def official_checkpoint() -> Path:
    """The official code's pickled hypernetwork checkpoint (random, non-initial weights)."""
    return OFFICIAL_FIXTURES / "tiny-official.pt"


@pytest.fixture(scope="session")
def official_hypernet(official_checkpoint, tmp_path_factory) -> Path:
    """That checkpoint converted for the shipped tiny base: an official-kind hypernetwork directory
    (untrained: garbage answers, real wiring; down_proj only, rank 2r with a static block)."""
    from f2l.convert import convert_official

    return convert_official(
        official_checkpoint, tmp_path_factory.mktemp("official") / "tiny-official", base="tiny"
    )
