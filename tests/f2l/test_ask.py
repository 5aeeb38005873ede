from __future__ import annotations

from f2l.ask import main


def test_ask_prints_direct_and_no_video_answers(capsys):
    assert (
        main(["--world-seed", "1010000", "--question", "what color is the background?", "--frames", "6"]) == 0
    )
    out = capsys.readouterr().out
    assert "world:1010000: 6 frames, 64x64 px" in out
    assert "direct" in out and "96 visual" in out  # 6 frames x 16 tokens
    assert "f2l" in out and out.count(" 0 visual") == 2  # adapter and no-video: zero visual tokens
    assert "no-video" in out and "0 visual" in out


def test_ask_decodes_a_video_file(tmp_path, capsys):
    from f2l.video import write_video
    from f2l.world import render_clip

    path = write_video(tmp_path / "clip.mp4", render_clip(1_010_001, num_frames=24, size=64).frames, fps=3.0)
    assert main(["--video", str(path), "--question", "Describe the camera motion.", "--frames", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 frames" in out and "64 visual" in out


def test_ask_composes_segment_adapters(capsys):
    assert main(["--world-seed", "1010002", "--question", "Describe the background.", "--frames", "8",
                 "--chunk-frames", "4"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "rank 16 x 4 layers" in out  # two rank-8 segment adapters concatenated along r


def test_ask_with_an_official_kind_hypernetwork(official_hypernet, capsys):
    """The authors' design, converted from the official fixture: a rank-2r adapter on down_proj, and
    composed segments at rank (n + 1) r (the static block once)."""
    official = str(official_hypernet)
    args = [
        "--hypernet",
        official,
        "--world-seed",
        "1010000",
        "--question",
        "what color is it?",
        "--frames",
        "4",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "rank 32 x 4 layers" in out and out.count(" 0 visual") == 2
    assert main([*args, "--chunk-frames", "2"]) == 0
    assert "rank 48 x 4 layers" in capsys.readouterr().out
