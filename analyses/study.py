"""The one runner of the clip-by-clip probe studies.

A probe study declares itself as a ``ProbeStudy``: its name, its settings (a config dataclass, every field
a flag), its per-clip function and its summary report. ``ProbeStudy.run`` does what every such study does:
check the settings before anything loads, open the resumable study (``open_probe_study``), find the swap
partners, call the per-clip function on every pending clip (sharded across torchrun's ranks), merge and
summarise; ``ProbeStudy.main`` is its command. The per-clip function gets a ``ProbeRun``, whose
``kwargs()`` fills the study's probe's keyword-only parameters from the settings of the same names, so
that no study forwards them by hand.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import xarray as xr

from analyses.common import FramesConfig, clip_mean_se, open_probe_study, study_main, study_partners
from f2l.data import Example
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, markdown_table
from probes.controls import check_adapters
from probes.hooks import BACKENDS, Capture, make_capture
from probes.prompts import PromptSet


def metric_of(ds: xr.Dataset) -> str:
    """The name of the metric a dataset's scores are in (``"score"`` when it records none)."""
    return str(ds["metric"].values) if "metric" in ds.coords else ds.attrs.get("metric", "score")


def counts(ds: xr.Dataset) -> str:
    """``"<n> clips, <n> prompts, <n> failed clips"`` of a per-prompt dataset."""
    n_clips = len(np.unique(ds["clip"].values))
    return f"{n_clips} clips, {ds.sizes['example_id']} prompts, {ds.sizes.get('failure', 0)} failed clips"


def layer_table(da: xr.DataArray, across: str, cell: Callable[[xr.DataArray], Any] = clip_mean_se) -> str:
    """A Markdown table of ``da``: a row per layer, a column per value of its dim ``across``, each cell
    ``cell`` of ``da`` there (by default the mean ± standard error across clips)."""
    return layer_columns(da["layer"].values, {str(c): da.sel({across: c}) for c in da[across].values}, cell)


def layer_columns(
    layers: Iterable[int],
    columns: Mapping[str, xr.DataArray],
    cell: Callable[[xr.DataArray], Any] = clip_mean_se,
) -> str:
    """A Markdown table: a row per layer of ``layers``, a column per entry of ``columns``, each cell
    ``cell`` of that column's array at the layer (by default the mean ± standard error across clips)."""
    rows = [
        {"layer": int(layer)} | {name: cell(da.sel(layer=layer)) for name, da in columns.items()}
        for layer in layers
    ]
    return markdown_table(rows)


def keywords(probe: Callable | None) -> frozenset[str]:
    """The names of ``probe``'s keyword-only parameters (those after its ``*``)."""
    if probe is None:
        return frozenset()
    params = inspect.signature(probe).parameters.values()
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


@dataclass
class ProbeRun:
    """One run of a probe study, as its per-clip function sees it: the settings, the pipeline, the clips
    by id, their swap partners (none without the swapped control), the resumable ``Study`` and the
    keywords of the study's probe."""

    cfg: FramesConfig
    pipeline: Frames2LoRA
    examples: dict[str, Example]
    study: Study
    partners: dict[str, Example]
    keywords: frozenset[str] = frozenset()
    scratch: dict[str, Any] = field(default_factory=dict)  # state a per-clip function keeps across clips

    @property
    def prompts(self) -> PromptSet:
        """The prompts asked of each clip (``--qa-per-type``, ``--prompts-per-clip``)."""
        return PromptSet(getattr(self.cfg, "qa_per_type", 1), getattr(self.cfg, "prompts_per_clip", None))

    @functools.cached_property
    def capture(self) -> Capture:
        """The hook capture of ``--backend`` (default nnsight), built at its first use: a resumed run with
        nothing to do never builds it (a bridge copies the model)."""
        return make_capture(getattr(self.cfg, "backend", "nnsight"), self.pipeline.base.model)

    @functools.cached_property
    def pending(self) -> list[str]:
        """This rank's clips without a result, in the order ``Study.run`` asks for them."""
        return self.study.shard(list(self.examples))

    def kwargs(self) -> dict[str, Any]:
        """The probe's keywords this run fills: each setting of the same name, ``prompts`` (a
        ``PromptSet``), ``adapters`` (checked), ``partners`` and ``capture``."""
        params = self.keywords
        values = {f.name: getattr(self.cfg, f.name) for f in fields(self.cfg)} | {
            "prompts": self.prompts,
            "partners": self.partners,
        }
        if "adapters" in values:
            values["adapters"] = check_adapters(values["adapters"])
        out = {name: value for name, value in values.items() if name in params}
        if "capture" in params:
            out["capture"] = self.capture
        return out


@dataclass(frozen=True)
class ProbeStudy:
    """A clip-by-clip probe study: what is its own, the rest is ``run``'s.

    ``clip(run, example)`` makes one clip's dataset (on ``dim``), calling ``probe`` (whose keyword-only
    parameters ``run.kwargs()`` fills); ``report(ds)`` the summary's lines
    after its title (``title``, ``{metric}`` filled in) once ``needs`` is in the merged dataset.
    ``prepare(cfg)`` checks and completes the settings before anything loads; ``ignore`` names settings
    that do not change a clip's numbers; ``derive`` adds what spans clips to the merged dataset."""

    name: str
    config: type[FramesConfig]
    clip: Callable[[ProbeRun, Example], xr.Dataset]
    report: Callable[[xr.Dataset], list[str]]
    doc: str  # the module's docstring: its first paragraph is the command's description
    title: str
    needs: str
    probe: Callable | None = None
    prepare: Callable[[Any], Any] | None = None
    dim: str = "example_id"
    ignore: tuple[str, ...] = ()
    derive: Callable[[xr.Dataset], xr.Dataset] | None = None

    def summary(self, ds: xr.Dataset) -> str:
        """The study's Markdown summary of a merged dataset."""
        lines = [f"# {self.title.format(metric=metric_of(ds))}\n"]
        if self.needs not in ds:
            return "\n".join([*lines, f"No clip finished; {ds.sizes.get('failure', 0)} failed.\n"])
        return "\n".join([*lines, *self.report(ds)])

    def check(self, cfg: Any) -> Any:
        """``cfg`` checked (the backend and control adapters of every study, then ``prepare``)."""
        backend = getattr(cfg, "backend", None)
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {list(BACKENDS)}")
        if hasattr(cfg, "adapters"):
            check_adapters(cfg.adapters)
        return self.prepare(cfg) if self.prepare else cfg

    def run(self, cfg: Any) -> xr.Dataset:
        """Run (or resume) the study and return the merged dataset (also written to ``<out>/<name>.nc``)."""
        cfg = self.check(cfg)
        metric = {"metric": cfg.metric} if hasattr(cfg, "metric") else {}
        pipeline, examples, study = open_probe_study(
            cfg, self.name, dim=self.dim, ignore=self.ignore, **metric
        )
        partners = study_partners(cfg, cfg.adapters) if hasattr(cfg, "adapters") else {}
        run = ProbeRun(cfg, pipeline, examples, study, partners, keywords(self.probe))
        units = list(examples)
        study.run(units, lambda clip_id: self.clip(run, examples[clip_id]), desc=self.name.replace("_", " "))
        return study.finish(units, derive=self.derive, summary=self.summary)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """``python -m analyses.<name>``."""
        return study_main(self.name, self.config, self.run, argv, self.doc.split("\n\n")[0])
