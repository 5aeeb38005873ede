from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from f2l.data.__main__ import main
from f2l.data.converters import (
    FINEVIDEO_PROMPTS,
    AnnotationError,
    VideoFinder,
    convert_activitynet,
    convert_finevideo,
    convert_nextqa,
    convert_vdc,
    temporal_paragraph,
)
from f2l.data.manifest import QAItem, iter_prompts, read_manifest
from f2l.data.official import write_official_manifest

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
        main(["convert", "vdc", str(tmp_path / "absent.json"), "--videos", "videos", "--out", "y.jsonl"]) == 2
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
    assert "--keep-missing" in result.stdout and "{activitynet,finevideo,nextqa,vdc}" in result.stdout


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"


def _scene(start: float, end: float, **fields) -> dict:
    return {"timestamps": {"start_timestamp": _clock(start), "end_timestamp": _clock(end)}, **fields}


def _write_finevideo(folder: Path, stem: str, scenes: list, description: str) -> None:
    """One FineVideo sample as the dataset ships it: <stem>.json metadata next to <stem>.mp4."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"youtube_title": stem, "content_metadata": {"description": description, "scenes": scenes}}
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    _touch(folder / f"{stem}.mp4")


def test_finevideo_span_captions_and_bounds(tmp_path: Path) -> None:
    acts = [{"description": "A man enters"}, {"description": " He sits  down."}, {"description": "He waves"}]
    scenes = [
        _scene(0, 5.5, activities=acts, title="Arrival"),
        _scene(5.5, 12, title="Kitchen talk", activities=[]),
        _scene(12, 20, mood={"description": "Calm"}),
        {"timestamps": {"start_timestamp": "20s", "end_timestamp": "00:00:30.000"}, "title": "Bad clock"},
    ]
    _write_finevideo(tmp_path / "fv", "vid", scenes, description="a cooking show")
    _write_finevideo(tmp_path / "fv" / "sub", "empty", [], description="no scenes")
    expected = {  # id -> (caption, start, end, scenes): every usable span of the video
        "finevideo-vid-s00": ("A man enters. He sits down.", 0.0, 5.5, [0]),
        "finevideo-vid-s01": ("Kitchen talk.", 5.5, 12.0, [1]),
        "finevideo-vid-s02": ("The scene mood is calm.", 12.0, 20.0, [2]),
        "finevideo-vid-a00w2": ("A man enters. He sits down. He waves.", 0.0, 12.0, [0, 1]),
        "finevideo-vid-a01w2": ("Kitchen talk.", 5.5, 20.0, [1, 2]),  # no activities: the titles
        "finevideo-vid-a00w3": ("A man enters. He sits down. He waves.", 0.0, 20.0, [0, 1, 2]),
        "finevideo-vid-full": ("a cooking show.", None, None, [0, 1, 2, 3]),
    }
    drawn = []
    for total in (5, 4):  # 5: the 3 scenes and 2 of the 3 adjacent runs; 4: 2, 1 and the whole video
        with pytest.warns(UserWarning, match="1 of 2 metadata files have no scenes"):
            examples = convert_finevideo(tmp_path / "fv", tmp_path / "fv", split="train", total=total)
        assert len(examples) == total
        drawn += examples
    assert {"finevideo-vid-s00", "finevideo-vid-s01", "finevideo-vid-s02", "finevideo-vid-full"} <= {
        e.id for e in drawn
    }
    for e in drawn:
        kind = e.meta["span_type"]
        caption, start, end, covered = expected[e.id]
        assert e.captions == {kind: caption} and e.meta["scenes"] == covered
        assert (e.video.start, e.video.end, e.duration) == (start, end, None if end is None else end - start)
        assert e.source == "finevideo" and e.split == "train"
        assert e.video_path() == tmp_path / "fv" / "vid.mp4"
        (row,) = iter_prompts([e])
        assert (row.kind, row.label, row.reference) == ("caption", kind, caption)
        assert row.prompt == e.caption_prompts[kind] and row.prompt in FINEVIDEO_PROMPTS[kind]
    with (
        pytest.warns(UserWarning),
        pytest.raises(AnnotationError, match="need 60 scene spans; the videos give 3"),
    ):
        convert_finevideo(tmp_path / "fv", tmp_path / "fv", total=100)


def _finevideo_corpus(folder: Path, n_videos: int, n_scenes: int) -> dict[str, list[tuple[float, float]]]:
    """``n_videos`` videos of ``n_scenes`` back-to-back scenes of random lengths; returns their bounds."""
    rng = random.Random(0)
    bounds = {}
    for v in range(n_videos):
        edges = [0.0]
        for _ in range(n_scenes):
            edges.append(round(edges[-1] + rng.uniform(2, 30), 3))
        spans = list(zip(edges, edges[1:], strict=False))
        scenes = [
            _scene(a, b, activities=[{"description": f"event {v}.{i}"}]) for i, (a, b) in enumerate(spans)
        ]
        _write_finevideo(folder, f"v{v:04d}", scenes, description=f"video {v}")
        bounds[f"v{v:04d}"] = spans
    return bounds


def test_finevideo_mix_is_official_and_seeded(tmp_path: Path) -> None:
    bounds = _finevideo_corpus(tmp_path / "fv", n_videos=200, n_scenes=5)  # pools 1000 / 1400 / 200
    examples = convert_finevideo(tmp_path / "fv", tmp_path / "fv", total=1000, seed=7)
    kinds = [e.meta["span_type"] for e in examples]
    assert (kinds.count("scene"), kinds.count("adjacent"), kinds.count("full")) == (600, 300, 100)
    assert len({e.id for e in examples}) == 1000  # drawn without replacement
    assert kinds != sorted(kinds, key=["scene", "adjacent", "full"].index)  # shuffled, not in blocks

    again = convert_finevideo(tmp_path / "fv", tmp_path / "fv", total=1000, seed=7)
    assert [e.id for e in again] == [e.id for e in examples]
    other = convert_finevideo(tmp_path / "fv", tmp_path / "fv", total=1000, seed=8)
    assert [e.id for e in other] != [e.id for e in examples]
    assert sorted(e.meta["span_type"] for e in other) == sorted(kinds)

    for e in examples:
        scenes = bounds[e.meta["video_id"]]
        covered = e.meta["scenes"]
        if e.meta["span_type"] == "full":
            assert (e.video.start, e.video.end, covered) == (None, None, [0, 1, 2, 3, 4])
            continue
        assert len(covered) in ((1,) if e.meta["span_type"] == "scene" else (2, 3))
        assert covered == list(range(covered[0], covered[-1] + 1))  # adjacent scenes
        # aligned to scene boundaries, inside the video
        assert (e.video.start, e.video.end) == (scenes[covered[0]][0], scenes[covered[-1]][1])
        assert 0.0 <= e.video.start < e.video.end <= scenes[-1][1]

    every = convert_finevideo(tmp_path / "fv", tmp_path / "fv")  # the most the pools allow: 1000 / 0.6
    kinds = [e.meta["span_type"] for e in every]
    counts = (len(every), kinds.count("scene"), kinds.count("adjacent"), kinds.count("full"))
    assert counts == (1666, 1000, 500, 166)


def test_finevideo_missing_videos_leave_before_the_draw(tmp_path: Path) -> None:
    _finevideo_corpus(tmp_path / "fv", n_videos=10, n_scenes=3)  # 7 spans a video
    for stem in ("v0003", "v0007"):
        (tmp_path / "fv" / f"{stem}.mp4").unlink()
    with pytest.warns(UserWarning, match="finevideo: 14 of 70 videos not found"):
        examples = convert_finevideo(tmp_path / "fv", tmp_path / "fv", total=10)
    kinds = [e.meta["span_type"] for e in examples]
    assert (kinds.count("scene"), kinds.count("adjacent"), kinds.count("full")) == (6, 3, 1)
    assert not {"v0003", "v0007"} & {e.meta["video_id"] for e in examples}
    kept = convert_finevideo(tmp_path / "fv", tmp_path / "fv", keep_missing=True)
    assert {e.meta["video_id"] for e in kept if e.meta.get("video_missing")} <= {"v0003", "v0007"}


def test_cli_convert_finevideo_and_check_official(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FRAMES2LORA_DATA_ROOT", raising=False)
    monkeypatch.delenv("VIDEO2LORA_DATA_ROOT", raising=False)
    _finevideo_corpus(tmp_path / "fv", n_videos=20, n_scenes=4)
    argv = [
        "convert",
        "finevideo",
        "fv",
        "--videos",
        "fv",
        "--split",
        "train",
        "--total",
        "20",
        "--seed",
        "3",
    ]
    assert main([*argv, "--out", "a.jsonl"]) == 0
    assert main([*argv, "--out", "b.jsonl"]) == 0
    assert "wrote 20 examples to a.jsonl" in capsys.readouterr().out
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    examples = read_manifest("a.jsonl")
    assert [e.meta["span_type"] for e in examples].count("scene") == 12
    assert all(e.video_path().is_file() and e.split == "train" for e in examples)
    assert main(["convert", "nextqa", "x.csv", "--videos", "fv", "--out", "c.jsonl", "--seed", "1"]) == 2
    assert "apply to finevideo only" in capsys.readouterr().err

    write_official_manifest(tmp_path / "official.jsonl", examples, data_root=tmp_path)
    assert main(["check", "official.jsonl"]) == 1
    assert "official.jsonl:1: relative video_path 'fv/" in capsys.readouterr().err
    assert main(["check", "official.jsonl", "--data-root", str(tmp_path)]) == 0
    report = capsys.readouterr().out
    assert "20 examples" in report and "(0 not found)" in report
    back = read_manifest("official.jsonl", data_root=tmp_path)  # video, span and prompts survive
    assert [(b.id, b.video, b.split, b.source) for b in back] == [
        (f"{e.id}-{e.meta['span_type']}", e.video, e.split, e.source) for e in examples
    ]
    assert [(r.prompt, r.reference) for r in iter_prompts(back)] == [
        (r.prompt, r.reference) for r in iter_prompts(examples)
    ]
