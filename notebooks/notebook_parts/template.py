"""The one template of every study notebook: its opening, the ``parameters`` cell, loading the study's
dataset (or running its small default), the summary table, the figures and the numbers behind them."""

from __future__ import annotations

from dataclasses import dataclass, field

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}
# Relative to the notebook, i.e. the repository's ``results/``, where the study commands write by default.
RESULTS_DIR = "../results"


@dataclass
class StudyNotebook:
    study: str
    title: str
    about: str
    config: str  # the study's Config dataclass
    small: str  # keyword arguments of the small default run, as code
    duration: str  # how long that run takes on 2 CPU cores
    figures: list[tuple[str, str]]  # (how to read it, code drawing it)
    explore: list[tuple[str, str]] = field(default_factory=list)  # (markdown, code)
    command: str = ""

    @property
    def cmd(self) -> str:
        return self.command or f"python -m analyses.{self.study} --out results"


def study_cells(nb: StudyNotebook) -> list:
    module = f"analyses.{nb.study}"
    intro = (
        f"# {nb.title}\n\n{nb.about}\n\n"
        f"**Data**: `{nb.study}.nc` in `results_dir`, written by `{nb.cmd}` (run from the repository root; "
        f"`--full` for the complete sweep, `--help` for every setting). If the file is missing, the next "
        f"cells run the study's small default into `results_dir` ({nb.duration} on 2 CPU cores).\n\n"
        "Figures come from `analyses.figures`, the same functions `python -m analyses.figures` renders."
    )
    load = (
        "%matplotlib inline\n"
        "from pathlib import Path\n\n"
        "from IPython.display import Markdown, display\n\n"
        "from analyses import figures\n"
        f"from {module} import {nb.config}, run\n"
        "from f2l.results import read_netcdf\n\n"
        "results = Path(results_dir)\n"
        f'path = results / "{nb.study}.nc"\n'
        "if not path.exists():  # no results yet: run the study's small default here\n"
        f"    run({nb.config}(out=str(results), {nb.small}))\n"
        "ds = read_netcdf(path)\n"
        'if ds.sizes.get("failure", 0):  # units whose computation raised: left out of every figure below\n'
        '    display(ds[["failed_unit", "error"]].to_dataframe())\n'
        "ds"
    )
    summary = (
        f'summary = results / "{nb.study}.md"\n'
        'display(Markdown(summary.read_text()) if summary.exists() else "(no summary table)")'
    )
    cells = [
        new_markdown_cell(intro),
        new_code_cell(f'results_dir = "{RESULTS_DIR}"', metadata={"tags": ["parameters"]}),
        new_code_cell(load),
        new_markdown_cell("## The study's summary table"),
        new_code_cell(summary),
        new_markdown_cell("## Figures"),
    ]
    for text, code in nb.figures:
        cells += [new_markdown_cell(text), new_code_cell(code)]
    if nb.explore:
        cells.append(new_markdown_cell("## The numbers behind the figures"))
        for text, code in nb.explore:
            cells += [new_markdown_cell(text), new_code_cell(code)]
    return cells


def notebook(cells: list, name: str) -> nbformat.NotebookNode:
    """A notebook without outputs, with stable cell ids (so a rebuild changes only what was edited)."""
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{i}"
    return new_notebook(cells=cells, metadata=KERNEL)
