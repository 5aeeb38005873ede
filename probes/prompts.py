"""The labels of a per-prompt dataset, and its replicates.

A study or probe that asks each clip its prompts (the benchmark, scaling and every probe that answers)
writes one row per prompt of a clip on the ``example_id`` dim, ``"<clip>/<item_id>"``, with coords
``clip`` (the clip's id), ``benchmark`` (caption category, QA type or manifest label), ``kind``
("caption" | "qa") and, where the probe records it, ``prompt`` (the question asked). ``example_id`` means
that, one prompt of one clip, in every dataset; a dataset of whole clips has a ``clip`` dim instead.

The prompts of one clip share its video and its adapter, so clips, not prompts, are the independent
replicates: a summary averages each clip's prompts first (``clip_means``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from f2l.data import Example, Prompt, clip_prompts, iter_prompts


@dataclass(frozen=True)
class PromptSet:
    """Which prompts a study or probe asks of each clip: every caption category and the first
    ``qa_per_type`` questions of each QA type (``f2l.data.clip_prompts``), cut to the first
    ``prompts_per_clip`` when given. ``qa_per_type=None`` asks one question of each QA type of a world
    clip (whose ~20 questions a type are near-duplicates) but every item of a manifest record (a real
    benchmark's items are all its questions), as the benchmark does."""

    qa_per_type: int | None = 1
    prompts_per_clip: int | None = None

    def of(self, example: Example) -> list[Prompt]:
        """The prompts asked of ``example``."""
        if self.qa_per_type is None and not example.is_world:
            prompts = list(iter_prompts([example]))
        else:
            prompts = clip_prompts(example, 1 if self.qa_per_type is None else self.qa_per_type)
        return prompts[: self.prompts_per_clip]

    def attrs(self) -> dict:
        """The dataset attrs that record the selection (``qa_per_type`` "world 1, manifest all" for None;
        ``prompts_per_clip`` only when a subset was kept)."""
        qa = "world 1, manifest all" if self.qa_per_type is None else self.qa_per_type
        out: dict = {"qa_per_type": qa}
        if self.prompts_per_clip is not None:
            out["prompts_per_clip"] = self.prompts_per_clip
        return out


DEFAULT_PROMPTS = PromptSet()  # every caption category and one question of each QA type


def prompt_coords(example: Example, prompts: Sequence[Prompt], *, questions: bool = False) -> dict:
    """The ``example_id`` coordinate of ``example``'s ``prompts`` and its labels (``clip``, ``benchmark``,
    ``kind``; ``prompt`` with ``questions``), as ``xarray`` coords."""
    row = "example_id"
    coords = {
        row: [f"{example.id}/{p.item_id}" for p in prompts],
        "clip": (row, [example.id] * len(prompts)),
        "benchmark": (row, [p.label for p in prompts]),
        "kind": (row, [p.kind for p in prompts]),
    }
    if questions:
        coords["prompt"] = (row, [p.prompt for p in prompts])
    return coords


def prompt_attrs(*, frames: int, qa_per_type: int, prompts_per_clip: int | None = None, **attrs) -> dict:
    """A per-prompt dataset's ``attrs``: ``attrs`` and which prompts of each clip were asked (frames, QA
    per type, and ``prompts_per_clip`` only when a probe kept a subset)."""
    return {**attrs, "frames": frames, **PromptSet(qa_per_type, prompts_per_clip).attrs()}


def reference_variable(prompts: Sequence[Prompt]) -> tuple:
    """The ``reference`` variable of a per-prompt dataset: each prompt's reference answer."""
    return ("example_id", np.array([p.reference for p in prompts], dtype=str), {"description": "reference"})


def concat_prompts(parts: Sequence[xr.Dataset], **options) -> xr.Dataset:
    """Clips' per-prompt datasets joined on ``example_id`` (a variable without the dim taken once, a
    coordinate that differs between clips kept per row, the rest required equal); ``options`` go on to
    ``xr.concat``."""
    return xr.concat(
        parts, dim="example_id", data_vars="minimal", coords="different", compat="equals", **options
    )


def clip_means(da: xr.DataArray) -> xr.DataArray:
    """Each clip's mean of ``da`` over its prompts (NaN skipped), on a ``clip`` dim."""
    return da.groupby("clip").mean("example_id", skipna=True)
