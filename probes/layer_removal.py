"""Layer removal: which layers of the generated adapter carry the internalized video?

``layer_removal(pipeline, examples, ...)`` zeroes each layer's LoRA in turn (all its modules, or only
its attention or MLP projections: the groups holding some of the adapter's modules), re-answers every
prompt and returns ``score`` and ``effect = score - full_score`` on ``(example_id, adapter, layer,
module_group)``, beside the two ends (``full_score``: nothing removed; ``none_score``: the base, no
video) and the swapped and blank controls. The method and full schema:
docs/probes/layer_removal.md (Method).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from f2l.adapter import TARGET_MODULES, Adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS
from f2l.data import Example
from probes.controls import clip_controls, label_probe, probe_controls
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords, reference_variable
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
    prompts: PromptSet = DEFAULT_PROMPTS,
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    metric: str = "token_f1",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
) -> xr.Dataset:
    """The layer-removal dataset (schema: docs/probes/layer_removal.md) of ``examples``, each internalized
    from ``frames`` frames (world clips rendered at the base's frame size) and asked its
    ``prompts``; ``module_groups`` default to every group holding some of the
    adapter's modules. ``adapters``: whose adapters are edited (``probes.controls``; the swap partners
    from ``partners``, by default the next example of ``examples``)."""
    if module_groups is not None:
        _check_known(module_groups)
        module_groups = list(module_groups)
    adapters, partners = probe_controls("layer_removal", examples, adapters, partners)
    parts = [
        _one_clip(
            pipeline, e, frames, module_groups, prompts, adapters, partners.get(e.id), metric,
            max_new_tokens, batch_size,
        )
        for e in examples
    ]  # fmt: skip
    out = concat_prompts(parts).assign_coords(metric=metric)
    out["layer"].attrs["description"] = "text-model decoder layer whose LoRA is removed"
    out["module_group"].attrs["description"] = "; ".join(
        f"{g}: {m}" for g, m in zip(out["module_group"].values, out["group_modules"].values, strict=True)
    )
    out["group_modules"].attrs["description"] = "the adapter's modules in the group (those removed)"
    return label_probe(
        out, "layer_removal", prompts, frames=frames, metric=metric, max_new_tokens=max_new_tokens
    )


def _one_clip(
    pipeline,
    example: Example,
    frames: int,
    groups: list[str] | None,
    prompt_set: PromptSet,
    adapters: Sequence[str],
    partner: Example | None,
    metric: str,
    max_new_tokens: int,
    batch_size: int,
) -> xr.Dataset:
    """One clip's rows: every variant of each of its adapters answered on every prompt in one batched
    loop (the base, everything removed, once)."""
    _, by_label = clip_controls(pipeline, example, frames, partner=partner, adapters=adapters)
    adapter = by_label["real"]
    held = adapter_groups(adapter.modules, groups)
    layers = range(adapter.num_layers)
    prompts = prompt_set.of(example)
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
            "reference": reference_variable(prompts),
        },
        coords={
            **prompt_coords(example, prompts),
            "adapter": list(by_label),
            "layer": list(layers),
            "module_group": list(held),
            "group_modules": ("module_group", [", ".join(ms) for ms in held.values()]),
        },
    )
