"""Rank-direction ablation: how many singular directions of the generated update carry the video, and
does a singular direction matter more than a random edit of the same size?

``rank_ablation(pipeline, examples, ...)`` answers every prompt of a clip under its adapter's top-k
truncations (``topk_score(example_id, k)``, k = 0..r), with one singular direction removed or, as the
control, a random rank-one edit of the same Frobenius norm in the update's row space
(``remove_score(example_id, singular_direction, control)``), and, for an adapter with static rank slots,
with only its generated or only its static slots (``slot_score``); ``singular_values`` per layer and
module. The method, the fairness of the random control and the full schema:
docs/probes/rank_ablation.md (Method).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from f2l.adapter import Adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS
from f2l.data import Example
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords, reference_variable
from probes.scoring import score_variants

CONTROLS = ("svd", "random")
SLOTS = ("generated", "static")  # the rank slots kept: the static block removed, or the generated block


def slot_indices(adapter: Adapter) -> dict[str, list[int]] | None:
    """``{"generated": [...], "static": [...]}``: the applied rank's slots of each block, from the
    provenance's ``static_rank_slots: [start, stop]``; ``None`` for an adapter without static slots."""
    static = adapter.static_slots
    if static is None:
        return None
    return {"generated": [i for i in range(adapter.rank) if i not in static], "static": list(static)}


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def topk_variants(adapter: Adapter, ks: Sequence[int]) -> list[Adapter]:
    """``adapter`` keeping only its top ``k`` singular directions, for each ``k`` in ``ks``."""
    exact = adapter.to(torch.float64)
    return [exact.truncate_rank(k).to(adapter.dtype) for k in ks]


def remove_svd_direction(adapter: Adapter, index: int) -> Adapter:
    """``adapter`` without singular direction ``index`` in every layer and module."""
    return adapter.to(torch.float64).ablate_directions([index]).to(adapter.dtype)


def remove_random_direction(adapter: Adapter, index: int, generator: torch.Generator) -> Adapter:
    """``adapter`` with, in every layer and module, the rank-one edit ``alpha (dW q) q^T`` of Frobenius norm
    ``s_index`` removed along a random unit row-space direction ``q`` (the "random" control; see the module
    docstring). ``generator`` (a CPU generator) draws the directions."""
    decomposed = adapter.to(torch.float64).svd()
    factors = {}
    for m, (u, s, v) in decomposed.items():
        if not 0 <= index < s.shape[-1]:
            raise IndexError(f"direction {index} out of range 0..{s.shape[-1] - 1}")
        c = torch.randn(s.shape, generator=generator, dtype=torch.float64).to(s.device)
        c = c / c.norm(dim=-1, keepdim=True)  # uniform on the unit sphere of R^k
        q = (v @ c[..., None]).squeeze(-1)  # [..., L, d_in]: a unit vector of the row space
        action = (s * c).norm(dim=-1)  # ||dW q|| = ||diag(S) c||, since U has orthonormal columns
        alpha = s[..., index] / action.clamp_min(torch.finfo(torch.float64).tiny)
        # In SVD form A = V^T, B = diag(S) U^T, so A q = c and dW (I - alpha q q^T) has A' = A - alpha c q^T.
        a = v.transpose(-1, -2) - alpha[..., None, None] * c[..., :, None] * q[..., None, :]
        b = s[..., :, None] * u.transpose(-1, -2)
        factors[m] = (a, b)
    edited = Adapter(factors=factors, scaling=1.0, provenance=adapter.provenance)
    return edited.to(adapter.dtype)


def clip_generator(seed: int, clip_id: str) -> torch.Generator:
    """The random control's generator for one clip: fixed by (seed, clip), whatever else runs before."""
    digest = hashlib.sha256(f"{seed}/{clip_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def rank_ablation(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    ks: Sequence[int] | None = None,
    prompts: PromptSet = DEFAULT_PROMPTS,
    metric: str = "token_f1",
    seed: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
) -> xr.Dataset:
    """The rank-ablation dataset (schema: docs/probes/rank_ablation.md) of ``examples``, each internalized
    from ``frames`` frames (world clips at the base's frame size) and asked its
    ``prompts``; ``ks`` are the top-k truncations (default ``0..r``); ``seed`` fixes the random control."""
    if not examples:
        raise ValueError("rank_ablation needs at least one example")
    parts = [
        _one_clip(pipeline, e, frames, ks, prompts, metric, seed, max_new_tokens, batch_size)
        for e in examples
    ]
    out = concat_prompts(parts).assign_coords(metric=metric)
    out["k"].attrs["description"] = (
        "singular directions of the full applied dW (any static rank block included) kept in every layer "
        "and module (0 = none: the base)"
    )
    out["singular_direction"].attrs["description"] = (
        "singular direction of the full applied dW removed (0 = the largest)"
    )
    if "slots" in out.dims:
        out["slots"].attrs["description"] = (
            "rank slots kept: generated (the static bias block removed) or static (the generated block "
            "removed: the learned video-independent adapter)"
        )
        out["rank_slots"].attrs["description"] = "the kept slots' indices along the applied adapter's rank"
    out["control"].attrs["description"] = (
        "svd: the singular direction removed; random: a random rank-one edit of the same Frobenius norm "
        "in the update's row space"
    )
    out.attrs.update(
        probe="rank_ablation",
        metric=metric,
        frames=frames,
        **prompts.attrs(),
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    return out


def _one_clip(
    pipeline,
    example: Example,
    frames: int,
    ks: Sequence[int] | None,
    prompt_set: PromptSet,
    metric: str,
    seed: int,
    max_new_tokens: int,
    batch_size: int,
) -> xr.Dataset:
    """One clip's rows: every variant of its adapter answered on every prompt in one batched loop."""
    adapter = pipeline.internalize(pipeline.example_frames(example, frames))
    r = adapter.rank
    ks = list(range(r + 1)) if ks is None else [int(k) for k in ks]
    if any(not 0 <= k <= r for k in ks):
        raise ValueError(f"ks {ks} must lie in 0..{r}")
    decomposed = adapter.to(torch.float64).svd()
    directions = range(min(f.S.shape[-1] for f in decomposed.values()))
    generator = clip_generator(seed, example.id)
    variants = [adapter, *topk_variants(adapter, ks)]
    variants += [remove_svd_direction(adapter, i) for i in directions]
    variants += [remove_random_direction(adapter, i, generator) for i in directions]
    slots = slot_indices(adapter)
    if slots is not None:
        variants += [adapter.keep_rank_slots(slots[name]) for name in SLOTS]
    prompts = prompt_set.of(example)
    scores, answers = score_variants(
        pipeline, variants, prompts, metric=metric, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    texts = np.array(answers, dtype=object).astype(str)  # [variant, prompt]
    n_k, n_d = len(ks), len(directions)
    topk = slice(1, 1 + n_k)
    removed = slice(1 + n_k, 1 + n_k + len(CONTROLS) * n_d)
    kept = slice(removed.stop, None)  # the slot variants, when there are any
    # removal variants are ordered control-major, then direction: [control, direction, prompt] -> prompt first
    remove_scores = scores[removed].reshape(len(CONTROLS), n_d, -1).transpose(2, 1, 0)
    remove_texts = texts[removed].reshape(len(CONTROLS), n_d, -1).transpose(2, 1, 0)
    singular = np.stack([decomposed[m].S.cpu().numpy() for m in adapter.modules], axis=1)  # [L, M, k]
    row = "example_id"
    units = f"{metric}, 0 to 1"
    n = len(prompts)
    out = xr.Dataset(
        {
            "topk_score": (
                (row, "k"),
                scores[topk].T,
                {"units": units, "description": "score keeping only the top k singular directions"},
            ),
            "remove_score": (
                (row, "singular_direction", "control"),
                remove_scores,
                {"units": units, "description": "score with one direction (or its random control) removed"},
            ),
            "full_score": (row, scores[0], {"units": units, "description": "the adapter as made (f2l)"}),
            "singular_values": (
                (row, "layer", "module", "singular_direction"),
                np.broadcast_to(singular, (n, *singular.shape)),
                {"units": "same units as the base weights", "description": "singular values of dW"},
            ),
            "topk_prediction": ((row, "k"), texts[topk].T, {"description": "answer keeping the top k"}),
            "remove_prediction": (
                (row, "singular_direction", "control"),
                remove_texts,
                {"description": "answer with the direction removed"},
            ),
            "full_prediction": (row, texts[0], {"description": "f2l answer"}),
            "reference": reference_variable(prompts),
        },
        coords={
            **prompt_coords(example, prompts),
            "k": ks,
            "singular_direction": list(directions),
            "control": list(CONTROLS),
            "layer": np.arange(adapter.num_layers),
            "module": list(adapter.modules),
        },
    )
    if slots is None:
        return out
    out = out.assign_coords(slots=list(SLOTS), rank_slots=("slots", [_ranges(slots[name]) for name in SLOTS]))
    out["slot_score"] = (
        (row, "slots"),
        scores[kept].T,
        {
            "units": units,
            "description": "score keeping only these rank slots: generated = the static block removed, "
            "static = the generated block removed (the video-independent adapter)",
        },
    )
    out["slot_prediction"] = (
        (row, "slots"),
        texts[kept].T,
        {"description": "answer keeping only these slots"},
    )
    return out
