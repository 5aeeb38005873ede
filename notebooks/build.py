"""Write the notebooks of ``notebooks/`` from one template, so that every study notebook opens, loads
and falls back the same way. The template and what each notebook says live in ``notebook_parts/``
beside this file. The ``.ipynb`` files are committed (without outputs); rerun this after editing them:

    python notebooks/build.py

Every study notebook: what it shows and which command made its data; a ``parameters`` cell naming
``results_dir`` (papermill style); loading ``<results_dir>/<study>.nc``, or running the study's small
default there when it is missing; the summary table the study wrote; its figures from
``analyses.figures``, each with a line on how to read it; and a look at the numbers behind them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by its path (tests/notebooks), not run as a script
    sys.path.insert(0, str(HERE))

from notebook_parts.overview import OVERVIEW  # noqa: E402
from notebook_parts.probe_studies import PROBE_STUDIES  # noqa: E402
from notebook_parts.studies import STUDIES  # noqa: E402
from notebook_parts.template import notebook, study_cells  # noqa: E402


def build() -> dict[str, nbformat.NotebookNode]:
    """Every notebook, by file stem."""
    books = {nb.study: notebook(study_cells(nb), nb.study) for nb in [*STUDIES, *PROBE_STUDIES]}
    books["overview"] = notebook(OVERVIEW, "overview")
    for book in books.values():
        nbformat.validate(book)
    return books


def main() -> None:
    for name, book in build().items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(book, path)
        print(path)


if __name__ == "__main__":
    main()
