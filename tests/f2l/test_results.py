"""Result datasets: provenance, atomic netCDF, and the resumable, sharded Study runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from f2l.results import Study, StudyConfigError, markdown_table, provenance, read_netcdf, write_netcdf

UNITS = ["world-1", "world-2", "odd/id with space", "world-4"]


def unit_dataset(unit: str) -> xr.Dataset:
    """Two items per unit, a per-layer score and a string: the shape of a real study's part."""
    seed = sum(map(ord, unit))
    rng = np.random.default_rng(seed)
    ids = [f"{unit}/a", f"{unit}/b"]
    return xr.Dataset(
        {
            "score": (("example_id", "layer"), rng.random((2, 3))),
            "prediction": ("example_id", [f"answer to {i}" for i in ids]),
        },
        coords={"example_id": ids, "layer": [0, 1, 2], "clip": ("example_id", [unit, unit])},
    )


def test_provenance_has_the_design_attrs() -> None:
    attrs = provenance(seed=3, frames=[8, 16], note="x")
    for key in ("f2l_version", "git_revision", "command", "created_utc", "seed"):
        assert key in attrs
    assert attrs["seed"] == 3 and json.loads(attrs["frames"]) == [8, 16]


def test_write_netcdf_round_trips_strings_and_leaves_no_temp(tmp_path: Path) -> None:
    ds = unit_dataset("world-1")
    path = write_netcdf(ds, tmp_path / "x.nc")
    back = read_netcdf(path)
    xr.testing.assert_identical(back, ds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nc"]


def test_study_records_failures_and_resumes_without_recomputing(tmp_path: Path) -> None:
    calls: list[str] = []

    def flaky(unit: str) -> xr.Dataset:
        calls.append(unit)
        if unit == "world-2":
            raise ValueError("corrupt video")
        return unit_dataset(unit)

    study = Study(tmp_path, "demo", config={"frames": 8}, attrs=provenance(seed=0))
    study.run(UNITS, flaky)
    ds = study.finish(UNITS, summary=lambda d: f"{d.sizes['example_id']} rows\n")
    assert calls == UNITS
    assert list(ds["failed_unit"].values) == ["world-2"]
    assert "corrupt video" in str(ds["error"].values[0])
    assert ds.sizes["example_id"] == 6 and list(ds["clip"].values[:2]) == ["world-1", "world-1"]
    assert (tmp_path / "demo.md").read_text() == "6 rows\n"
    assert ds.attrs["study"] == "demo" and json.loads(ds.attrs["config"]) == {"frames": 8}

    # A rerun computes only the failed unit; now it succeeds, and the merged order follows UNITS.
    calls.clear()
    study = Study(tmp_path, "demo", config={"frames": 8})
    study.run(UNITS, unit_dataset_recording := lambda u: (calls.append(u), unit_dataset(u))[1])
    ds = study.finish(UNITS)
    assert calls == ["world-2"] and unit_dataset_recording
    assert ds.sizes["failure"] == 0
    assert list(ds["clip"].values[::2]) == UNITS
    np.testing.assert_array_equal(
        ds["score"].sel(example_id="world-4/b"), unit_dataset("world-4")["score"][1]
    )


def test_study_refuses_another_config_unless_fresh(tmp_path: Path) -> None:
    Study(tmp_path, "demo", config={"frames": 8}).run(UNITS[:1], unit_dataset)
    with pytest.raises(StudyConfigError, match="frames"):
        Study(tmp_path, "demo", config={"frames": 16})
    study = Study(tmp_path, "demo", config={"frames": 16}, fresh=True)
    assert study.shard(UNITS) == UNITS


def test_study_rejects_parts_without_its_dim_and_duplicate_units(tmp_path: Path) -> None:
    study = Study(tmp_path, "demo", config={})
    with pytest.raises(ValueError, match="example_id"):
        study.record("u", xr.Dataset({"x": ("layer", [1.0])}))
    with pytest.raises(ValueError, match="unique"):
        study.shard(["a", "a"])


def test_markdown_table() -> None:
    table = markdown_table([{"method": "f2l", "score": 0.53125}, {"method": "a|b", "score": 1e-5}])
    assert table.splitlines() == [
        "| method | score |",
        "| --- | --- |",
        "| f2l | 0.531 |",
        "| a\\|b | 1.00e-05 |",
    ]


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from f2l.distributed import init_distributed, rank
    from f2l.results import Study
    from test_results import UNITS, unit_dataset

    init_distributed()
    seen = []
    study = Study(sys.argv[1], "demo", config={{"n": 4}})
    study.run(UNITS, lambda u: (seen.append(u), unit_dataset(u))[1])
    ds = study.finish(UNITS)
    print(f"rank {{rank()}} ran {{seen}} and sees {{ds.sizes['example_id']}} rows")
    """
)


def test_two_torchrun_ranks_give_the_same_dataset_as_one(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parent)
    script = tmp_path / "shard.py"
    script.write_text(SCRIPT.format(root=root))
    single = Study(tmp_path / "one", "demo", config={"n": 4})
    single.run(UNITS, unit_dataset)
    expected = single.finish(UNITS)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rank 0 ran ['world-1', 'odd/id with space'] and sees 8 rows" in out.stdout
    assert "rank 1 ran ['world-2', 'world-4'] and sees 8 rows" in out.stdout
    got = read_netcdf(tmp_path / "two" / "demo.nc")
    for name in ("score", "prediction", "clip"):
        xr.testing.assert_identical(got[name], expected[name])


def test_a_study_command_on_results_of_another_config_exits_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``study_main`` turns the refusal into the command's error message: what differs and how out."""
    from dataclasses import dataclass

    from analyses.common import study_main

    @dataclass
    class DemoConfig:
        out: str = str(tmp_path)
        frames: int = 8

    def run(cfg: DemoConfig) -> xr.Dataset:
        return Study(cfg.out, "demo", config={"frames": cfg.frames}).run(UNITS[:1], unit_dataset)

    run(DemoConfig())
    capsys.readouterr()
    assert study_main("demo", DemoConfig, run, ["--frames", "16"], "demo") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "['frames']" in err and "--fresh" in err
