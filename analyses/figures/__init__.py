"""Seaborn figures of the studies' datasets, one function per figure, shared by the notebooks and by
``python -m analyses.figures``. ``FIGURES`` maps a study name to its figure functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import xarray as xr

FIGURES: dict[str, list[Callable]] = {}


def save_study_figures(study: str, ds: xr.Dataset, out_dir: str | Path) -> list[Path]:
    """Render every figure registered for ``study`` to ``<out_dir>/<study>[_<figure>].png``."""
    return []
