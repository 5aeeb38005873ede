"""How close is the adapter's residual stream to the one the video itself produces? Layer by layer, at the
question positions, the f2l run's residual stream against the direct run's.

For every prompt of a clip, three runs of the base VLM share the question's tokens (as in
``probes.patching``, whose runs and alignment this probe reuses):

    direct   the video in context (its visual tokens before the question), no adapter
    f2l      an adapter, no visual tokens: the clip's own (``pipeline.internalize``), or a negative
             control's (another clip's, a blank video's: ``probes.controls``), labelled on the ``adapter``
             dim
    base     neither

**Positions.** The aligned span of the *prompt* only (no answer is generated or teacher-forced): the ``K``
tokens of the longest common suffix of the direct and text-only prompts' ids (``probes.patching.
question_span``), i.e. the question (all of it, or all but its first token where the video's ``\\n\\n``
keeps that token apart from its space), the end of the user's turn and the ``Assistant:`` cue, taken
from the end of each run's sequence (positions ``n_run - K .. n_run - 1``). The video's tokens and the
chat tokens before the question are never compared. ``h_run`` is the ``[K, d]`` matrix of a run's
residual stream there.

**Layers.** ``resid_pre`` of each text-model decoder layer ``l = 0 .. L-1`` (its input; layer 0 is the
token embedding, the same in every run, so the share is NaN there and the cosine 1) and, at ``l = L``,
the final residual stream (the last layer's output, before the final norm), read through nnsight as in
``probes.hooks.NNsightCapture``.

**Measures** (float64), per example and layer:

- ``cosine``: the cosine similarity of ``h_f2l[p]`` and ``h_direct[p]`` at each aligned position ``p``,
  then the mean over the ``K`` positions.
- ``share`` of the video's effect reproduced: ``1 - ||h_f2l - h_direct||_F / ||h_base - h_direct||_F``,
  Frobenius norms over the ``[K, d]`` aligned positions. 1: the adapter puts the residual stream exactly
  where the video does; 0: no closer than no video at all; negative: farther. NaN where the video moves
  nothing, ``||h_base - h_direct||_F <= MIN_GAP * ||h_direct||_F`` (``MIN_GAP`` = 1e-6, relative).
- references on the same positions: ``cosine_base``, the same cosine for the base run against direct
  (how close a run with no video is; residual streams share a large common direction, so the cosine
  means little without it).

Across examples, per layer:

- ``cka``: linear CKA (Kornblith et al., 2019) between the f2l and direct runs over the examples, each
  example represented by its residual stream **averaged over its aligned positions** (one ``d``-vector per
  example and run: the examples' question spans differ in length, so positions cannot be paired across
  examples). With ``X``, ``Y`` the ``[n, d]`` matrices centred over examples,
  ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` (computed from the ``n x n`` Gram matrices). 1 for
  identical representations, invariant to orthogonal transforms and isotropic scaling of either; NaN
  with fewer than 2 examples or where a centred representation is 0 (every example the same).
  ``cka_base``: the same for base against direct. The per-example means are kept (``mean_resid``) so
  that CKA can be recomputed on any subset (e.g. one prompt kind). The CKA of a control adapter's f2l
  run is against the same direct states: a swapped adapter arranges each example by another clip.

Identities (tested on a random tiny SmolVLM): a run compared with itself has cosine 1, share 1 and CKA 1;
a run whose states equal base's has share 0; the layer-0 share is NaN; CKA is unchanged by an orthogonal
transform and an isotropic scaling.

Dataset schema (``similarity.nc``):

- dims ``example_id`` (``"<clip>/<item_id>"``), ``adapter`` ("real", "swapped", "blank": the f2l run's
  adapter, ``probes.controls``), ``layer`` (0 .. L: the decoder layers' ``resid_pre``, then the final
  residual), ``measure`` ("cosine", "share"), ``run`` ("direct", "f2l", "base"), ``hidden`` (the residual
  stream's width).
- coords ``clip(example_id)``, ``benchmark(example_id)`` (caption category or QA type),
  ``kind(example_id)`` ("caption" | "qa"), ``prompt(example_id)`` (the question asked).
- ``similarity(example_id, adapter, layer, measure)``: f2l against direct, as defined above.
- ``cosine_base(example_id, layer)``: base against direct.
- ``cka(adapter, layer)``, ``cka_base(layer)``: linear CKA across all the dataset's examples.
- ``mean_resid(example_id, adapter, run, layer, hidden)`` (float32): each run's residual stream averaged
  over the aligned positions (the CKA's input); the direct and base runs use no adapter, so theirs are
  the same under every ``adapter`` label.
- ``question_tokens(example_id)``: ``K``.
- attrs: ``positions``, ``cosine_definition``, ``share_definition``, ``cka_definition``, ``min_gap``,
  ``backend``, ``frames``, ``qa_per_type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import use_adapter
from f2l.data import Example, clip_prompts
from probes.controls import DESCRIPTION as ADAPTER_DESCRIPTION
from probes.controls import check_adapters, control_adapters, partners_for
from probes.hooks import NNsightCapture
from probes.patching import Run, make_runs, with_adapter
from probes.prompts import prompt_attrs, prompt_coords

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
    residual streams at the aligned positions (module docstring)."""
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
    qa_per_type: int = 1,
    prompts_per_clip: int | None = None,
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    min_gap: float = MIN_GAP,
    capture: NNsightCapture | None = None,
) -> xr.Dataset:
    """The similarity dataset (schema in the module docstring) of ``examples``, each internalized from
    ``frames`` frames and asked its ``clip_prompts(example, qa_per_type)`` (the first ``prompts_per_clip``
    when given), the f2l run under each of ``adapters`` (``probes.controls``; the swap partners from
    ``partners``, by default the next example of ``examples``), CKA across all of them. ``capture``: an
    ``NNsightCapture`` of ``pipeline.base.model``."""
    if not examples:
        raise ValueError("similarity needs at least one example")
    adapters = check_adapters(adapters)
    partners = partners_for(examples, adapters, partners)
    if capture is None:
        capture = NNsightCapture(pipeline.base.model)
    parts = [
        clip_similarity(
            pipeline, e, frames, qa_per_type, prompts_per_clip, min_gap, capture,
            adapters=adapters, partner=partners.get(e.id),
        )
        for e in examples
    ]  # fmt: skip
    out = xr.concat(parts, dim="example_id", data_vars="minimal", coords="different", compat="equals")
    return add_cka(out)


def clip_similarity(
    pipeline,
    example: Example,
    frames: int,
    qa_per_type: int,
    prompts_per_clip: int | None,
    min_gap: float,
    capture: NNsightCapture,
    *,
    adapters: Sequence[str] = ("real",),
    partner: Example | None = None,
) -> xr.Dataset:
    """One clip's rows (every variable but the CKA, which spans examples: ``add_cka``), the f2l run under
    each of ``adapters`` (``probes.controls.control_adapters``, with the swap ``partner``)."""
    base = pipeline.base
    video = pipeline.example_frames(example, frames)
    by_label = control_adapters(pipeline, video, partner=partner, adapters=adapters)
    prompts = clip_prompts(example, qa_per_type)[:prompts_per_clip]
    questions = [p.prompt for p in prompts]
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
            **prompt_coords(example, prompts, questions=True),
            "adapter": list(by_label),
            "layer": np.arange(layers),
            "measure": list(MEASURES),
            "run": list(RUNS),
        },
    )
    out["layer"].attrs["description"] = (
        "text-model decoder layer's resid_pre; the last index is the final residual"
    )
    out["adapter"].attrs["description"] = ADAPTER_DESCRIPTION
    out.attrs.update(
        prompt_attrs(
            probe="similarity",
            positions=POSITIONS,
            cosine_definition=COSINE,
            share_definition=SHARE,
            cka_definition=CKA,
            min_gap=min_gap,
            backend=capture.backend,
            frames=frames,
            qa_per_type=qa_per_type,
            prompts_per_clip=prompts_per_clip,
        )
    )
    return out
