"""``f2l.data.official``: the authors' JSONL manifests read into grouped ``Example``s (defaults, data
root, bad rows named by file and line, clip spans) and written back row for row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from support import file_example, world_example

from f2l.data.manifest import CAPTION_PROMPTS, ManifestError, QAItem, VideoRef, iter_prompts, read_manifest
from f2l.data.official import write_official_manifest

OFFICIAL_ROWS = [
    {  # a FineVideo scene clip, cut to its own file: decoded whole, its times kept as provenance
        "id": "train-finevideo-abc-scene-s01",
        "video_path": "raw/clips/abc-s01.mp4",
        "task_type": "caption",
        "prompt": "Describe what is happening in this scene.",
        "target_text": "A man cooks.",
        "dataset": "finevideo",
        "split": "train",
        "metadata": {"span_type": "scene", "source_video_path": "raw/finevideo/abc.mp4"},
        "clip_start_sec": 12.0,
        "clip_end_sec": 31.5,
    },
    {"id": "q-1", "video_path": "raw/qa/x.mp4", "question": "What is he holding?", "answer": "a pan"},
    {"id": "q-2", "video_path": "raw/qa/x.mp4", "question": "How many people?", "answer": 2},
    {
        "id": "cap-1",
        "video_path": "raw/qa/x.mp4",
        "prompt": "Describe the video.",
        "target_text": "A kitchen.",
    },
    {"video_path": "/abs/videos/y.mp4", "prompt": "Summarize.", "target_text": "Rain.", "teacher": "t0"},
]


def _official(tmp_path: Path, rows: list, name: str = "official.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def no_data_root(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FRAMES2LORA_DATA_ROOT", "VIDEO2LORA_DATA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_official_manifest_rows_become_grouped_examples(tmp_path: Path, no_data_root) -> None:
    root = tmp_path / "data"
    no_data_root.setenv("FRAMES2LORA_DATA_ROOT", str(root))
    clip, qa, absolute = read_manifest(_official(tmp_path, OFFICIAL_ROWS))

    assert clip.id == "train-finevideo-abc-scene-s01" and clip.source == "finevideo" and clip.split == "train"
    assert clip.video == VideoRef.file("raw/clips/abc-s01.mp4")  # the cut clip, no span on it
    assert clip.video_path() == root / "raw/clips/abc-s01.mp4"
    assert clip.captions == {"caption": "A man cooks."}
    assert clip.caption_prompts == {"caption": "Describe what is happening in this scene."}
    assert clip.meta["rows"]["caption"]["caption"]["clip_start_sec"] == 12.0

    # three rows of one video (and split and dataset): one example; QA items keep their row ids
    assert qa.id == "q-1" and qa.source == "unknown" and qa.split is None
    assert qa.qa == (
        QAItem("q-1", "What is he holding?", "a pan", "open"),
        QAItem("q-2", "How many people?", "2", "open"),
    )
    assert qa.captions == {"caption": "A kitchen."}
    rows = [(r.kind, r.label, r.prompt, r.reference) for r in iter_prompts([qa])]
    assert rows == [
        ("caption", "caption", "Describe the video.", "A kitchen."),
        ("qa", "open", "What is he holding?", "a pan"),
        ("qa", "open", "How many people?", "2"),
    ]
    assert qa.meta["rows"]["qa"]["q-2"] == {"id": "q-2", "task_type": "qa", "metadata": {}}

    assert absolute.id == "y" and absolute.video_path() == Path("/abs/videos/y.mp4")
    assert absolute.meta["rows"]["caption"]["caption"]["teacher"] == "t0"  # unknown keys are kept


def test_official_split_dataset_and_id_defaults(tmp_path: Path, no_data_root) -> None:
    rows = [
        {
            "id": "val-7",
            "video_path": "a.mp4",
            "prompt": "p",
            "target_text": "t",
            "metadata": {"dataset": "d"},
        },
        {"id": "test_8", "video_path": "b.mp4", "prompt": "p", "target_text": "t", "split": "train"},
        {"id": "val-9", "video_path": "a.mp4", "prompt": "q", "target_text": "u", "dataset": "d"},
    ]
    a, b = read_manifest(_official(tmp_path, rows), data_root=tmp_path)
    assert (a.split, a.source, b.split, b.source) == ("val", "d", "train", "unknown")
    assert a.video_path() == tmp_path.resolve() / "a.mp4"
    assert a.captions == {"caption": "t", "caption_2": "u"}  # a second caption of the same video
    assert a.caption_prompts == {"caption": "p", "caption_2": "q"}
    assert b.id == "test_8" and b.captions == {"caption": "t"}


def test_official_data_root_precedence_and_missing_root(tmp_path: Path, no_data_root) -> None:
    path = _official(tmp_path, [OFFICIAL_ROWS[4], OFFICIAL_ROWS[1]])  # absolute, then relative
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value).startswith(f"{path}:2: relative video_path 'raw/qa/x.mp4' needs a data root")
    assert "FRAMES2LORA_DATA_ROOT" in str(info.value)
    (only_absolute,) = read_manifest(_official(tmp_path, [OFFICIAL_ROWS[4]], "abs.jsonl"))
    assert only_absolute.root is None and only_absolute.video_path() == Path("/abs/videos/y.mp4")

    no_data_root.setenv("VIDEO2LORA_DATA_ROOT", str(tmp_path / "official"))  # the official code's name
    assert read_manifest(path)[1].video_path() == tmp_path / "official/raw/qa/x.mp4"
    no_data_root.setenv("FRAMES2LORA_DATA_ROOT", str(tmp_path / "ours"))
    assert read_manifest(path)[1].video_path() == tmp_path / "ours/raw/qa/x.mp4"
    assert read_manifest(path, data_root=tmp_path / "arg")[1].video_path() == tmp_path / "arg/raw/qa/x.mp4"


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ({"video_path": "a.mp4", "target_text": "x"}, "missing 'prompt' (or 'question')"),
        ({"video_path": 3, "prompt": "p", "target_text": "x"}, "'video_path' must be a non-empty string"),
        ({"video_path": "a.mp4", "prompt": "p", "target_text": ["x"]}, "'target_text' must be a string"),
        ({"video_path": "a.mp4", "prompt": "p", "target_text": "x", "metadata": []}, "'metadata' must be"),
        (
            {
                "video_path": "a.mp4",
                "prompt": "p",
                "target_text": "x",
                "clip_start_sec": 5,
                "clip_end_sec": 2,
            },
            "clip_start_sec/clip_end_sec: video start 5.0 must be before end 2.0",
        ),
        ({"video_path": "a.mp4", "prompt": "p", "target_text": "x", "clip_end_sec": "9"}, "'clip_end_sec'"),
        (
            {"id": "q-1", "video_path": "raw/qa/x.mp4", "question": "again?", "answer": "y"},
            "duplicate id 'q-1'",
        ),
    ],
)
def test_official_bad_row_names_file_and_line(
    tmp_path: Path, no_data_root, bad_row: dict, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{json.dumps(OFFICIAL_ROWS[1])}\n\n{json.dumps(bad_row)}\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path, data_root=tmp_path)
    assert (info.value.path, info.value.line) == (str(path), 3)
    assert str(info.value).startswith(f"{path}:3: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_official_clip_times_span_the_source_itself(tmp_path: Path, no_data_root) -> None:
    base = {"prompt": "p", "target_text": "t", "clip_start_sec": 2.0, "clip_end_sec": 6.0}
    rows = [
        {**base, "id": "own", "video_path": "v.mp4"},  # no source named: the times are v.mp4's
        {**base, "id": "same", "video_path": "w.mp4", "metadata": {"source_video_path": "./w.mp4"}},
        {**base, "id": "cut", "video_path": "clip.mp4", "metadata": {"source_video_path": "w.mp4"}},
    ]
    own, same, cut = read_manifest(_official(tmp_path, rows), data_root=tmp_path)
    assert (own.video.start, own.video.end, own.duration) == (2.0, 6.0, 4.0)
    assert (same.video.start, same.video.end) == (2.0, 6.0)
    assert (cut.video.start, cut.video.end, cut.duration) == (None, None, None)


def test_official_round_trip_both_ways(tmp_path: Path, no_data_root) -> None:
    root = tmp_path / "data"
    no_data_root.setenv("FRAMES2LORA_DATA_ROOT", str(root))
    rows = OFFICIAL_ROWS[:4]
    examples = read_manifest(_official(tmp_path, rows))
    out = write_official_manifest(tmp_path / "again.jsonl", examples)
    written = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(written) == {"train-finevideo-abc-scene-s01", "q-1", "q-2", "cap-1"}
    assert written["train-finevideo-abc-scene-s01"] == rows[0]
    assert written["q-2"] == {
        "id": "q-2",
        "video_path": "raw/qa/x.mp4",
        "task_type": "qa",
        "prompt": "How many people?",
        "target_text": "2",
        "dataset": "unknown",
        "split": None,
        "metadata": {},
    }
    assert read_manifest(out) == examples

    # an f2l example with a span: one row per caption and question, its span as clip times of itself
    (root / "videos").mkdir(parents=True)
    ex = replace(file_example(), root=str(root))
    out = write_official_manifest(tmp_path / "f2l.jsonl", [ex])
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in written] == ["anet-1-short", "anet-1-dense", "anet-1-q0", "anet-1-q1"]
    assert {r["video_path"] for r in written} == {"videos/a.mp4"}  # relative to the data root
    assert [r["task_type"] for r in written] == ["caption", "caption", "qa", "qa"]
    assert written[0]["prompt"] == CAPTION_PROMPTS["short"] and written[0]["target_text"] == "A man runs."
    assert written[2]["prompt"].startswith("why does he stop\nOptions:\n- tired")
    assert (written[0]["clip_start_sec"], written[0]["clip_end_sec"]) == (1.5, 9.0)
    (back,) = read_manifest(out)
    assert back.video == ex.video and back.video_path() == root / "videos/a.mp4"
    got = [(r.kind, r.prompt, r.reference) for r in iter_prompts([back])]
    assert got == [(r.kind, r.prompt, r.reference) for r in iter_prompts([ex])]
    with pytest.raises(ManifestError, match="world clip"):
        write_official_manifest(tmp_path / "w.jsonl", [world_example()])


def test_official_rows_without_a_reference_read_and_write_back_without_one(
    tmp_path: Path, no_data_root
) -> None:
    """Inference manifests carry no target: the prompt is kept with the empty reference."""
    row = {"id": "test-x-c", "video_path": "/abs/x.mp4", "prompt": "Describe the video.", "dataset": "d"}
    (example,) = read_manifest(_official(tmp_path, [row]))
    (prompt,) = iter_prompts([example])
    assert (prompt.prompt, prompt.reference) == ("Describe the video.", "")
    out = write_official_manifest(tmp_path / "again.jsonl", [example])
    (written,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert "target_text" not in written and written["prompt"] == "Describe the video."
