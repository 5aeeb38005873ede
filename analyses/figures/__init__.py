"""Seaborn figures of the studies' datasets, one function per figure, shared by the notebooks and by
``python -m analyses.figures``.

Every figure function takes an ``xarray.Dataset`` (or the path of a ``.nc`` file) and returns a
matplotlib ``Figure`` drawn in one style (``analyses.figures.style``). ``FIGURES`` maps a study name to
its figure functions; ``save_study_figures`` renders them to files at the end of a study command.

A figure may read a second study's dataset from the same results directory (``COMPANIONS``): the
layer-removal effects are drawn next to the ||dW||_F profile of ``delta_norms.nc`` when it is there.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

from analyses.figures.benchmark import score_differences, score_distributions, spider
from analyses.figures.composition import composition_curves
from analyses.figures.delta_norms import delta_norms_profile
from analyses.figures.efficiency import efficiency_budgets, efficiency_overhead
from analyses.figures.layer_removal import effects_by_benchmark, layer_removal_effects
from analyses.figures.logit_attribution import dla_per_layer
from analyses.figures.logit_lens import logit_lens_answer, logit_lens_kl
from analyses.figures.patching import patching_controls, patching_effects, patching_restored
from analyses.figures.rank_ablation import rank_ablation_curves
from analyses.figures.scaling import scaling_curves
from analyses.figures.similarity import similarity_cka, similarity_per_layer
from analyses.figures.style import as_dataset
from f2l.results import read_netcdf

FIGURES: dict[str, list[Callable]] = {
    "benchmark": [score_distributions, score_differences, spider],
    "efficiency": [efficiency_budgets, efficiency_overhead],
    "scaling": [scaling_curves],
    "composition": [composition_curves],
    "layer_removal": [layer_removal_effects, effects_by_benchmark],
    "delta_norms": [delta_norms_profile],
    "rank_ablation": [rank_ablation_curves],
    "logit_attribution": [dla_per_layer],
    "patching": [patching_restored, patching_controls, patching_effects],
    "similarity": [similarity_per_layer, similarity_cka],
    "logit_lens": [logit_lens_answer, logit_lens_kl],
}

# study -> {keyword of its figure functions: the study whose dataset fills it, read from the same directory}
COMPANIONS: dict[str, dict[str, str]] = {"layer_removal": {"norms": "delta_norms"}}


def figure_path(out_dir: str | os.PathLike, study: str, fn: Callable, suffix: str = ".png") -> Path:
    """``<out_dir>/<study>_<figure>.png``; the figure's name is its function's, less a repeated study prefix."""
    name = fn.__name__.removeprefix(f"{study}_")
    return Path(out_dir) / f"{study}_{name}{suffix}"


def companions(study: str, results_dir: str | os.PathLike) -> dict[str, xr.Dataset]:
    """The other studies' datasets that ``study``'s figures use, where ``results_dir`` has them."""
    found = {}
    for keyword, other in COMPANIONS.get(study, {}).items():
        path = Path(results_dir) / f"{other}.nc"
        if path.exists():
            found[keyword] = read_netcdf(path)
    return found


def render_study(
    study: str,
    ds: xr.Dataset | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
    results_dir: str | os.PathLike | None = None,
) -> tuple[list[Path], list[str]]:
    """Write every figure of ``study`` in each of ``formats``; returns (files written, errors). A figure
    that raises is reported, not fatal: the dataset is already on disk and can be re-plotted."""
    if study not in FIGURES:
        raise ValueError(f"no figures for study {study!r}; known: {', '.join(FIGURES)}")
    ds = as_dataset(ds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = companions(study, results_dir if results_dir is not None else out_dir)
    written, errors = [], []
    for fn in FIGURES[study]:
        try:
            fig = fn(ds, **{k: v for k, v in extra.items() if k in inspect.signature(fn).parameters})
        except Exception:
            errors.append(f"{study}/{fn.__name__}: {traceback.format_exc()}")
            continue
        try:
            for fmt in formats:
                path = figure_path(out_dir, study, fn, f".{fmt}")
                fig.savefig(path, dpi=150, bbox_inches="tight")  # tight: keeps the footnote under the panels
                written.append(path)
        finally:
            plt.close(fig)
    return written, errors


def save_study_figures(
    study: str, ds: xr.Dataset | str | os.PathLike, out_dir: str | os.PathLike, *, svg: bool = False
) -> list[Path]:
    """Render every figure registered for ``study`` to ``<out_dir>/<study>_<figure>.png`` (and ``.svg``
    with ``svg=True``); returns the files written. Errors are printed to stderr, not raised."""
    paths, errors = render_study(study, ds, out_dir, formats=("png", "svg") if svg else ("png",))
    for error in errors:
        print(f"figure failed: {error}", file=sys.stderr)
    return paths


__all__ = [
    "COMPANIONS",
    "FIGURES",
    "composition_curves",
    "delta_norms_profile",
    "dla_per_layer",
    "effects_by_benchmark",
    "efficiency_budgets",
    "layer_removal_effects",
    "logit_lens_answer",
    "logit_lens_kl",
    "patching_controls",
    "patching_effects",
    "patching_restored",
    "rank_ablation_curves",
    "render_study",
    "save_study_figures",
    "scaling_curves",
    "similarity_cka",
    "similarity_per_layer",
    "score_differences",
    "score_distributions",
    "spider",
]
