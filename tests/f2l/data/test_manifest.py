from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import file_example, world_example

from f2l.data.manifest import (
    CAPTION_PROMPTS,
    Example,
    ManifestError,
    VideoRef,
    iter_prompts,
    load_frames,
    read_manifest,
    world_manifest,
    write_manifest,
)


def test_round_trip_write_read_equal(tmp_path: Path) -> None:
    examples = [file_example(), world_example()]
    path = write_manifest(tmp_path / "m.jsonl", examples)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["video"] == {"world_seed": 7}
    assert json.loads(lines[0])["qa"][0]["choices"] == ["tired", "rain", "bus"]
    back = read_manifest(path)
    assert back == examples
    assert back[0].qa[0].choices == ("tired", "rain", "bus")
    assert Example.from_dict(examples[0].to_dict()) == examples[0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]  # no temp file left behind


def _good_record(**kw) -> dict:
    rec = {"id": "x", "source": "world", "video": {"world_seed": 3}}
    rec.update(kw)
    return rec


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"source": "world", "video": {"world_seed": 1}}), "missing required key 'id'"),
        (json.dumps(_good_record(video={"world_seed": 1, "path": "a.mp4"})), "exactly one of"),
        (json.dumps(_good_record(video={})), "exactly one of"),
        (json.dumps(_good_record(frames="12")), "'frames' must be a positive integer"),
        (json.dumps(_good_record(frames=0)), "'frames' must be a positive integer"),
        (json.dumps(_good_record(caption={"short": "x"})), "unknown key(s) ['caption']"),
        (json.dumps(_good_record(captions={"short": 3})), "'captions' must map"),
        (
            json.dumps(_good_record(qa=[{"id": "q0", "question": "?", "answr": "a"}])),
            "unknown key(s) in qa[0]",
        ),
        (
            json.dumps(
                _good_record(qa=[{"id": "q0", "question": "?", "answer": "a", "choices": ["b", "c"]}])
            ),
            "not one of its choices",
        ),
        (json.dumps(_good_record(video={"path": "a.mp4", "start": 5.0, "end": 2.0})), "before end"),
        (json.dumps(_good_record(video={"world_seed": True})), "non-negative integer"),
        (json.dumps(["a", "list"]), "must be a JSON object"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_good_record(id="ok"))
    path.write_text(f"{good}\n\n{bad_line}\n")  # blank line 2 still counts: the bad one is line 3
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert info.value.line == 3
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_duplicate_id_points_to_first_occurrence(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    rec = json.dumps(_good_record(id="same"))
    path.write_text("\n".join([rec, json.dumps(_good_record(id="other")), rec]) + "\n")
    with pytest.raises(ManifestError, match=r"dup\.jsonl:3: duplicate id 'same' \(first on line 1\)"):
        read_manifest(path)


def test_meta_is_free_form(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        json.dumps(_good_record(meta={"anything": {"goes": [1, None, "x"]}, "typo_ok": 1})) + "\n"
    )
    (ex,) = read_manifest(path)
    assert ex.meta == {"anything": {"goes": [1, None, "x"]}, "typo_ok": 1}
    assert ex.captions == {} and ex.qa == () and ex.frames is None


def test_relative_paths_resolve_against_manifest_dir(tmp_path: Path) -> None:
    sub = tmp_path / "data"
    (sub / "videos").mkdir(parents=True)
    (sub / "videos" / "a.mp4").write_bytes(b"")
    abs_video = tmp_path / "elsewhere.mp4"
    examples = [file_example(), file_example(id="abs", video=VideoRef.file(abs_video))]
    write_manifest(sub / "m.jsonl", [replace(e, root=str(sub)) for e in examples])
    rel, absolute = read_manifest(sub / "m.jsonl")
    assert rel.video.path == "videos/a.mp4"  # stored string unchanged
    assert rel.video_path() == sub.resolve() / "videos" / "a.mp4"
    assert rel.video_path().is_file()
    assert rel.video_path(root="/other") == Path("/other/videos/a.mp4")
    assert absolute.video_path() == abs_video
    with pytest.raises(ValueError, match="world clip"):
        world_example().video_path()


def test_write_rebases_relative_paths_to_new_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "videos").mkdir(parents=True)
    write_manifest(src / "m.jsonl", [file_example(root=str(src))])
    (ex,) = read_manifest(src / "m.jsonl")
    write_manifest(tmp_path / "out" / "copy.jsonl", [ex])
    (moved,) = read_manifest(tmp_path / "out" / "copy.jsonl")
    assert moved.video.path == "../src/videos/a.mp4"
    assert moved.video_path().resolve() == (src / "videos" / "a.mp4").resolve()
    # anchored at a working directory (as converters do), then written elsewhere
    monkeypatch.chdir(tmp_path)
    anchored = file_example(video=VideoRef.file("clips/b.mp4"), root=str(Path.cwd()))
    write_manifest(tmp_path / "out" / "cwd.jsonl", [anchored])
    (from_cwd,) = read_manifest(tmp_path / "out" / "cwd.jsonl")
    assert from_cwd.video.path == "../clips/b.mp4"
    # not anchored (root None): written as is, relative to the manifest it goes into
    write_manifest(tmp_path / "out" / "plain.jsonl", [file_example()])
    assert read_manifest(tmp_path / "out" / "plain.jsonl")[0].video.path == "videos/a.mp4"


def test_write_rejects_duplicates_and_non_json_meta(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="duplicate id 'world-7'"):
        write_manifest(tmp_path / "m.jsonl", [world_example(), world_example()])
    with pytest.raises(ManifestError, match="not plain JSON"):
        write_manifest(tmp_path / "m.jsonl", [file_example(meta={"x": np.float32(1.0)})])
    with pytest.raises(ManifestError, match="not plain JSON"):
        write_manifest(tmp_path / "m.jsonl", [file_example(meta={"x": float("nan")})])
    assert not (tmp_path / "m.jsonl").exists()


def test_video_ref_invariants() -> None:
    with pytest.raises(ManifestError, match="exactly one"):
        VideoRef()
    with pytest.raises(ManifestError, match="exactly one"):
        VideoRef(world_seed=1, path="a.mp4")
    with pytest.raises(ManifestError, match="no 'start'"):
        VideoRef(world_seed=1, start=0.0)


def test_world_manifest_matches_world_language(tmp_path: Path) -> None:
    from f2l import world

    examples = world_manifest("val", 3, frames=6, offset=2)
    seeds = world.split_seeds("val", 3, offset=2)
    assert [e.id for e in examples] == [f"world-{s}" for s in seeds]
    for ex, seed in zip(examples, seeds, strict=True):
        truth = world.sample_truth(seed)
        assert ex.video.world_seed == seed and ex.split == "val" and ex.frames == 6 and ex.source == "world"
        assert ex.captions == world.captions(truth)
        assert set(ex.captions) == set(world.CAPTION_CATEGORIES)
        expected = world.qa(truth)
        assert [q.id for q in ex.qa] == [f"q{i}" for i in range(len(expected))]
        assert [(q.question, q.answer, q.type) for q in ex.qa] == [
            (q.question, q.answer, q.type) for q in expected
        ]
        assert ex.duration == truth.duration
    write_manifest(tmp_path / "w.jsonl", examples)
    assert read_manifest(tmp_path / "w.jsonl") == examples


def test_load_frames_world_shapes_and_overrides() -> None:
    from f2l.world import render_clip

    ex = Example(id="world-11", source="world", video=VideoRef.world(11), frames=5)
    frames = load_frames(ex)
    assert frames.pixels.shape == (5, 64, 64, 3) and frames.pixels.dtype == np.uint8
    np.testing.assert_array_equal(frames.pixels, render_clip(11, num_frames=5, size=64).frames.pixels)
    small = load_frames(ex, num_frames=3, size=32)
    assert small.pixels.shape == (3, 32, 32, 3)
    assert len(small.timestamps) == 3
    no_count = Example(id="world-11", source="world", video=VideoRef.world(11))
    assert load_frames(no_count).pixels.shape == (8, 64, 64, 3)


def test_load_frames_file_passes_span_and_resolved_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import f2l.data.manifest

    calls = []
    monkeypatch.setattr(
        f2l.data.manifest, "load_video", lambda path, **kw: calls.append((path, kw)) or "frames"
    )
    ex = file_example(root=str(tmp_path))
    assert load_frames(ex, size=384) == "frames"
    assert calls[-1] == (
        tmp_path / "videos" / "a.mp4",
        {"num_frames": 12, "longest_edge": 384, "start": 1.5, "end": 9.0},
    )
    load_frames(file_example(frames=None, fps=2.0), num_frames=None, root="/r")
    assert calls[-1] == (
        Path("/r/videos/a.mp4"),
        {"fps": 2.0, "longest_edge": None, "start": 1.5, "end": 9.0},
    )
    load_frames(ex, num_frames=4)
    assert calls[-1][1]["num_frames"] == 4


def test_iter_prompts_rows() -> None:
    ex = file_example()
    rows = list(iter_prompts([ex, world_example()]))
    assert [(r.example.id, r.kind, r.label, r.item_id) for r in rows] == [
        ("anet-1", "caption", "short", "short"),
        ("anet-1", "caption", "dense", "dense"),
        ("anet-1", "qa", "causal", "q0"),
        ("anet-1", "qa", "attribute", "q1"),
        ("world-7", "caption", "short", "short"),
        ("world-7", "qa", "attribute", "q0"),
    ]
    assert rows[0].prompt == CAPTION_PROMPTS["short"] == "Describe the video in one sentence."
    assert rows[0].reference == "A man runs."
    assert (
        rows[2].prompt
        == "why does he stop\nOptions:\n- tired\n- rain\n- bus\nAnswer with one of the options."
    )
    assert rows[2].reference == "tired" and rows[2].choices == ("tired", "rain", "bus")
    assert rows[3].prompt == "what color is his shirt?" and rows[3].choices is None
    only_qa = list(iter_prompts([ex], kinds=("qa",), qa_types=("attribute",)))
    assert [(r.item_id, r.reference) for r in only_qa] == [("q1", "red")]
    only_short = list(iter_prompts([ex], kinds=("caption",), categories=("short",)))
    assert [r.reference for r in only_short] == ["A man runs."]
    with pytest.raises(KeyError, match="no caption prompt for category 'odd'"):
        list(iter_prompts([file_example(captions={"odd": "x"})]))
    with pytest.raises(ValueError, match="unknown prompt kind"):
        list(iter_prompts([ex], kinds=("captions",)))


def test_load_frames_decodes_a_real_file_span(tmp_path: Path) -> None:
    from f2l.video import write_video

    pixels = np.zeros((20, 48, 64, 3), np.uint8)
    pixels[..., 0] = (np.arange(20) * 12)[:, None, None]  # red ramps with time
    write_video(tmp_path / "clips" / "c.avi", pixels, fps=10.0)
    record = {
        "id": "c",
        "source": "test",
        "video": {"path": "clips/c.avi", "start": 0.5, "end": 1.5},
        "frames": 4,
    }
    (tmp_path / "m.jsonl").write_text(json.dumps(record) + "\n")
    (ex,) = read_manifest(tmp_path / "m.jsonl")
    frames = load_frames(ex, size=32)
    assert frames.pixels.shape == (4, 24, 32, 3)  # longest edge 32, aspect 4:3 kept
    assert np.all((frames.timestamps >= 0.5) & (frames.timestamps < 1.5))
    assert np.all(np.diff(frames.pixels[:, 12, 16, 0].astype(int)) > 0)  # frames come in time order


def test_caption_prompts_override_the_category_instruction(tmp_path: Path) -> None:
    ex = file_example(caption_prompts={"dense": "Summarize this video segment."})
    path = write_manifest(tmp_path / "m.jsonl", [ex])
    assert json.loads(path.read_text())["caption_prompts"] == {"dense": "Summarize this video segment."}
    (back,) = read_manifest(path)
    assert back == ex
    prompts = {r.item_id: r.prompt for r in iter_prompts([back], kinds=("caption",))}
    assert prompts == {"short": CAPTION_PROMPTS["short"], "dense": "Summarize this video segment."}
    stray = _good_record(captions={"short": "x"}, caption_prompts={"long": "Describe it."})
    path.write_text(json.dumps(stray) + "\n")
    with pytest.raises(
        ManifestError, match=r"m\.jsonl:1: 'caption_prompts' names categories without a caption"
    ):
        read_manifest(path)
