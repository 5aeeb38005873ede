"""analyses.confusion: which answer each method gives on a closed-set benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analyses.confusion import OTHER, agreement, confusion, label_of, main, short_names
from f2l.cli import UsageError


def run() -> xr.Dataset:
    """Six camera prompts: direct right on four, f2l on two (the rest the question-alone answer or prose),
    and one open-ended caption."""
    truth = ["the camera pans left.", "the camera zooms in.", "the camera zooms in.", "the camera is still."]
    truth += ["the camera zooms out.", "the camera zooms in."]
    direct = ["The camera pans left.", "the camera zooms in", "the camera zooms in.", "the camera is still."]
    direct += ["the camera pans left.", "the camera pans left."]
    f2l = ["the camera pans left.", "the camera pans left.", "It zooms in, the camera zooms in!", "blurry"]
    f2l += ["the camera pans left.", "the camera pans left."]
    prediction = np.array([*zip(direct, f2l, strict=True), ("a red circle", "a red square")])
    return xr.Dataset(
        {
            "prediction": (("example_id", "method"), prediction),
            "reference": ("example_id", [*truth, "a red circle"]),
        },
        coords={
            "example_id": [f"c{i}/x" for i in range(7)],
            "method": ["direct", "f2l"],
            "benchmark": ("example_id", ["camera"] * 6 + ["short"]),
        },
        attrs={"hypernet": "h"},
    )


def test_answers_are_read_as_the_label_they_equal_or_hold():
    labels = ["camera zooms in", "camera pans left", "camera zooms"]
    assert label_of("The camera zooms in.", labels) == "camera zooms in"  # equal once normalised
    assert label_of("so the camera zooms in fast", labels) == "camera zooms in"  # the longest it holds
    assert label_of("the camera zoomed", labels) == OTHER
    assert short_names(["camera zooms in", "camera pans left", OTHER]) == {
        "camera zooms in": "zooms in",
        "camera pans left": "pans left",
        OTHER: OTHER,
    }


def test_the_confusion_counts_each_methods_answers_by_truth():
    count = confusion(run(), "camera")
    assert count.dims == ("method", "truth", "answer")
    assert list(count["truth"].values) == [
        "camera zooms in",
        "camera is still",
        "camera pans left",
        "camera zooms out",
    ]  # zooms in is the truth three times; ties in alphabetical order
    assert int(count.sum()) == 12  # six prompts, two methods; the open caption is not counted
    direct, f2l = count.sel({"method": "direct"}), count.sel({"method": "f2l"})
    assert int(direct.sel({"truth": "camera zooms in", "answer": "camera zooms in"})) == 2
    assert int(direct.sel({"truth": "camera zooms out", "answer": "camera pans left"})) == 1
    assert int(f2l.sel({"truth": "camera zooms in", "answer": "camera pans left"})) == 2
    assert int(f2l.sel({"truth": "camera is still", "answer": OTHER})) == 1
    right = {
        m: sum(int(count.sel({"method": m, "truth": t, "answer": t})) for t in count["truth"].values)
        for m in ("direct", "f2l")
    }
    assert right == {"direct": 4, "f2l": 2}
    assert agreement(run(), "camera", "f2l") == (4, 6)  # pans left x3 and the zoom in it kept


def test_open_or_missing_benchmarks_are_refused_and_the_command_writes_its_dataset(
    tmp_path, capsys, monkeypatch
):
    import analyses.confusion as module

    with pytest.raises(UsageError, match="no prompt of benchmark 'count'"):
        confusion(run(), "count")
    many = run()
    many["reference"] = ("example_id", [f"answer {i}" for i in range(7)])
    many["benchmark"] = ("example_id", ["camera"] * 7)
    monkeypatch.setattr(module, "MAX_LABELS", 5)
    with pytest.raises(UsageError, match="7 distinct references: not a closed set"):
        confusion(many, "camera")
    monkeypatch.undo()
    run().to_netcdf(tmp_path / "benchmark.nc")
    assert main([str(tmp_path / "benchmark.nc"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "direct: 4 of 6 right" in out and "f2l: 2 of 6 right" in out
    assert "f2l gives direct's answer on 4 of 6" in out and "| zooms in | 2 | 0 |" in out
    written = xr.open_dataset(tmp_path / "c" / "confusion.nc")
    assert int(written["count"].sum()) == 12 and written["count"].attrs["benchmark"] == "camera"
    assert written.attrs["hypernet"] == "h" and written.attrs["study"] == "confusion"
