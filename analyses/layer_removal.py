"""Which layers carry the internalized video? Remove one layer's generated LoRA at a time and re-score.

Per clip, each text-model layer's LoRA (all its modules, its attention or its MLP projections) is zeroed
and every prompt re-answered with no visual tokens; ``effect = score - full_score`` (negative: the layer
helps), beside the two ends (nothing removed, everything removed) and the swapped and blank controls.
``python -m analyses.layer_removal [--full]`` writes ``<out>/layer_removal.nc`` (schema:
``probes.layer_removal``), ``.md`` and figures; method: docs/probes/layer_removal.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import xarray as xr

from analyses.common import AnswerStudyConfig, ControlsConfig
from analyses.study import ProbeRun, ProbeStudy, counts, layer_table, metric_of
from f2l.data import Example
from f2l.hypernet import read_kind_config
from f2l.pipeline import resolve_hypernet
from f2l.results import markdown_table
from probes.controls import check_adapters
from probes.layer_removal import adapter_groups, layer_removal

NAME = "layer_removal"


@dataclass
class LayerRemovalConfig(ControlsConfig, AnswerStudyConfig):
    """Settings of the layer-removal study (every field is a command-line flag)."""

    clips: int = 48
    metric: str = "token_f1"
    module_groups: tuple[str, ...] | None = None  # default: every group holding the adapter's modules


def prepare(cfg: LayerRemovalConfig) -> LayerRemovalConfig:
    """The groups, resolved from the hypernetwork's targets before anything loads: a group holding none
    of its modules is one error now (not a failure per clip), and the config records the groups measured."""
    targets = read_kind_config(resolve_hypernet(cfg.hypernet))[1].target_modules
    groups = tuple(adapter_groups(targets, cfg.module_groups))
    return replace(cfg, module_groups=groups, adapters=check_adapters(cfg.adapters))


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    return layer_removal(run.pipeline, [example], **run.kwargs())


def report(ds: xr.Dataset) -> list[str]:
    """The two ends (f2l under each adapter, and no video), then the mean signed effect per layer and
    group of the real adapter, per benchmark, and per layer under each adapter (all modules)."""
    metric = metric_of(ds)
    lines = [
        f"{counts(ds)}. Effects are `score - full_score` (negative = the layer helps), mean ± standard error "
        f"across clips, of the clip's own adapter (real) unless a table says otherwise.\n"
    ]
    full = ds["full_score"]
    ends = [
        {"variant": f"nothing removed (f2l, {a} adapter)", metric: float(full.sel(adapter=a).mean())}
        for a in ds["adapter"].values
    ]
    ends += [
        {"variant": "everything removed (base, no video)", metric: float(ds["none_score"].mean())},
        {"variant": "difference", metric: float((ds["none_score"] - full.sel(adapter="real")).mean())},
    ]
    lines.append(markdown_table(ends))
    if "group_modules" in ds.coords:
        held = zip(ds["module_group"].values, ds["group_modules"].values, strict=True)
        groups = "; ".join(f"{g}: {m}" for g, m in held)
        lines.append(f"Module groups (the adapter's modules in each): {groups}.\n")
    effect = ds["effect"].sel(adapter="real")
    lines.append("Mean effect of removing one layer's LoRA:\n")
    lines.append(layer_table(effect, "module_group"))
    group = "all" if "all" in ds["module_group"].values else str(ds["module_group"].values[0])
    if group == "all":
        by_benchmark = effect.sel(module_group="all").groupby("benchmark").mean("example_id")
        rows = [
            {"benchmark": str(b)}
            | {
                f"layer {int(layer)}": float(by_benchmark.sel(benchmark=b, layer=layer))
                for layer in ds["layer"]
            }
            for b in by_benchmark["benchmark"].values
        ]
        lines.append("Mean effect of removing every module of a layer, per benchmark:\n")
        lines.append(markdown_table(rows))
    if ds.sizes["adapter"] > 1:
        answers = ds["full_prediction"]
        n = answers.sizes["example_id"]
        changed = ", ".join(
            f"{a} {int((answers.sel(adapter=a) != answers.sel(adapter='real')).sum())} / {n}"
            for a in ds["adapter"].values
            if a != "real"
        )
        lines.append(
            "## Negative controls: another clip's adapter (swapped) and a blank video's (blank)\n\n"
            f"Prompts whose f2l answer differs from the real adapter's: {changed}. Mean effect of removing "
            f"one layer's LoRA (module group {group}) from each adapter:\n"
        )
        lines.append(layer_table(ds["effect"].sel(module_group=group), "adapter"))
    return lines


STUDY = ProbeStudy(
    NAME, LayerRemovalConfig, one_clip, report, __doc__, probe=layer_removal,
    title="Layer removal ({metric})", needs="score", prepare=prepare,
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
