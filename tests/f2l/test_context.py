"""python -m f2l.context: the token sequence a hypernetwork reads, as its kind lays the context out."""

from __future__ import annotations

from f2l.context import main


def test_prints_each_kind_s_context_with_visual_runs_collapsed(official_hypernet, capsys):
    official = official_hypernet
    assert main(["--hypernet", str(official), "--world-seed", "1010000", "--frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "(kind official)" in out and "assistant cue no" in out
    assert "48 visual (<image>)" in out  # 3 frames x 16 visual tokens
    assert out.count("<image> x16") == 3 and "'\\n\\nInternalize this video for later captioning.'" in out
    assert "Assistant:" not in out

    assert main(["--hypernet", "tiny", "--world-seed", "1010000", "--frames", "2"]) == 0
    own = capsys.readouterr().out
    assert "(kind f2l)" in own and own.count("<image> x16") == 2 and "Assistant:" in own
    assert "Watch the video and remember everything in it." in own
