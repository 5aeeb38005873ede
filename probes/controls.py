"""Negative controls: adapters that carry nothing about the clip a probe asks about.

A probe of the adapter's route (patching, similarity, the logit lens, layer removal) shows some profile
for the clip's own adapter. To see what it would show when the adapter knows nothing of this clip, every
such probe also runs, on the same prompts and the same video, under two control adapters made by the
same hypernetwork:

    real      the clip's own adapter (``pipeline.internalize`` of its frames)
    swapped   the adapter of another clip: the clip's **swap partner**, by default the next clip of the
              study's list (``swap_partners``; deterministic), sampled at the same frame count
    blank     the adapter of a blank video: every frame one constant colour (``BLANK_COLOUR``), with the
              clip's frame count, frame size and timestamps

A probe's dataset labels them on an ``adapter`` dim (values in ``ADAPTERS`` order); the runs that use no
adapter (direct, base) are the same under every label. This module is the one place the controls are
made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from f2l.adapter import Adapter
from f2l.data import Example
from f2l.video import Frames
from probes.prompts import PromptSet, prompt_attrs

ADAPTERS = ("real", "swapped", "blank")
BLANK_COLOUR = (128, 128, 128)  # mid grey, RGB
DESCRIPTION = (
    "the adapter the f2l run uses: real (the clip's own), swapped (another clip's: its swap partner), "
    "blank (a constant-colour video's of the clip's frame count and size)"
)


def check_adapters(adapters: Sequence[str]) -> tuple[str, ...]:
    """``adapters`` in ``ADAPTERS`` order; "real" is required (the controls are read against it), and an
    unknown or repeated label is an error."""
    unknown = sorted(set(adapters) - set(ADAPTERS))
    if unknown:
        raise ValueError(f"unknown adapters {unknown}; choose from {list(ADAPTERS)}")
    if "real" not in adapters:
        raise ValueError(
            f"the adapters must include 'real' (the controls are read against it), not {adapters}"
        )
    if len(set(adapters)) != len(adapters):
        raise ValueError(f"repeated adapters in {list(adapters)}")
    return tuple(a for a in ADAPTERS if a in adapters)


def swap_partners(examples: Sequence[Example]) -> dict[str, Example]:
    """``{clip id: its swap partner}``: the next example of ``examples``, the last one's the first. A study
    passes its clips and one more from the same manifest, so that a clip's partner does not depend on how
    many clips are run."""
    if len({e.id for e in examples}) < 2:
        raise ValueError("the swapped control needs at least two different clips")
    return {e.id: examples[(i + 1) % len(examples)] for i, e in enumerate(examples)}


def blank_frames(video: Frames, colour: Sequence[int] = BLANK_COLOUR) -> Frames:
    """A video of ``video``'s frame count, frame size and timestamps, every pixel ``colour``."""
    pixels = np.empty_like(video.pixels)
    pixels[...] = np.asarray(colour, dtype=np.uint8)
    return Frames(pixels, np.array(video.timestamps), source=f"blank{tuple(int(c) for c in colour)}")


def control_adapters(
    pipeline,
    video: Frames,
    *,
    partner: Example | None = None,
    adapters: Sequence[str] = ADAPTERS,
) -> dict[str, Adapter]:
    """``{label: adapter}`` for ``adapters`` (``check_adapters``): ``video``'s own adapter, the swap
    ``partner``'s (rendered or decoded at ``video``'s frame count) and a blank video's."""
    out = {}
    for label in check_adapters(adapters):
        if label == "real":
            out[label] = pipeline.internalize(video)
        elif label == "swapped":
            if partner is None:
                raise ValueError("the swapped control needs the clip's swap partner (another clip)")
            out[label] = pipeline.internalize(pipeline.example_frames(partner, len(video.timestamps)))
        else:
            out[label] = pipeline.internalize(blank_frames(video))
    return out


def partners_for(
    examples: Sequence[Example], adapters: Sequence[str], partners: Mapping[str, Example] | None = None
) -> dict[str, Example]:
    """The swap partners of ``examples`` a probe uses: ``partners`` when given (a study's, which reach past
    its clips), else ``swap_partners(examples)``; none without the swapped control."""
    if "swapped" not in adapters:
        return {}
    return dict(partners) if partners is not None else swap_partners(examples)


def probe_controls(
    probe: str,
    examples: Sequence[Example],
    adapters: Sequence[str],
    partners: Mapping[str, Example] | None = None,
) -> tuple[tuple[str, ...], dict[str, Example]]:
    """(``adapters`` checked, the swap partners) of ``probe`` run on ``examples`` (``check_adapters``,
    ``partners_for``); no examples is an error."""
    if not examples:
        raise ValueError(f"{probe} needs at least one example")
    adapters = check_adapters(adapters)
    return adapters, partners_for(examples, adapters, partners)


def clip_controls(
    pipeline,
    example: Example,
    frames: int,
    *,
    partner: Example | None = None,
    adapters: Sequence[str] = ADAPTERS,
) -> tuple[Frames, dict[str, Adapter]]:
    """``example``'s video at ``frames`` frames and its ``{label: adapter}`` (``control_adapters``)."""
    video = pipeline.example_frames(example, frames)
    return video, control_adapters(pipeline, video, partner=partner, adapters=adapters)


def label_probe(out: xr.Dataset, probe: str, prompts: PromptSet, *, frames: int, **attrs) -> xr.Dataset:
    """``out``, a probe's dataset on the ``adapter`` dim, with that dim described and its attrs set:
    ``probe``, ``attrs``, then the frames and the prompts asked (``probes.prompts.prompt_attrs``)."""
    out["adapter"].attrs["description"] = DESCRIPTION
    out.attrs.update(prompt_attrs(probe=probe, **attrs, frames=frames, **prompts.attrs()))
    return out
