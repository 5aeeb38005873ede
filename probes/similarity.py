"""Residual-stream similarity: how close is the adapter's residual stream to the one the video produces?

``similarity(pipeline, examples, ...)`` runs every prompt direct, f2l and base (``probes.patching``'s
runs and alignment) and, at each layer's ``resid_pre`` and the final residual over the aligned question
span, returns ``similarity(example_id, adapter, layer, measure)`` (f2l's cosine to direct and the share
of the video's effect it reproduces), ``cosine_base`` and the linear CKA across examples (``add_cka``,
``cka``, ``cka_base``). Definitions travel in the attrs; the method and full schema:
docs/probes/similarity.md (Method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import use_adapter
from f2l.data import Example
from probes.controls import clip_controls, label_probe, probe_controls
from probes.hooks import NNsightCapture
from probes.patching import Run, make_runs, with_adapter
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords

MEASURES = ("cosine", "share")
RUNS = ("direct", "f2l", "base")
MIN_GAP = 1e-6  # relative: share is NaN where ||h_base - h_direct||_F <= MIN_GAP * ||h_direct||_F
POSITIONS = (
    "the prompt's aligned span (the longest common suffix of the direct and text-only prompts' ids: the "
    "question, or all of it but its first token, the end of the turn and the Assistant: cue), from the end "
    "of each run; no answer tokens"
)
COSINE = "cos(h_f2l[p], h_direct[p]) per aligned position p, mean over positions"
SHARE = "1 - ||h_f2l - h_direct||_F / ||h_base - h_direct||_F over the aligned positions"
CKA = (
    "linear CKA across examples between the f2l and direct runs' residual streams, each example's averaged "
    "over its aligned positions: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), X and Y centred over examples"
)


@torch.no_grad()
def read_residuals(capture: NNsightCapture, run: Run) -> Tensor:
    """``[L + 1, K, d]``: each decoder layer's ``resid_pre`` and then the final residual stream (before the
    final norm) at ``run``'s aligned positions."""
    text = capture.text_model
    pos = run.positions
    saved: list[Tensor] = []
    applied = use_adapter(capture.model, run.adapter) if run.adapter is not None else nullcontext()
    with applied, capture.traced.trace(**run.inputs):
        for layer in text.layers:  # in execution order, as nnsight requires
            saved.append(layer.input[0, pos].save())
        saved.append(text.norm.input[0, pos].save())
    return torch.stack(saved)


def per_example(f2l: Tensor, direct: Tensor, base: Tensor, min_gap: float = MIN_GAP) -> dict[str, np.ndarray]:
    """``{"cosine", "share", "cosine_base"}``, each ``[L + 1]``, from three runs' ``[L + 1, K, d]``
    residual streams at the aligned positions (docs/probes/similarity.md, Method)."""
    f2l, direct, base = (t.to(torch.float64) for t in (f2l, direct, base))
    cosine = torch.nn.functional.cosine_similarity(f2l, direct, dim=-1).mean(-1)
    cosine_base = torch.nn.functional.cosine_similarity(base, direct, dim=-1).mean(-1)
    gap = torch.linalg.vector_norm(base - direct, dim=(-2, -1))
    miss = torch.linalg.vector_norm(f2l - direct, dim=(-2, -1))
    scale = torch.linalg.vector_norm(direct, dim=(-2, -1))
    share = torch.where(gap > min_gap * scale, 1 - miss / gap, torch.full_like(gap, float("nan")))
    return {"cosine": cosine.numpy(), "share": share.numpy(), "cosine_base": cosine_base.numpy()}


def linear_cka(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear CKA between ``x[..., n, d1]`` and ``y[..., n, d2]`` across their ``n`` rows (examples), per
    leading index: ``<K_x, K_y> / (||K_x|| ||K_y||)`` with ``K = X_c X_c^T`` of the centred rows, which
    equals ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``. NaN with fewer than 2 rows or a
    centred representation of 0 (every example the same, up to rounding: ``||X_c||_F <= 1e-10 ||X||_F``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(f"CKA needs the same examples in both: {x.shape[-2]} rows against {y.shape[-2]}")
    if x.shape[-2] < 2:
        return np.full(x.shape[:-2], np.nan)
    xc, yc = x - x.mean(-2, keepdims=True), y - y.mean(-2, keepdims=True)
    kx, ky = xc @ np.swapaxes(xc, -1, -2), yc @ np.swapaxes(yc, -1, -2)
    norm = np.linalg.norm(kx, axis=(-2, -1)) * np.linalg.norm(ky, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        cka = (kx * ky).sum((-2, -1)) / norm
    # every example the same: the centred rows are 0 up to rounding
    flat = [
        np.linalg.norm(c, axis=(-2, -1)) <= 1e-10 * np.linalg.norm(a, axis=(-2, -1))
        for c, a in ((xc, x), (yc, y))
    ]
    return np.where(flat[0] | flat[1] | (norm == 0), np.nan, cka)


def add_cka(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with ``cka(adapter, layer)`` and ``cka_base(layer)`` over all its examples, from
    ``mean_resid``."""
    if "mean_resid" not in ds or ds.sizes.get("example_id", 0) == 0:
        return ds
    means = ds["mean_resid"].transpose("adapter", "layer", "run", "example_id", "hidden")
    direct = means.sel(run="direct").values
    ds = ds.copy()
    ds["cka"] = (
        ("adapter", "layer"),
        linear_cka(means.sel(run="f2l").values, direct),
        {"units": "CKA", "description": CKA},
    )
    ds["cka_base"] = (
        "layer",
        linear_cka(means.sel(run="base").values[0], direct[0]),
        {"units": "CKA", "description": CKA.replace("the f2l and direct", "the base and direct")},
    )
    ds.attrs["cka_examples"] = int(ds.sizes["example_id"])
    return ds


def similarity(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    prompts: PromptSet = DEFAULT_PROMPTS,
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    min_gap: float = MIN_GAP,
    capture: NNsightCapture | None = None,
) -> xr.Dataset:
    """The similarity dataset (schema: docs/probes/similarity.md) of ``examples``, each internalized from
    ``frames`` frames and asked its ``prompts``, the f2l run under each of ``adapters`` (``probes.controls``; the swap partners from
    ``partners``, by default the next example of ``examples``), CKA across all of them. ``capture``: an
    ``NNsightCapture`` of ``pipeline.base.model``."""
    adapters, partners = probe_controls("similarity", examples, adapters, partners)
    if capture is None:
        capture = NNsightCapture(pipeline.base.model)
    parts = [
        clip_similarity(
            pipeline, e, frames=frames, prompts=prompts, min_gap=min_gap, capture=capture, adapters=adapters,
            partner=partners.get(e.id),
        )
        for e in examples
    ]  # fmt: skip
    return add_cka(concat_prompts(parts))


def clip_similarity(
    pipeline,
    example: Example,
    *,
    frames: int,
    prompts: PromptSet,
    min_gap: float,
    capture: NNsightCapture,
    adapters: Sequence[str] = ("real",),
    partner: Example | None = None,
) -> xr.Dataset:
    """One clip's rows (every variable but the CKA, which spans examples: ``add_cka``), the f2l run under
    each of ``adapters`` (``probes.controls.control_adapters``, with the swap ``partner``)."""
    base = pipeline.base
    video, by_label = clip_controls(pipeline, example, frames, partner=partner, adapters=adapters)
    asked = prompts.of(example)
    questions = [p.prompt for p in asked]
    rows: list[list[dict[str, np.ndarray]]] = []  # [prompt][adapter]
    means: list[np.ndarray] = []
    k_tokens = []
    for question in questions:
        prompt = make_runs(base, question, (), video, None)  # no answer: the prompt's runs alone
        resid: dict[str, Tensor] = {}
        per_adapter, per_means = [], []
        for adapter in by_label.values():
            runs = with_adapter(prompt, adapter)
            for name in ("direct", "base"):  # no adapter in the run: read once
                if name not in resid:
                    resid[name] = read_residuals(capture, runs[name])
            resid["f2l"] = read_residuals(capture, runs["f2l"])
            per_adapter.append(per_example(resid["f2l"], resid["direct"], resid["base"], min_gap))
            per_means.append(np.stack([resid[name].to(torch.float64).mean(1).numpy() for name in RUNS]))
        rows.append(per_adapter)
        means.append(np.stack(per_means))
        k_tokens.append(runs["base"].span)
    layers = means[0].shape[2]
    row = "example_id"
    data = {
        "similarity": (
            (row, "adapter", "layer", "measure"),
            np.stack([[np.stack([r[m] for m in MEASURES], -1) for r in by_prompt] for by_prompt in rows]),
            {
                "description": f"f2l against direct. cosine: {COSINE}; share: {SHARE} (NaN where the video moves "
                f"nothing: ||h_base - h_direct||_F <= {min_gap:g} ||h_direct||_F)"
            },
        ),  # fmt: skip
        "cosine_base": (
            (row, "layer"),
            np.stack([by_prompt[0]["cosine_base"] for by_prompt in rows]),
            {"description": COSINE.replace("h_f2l", "h_base")},
        ),
        "mean_resid": (
            (row, "adapter", "run", "layer", "hidden"),
            np.stack(means).astype(np.float32),
            {"description": "the run's residual stream averaged over the aligned positions (CKA's input)"},
        ),
        "question_tokens": (
            row,
            np.array(k_tokens, dtype=np.int64),
            {"units": "tokens", "description": "K: the aligned prompt tokens compared"},
        ),
    }
    out = xr.Dataset(
        data,
        coords={
            **prompt_coords(example, asked, questions=True),
            "adapter": list(by_label),
            "layer": np.arange(layers),
            "measure": list(MEASURES),
            "run": list(RUNS),
        },
    )
    out["layer"].attrs["description"] = (
        "text-model decoder layer's resid_pre; the last index is the final residual"
    )
    return label_probe(
        out,
        "similarity",
        prompts,
        frames=frames,
        positions=POSITIONS,
        cosine_definition=COSINE,
        share_definition=SHARE,
        cka_definition=CKA,
        min_gap=min_gap,
        backend=capture.backend,
    )
