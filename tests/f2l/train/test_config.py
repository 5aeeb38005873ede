"""The run config (f2l.train.config): older runs' flat configs read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from f2l.train import parse_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("recorded", "shipped"),
    [
        # the first shipped tiny hypernetwork's train_config (1,500 steps; replaced by the 3,000-step one,
        # of the same architecture), kept for this check
        (Path(__file__).parents[2] / "helpers" / "first_tiny_train_config.json", "tiny-hypernet"),
        (None, "paper-tiny-hypernet"),
    ],
)
def test_an_older_runs_flat_config_reads_back_to_the_architecture_it_trained(recorded, shipped, tmp_path):
    """Hypernetworks trained before the per-kind sections recorded a flat train_config (width, latents,
    blocks, targets, ...). Read with --config it builds exactly the shipped hypernetwork's config and
    parameter shapes, and the run's config.json form reads back."""
    import json

    from f2l.config import config_dict
    from f2l.hypernet import load_hypernet
    from f2l.models import CHECKPOINTS_DIR, load_base
    from f2l.train import build_hypernet

    directory = CHECKPOINTS_DIR / shipped
    meta = json.loads((directory / "hypernet_config.json").read_text())
    train_config = json.loads(recorded.read_text()) if recorded else meta["train_config"]
    assert "width" in train_config and "f2l" not in train_config  # the older, flat form
    old = tmp_path / "config.json"
    old.write_text(json.dumps(train_config))
    cfg = parse_config(["--config", str(old)])
    built = build_hypernet(cfg, load_base(cfg.base))
    trained = load_hypernet(directory)
    assert built.config == trained.config
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in trained.state_dict().items()
    }
    new = tmp_path / "new.json"
    new.write_text(json.dumps(config_dict(cfg)))
    assert parse_config(["--config", str(new)]) == cfg
