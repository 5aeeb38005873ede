"""Every command ends a user's mistake in one line on stderr and status 2; --debug and bugs keep tracebacks."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import yaml
from support import REPO

from f2l import ask, cli, train
from f2l.video import VideoDecodeError
from f2l.world.splits import split_seeds

# every study and probe command: the modules of analyses/ and probes/ that run as a program
PROGRAMS = sorted(
    f"{path.parent.name}.{path.stem}"
    for folder in ("analyses", "probes")
    for path in (REPO / folder).glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)
COMMANDS = [
    ("f2l.ask", []),
    ("f2l.infer", []),
    ("f2l.context", []),
    ("f2l.convert", ["official"]),
    ("f2l.data.__main__", ["convert"]),
    ("f2l.data.__main__", ["world"]),
    ("f2l.data.__main__", ["check"]),
    ("f2l.train", []),
    ("f2l.basetrain.pretrain", []),
    ("f2l.basetrain.recipe", []),
    ("f2l.models.shapes", []),
    ("analyses.figures.__main__", []),
    *((module, []) for module in PROGRAMS),
]


def test_the_program_list_finds_the_studies_and_probes():
    assert {"analyses.benchmark", "analyses.ablations", "probes.linear_probes", "probes.direction"} <= set(
        PROGRAMS
    )


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture
def empty_video(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    return path


@pytest.mark.parametrize(("module", "sub"), COMMANDS)
def test_every_command_takes_debug(module, sub, capsys):
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main([*sub, "--help"])
    assert exit_.value.code == 0 and "--debug" in capsys.readouterr().out


def test_an_unreadable_video_is_one_line_from_the_command_line(tmp_path, empty_video):
    done = subprocess.run(
        [sys.executable, "-m", "f2l.ask", "--video", str(empty_video), "--question", "q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        one_error_line(done.stderr)
        == f"error: cannot decode video '{empty_video}': the file is empty (0 bytes)\n"
    )


def test_a_garbage_video_is_one_line_and_debug_shows_the_traceback(tmp_path, empty_video, capsys):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    assert ask.main(["--video", str(garbage), "--question", "q"]) == 2
    assert "not a readable video container" in one_error_line(capsys.readouterr().err)
    with pytest.raises(VideoDecodeError, match="the file is empty"):
        ask.main(["--video", str(empty_video), "--question", "q", "--debug"])


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--world-seed", "-5"], "argument --world-seed: must be a non-negative integer, not -5"),
        (["--world-seed", "1", "--frames", "0"], "argument --frames: must be a positive integer, not 0"),
    ],
)
def test_bad_flag_values_are_refused_at_parse_time(flag, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        ask.main([*flag, "--question", "q"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(f"python -m f2l.ask: error: {message}\n")


def test_a_missing_hypernetwork_is_one_line(tmp_path, capsys):
    assert ask.main(["--world-seed", "1", "--question", "q", "--hypernet", str(tmp_path / "none")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: no hypernetwork at {tmp_path}/none ")


def test_a_study_without_its_manifest_is_one_line(tmp_path, capsys):
    benchmark = importlib.import_module("analyses.benchmark")
    missing = tmp_path / "missing.jsonl"
    assert benchmark.main(["--manifest", str(missing), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err  # after the pipeline's loading progress bars
    assert err.endswith(f"\nerror: {missing}: No such file or directory\n") and "Traceback" not in err


def test_train_config_mistakes(tmp_path, capsys):
    unknown, broken = tmp_path / "unknown.yaml", tmp_path / "broken.yaml"
    unknown.write_text("lrr: 0.1\n")
    broken.write_text("lr: [0.1\n")
    with pytest.raises(SystemExit) as exit_:
        train.main(["--config", str(unknown)])
    assert exit_.value.code == 2 and capsys.readouterr().err.endswith("unknown keys ['lrr']\n")
    assert train.main(["--config", str(broken)]) == 2
    assert f'"{broken}", line 2' in one_error_line(capsys.readouterr().err)
    assert train.main(["--config", str(tmp_path / "absent.yaml")]) == 2
    assert (
        one_error_line(capsys.readouterr().err)
        == f"error: {tmp_path}/absent.yaml: No such file or directory\n"
    )
    with pytest.raises(yaml.YAMLError):
        train.main(["--config", str(broken), "--debug"])


def test_a_bug_keeps_its_traceback(monkeypatch, empty_video):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug in f2l")

    monkeypatch.setattr(ask, "load_video", bug)
    with pytest.raises(RuntimeError, match="a bug in f2l"):
        ask.main(["--video", str(empty_video), "--question", "q"])


def test_only_f2ls_own_value_errors_are_mistakes(capsys):
    assert cli.entry_point(lambda argv: len(split_seeds("test", 10**6)))([]) == 2
    assert "split 'test' has 10000 seeds" in one_error_line(capsys.readouterr().err)
    with pytest.raises(json.JSONDecodeError):  # a ValueError raised inside a library
        cli.entry_point(lambda argv: json.loads("{"))([])
    for bug in (TypeError, AssertionError, KeyError):

        def main(argv, bug=bug):
            raise bug("not the user's")

        with pytest.raises(bug):
            cli.entry_point(main)([])


def test_typed_errors_are_matched_by_their_defining_module():
    for name, module in cli.TYPED_ERRORS.items():
        assert issubclass(getattr(importlib.import_module(module), name), Exception)
    assert cli.is_user_error(importlib.import_module("f2l.results").StudyConfigError("other config"))
    assert not cli.is_user_error(type("StudyConfigError", (RuntimeError,), {"__module__": "elsewhere"})())


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, empty_video, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ask, "load_video", interrupt)
    assert ask.main(["--video", str(empty_video), "--question", "q"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        ask.main(["--video", str(empty_video), "--question", "q", "--debug"])
