"""analyses.compare_hypernets: two hypernetworks' adapter-only scores on the same benchmark prompts."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analyses.compare_hypernets import compare_runs, main
from f2l.cli import UsageError


def run(shift: dict[str, float], clips: int = 30, seed: int = 0) -> xr.Dataset:
    """A benchmark dataset of two suites whose f2l scores are direct's plus ``shift[suite]`` (and noise)."""
    rng = np.random.default_rng(seed)
    ids, clip, suite, scores = [], [], [], []
    for c in range(clips):
        for s in ("same", "worse"):
            for i in range(2):
                direct = rng.uniform(0.3, 0.7)
                ids.append(f"clip{c}/{s}{i}")
                clip.append(f"clip{c}")
                suite.append(s)
                scores.append((direct, direct + shift[s] + rng.normal(0, 0.02)))
    return xr.Dataset(
        {"score": (("example_id", "method", "metric"), np.array(scores)[:, :, None])},
        coords={
            "example_id": ids,
            "method": ["direct", "f2l"],
            "metric": ["token_f1"],
            "clip": ("example_id", clip),
            "benchmark": ("example_id", suite),
        },
        attrs={"hypernet": f"h{seed}"},
    )


def test_a_run_against_a_shifted_run_gives_the_shift_and_its_verdict():
    a, b = run({"same": 0.0, "worse": 0.0}), run({"same": 0.0, "worse": -0.3})
    table = compare_runs(a, b).set_index("suite")
    assert table.loc["same", "B - A"] == pytest.approx(0.0, abs=0.01)
    assert table.loc["same", "verdict"] == "equivalent"
    assert table.loc["worse", "B - A"] == pytest.approx(-0.3, abs=0.01)
    assert table.loc["worse", "verdict"] == "inferior"
    assert table.loc["worse", "ci_low"] <= -0.3 + 1e-9 and -0.3 - 1e-9 <= table.loc["worse", "ci_high"] < 0
    assert table.loc["same", "direct"] == pytest.approx(table.loc["same", "A"], abs=0.01)


def test_runs_of_other_prompts_are_refused_and_the_command_prints_a_table(tmp_path, capsys):
    a, b = run({"same": 0.0, "worse": 0.0}), run({"same": 0.1, "worse": 0.0}, clips=29)
    with pytest.raises(UsageError, match="different prompts"):
        compare_runs(a, b)
    a.to_netcdf(tmp_path / "a.nc")
    run({"same": 0.1, "worse": 0.0}).to_netcdf(tmp_path / "b.nc")
    assert main([str(tmp_path / "a.nc"), str(tmp_path / "b.nc")]) == 0
    out = capsys.readouterr().out
    assert "| same |" in out and "+0.1" in out and "A = h0 (f2l), B = h0 (f2l)" in out


def test_a_run_of_the_adapter_alone_is_read_against_the_other_runs_video():
    """``--reference-method direct``: B's f2l against A's direct, paired by clip; B need not hold direct."""
    a, b = run({"same": 0.0, "worse": -0.3}), run({"same": 0.05, "worse": -0.2})
    b_alone = b.sel(method=["f2l"])
    table = compare_runs(a, b_alone, reference_method="direct").set_index("suite")
    assert table.loc["same", "B - A"] == pytest.approx(0.05, abs=0.01)
    assert table.loc["worse", "B - A"] == pytest.approx(-0.2, abs=0.01)
    assert (
        table.loc["worse", "verdict"] == "inferior" and table.loc["same", "A"] == table.loc["same", "direct"]
    )
    against_f2l = compare_runs(a, b_alone).set_index("suite")
    assert against_f2l.loc["worse", "B - A"] == pytest.approx(0.1, abs=0.01)
