"""``python -m analyses.figures``: renders every study dataset found in a results directory."""

from __future__ import annotations

from figure_datasets import DATASETS, SMALL

from analyses.figures.__main__ import main as figures_main
from f2l.results import write_netcdf


def test_cli_renders_every_study_found(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for study in ("efficiency", "delta_norms"):
        write_netcdf(DATASETS[study](**SMALL.get(study, {"n_clips": 1})), results / f"{study}.nc")
    assert figures_main(["--results", str(results), "--out", str(tmp_path / "figs")]) == 0
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert written == ["delta_norms_profile.png", "efficiency_budgets.png", "efficiency_overhead.png"]
    assert figures_main(["--results", str(tmp_path / "figs")]) == 1
    assert "no study datasets" in capsys.readouterr().err
