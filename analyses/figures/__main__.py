"""Render every study dataset found in a results directory to figures, headless.

    python -m analyses.figures --results results --out results/figures [--svg]

Looks for ``<results>/<study>.nc`` for every study in ``analyses.figures.FIGURES`` and writes
``<out>/<study>_<figure>.png`` (and ``.svg``). Exits non-zero if a figure failed or nothing was found.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from analyses.figures import FIGURES, render_study  # noqa: E402
from f2l.cli import entry_point  # noqa: E402
from f2l.config import parse_config  # noqa: E402


@dataclass
class FiguresConfig:
    """Where the study datasets are, and where the figures go."""

    results: str = "results"
    out: str | None = None  # default: <results>/figures
    svg: bool = False


@entry_point
def main(argv: list[str]) -> int:
    cfg = parse_config(
        FiguresConfig, argv, prog="python -m analyses.figures", description=__doc__.split("\n\n")[0]
    )
    results = Path(cfg.results)
    out = Path(cfg.out) if cfg.out else results / "figures"
    formats = ("png", "svg") if cfg.svg else ("png",)
    found = [s for s in FIGURES if (results / f"{s}.nc").exists()]
    if not found:
        print(f"no study datasets ({', '.join(f'{s}.nc' for s in FIGURES)}) in {results}", file=sys.stderr)
        return 1
    failed = 0
    for study in found:
        paths, errors = render_study(
            study, results / f"{study}.nc", out, formats=formats, results_dir=results
        )
        for path in paths:
            print(path)
        for error in errors:
            print(f"figure failed: {error}", file=sys.stderr)
        failed += len(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
