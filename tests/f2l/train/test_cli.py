"""The command line (f2l.train.cli): preset, then YAML, then flags."""

from __future__ import annotations

import pytest

from f2l.train import PRESETS, parse_config

pytestmark = pytest.mark.slow


def test_config_layers_preset_yaml_and_flags(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("steps: 77\nlr: 0.01\n")
    cfg = parse_config(["--preset", "smolvlm2-500m", "--config", str(yaml_file), "--lr", "0.02"])
    assert cfg.frames == PRESETS["smolvlm2-500m"]["frames"] == 12 and cfg.bf16
    assert cfg.steps == 77 and cfg.lr == 0.02
    yaml_file.write_text("stepz: 1\n")
    with pytest.raises(SystemExit):
        parse_config(["--config", str(yaml_file)])
