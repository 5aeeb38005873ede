"""The ``token_merge`` baseline: FrameFusion-style visual token reduction before the language model.

A video reaches SmolVLM as one block of ``<image>`` placeholders per frame, much of it repeating the
previous frame. For a reduction ``factor`` (budget ``ceil(n_visual / factor)`` per video) this module
merges, on the connector's outputs and before the language model:

1. **Temporally** (FrameFusion's step, Fu et al. 2024, arXiv 2501.01986): pairs of tokens at the same
   position in consecutive frames, most similar first, until the budget is met. A fixed budget (not
   FrameFusion's threshold) keeps the baseline's token count a controlled variable.
2. **Spatially**, if still over budget (fewer frames than the factor): the most similar neighbouring
   tokens of one frame, in Kruskal order. This replaces FrameFusion's attention-based pruning, which
   would need the language model inside the reduction.

A merged group becomes the plain mean of its original tokens, placed at its earliest token; every text
token stays. Similarities are computed once, ties broken by position, so the result is deterministic.
Every kept token keeps its original position (``position_ids``), as FrameFusion does: renumbering the
shortened sequence is a layout the model never saw (docs/usage.md, the evaluation harness row). The
reduced sequence reaches the model as ``inputs_embeds`` beside the reduced ``input_ids`` and the
``position_ids``; ``TokenMerge`` applies it to the answering model's inputs or to the encoder's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from f2l.models import Base

DEFAULT_FACTOR = 4


@dataclass(frozen=True)
class Fusion:
    """The merge of ``n`` visual tokens into ``m`` groups: ``keep`` (m,) the index of each group's earliest
    token, ascending; ``merged`` (m, d) each group's mean; ``group`` (n,) the group of every token."""

    keep: torch.Tensor
    merged: torch.Tensor
    group: torch.Tensor


@dataclass(frozen=True)
class MergedInputs:
    """Model inputs with the visual tokens merged: ``inputs`` holds ``input_ids``, ``attention_mask``,
    ``inputs_embeds`` and ``position_ids`` (left-padded, one row per video; a token's position is the one
    it had before merging, counted from the row's first real token, as ``generate`` counts them);
    ``visual_before`` / ``visual_after`` count each row's visual tokens before and after merging."""

    inputs: dict[str, torch.Tensor]
    visual_before: list[int]
    visual_after: list[int]


def token_budget(n_visual: int, factor: int) -> int:
    """How many visual tokens a video of ``n_visual`` keeps at reduction ``factor``."""
    if factor < 1:
        raise ValueError(f"the reduction factor must be >= 1, not {factor}")
    return max(math.ceil(n_visual / factor), 1)


def _temporal_pairs(frame_sizes: Sequence[int]) -> torch.Tensor:
    """(E, 2) pairs of same-position tokens in consecutive frames of equal size, frame by frame."""
    offsets = [0, *torch.tensor(frame_sizes).cumsum(0).tolist()]
    pairs = [
        torch.stack([torch.arange(size) + offsets[f], torch.arange(size) + offsets[f + 1]], 1)
        for f, size in enumerate(frame_sizes[:-1])
        if frame_sizes[f + 1] == size
    ]
    return torch.cat(pairs) if pairs else torch.empty(0, 2, dtype=torch.long)


def _spatial_pairs(frame_sizes: Sequence[int]) -> torch.Tensor:
    """(E, 2) pairs of neighbouring tokens within each frame: right and down on a square grid, else
    previous/next in sequence order."""
    pairs, offset = [], 0
    for size in frame_sizes:
        side = math.isqrt(size)
        index = torch.arange(size)
        if side * side == size:
            col = index % side
            right = index[col < side - 1]
            down = index[: size - side]
            local = torch.cat([torch.stack([right, right + 1], 1), torch.stack([down, down + side], 1)])
        else:
            local = torch.stack([index[:-1], index[1:]], 1)
        pairs.append(local + offset)
        offset += size
    return torch.cat(pairs) if pairs else torch.empty(0, 2, dtype=torch.long)


def _best_first(features: torch.Tensor, pairs: torch.Tensor) -> list[tuple[int, int]]:
    """``pairs`` sorted by the cosine similarity of their tokens, highest first, ties in given order."""
    if len(pairs) == 0:
        return []
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    sim = (unit[pairs[:, 0].to(unit.device)] * unit[pairs[:, 1].to(unit.device)]).sum(-1).cpu()
    order = torch.sort(sim, descending=True, stable=True).indices
    return pairs[order].tolist()


def fuse_tokens(features: torch.Tensor, frame_sizes: Sequence[int], budget: int) -> Fusion:
    """Merge ``features`` (n, d), laid out as consecutive frames of ``frame_sizes`` tokens, down to
    ``budget`` groups: temporal pairs first, then spatial ones (see the module docstring)."""
    n = features.shape[0]
    if sum(frame_sizes) != n:
        raise ValueError(f"frames of {list(frame_sizes)} tokens do not add up to {n} features")
    root = list(range(n))  # union-find; a group's root is its earliest token

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    groups = n
    for pairs in (_temporal_pairs(frame_sizes), _spatial_pairs(frame_sizes)):
        if groups <= budget:
            break
        for a, b in _best_first(features, pairs):
            ra, rb = find(a), find(b)
            if ra != rb:
                root[max(ra, rb)] = min(ra, rb)
                groups -= 1
                if groups == budget:
                    break
    roots = torch.tensor([find(i) for i in range(n)], dtype=torch.long)
    keep = torch.unique(roots)  # sorted
    group = torch.searchsorted(keep, roots)
    dev = features.device
    sums = torch.zeros(len(keep), features.shape[1], device=dev).index_add_(
        0, group.to(dev), features.float()
    )
    counts = torch.bincount(group, minlength=len(keep)).to(dev)
    return Fusion(keep=keep, merged=(sums / counts[:, None]).to(features.dtype), group=group)


def _run_lengths(flags: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor: one run of ``<image>`` per frame."""
    step = torch.diff(
        flags.int(), prepend=flags.new_zeros(1, dtype=torch.int), append=flags.new_zeros(1, dtype=torch.int)
    )
    return ((step == -1).nonzero() - (step == 1).nonzero()).flatten().tolist()


@dataclass(frozen=True)
class TokenMerge:
    """Merging as a transform of model inputs with a video: of the answering model's
    (``f2l.answer.generate(transform=)``, the ``token_merge`` baseline: its time to first token includes
    the vision tower and the merging, as ``direct``'s includes the vision tower) or of the encoder's
    (``Frames2LoRA.internalize(transform=)``: the adapter internalized from the merged tokens)."""

    factor: int = DEFAULT_FACTOR

    def __call__(self, base: Base, inputs):
        return merge_visual_tokens(base, inputs, self.factor).inputs

    def provenance(self) -> dict:
        return {"token_merge": self.factor}


@torch.no_grad()
def merge_visual_tokens(base: Base, inputs, factor: int = DEFAULT_FACTOR) -> MergedInputs:
    """Encode the frames of ``inputs`` (``model_inputs`` with videos), merge each row's visual tokens down to
    ``ceil(n / factor)`` and return the reduced model inputs (``generate(**merged.inputs)`` takes them)."""
    if "pixel_values" not in inputs:
        raise ValueError("merge_visual_tokens needs model inputs with a video (pixel_values)")
    model = base.model.model
    image_id = base.model.config.image_token_id
    features = model.get_image_features(
        inputs["pixel_values"], inputs.get("pixel_attention_mask")
    ).pooler_output
    embed = model.get_input_embeddings()
    rows, before, after = [], [], []
    for ids, mask, feats in zip(inputs["input_ids"], inputs["attention_mask"], features, strict=True):
        ids = ids[mask.bool()]
        is_image = ids == image_id
        n = int(is_image.sum())
        if feats.shape[0] != n:
            raise ValueError(f"{n} <image> tokens but {feats.shape[0]} visual features in a row")
        fusion = fuse_tokens(feats, _run_lengths(is_image), token_budget(n, factor))
        dropped = torch.ones(n, dtype=torch.bool, device=ids.device)
        dropped[fusion.keep.to(ids.device)] = False
        kept = torch.ones_like(is_image)
        kept[is_image.nonzero().flatten()[dropped]] = False
        positions = torch.arange(len(ids), device=ids.device)[kept]
        ids = ids[kept]
        embeds = embed(ids)
        embeds[ids == image_id] = fusion.merged.to(embeds.dtype)
        rows.append((ids, embeds, positions))
        before.append(n)
        after.append(len(fusion.keep))
    width = max(len(ids) for ids, *_ in rows)
    pad_id = base.tokenizer.pad_token_id
    pad_embed = embed(torch.tensor([pad_id], device=rows[0][0].device))
    batch = {
        "input_ids": torch.stack(
            [torch.cat([ids.new_full((width - len(ids),), pad_id), ids]) for ids, *_ in rows]
        ),
        "attention_mask": torch.stack(
            [torch.cat([ids.new_zeros(width - len(ids)), torch.ones_like(ids)]) for ids, *_ in rows]
        ),
        "inputs_embeds": torch.stack(
            [torch.cat([pad_embed.expand(width - len(e), -1), e]) for _, e, _ in rows]
        ),
        "position_ids": torch.stack([torch.cat([p.new_zeros(width - len(p)), p]) for *_, p in rows]),
    }
    return MergedInputs(inputs=batch, visual_before=before, visual_after=after)
