"""Which layers carry the internalized video? Remove one layer's generated LoRA at a time and re-score.

For each clip, the hypernetwork's adapter is made once; each text-model layer's LoRA is then zeroed (in
all its modules, only its attention projections, or only its MLP projections: by default every group
holding some of the adapter's modules, so a ``down_proj``-only adapter has no attention group), every
prompt of the clip (each caption category and one question of each QA type) is re-answered with zero
visual tokens, and the signed effect ``score - full_score`` is recorded: negative = the layer helps. The
two ends anchor the scale: nothing removed (f2l) and everything removed (the base with no video).
Negative controls (``probes.controls``): the same removals of another clip's adapter (swapped: the next
clip of the manifest) and of a blank video's (blank), so that a reader sees what removing a layer does
when the adapter carries nothing about the clip.

    python -m analyses.layer_removal                        # shipped tiny checkpoints, 48 test clips
    python -m analyses.layer_removal --full --out results   # the complete sweep (100 clips)
    torchrun --nproc-per-node 4 -m analyses.layer_removal --full   # clips sharded across ranks

Writes ``<out>/layer_removal.nc``, ``<out>/layer_removal.md`` (mean effect per layer and module group)
and figures. Interrupted runs resume where they stopped (one part file per clip).

Dataset schema (``layer_removal.nc``; see ``probes.layer_removal``):

- dims ``example_id`` (``"<clip>/<item_id>"``: one prompt of one clip), ``adapter`` ("real", "swapped",
  "blank": whose adapter is edited), ``layer``, ``module_group``
  (of "all", "attention", "mlp", those holding some of the adapter's modules), and ``failure`` (clips
  whose computation raised).
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa") on
  ``example_id``; ``group_modules(module_group)`` (the adapter's modules each group held); scalar
  ``metric``.
- ``score(example_id, adapter, layer, module_group)`` and ``effect = score - full_score``, in units of
  the metric (token-F1 by default); ``full_score(example_id, adapter)`` (f2l), ``none_score(example_id)``
  (base, no video); ``prediction(example_id, adapter, layer, module_group)``,
  ``full_prediction(example_id, adapter)``, ``none_prediction`` and ``reference`` (strings);
  ``failed_unit(failure)``, ``error(failure)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time) and
  the study's config.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from analyses.common import (
    AnswerStudyConfig,
    ControlsConfig,
    clip_mean_se,
    open_probe_study,
    study_main,
    study_partners,
)
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


def summary(ds: xr.Dataset) -> str:
    """Markdown: the two ends (f2l under each adapter, and no video), then the mean signed effect per layer
    and group of the real adapter, per benchmark, and per layer under each adapter (all modules)."""
    metric = str(ds["metric"].values) if "metric" in ds.coords else ds.attrs.get("metric", "score")
    lines = [f"# Layer removal ({metric})\n"]
    failures = ds.sizes.get("failure", 0)
    if "score" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips. Effects are "
        f"`score - full_score` (negative = the layer helps), mean ± standard error across clips, of the "
        f"clip's own adapter (real) unless a table says otherwise.\n"
    )
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
    rows = [
        {"layer": int(layer)}
        | {g: clip_mean_se(effect.sel(layer=layer, module_group=g)) for g in ds["module_group"].values}
        for layer in ds["layer"].values
    ]
    lines.append("Mean effect of removing one layer's LoRA:\n")
    lines.append(markdown_table(rows))
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
        rows = [
            {"layer": int(layer)}
            | {
                str(a): clip_mean_se(ds["effect"].sel(adapter=a, layer=layer, module_group=group))
                for a in ds["adapter"].values
            }
            for layer in ds["layer"].values
        ]
        lines.append(markdown_table(rows))
    return "\n".join(lines)


def run(cfg: LayerRemovalConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/layer_removal.nc``)."""
    # the groups, resolved from the hypernetwork's targets before anything loads: a group holding none of
    # its modules is one error now (not a failure per clip), and the config records the groups measured
    targets = read_kind_config(resolve_hypernet(cfg.hypernet))[1].target_modules
    cfg = replace(
        cfg,
        module_groups=tuple(adapter_groups(targets, cfg.module_groups)),
        adapters=check_adapters(cfg.adapters),
    )
    f2l, examples, study = open_probe_study(cfg, NAME, metric=cfg.metric)
    partners = study_partners(cfg, cfg.adapters)

    def one_clip(clip_id: str) -> xr.Dataset:
        return layer_removal(
            f2l,
            [examples[clip_id]],
            frames=cfg.frames,
            module_groups=cfg.module_groups,
            qa_per_type=cfg.qa_per_type,
            adapters=cfg.adapters,
            partners=partners,
            metric=cfg.metric,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
        )

    study.run(list(examples), one_clip, desc="layer removal")
    return study.finish(list(examples), summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("layer_removal", LayerRemovalConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
