"""The notebooks: committed without outputs and in step with ``notebooks/build.py``, and each one runs
from top to bottom (nbclient, the environment's ``python3`` kernel) against real study results, made
once per session by each study's ``run`` with its tiniest settings, drawing at least one figure."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support import REPO

from analyses.figures import COMPANIONS

NOTEBOOKS = REPO / "notebooks"
# study -> (its Config class, the tiniest settings that still fill every figure of its notebook; short
# answers keep the generating studies quick)
SHORT = {"max_new_tokens": 8}
TINY = {
    "benchmark": ("BenchmarkConfig", {"clips": 1, **SHORT}),
    "efficiency": (
        "EfficiencyConfig",
        {"frames": (8,), "repeats": 1, "warmup": 0, "memory": False, "training": False},
    ),
    "scaling": (
        "ScalingConfig",
        {"clips": 1, "frames": (8,), "resolutions": (64,), "resolution_frames": 8, **SHORT},
    ),
    "composition": ("CompositionConfig", {"clips": 1, **SHORT}),
    "layer_removal": ("LayerRemovalConfig", {"clips": 1, "module_groups": ("all",), **SHORT}),
    "delta_norms": ("DeltaNormsConfig", {"clips": 1}),
    "rank_ablation": ("RankAblationConfig", {"clips": 1, "ks": (0, 8), **SHORT}),
    "logit_attribution": ("LogitAttributionConfig", {"clips": 1, **SHORT}),
    "patching": ("PatchingConfig", {"clips": 1, "prompts_per_clip": 2, **SHORT}),
    "similarity": ("SimilarityConfig", {"clips": 2, "prompts_per_clip": 2}),
    "logit_lens": ("LogitLensConfig", {"clips": 1, "prompts_per_clip": 2, **SHORT}),
}
STUDY_NOTEBOOKS = sorted(TINY)


def _build_module():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def execute(name: str, **parameters) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` as papermill would: ``parameters`` in a cell after the one tagged
    ``parameters``, the kernel started in ``notebooks/``. Raises ``CellExecutionError`` on any error."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    tagged = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    nb.cells.insert(tagged + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    return nb


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory) -> Path:
    """One results directory for the session; each study's dataset is added the first time it is needed."""
    return tmp_path_factory.mktemp("results")


def study_results(results_dir: Path, study: str) -> Path:
    """``results_dir`` holding ``study``'s dataset and summary table, as its command writes them (run once
    per session, with the study's tiniest settings)."""
    if not (results_dir / f"{study}.nc").exists():
        config, settings = TINY[study]
        module = importlib.import_module(f"analyses.{study}")
        module.run(getattr(module, config)(out=str(results_dir), **settings))
    return results_dir


@pytest.fixture(autouse=True)
def _inline_backend(monkeypatch):
    """The kernel inherits the environment: a headless ``MPLBACKEND=Agg`` would draw no inline images."""
    monkeypatch.delenv("MPLBACKEND", raising=False)


def test_every_study_and_the_overview_has_a_notebook():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted([*STUDY_NOTEBOOKS, "overview"])


def test_notebooks_are_stored_without_outputs_and_as_built():
    built = _build_module().build()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert nb.cells[0].cell_type == "markdown", path.name
        assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, path.name
        assert [c.source for c in nb.cells] == [c.source for c in built[path.stem].cells], (
            f"{path.name} differs from notebooks/build.py: run `python notebooks/build.py`"
        )


def test_study_notebooks_name_their_command_and_results():
    for study in STUDY_NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS / f"{study}.ipynb", as_version=4)
        assert f"python -m analyses.{study}" in nb.cells[0].source
        assert nb.cells[1].source == 'results_dir = "../results"'
        assert f"{TINY[study][0]}(out=str(results)" in nb.cells[2].source


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDY_NOTEBOOKS)
def test_study_notebook_runs_on_real_results(study, results_dir):
    for needed in (study, *COMPANIONS.get(study, {}).values()):
        study_results(results_dir, needed)
    nb = execute(study, results_dir=str(results_dir))
    assert images(nb) >= 1
    loaded = next(c for c in nb.cells if "read_netcdf(path)" in c.source)
    assert "<xarray.Dataset>" in loaded.outputs[-1]["data"]["text/plain"]


@pytest.mark.slow
def test_study_notebook_runs_the_study_when_results_are_missing(tmp_path):
    """The fallback: an empty results directory gets the study's small default (delta norms: no
    generation, the quickest) and the notebook goes on with it."""
    nb = execute("delta_norms", results_dir=str(tmp_path))
    assert (tmp_path / "delta_norms.nc").exists() and images(nb) >= 1


@pytest.mark.slow
def test_overview_walks_a_clip_to_its_adapter_answers_and_probe():
    nb = execute("overview", n_prompts=3, max_new_tokens=8, module_groups=("all",))
    assert images(nb) >= 2  # the frames, and the layer-removal effects beside the update's norms
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "rank 8 x 4 layers" in text and "ground truth:" in text


def test_overview_runs_on_an_official_kind_hypernetwork(official_hypernet):
    """The authors' design (converted from the official fixture): one module, a rank-2r adapter, and the
    layer-removal probe on the groups that adapter has."""
    nb = execute("overview", hypernet=str(official_hypernet), n_prompts=2, max_new_tokens=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "rank 32 x 4 layers, modules ['down_proj']" in text
