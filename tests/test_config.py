"""One config dataclass per program: preset, then YAML, then flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from f2l.config import parse_config


@dataclass
class DemoConfig:
    preset: str = "small"
    out: str = "results"
    clips: int = 4
    margin: float = 0.05
    manifest: str | None = None
    frames: tuple[int, ...] = (12, 64)
    full: bool = False


PRESETS = {"small": {}, "big": {"clips": 100, "frames": (12, 64, 256, 1024)}}


def parse(argv: list[str]) -> DemoConfig:
    return parse_config(DemoConfig, argv, prog="demo", presets=PRESETS, default_preset="small")


def test_defaults_and_flags_are_typed() -> None:
    assert parse([]) == DemoConfig()
    cfg = parse(["--clips", "7", "--margin", "0.1", "--frames", "8", "16", "--full", "--manifest", "m.jsonl"])
    assert cfg == DemoConfig(clips=7, margin=0.1, frames=(8, 16), full=True, manifest="m.jsonl")
    assert parse(["--no-full"]).full is False


def test_preset_then_yaml_then_flags(tmp_path: Path) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("clips: 50\nout: elsewhere\n")
    cfg = parse(["--preset", "big", "--config", str(yaml_file), "--out", "final"])
    assert (cfg.clips, cfg.frames, cfg.out) == (50, (12, 64, 256, 1024), "final")


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("clipz: 50\n")
    with pytest.raises(SystemExit):
        parse(["--config", str(yaml_file)])
    assert "unknown keys ['clipz']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--preset", "huge"])
    assert "unknown preset 'huge'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--clips", "many"])
    yaml_file.write_text("!!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(Exception, match="could not determine a constructor"):
        parse(["--config", str(yaml_file)])
