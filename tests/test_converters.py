from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from f2l.data.__main__ import main
from f2l.data.converters import (
    AnnotationError,
    VideoFinder,
    convert_activitynet,
    convert_nextqa,
    convert_vdc,
    temporal_paragraph,
)
from f2l.data.manifest import QAItem, read_manifest

REPO = Path(__file__).resolve().parents[1]

ANET = {
    "v_abc": {
        "duration": 30.0,
        "timestamps": [[10.0, 35.0], [0.0, 10.0], [0.0, 4.0]],
        "sentences": [" Then he sits down", "A man walks in.  ", "The lights turn on."],
    },
    "v_def": {"duration": 12.5, "timestamps": [[1.0, 6.0]], "sentences": ["A dog barks."]},
    "v_ghi": {"duration": 5.0, "timestamps": [[0.0, 5.0]], "sentences": ["Nobody has this video."]},
}


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def anet(tmp_path: Path) -> tuple[Path, Path]:
    videos = tmp_path / "videos"
    _touch(videos / "abc.mp4")  # stored without the "v_" prefix
    _touch(videos / "v_def.mkv")
    ann = tmp_path / "val_1.json"
    ann.write_text(json.dumps(ANET))
    return ann, videos


def test_temporal_paragraph_ordering_words() -> None:
    assert temporal_paragraph(["A cat sits"]) == "A cat sits."
    assert temporal_paragraph(["A cat sits.", "The dog runs!", "John leaves"]) == (
        "First, a cat sits. Then, the dog runs! Finally, John leaves."
    )


def test_activitynet_whole_video(anet: tuple[Path, Path]) -> None:
    ann, videos = anet
    with pytest.warns(UserWarning, match="1 of 3 videos not found"):
        examples = convert_activitynet(ann, videos, split="val")
    assert [e.id for e in examples] == ["activitynet-v_abc", "activitynet-v_def"]
    abc, dfe = examples
    assert abc.source == "activitynet_captions" and abc.split == "val" and abc.duration == 30.0
    assert abc.video_path() == videos / "abc.mp4"
    assert abc.video.start is None and abc.video.end is None
    assert abc.captions == {
        "dense": "The lights turn on. A man walks in. Then he sits down.",
        "temporal": "First, the lights turn on. Then, a man walks in. Finally, he sits down.",
    }
    assert abc.meta == {
        "video_id": "v_abc",
        "timestamps": [[0.0, 4.0], [0.0, 10.0], [10.0, 35.0]],
        "sentences": ["The lights turn on.", "A man walks in.", "Then he sits down"],
    }
    assert dfe.video_path() == videos / "v_def.mkv"
    assert dfe.captions == {"dense": "A dog barks.", "temporal": "A dog barks."}


def test_activitynet_keep_missing_flags(anet: tuple[Path, Path]) -> None:
    ann, videos = anet
    examples = convert_activitynet(ann, videos, keep_missing=True)
    assert len(examples) == 3
    ghi = examples[2]
    assert ghi.meta["video_missing"] is True
    assert ghi.video.path == str(videos / "v_ghi.mp4")
    assert "video_missing" not in examples[0].meta


def test_activitynet_per_segment(anet: tuple[Path, Path]) -> None:
    ann, videos = anet
    with pytest.warns(UserWarning, match="1 of 5 videos not found"):
        segs = convert_activitynet(ann, videos, per_segment=True, frames=12)
    assert [(s.id, s.video.start, s.video.end, s.duration) for s in segs] == [
        ("activitynet-v_abc-0", 0.0, 4.0, 4.0),
        ("activitynet-v_abc-1", 0.0, 10.0, 10.0),
        ("activitynet-v_abc-2", 10.0, 30.0, 20.0),  # clamped to the 30 s duration
        ("activitynet-v_def-0", 1.0, 6.0, 5.0),
    ]
    assert segs[0].captions == {"short": "The lights turn on."}
    assert segs[2].meta == {
        "video_id": "v_abc",
        "segment": 2,
        "timestamp": [10.0, 35.0],
        "video_duration": 30.0,
    }
    assert all(s.frames == 12 for s in segs)


def test_activitynet_mismatched_lengths(tmp_path: Path) -> None:
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"v_x": {"duration": 3.0, "timestamps": [[0, 1]], "sentences": []}}))
    with pytest.raises(AnnotationError, match="'v_x' has 1 timestamps but 0 sentences"):
        convert_activitynet(ann, tmp_path)


NEXTQA_HEADER = ["video", "frame_count", "width", "height", "question", "answer", "qid", "type"]
NEXTQA_HEADER += ["a0", "a1", "a2", "a3", "a4"]
NEXTQA_ROWS = [
    ["4010069381", "480", "640", "480", "why did the boy pick up the ball", "2", "0", "CW"]
    + ["to eat it", "to sleep", "to throw it", "to hide", "to clean"],
    ["4010069381", "480", "640", "480", "what does the boy do after throwing", "0", "1", "TN"]
    + ["run away", "sit", "cry", "laugh", "jump"],
    ["5555", "300", "320", "240", "how many dogs are there", "1", "0", "DC"]
    + ["one", "two", "three", "four", "five"],
    ["7777", "300", "320", "240", "where is this", "4", "0", "DL"] + ["park", "home", "zoo", "shop", "beach"],
]


def _write_nextqa(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(NEXTQA_HEADER)
        writer.writerows(rows)
    return path


def test_nextqa_groups_by_video(tmp_path: Path) -> None:
    videos = tmp_path / "NExTVideo"
    nested = _touch(videos / "1164" / "4010069381.mp4")  # the dataset's nested layout
    _touch(videos / "5555.webm")
    ann = _write_nextqa(tmp_path / "val.csv", NEXTQA_ROWS)
    with pytest.warns(UserWarning, match="1 of 3 videos not found"):
        examples = convert_nextqa(ann, videos, split="val")
    assert [e.id for e in examples] == ["nextqa-4010069381", "nextqa-5555"]
    first, second = examples
    assert first.video_path() == nested and second.video_path() == videos / "5555.webm"
    assert first.qa == (
        QAItem(
            "q0",
            "why did the boy pick up the ball",
            "to throw it",
            "causal",
            ("to eat it", "to sleep", "to throw it", "to hide", "to clean"),
        ),
        QAItem(
            "q1",
            "what does the boy do after throwing",
            "run away",
            "temporal",
            ("run away", "sit", "cry", "laugh", "jump"),
        ),
    )
    assert first.meta == {
        "video_id": "4010069381",
        "qa_codes": {"q0": "CW", "q1": "TN"},
        "frame_count": 480,
        "width": 640,
        "height": 480,
    }
    assert second.qa[0].answer == "two" and second.qa[0].type == "descriptive"
    assert first.captions == {} and first.split == "val"


def test_nextqa_bad_rows_name_the_line(tmp_path: Path) -> None:
    bad_type = [NEXTQA_ROWS[0], NEXTQA_ROWS[1][:7] + ["XX"] + NEXTQA_ROWS[1][8:]]
    with pytest.raises(AnnotationError, match=r"bad\.csv:3: unknown question type 'XX'"):
        convert_nextqa(_write_nextqa(tmp_path / "bad.csv", bad_type), tmp_path, keep_missing=True)
    bad_answer = [NEXTQA_ROWS[0][:5] + ["7"] + NEXTQA_ROWS[0][6:]]
    with pytest.raises(AnnotationError, match=r"bad2\.csv:2: answer '7' is not a choice index"):
        convert_nextqa(_write_nextqa(tmp_path / "bad2.csv", bad_answer), tmp_path, keep_missing=True)


VDC_RECORDS = [
    {
        "video_id": "vid_one",
        "captions": {
            "short_caption": "A cat naps.",
            "detailed_caption": "A grey cat naps on a red sofa while the sun sets.",
            "background_caption": "A living room with a red sofa.",
            "main_object_caption": "A grey cat curled up.",
            "camera_caption": "The camera is static.",
            "mood_caption": "Calm.",
        },
    },
    {"video_id": "vid_two.mp4", "short_caption": "Cars pass.", "camera_caption": "  ", "fps": 30},
]


@pytest.mark.parametrize("layout", ["json", "jsonl"])
def test_vdc(tmp_path: Path, layout: str) -> None:
    videos = tmp_path / "v"
    _touch(videos / "vid_one.mov")
    _touch(videos / "vid_two.mp4")
    ann = tmp_path / f"vdc.{layout}"
    if layout == "json":
        ann.write_text(json.dumps(VDC_RECORDS))
    else:
        ann.write_text("\n".join(json.dumps(r) for r in VDC_RECORDS) + "\n")
    one, two = convert_vdc(ann, videos, split="test")
    assert one.id == "vdc-vid_one" and one.source == "vdc" and one.video_path() == videos / "vid_one.mov"
    assert one.captions == {
        "short": "A cat naps.",
        "detailed": "A grey cat naps on a red sofa while the sun sets.",
        "background": "A living room with a red sofa.",
        "main_object": "A grey cat curled up.",
        "camera": "The camera is static.",
    }
    assert one.meta == {"video_id": "vid_one", "extra_captions": {"mood": "Calm."}}
    assert two.id == "vdc-vid_two" and two.video_path() == videos / "vid_two.mp4"
    assert two.captions == {"short": "Cars pass."}  # blank camera caption dropped
    assert two.meta == {"video_id": "vid_two.mp4", "extra": {"fps": 30}}


def test_video_finder_prefers_direct_then_recursive(tmp_path: Path) -> None:
    direct = _touch(tmp_path / "x.avi")
    _touch(tmp_path / "deep" / "x.mp4")
    deep = _touch(tmp_path / "deep" / "y.MP4")
    finder = VideoFinder(tmp_path)
    assert finder.find("x") == direct
    assert finder.find("y") == deep
    assert finder.find("nope", "y") == deep
    assert finder.find("nope") is None


def test_cli_convert_end_to_end(anet: tuple[Path, Path], tmp_path: Path, capsys, monkeypatch) -> None:
    ann, videos = anet
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "manifests" / "anet.jsonl"
    assert (
        main(["convert", "activitynet", str(ann), "--videos", "videos", "--out", str(out), "--split", "val"])
        == 0
    )
    captured = capsys.readouterr()
    assert f"wrote 2 examples to {out}" in captured.out
    assert "1 video(s) not found under videos (skipped)" in captured.err
    examples = read_manifest(out)
    assert [e.id for e in examples] == ["activitynet-v_abc", "activitynet-v_def"]
    assert examples[0].video.path == "../videos/abc.mp4"  # relative to the manifest's folder
    assert examples[0].video_path().resolve() == (videos / "abc.mp4").resolve()
    assert examples[0].split == "val"

    kept = tmp_path / "kept.jsonl"
    argv = ["convert", "activitynet", str(ann), "--videos", str(videos), "--out", str(kept), "--keep-missing"]
    assert main([*argv, "--per-segment"]) == 0
    assert "(kept)" in capsys.readouterr().err
    assert [e.id for e in read_manifest(kept)][-1] == "activitynet-v_ghi-0"

    assert (
        main(["convert", "nextqa", str(ann), "--videos", "videos", "--out", "x.jsonl", "--per-segment"]) == 2
    )
    assert (
        main(["convert", "vdc", str(tmp_path / "absent.json"), "--videos", "videos", "--out", "y.jsonl"]) == 1
    )

    assert main(["check", str(out)]) == 0
    report = capsys.readouterr().out
    assert "2 examples" in report and "'dense': 2" in report and "(0 not found)" in report
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    assert main(["check", str(bad)]) == 1
    assert "bad.jsonl:1:" in capsys.readouterr().err


def test_cli_world_and_help(tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    assert main(["world", "--split", "test", "--n", "2", "--frames", "4", "--out", str(out)]) == 0
    examples = read_manifest(out)
    assert len(examples) == 2 and all(e.frames == 4 and e.split == "test" for e in examples)
    result = subprocess.run(
        [sys.executable, "-m", "f2l.data", "convert", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "--keep-missing" in result.stdout and "{activitynet,nextqa,vdc}" in result.stdout
