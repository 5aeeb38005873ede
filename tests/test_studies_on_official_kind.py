"""Every study runs on an official-kind hypernetwork (the authors' design, converted from the fixture):
one module (down_proj), a rank-2r adapter with a static block. Layer removal, rank ablation and
efficiency are checked on it in their own test files."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from f2l.convert import convert_official
from f2l.results import read_netcdf

FIXTURE = Path(__file__).resolve().parents[2] / "shared/fixtures/official-frames2lora/tiny-official.pt"
SMALL = ["--clips", "1", "--max-new-tokens", "6"]
STUDIES = {
    "benchmark": [*SMALL, "--qa-per-type", "1"],
    "delta_norms": ["--clips", "1"],
    "logit_attribution": SMALL,
    "composition": [*SMALL, "--n-chunks", "2"],
    "scaling": [*SMALL, "--frames", "4", "--resolutions", "64", "--resolution-frames", "4"],
}


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return convert_official(FIXTURE, tmp_path_factory.mktemp("official") / "hypernet", base="tiny")


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_study_runs_and_records_the_official_hypernetwork(study, official, tmp_path, one_thread):
    module = importlib.import_module(f"analyses.{study}")
    assert module.main(["--hypernet", str(official), "--out", str(tmp_path), *STUDIES[study]]) == 0
    ds = read_netcdf(tmp_path / f"{study}.nc")
    assert ds.attrs["hypernet"].startswith("hypernet@")  # the converted directory, by content digest
    assert ds.sizes.get("failure", 0) == 0
    if "module" in ds.coords:
        assert list(ds["module"].values) == ["down_proj"]
