"""Layer removal: which layers of the generated adapter carry the internalized video?

For every clip, the adapter is internalized once; then each layer's LoRA (all of its modules, or only its
attention or only its MLP projections) is zeroed in turn, every prompt of the clip is re-answered and
re-scored. The signed effect ``score - full_score`` says what removing that layer does: negative means
the layer helps. The two ends are measured too: nothing removed (the f2l answer) and everything removed
(the base answering with no video, exactly: zero factors add exactly nothing).

Only groups that hold some of the adapter's modules are measured (a group the adapter has no module in
would remove nothing): by default every such group, so an adapter of ``down_proj`` alone (the "official"
kind) has "all" and "mlp" (both holding just ``down_proj``) and no "attention"; asking for a group with
none of the adapter's modules is an error. Each group's ``group_modules`` coordinate names the modules
it actually held. Groups holding the same modules are answered once and share the numbers.

Negative controls (``probes.controls``): the same removals of another clip's adapter (swapped) and of a
blank video's (blank), labelled on the ``adapter`` dim, show what the probe finds when the adapter carries
nothing about this clip.

All variants of a clip (of every adapter) are answered in one batched generate loop in which each row
carries its own adapter (``probes.scoring.score_variants``).

Dataset schema (``layer_removal.nc``):

- dims ``example_id`` (one prompt of one clip: ``"<clip>/<item_id>"``), ``adapter`` ("real",
  "swapped", "blank": whose adapter is edited, ``probes.controls``), ``layer`` (text-model layer
  index), ``module_group`` (of "all", "attention", "mlp", those the adapter has modules in; attention =
  q, k, v, o projections, mlp = gate, up, down).
- coords ``clip(example_id)``, ``benchmark(example_id)`` (caption category or QA type), ``kind(example_id)``
  ("caption" | "qa"), ``group_modules(module_group)`` (the adapter's modules in the group, comma-separated),
  and the scalar ``metric`` (the score's metric name).
- ``score(example_id, adapter, layer, module_group)``: the metric with that layer's group removed.
- ``effect(example_id, adapter, layer, module_group)``: ``score - full_score`` (negative = the layer
  helps).
- ``full_score(example_id, adapter)``: nothing removed (f2l under that adapter);
  ``none_score(example_id)``: everything removed (the base with no video, whatever the adapter).
- ``prediction(example_id, adapter, layer, module_group)``, ``full_prediction(example_id, adapter)``,
  ``none_prediction(example_id)``, ``reference(example_id)``: the answers and reference texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from f2l.adapter import TARGET_MODULES, Adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS
from f2l.data import Example, clip_prompts
from probes.controls import DESCRIPTION as ADAPTER_DESCRIPTION
from probes.controls import check_adapters, control_adapters, partners_for
from probes.prompts import prompt_coords
from probes.scoring import score_variants

MODULE_GROUPS: dict[str, tuple[str, ...]] = {
    "all": TARGET_MODULES,
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}


def _check_known(groups: Iterable[str]) -> None:
    unknown = sorted(set(groups) - set(MODULE_GROUPS))
    if unknown:
        raise ValueError(f"unknown module groups {unknown}; choose from {list(MODULE_GROUPS)}")


def adapter_groups(modules: Iterable[str], groups: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """``{group: the adapter's modules in it}`` for ``groups`` (default: every group holding one of
    ``modules``, in ``MODULE_GROUPS`` order). A requested group holding none of ``modules`` is an error."""
    modules = set(modules)
    if groups is not None:
        _check_known(groups)
        if not groups:
            raise ValueError("no module groups requested")
    held = {g: tuple(m for m in MODULE_GROUPS[g] if m in modules) for g in (groups or MODULE_GROUPS)}
    if groups is None:
        return {g: ms for g, ms in held.items() if ms}
    empty = [g for g, ms in held.items() if not ms]
    if empty:
        raise ValueError(f"module groups {empty} hold none of the adapter's modules {sorted(modules)}")
    return held


def remove_layer(adapter: Adapter, layer: int, group: str = "all") -> Adapter:
    """``adapter`` with the LoRA of ``layer`` zeroed in the modules of ``group`` (the rest untouched); a
    group holding none of the adapter's modules is an error (it would remove nothing)."""
    modules = adapter_groups(adapter.modules, [group])[group]
    if set(modules) == set(adapter.modules):
        return adapter.drop_layers([layer])
    removed = adapter.select_modules(modules).drop_layers([layer]).factors
    return Adapter(
        factors={**adapter.factors, **removed}, scaling=adapter.scaling, provenance=adapter.provenance
    )


def layer_removal(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    module_groups: Sequence[str] | None = None,
    qa_per_type: int = 1,
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    metric: str = "token_f1",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
) -> xr.Dataset:
    """The layer-removal dataset (schema in the module docstring) of ``examples``, each internalized
    from ``frames`` frames (world clips rendered at the base's frame size) and asked its
    ``clip_prompts(example, qa_per_type)``; ``module_groups`` default to every group holding some of the
    adapter's modules. ``adapters``: whose adapters are edited (``probes.controls``; the swap partners
    from ``partners``, by default the next example of ``examples``)."""
    if module_groups is not None:
        _check_known(module_groups)
        module_groups = list(module_groups)
    if not examples:
        raise ValueError("layer_removal needs at least one example")
    adapters = check_adapters(adapters)
    partners = partners_for(examples, adapters, partners)
    parts = [
        _one_clip(
            pipeline, e, frames, module_groups, qa_per_type, adapters, partners.get(e.id), metric,
            max_new_tokens, batch_size,
        )
        for e in examples
    ]  # fmt: skip
    out = xr.concat(parts, dim="example_id", data_vars="minimal", coords="different", compat="equals")
    out = out.assign_coords(metric=metric)
    out["layer"].attrs["description"] = "text-model decoder layer whose LoRA is removed"
    out["module_group"].attrs["description"] = "; ".join(
        f"{g}: {m}" for g, m in zip(out["module_group"].values, out["group_modules"].values, strict=True)
    )
    out["group_modules"].attrs["description"] = "the adapter's modules in the group (those removed)"
    out["adapter"].attrs["description"] = ADAPTER_DESCRIPTION
    out.attrs.update(
        probe="layer_removal",
        metric=metric,
        frames=frames,
        qa_per_type=qa_per_type,
        max_new_tokens=max_new_tokens,
    )
    return out


def _one_clip(
    pipeline,
    example: Example,
    frames: int,
    groups: list[str] | None,
    qa_per_type: int,
    adapters: Sequence[str],
    partner: Example | None,
    metric: str,
    max_new_tokens: int,
    batch_size: int,
) -> xr.Dataset:
    """One clip's rows: every variant of each of its adapters answered on every prompt in one batched
    loop (the base, everything removed, once)."""
    by_label = control_adapters(
        pipeline, pipeline.example_frames(example, frames), partner=partner, adapters=adapters
    )
    adapter = by_label["real"]
    held = adapter_groups(adapter.modules, groups)
    layers = range(adapter.num_layers)
    prompts = clip_prompts(example, qa_per_type)
    # groups holding the same modules (e.g. "all" and "mlp" of a down_proj adapter) share one variant
    distinct = list(dict.fromkeys(held.values()))
    group_of = {ms: g for g, ms in held.items()}  # a group removing exactly those modules
    per_adapter = 1 + len(layers) * len(distinct)  # the full adapter, then each removal
    variants = [adapter.drop_layers(layers)]
    for a in by_label.values():
        variants += [a] + [remove_layer(a, layer, group_of[ms]) for layer in layers for ms in distinct]
    scores, answers = score_variants(
        pipeline, variants, prompts, metric=metric, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    none, none_answers = scores[0], answers[0]
    m, n = len(by_label), len(prompts)
    scores = scores[1:].reshape(m, per_adapter, n)
    answers = np.array(answers[1:], dtype=object).reshape(m, per_adapter, n)
    full = scores[:, 0].T  # [prompt, adapter]
    shape = (m, len(layers), len(distinct), n)  # per adapter: layer-major, then module set
    pick = [distinct.index(ms) for ms in held.values()]
    removed = scores[:, 1:].reshape(shape)[:, :, pick].transpose(3, 0, 1, 2)
    predicted = answers[:, 1:].reshape(shape)[:, :, pick].transpose(3, 0, 1, 2).astype(str)
    units = f"{metric}, 0 to 1"
    row = "example_id"
    cube = ("example_id", "adapter", "layer", "module_group")
    return xr.Dataset(
        {
            "score": (cube, removed, {"units": units, "description": "score with the layer's group removed"}),
            "effect": (
                cube,
                removed - full[:, :, None, None],
                {"units": units, "description": "score - full_score (negative = the layer helps)"},
            ),
            "full_score": ((row, "adapter"), full, {"units": units, "description": "nothing removed (f2l)"}),
            "none_score": (row, none, {"units": units, "description": "all removed (the base, no video)"}),
            "prediction": (cube, predicted, {"description": "answer with the layer's group removed"}),
            "full_prediction": (
                (row, "adapter"),
                answers[:, 0].T.astype(str),
                {"description": "f2l answer under the adapter"},
            ),
            "none_prediction": (row, np.array(none_answers, dtype=str), {"description": "base, no video"}),
            "reference": (
                row,
                np.array([p.reference for p in prompts], dtype=str),
                {"description": "reference"},
            ),
        },
        coords={
            **prompt_coords(example, prompts),
            "adapter": list(by_label),
            "layer": list(layers),
            "module_group": list(held),
            "group_modules": ("module_group", [", ".join(ms) for ms in held.values()]),
        },
    )
