from __future__ import annotations

import json
import subprocess
import sys

import pytest

from f2l import infer
from f2l.answer import answer
from f2l.data import Example, QAItem, VideoRef, clip_prompts, iter_prompts, world_manifest, write_manifest
from f2l.pipeline import Frames2LoRA

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipeline():
    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture
def asked(monkeypatch, pipeline):
    """Every run answers with the one loaded pipeline; the list collects the questions generated in batch."""
    monkeypatch.setattr(Frames2LoRA, "from_pretrained", lambda *args, **kwargs: pipeline)
    questions: list[str] = []
    batched = infer.generate

    def spy(base, qs, **kwargs):
        adapter = kwargs.get("adapter")
        if adapter is not None and adapter.batch_size is not None:  # f2l's batches: one adapter a row
            questions.extend(qs)
        return batched(base, qs, **kwargs)

    monkeypatch.setattr(infer, "generate", spy)
    return questions


@pytest.fixture
def manifest(tmp_path):
    return write_manifest(tmp_path / "m.jsonl", world_manifest("test", 3))


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def infer_args(manifest, out, *extra) -> list[str]:
    return ["--manifest", str(manifest), "--out", str(out), "--qa-per-type", "1", "--clips", "2", *extra]


def test_writes_one_row_per_prompt_with_the_adapter_only_answer(tmp_path, manifest, asked, pipeline):
    out = tmp_path / "p.jsonl"
    assert infer.main(infer_args(manifest, out)) == 0
    examples = world_manifest("test", 3)
    prompts = [p for e in examples for p in clip_prompts(e, 1)]
    got = rows(out)
    assert [r["key"] for r in got] == [f"{p.example.id}/{p.kind}/{p.item_id}" for p in prompts]
    assert len(asked) == len(prompts)  # batched: every question in batch generation
    raw = {r["id"]: r for r in map(json.loads, manifest.read_text().splitlines())}
    for row, p in zip(got, prompts, strict=True):
        adapter = pipeline.internalize(pipeline.example_frames(p.example, frames=8))
        assert row["prediction"] == pipeline.generate(adapter, p.prompt).text
        assert {k: row[k] for k in raw[p.example.id]} == raw[p.example.id]  # the input row's fields kept
        assert (row["prompt_text"], row["reference"], row["error"]) == (p.prompt, p.reference, None)
        assert row["input_tokens"]["f2l"]["visual"] == 0 and "direct" not in row["input_tokens"]
        assert row["ttft_s"] is None and "direct_prediction" not in row
        assert (
            row["adapter"]["frames"] == 8
            and row["adapter"]["video_id"] == f"world:{p.example.video.world_seed}"
        )
        assert row["run"]["hypernet"] == pipeline.hypernet_id and row["run"]["frames"] == 8


def test_resumes_after_a_torn_write_without_redoing_answered_prompts(tmp_path, manifest, asked, capsys):
    whole = tmp_path / "whole.jsonl"
    assert infer.main(infer_args(manifest, whole)) == 0
    total = len(asked)

    out = tmp_path / "p.jsonl"
    assert infer.main(infer_args(manifest, out, "--limit", "7")) == 0
    text = out.read_text()
    assert text.count("\n") == 7
    out.write_text(text[: len(text) - 40])  # killed while writing the 7th row: 6 rows and a torn line
    asked.clear()
    assert infer.main(infer_args(manifest, out)) == 0
    assert len(asked) == total - 6  # the torn row is redone, the 6 whole ones are not
    assert out.read_bytes() == whole.read_bytes()
    assert "resuming, 6 prompt(s) already answered" in capsys.readouterr().err

    asked.clear()
    assert infer.main(infer_args(manifest, out)) == 0  # nothing left to do
    assert asked == [] and out.read_bytes() == whole.read_bytes()

    capsys.readouterr()
    assert infer.main(infer_args(manifest, out, "--frames", "4")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs in ['frames']" in err and "--fresh" in err
    assert out.read_bytes() == whole.read_bytes()
    assert infer.main(infer_args(manifest, out, "--frames", "4", "--fresh", "--limit", "2")) == 0
    assert [r["run"]["frames"] for r in rows(out)] == [4, 4]


def test_an_unreadable_video_is_an_error_row_retried_on_the_next_run(tmp_path, asked):
    from f2l.video import write_video
    from f2l.world import render_clip

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video\xff" * 64)
    files = [
        Example(f"file-{name}", "files", VideoRef.file(f"{name}.mp4"), qa=(QAItem("q0", "what moves?", "x"),))
        for name in ("empty", "garbage", "missing")
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", [world_manifest("test", 1)[0], *files])
    out = tmp_path / "p.jsonl"
    assert infer.main(infer_args(manifest, out)) == 1
    got = {r["key"].split("/")[0]: r for r in rows(out)}
    assert len(rows(out)) == 11 + 3
    assert all(r["prediction"] for k, r in got.items() if k.startswith("world"))
    for name in ("empty", "garbage", "missing"):
        row = got[f"file-{name}"]
        assert row["prediction"] is None and row["error"].startswith("VideoDecodeError: cannot decode video")
        assert row["video"] == {"path": f"{name}.mp4", "start": None, "end": None}
    assert "no such file" in got["file-missing"]["error"]

    write_video(tmp_path / "missing.mp4", render_clip(1_010_001, num_frames=24, size=64).frames, fps=3.0)
    asked.clear()
    assert infer.main(infer_args(manifest, out)) == 1
    assert asked == ["what moves?"]  # only the videos that failed are tried again
    final = rows(out)
    assert len(final) == 14 and len({r["key"] for r in final}) == 14  # retried rows replace their errors
    fixed = next(r for r in final if r["key"] == "file-missing/qa/q0")
    assert fixed["error"] is None and fixed["prediction"] and fixed["adapter"]["frames"] == 8
    assert sum(r["error"] is not None for r in final) == 2


def test_timed_direct_rows_carry_ttft_and_tokens_per_method(tmp_path, manifest, asked, pipeline):
    timed, batched = tmp_path / "timed.jsonl", tmp_path / "batched.jsonl"
    assert infer.main(infer_args(manifest, timed, "--limit", "3", "--direct", "--timed")) == 0
    assert asked == []  # one call per prompt, no batch
    assert infer.main(infer_args(manifest, batched, "--limit", "3", "--direct")) == 0
    frames = pipeline.example_frames(world_manifest("test", 1)[0], frames=8)
    for t, b in zip(rows(timed), rows(batched), strict=True):
        assert (t["prediction"], t["direct_prediction"]) == (b["prediction"], b["direct_prediction"])
        assert t["direct_prediction"] == answer(pipeline.base, frames, t["prompt_text"]).text
        assert t["input_tokens"] == b["input_tokens"]  # counted in a batch as in a batch of one
        assert t["input_tokens"]["direct"]["visual"] == 8 * 16 and t["input_tokens"]["f2l"]["visual"] == 0
        for method in ("f2l", "direct"):
            assert 0 < t["ttft_s"][method] <= t["total_s"][method]
        assert b["ttft_s"] is None and b["total_s"] is None
        assert t["run"]["timed"] and not b["run"]["timed"]


def test_official_rows_keep_their_fields_and_share_their_video_adapter(tmp_path, asked, pipeline):
    from f2l.video import load_video, write_video
    from f2l.world import render_clip

    for name, seed in (("v1", 1_010_001), ("v2", 1_010_002)):
        write_video(
            tmp_path / "raw" / f"{name}.mp4", render_clip(seed, num_frames=24, size=64).frames, fps=3.0
        )
    toy = {"dataset": "toy", "split": "test"}
    lines = [
        {"id": "test-v1-c", "video_path": "raw/v1.mp4", "task_type": "caption", "prompt": "Describe the video.",
         "target_text": "a circle moves", "metadata": {"k": 1}, **toy},
        {"id": "test-v2-q", "video_path": "raw/v2.mp4", "question": "what color is it?", "answer": "red", **toy},
        {"id": "test-v1-q", "video_path": "raw/v1.mp4", "question": "what moves?", "answer": "it", **toy},
        {"id": "test-v3-q", "video_path": "raw/v3.mp4", "question": "what moves?", "answer": "it", **toy},
        {"id": "test-v2-c", "video_path": "raw/v2.mp4", "prompt": "Describe the background.", **toy},
    ]  # fmt: skip
    manifest = tmp_path / "official.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "p.jsonl"
    assert infer.main(["--manifest", str(manifest), "--out", str(out), "--data-root", str(tmp_path)]) == 1
    got = rows(out)
    assert [r["key"] for r in got] == [  # grouped by video: v1's caption and question, v2, then v3
        "test-v1-c/caption/caption",
        "test-v1-c/qa/test-v1-q",
        "test-v2-q/caption/caption",
        "test-v2-q/qa/test-v2-q",
        "test-v3-q/qa/test-v3-q",
    ]
    for row, line in zip(got, [lines[0], lines[2], lines[4], lines[1], lines[3]], strict=True):
        assert {k: row[k] for k in line} == line  # the official row's own fields, as written
    assert got[2]["reference"] == "" and "target_text" not in got[2]  # a row with no reference is answered
    assert asked == ["Describe the video.", "what moves?", "Describe the background.", "what color is it?"]
    for row in got[:4]:
        adapter = pipeline.internalize(load_video(tmp_path / row["video_path"], num_frames=8))
        assert row["prediction"] == pipeline.generate(adapter, row["prompt_text"]).text
    assert got[4]["prediction"] is None and "no such file" in got[4]["error"]


def test_input_rows_undo_a_reader_that_groups_rows_by_video(tmp_path):
    lines = [
        {"id": "r1", "video_path": "v.mp4", "question": "what is it?", "answer": "a cat", "extra": 1},
        {"id": "r2", "video_path": "w.mp4", "question": "what is it?", "answer": "a cat"},
        {"id": "r3", "video_path": "v.mp4", "question": "how many?", "answer": 2},
    ]
    path = tmp_path / "official.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    cat, many = QAItem("r1", "what is it?", "a cat"), QAItem("r3", "how many?", "2")
    examples = [  # what a reader grouping rows by video gives
        Example("r1", "d", VideoRef.file("v.mp4"), qa=(cat, many)),
        Example("r2", "d", VideoRef.file("w.mp4"), qa=(QAItem("r2", "what is it?", "a cat"),)),
    ]
    prompts = list(iter_prompts(examples))
    assert [r["id"] for r in infer.input_rows(path, examples, prompts)] == ["r1", "r3", "r2"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--manifest", "{m}", "--out", "{out}", "--frames", "0"],
        ["--manifest", "{m}", "--out", "{out}", "--bogus"],
        ["--manifest", "{tmp}/nope.jsonl", "--out", "{out}"],
        ["--manifest", "{bad}", "--out", "{out}"],
        ["--manifest", "{m}", "--out", "{tmp}"],
        ["--manifest", "{m}", "--out", "{m}"],  # not an output of infer
    ],
)
def test_usage_mistakes_end_in_one_line_and_status_2(tmp_path, manifest, argv, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "source": "world", "video": {"world_seed": 1}, "colour": "red"}\n')
    values = {"m": manifest, "out": tmp_path / "p.jsonl", "tmp": tmp_path, "bad": bad}
    assert infer.main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(infer.UsageError, match="no manifest"):
        infer.main(["--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p"), "--debug"])


def test_help_documents_every_flag_and_the_module_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        infer.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in infer.InferConfig.__dataclass_fields__:
        assert f"--{flag.replace('_', '-')} " in out or f"--{flag.replace('_', '-')}\n" in out
    done = subprocess.run(
        [sys.executable, "-m", "f2l.infer", "--manifest", str(tmp_path / "nope.jsonl"), "--out", "p.jsonl"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr == f"error: no manifest at {tmp_path}/nope.jsonl\n"


def test_a_converted_checkpoint_reads_its_format_s_frame_count(official_hypernet):
    from f2l.infer import trained_frames

    assert trained_frames(str(official_hypernet)) == 12  # the authors' format: at most 12 frames
    assert trained_frames("tiny") == 8  # f2l's shipped one: its training run's count
