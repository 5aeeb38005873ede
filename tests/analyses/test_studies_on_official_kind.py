"""Every study runs on the shipped official-kind hypernetwork (``paper-tiny``: the authors' design, one
module, a rank-2r adapter with a static block). Layer removal, rank ablation, patching and efficiency are
checked on an official-kind hypernetwork in their own test files."""

from __future__ import annotations

import importlib

import pytest

from f2l.results import read_netcdf

SMALL = ["--clips", "1", "--max-new-tokens", "6"]
STUDIES = {
    "benchmark": [*SMALL, "--qa-per-type", "1"],
    "delta_norms": ["--clips", "1"],
    "logit_attribution": SMALL,
    "composition": [*SMALL, "--n-chunks", "2"],
    "scaling": [*SMALL, "--frames", "4", "--resolutions", "64", "--resolution-frames", "4"],
}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_study_runs_and_records_the_official_hypernetwork(study, tmp_path, one_thread):
    module = importlib.import_module(f"analyses.{study}")
    assert module.main(["--hypernet", "paper-tiny", "--out", str(tmp_path), *STUDIES[study]]) == 0
    ds = read_netcdf(tmp_path / f"{study}.nc")
    assert ds.attrs["hypernet"].startswith("paper-tiny-hypernet@")  # the shipped directory, by digest
    assert ds.sizes.get("failure", 0) == 0
    if "module" in ds.coords:
        assert list(ds["module"].values) == ["down_proj"]
