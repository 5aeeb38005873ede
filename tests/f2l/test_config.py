"""One config dataclass per program: preset, then YAML, then flags."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from f2l.cli import UsageError, positive_int
from f2l.config import (
    NOT_A_SETTING,
    Subcommand,
    config_dict,
    config_program,
    parse_command,
    parse_config,
    parse_subcommand,
    setting,
)


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
    yaml_file.write_text("clips: 50\nout: elsewhere\nmargin: 1e-3\n")  # YAML 1.1 reads 1e-3 as text
    cfg = parse(["--preset", "big", "--config", str(yaml_file), "--out", "final"])
    assert (cfg.clips, cfg.frames, cfg.out, cfg.margin) == (50, (12, 64, 256, 1024), "final", 0.001)
    yaml_file.write_text("margin: wide\n")
    with pytest.raises(ValueError, match="margin: 'wide' is not a number"):
        parse(["--config", str(yaml_file)])


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


@dataclass
class Inner:
    size: int = 3
    found: int | None = field(default=None, metadata=NOT_A_SETTING)  # read off something else


@dataclass
class Section:
    width: int = 256
    names: tuple[str, ...] = ("a", "b")
    inner: Inner = field(default_factory=lambda: Inner(size=5))


@dataclass
class NestedConfig:
    preset: str = "base"
    steps: int = 10
    net: Section = field(default_factory=Section)


NESTED_PRESETS = {"base": {}, "narrow": {"net.width": 64, "net.inner.size": 7}}


def parse_nested(argv: list[str], upgrade=None) -> NestedConfig:
    return parse_config(
        NestedConfig, argv, prog="demo", presets=NESTED_PRESETS, default_preset="base", upgrade=upgrade
    )


def test_a_section_is_dotted_flags_nested_yaml_and_dotted_preset_keys(tmp_path: Path) -> None:
    assert parse_nested([]) == NestedConfig()  # a section starts from its field's own default
    assert parse_nested([]).net.inner.size == 5
    cfg = parse_nested(["--preset", "narrow", "--net.names", "q", "k", "--steps", "3"])
    assert cfg == NestedConfig(steps=3, preset="narrow", net=Section(64, ("q", "k"), Inner(size=7)))
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("net:\n  inner: {size: 9}\n  width: 32\n")
    cfg = parse_nested(["--preset", "narrow", "--config", str(yaml_file), "--net.width", "16"])
    assert (cfg.net.width, cfg.net.inner.size, cfg.net.names) == (16, 9, ("a", "b"))


def test_a_recorded_config_reads_back_and_settings_only_are_flags(tmp_path: Path, capsys) -> None:
    cfg = parse_nested(["--preset", "narrow", "--net.names", "x", "--steps", "4"])
    recorded = config_dict(cfg)
    assert recorded["net"] == {"width": 64, "names": ["x"], "inner": {"size": 7}}  # no `found`
    path = tmp_path / "config.json"
    path.write_text(json.dumps(recorded))
    assert parse_nested(["--config", str(path)]) == cfg
    with pytest.raises(SystemExit):
        parse_nested(["--net.inner.found", "3"])
    path.write_text(json.dumps({"net": {"widht": 3}}))
    with pytest.raises(SystemExit):
        parse_nested(["--config", str(path)])
    assert "unknown keys ['net.widht']" in capsys.readouterr().err


def test_upgrade_rewrites_an_older_form_before_the_unknown_key_check(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("steps: 2\nwidth: 48\n")

    def upgrade(values):
        return {("net.width" if k == "width" else k): v for k, v in values.items()}

    assert parse_nested(["--config", str(path)], upgrade=upgrade).net.width == 48
    with pytest.raises(SystemExit):
        parse_nested(["--config", str(path)])


@dataclass
class Block:
    width: int = 128  # hidden size of the block (in features)


@dataclass
class Commented:
    # a heading over the group below, not any one field's help
    steps: int = 10  # optimiser steps, 100% of them logged
    lr: float = 1e-3
    block: Block = field(default_factory=Block)


@dataclass
class Derived(Commented):
    lr: float = 3e-4  # the peak rate


def test_help_is_the_comment_on_each_fields_line(capsys) -> None:
    """Each flag's help is its field's inline comment (a subclass's wins; sections' dotted flags too;
    a heading comment above a field is no field's help), then its default."""
    with pytest.raises(SystemExit):
        parse_config(Derived, ["--help"], prog="demo")
    text = " ".join(capsys.readouterr().out.split())
    assert "--steps STEPS optimiser steps, 100% of them logged (default: 10)" in text
    assert "--lr LR the peak rate (default: 0.0003)" in text
    assert "--block.width BLOCK.WIDTH hidden size of the block (in features) (default: 128)" in text
    assert "heading" not in text
    with pytest.raises(SystemExit):
        parse_config(Commented, ["--help"], prog="demo")
    assert "--lr LR (default: 0.001)" in " ".join(capsys.readouterr().out.split())


@dataclass
class Comparison:
    run: str | None = None
    against: str | None = None
    frames: int = 8
    verbose: bool = False


def test_parse_command_takes_its_positional_fields_by_position_or_by_flag():
    def parse(*argv: str) -> Comparison:
        return parse_command(
            Comparison, list(argv), prog="compare", description="", positional=("run", "against")
        )

    cfg = parse("a.nc", "--verbose", "b.nc", "--frames", "4")
    assert (cfg.run, cfg.against, cfg.verbose, cfg.frames) == ("a.nc", "b.nc", True, 4)
    assert parse("--against", "b.nc", "--run=a.nc").run == "a.nc"  # either may be given as its flag
    assert parse("a.nc", "b.nc", "--no-verbose").verbose is False
    with pytest.raises(UsageError, match="required: against"):
        parse("a.nc")
    with pytest.raises(UsageError, match="unrecognized arguments: c.nc"):
        parse("a.nc", "b.nc", "c.nc")


@dataclass
class Check:
    files: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    root: str | None = None


def test_a_last_tuple_positional_takes_every_remaining_value_and_a_tuple_flag_its_run_of_values():
    def parse(*argv: str) -> Check:
        return parse_command(Check, list(argv), prog="check", positional=("files",))

    assert parse("a", "--tags", "x", "y", "--root", "r", "b") == Check(("a", "b"), ("x", "y"), "r")
    with pytest.raises(UsageError, match="required: files"):
        parse("--root", "r")


@dataclass
class Asked:
    video: str | None = None
    seed: int | None = setting(type=positive_int)
    size: str = setting("big", choices=("big", "small"))
    out: str | None = setting(required=True)


def test_a_settings_type_choices_and_required_are_argparse_errors(capsys):
    def parse(*argv: str) -> Asked:
        return parse_config(Asked, list(argv), prog="ask", one_of=(("video", "seed"),))

    assert parse("--seed", "3", "--out", "o") == Asked(seed=3, out="o")
    for argv, message in [
        (["--seed", "0", "--out", "o"], "argument --seed: must be a positive integer, not 0"),
        (["--seed", "1", "--size", "huge", "--out", "o"], "argument --size: invalid choice: 'huge'"),
        (["--seed", "1"], "the following arguments are required: --out"),
        (["--out", "o"], "one of the arguments --video --seed is required"),
        (["--video", "v", "--seed", "1", "--out", "o"], "argument --seed: not allowed with argument --video"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            parse(*argv)
        assert exit_.value.code == 2 and f"ask: error: {message}" in capsys.readouterr().err


def test_a_subcommand_picks_its_config_and_reads_the_rest():
    commands = {
        "check": Subcommand(Check, "check files", positional=("files",)),
        "ask": Subcommand(Asked, "ask"),
    }
    assert parse_subcommand(commands, ["check", "a", "b"], prog="p", description="") == (
        "check",
        Check(("a", "b")),
    )
    for argv in ([], ["nope"]):
        with pytest.raises(SystemExit) as exit_:
            parse_subcommand(commands, argv, prog="p", description="")
        assert exit_.value.code == 2


def test_a_config_program_parses_its_dataclass_and_runs_it(capsys):
    ran = []

    def run(cfg: DemoConfig) -> None:
        if cfg.clips > 50:
            raise UsageError("too many clips")
        ran.append(cfg)

    parse, main = config_program(DemoConfig, run, prog="demo", doc="Demo the program.\n\nMore prose.")
    assert parse(["--clips", "7"]) == DemoConfig(clips=7)
    assert main(["--clips", "7", "--full"]) == 0 and ran == [DemoConfig(clips=7, full=True)]
    assert main(["--clips", "99"]) == 2  # a user's mistake: one line (f2l.cli.entry_point)
    assert capsys.readouterr().err == "error: too many clips\n"
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    help_text = capsys.readouterr().out
    assert exit_.value.code == 0 and help_text.startswith("usage: demo ")
    assert "Demo the program." in help_text and "More prose." not in help_text
