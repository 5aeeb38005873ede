"""Print the token sequence a hypernetwork reads for a clip: what to compare when a checkpoint was trained
with another transformers version, whose SmolVLM processor may lay out the video tokens differently.

    python -m f2l.context --hypernet runs/official-500m --video clip.mp4
    python -m f2l.context --hypernet tiny --world-seed 1010000 --frames 8

Text between special tokens is printed decoded, one quoted segment a line; special tokens stand alone and
runs of one are collapsed (``<image> x64``); the counts by kind and the library versions come first.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import groupby

import torch
import transformers

from f2l.cli import entry_point, non_negative_int, positive_int
from f2l.config import parse_config, setting
from f2l.encode import internalization_inputs
from f2l.pipeline import Frames2LoRA


def context_segments(tokenizer, ids: list[int]) -> list[str]:
    """The sequence as lines: decoded text runs quoted, special tokens bare, repeats as ``token xN``."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    lines = []
    for is_special, run in groupby(ids, key=lambda i: i in special):
        run = list(run)
        if not is_special:
            lines.append(repr(tokenizer.decode(run)))
            continue
        for token_id, same in groupby(run):
            count = len(list(same))
            token = tokenizer.convert_ids_to_tokens(token_id)
            lines.append(token + (f" x{count}" if count > 1 else ""))
    return lines


def describe_context(pipeline: Frames2LoRA, clip) -> str:
    """The context format, the chat text and the collapsed token sequence of ``clip``'s context."""
    base, context = pipeline.base, pipeline.hypernet.context
    inputs = internalization_inputs(base, [clip], context)
    ids = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
    tokens = base.tokenizer.convert_ids_to_tokens(ids)
    image = base.processor.image_token
    lines = [
        f"hypernetwork  {pipeline.hypernet_id} (kind {pipeline.hypernet.kind})",
        f"context       prompt {context.prompt!r}, assistant cue {'yes' if context.generation_prompt else 'no'}, "
        f"frames: {len(clip.timestamps)} (format: fps {context.fps}, at most {context.max_frames})",
        f"versions      transformers {transformers.__version__}, torch {torch.__version__}",
        f"tokens        {len(ids)}: {tokens.count(image)} visual ({image}), {len(ids) - tokens.count(image)} text",
        "sequence",
    ]
    lines += [f"  {line}" for line in context_segments(base.tokenizer, ids)]
    return "\n".join(lines)


@dataclass
class ContextConfig:
    """The settings of ``python -m f2l.context`` (each a flag): one of ``--video``, ``--world-seed``."""

    video: str | None = None  # a video file
    world_seed: int | None = setting(type=non_negative_int)  # a clip of the embedded world, by seed
    hypernet: str = "tiny"  # a hypernetwork directory, or a shipped name
    base: str | None = None  # override the hypernetwork's base
    frames: int | None = setting(type=positive_int)  # frames to sample; unset: the hypernetwork's format


@entry_point
def main(argv: list[str]) -> int:
    args = parse_config(
        ContextConfig,
        argv,
        prog="python -m f2l.context",
        description=__doc__.split("\n\n")[0],
        one_of=(("video", "world_seed"),),
    )
    pipeline = Frames2LoRA.from_pretrained(args.hypernet, base=args.base, device="cpu")
    if args.world_seed is not None:
        from f2l.world import render_clip

        size = pipeline.base.model.config.vision_config.image_size
        clip = render_clip(args.world_seed, num_frames=args.frames or 8, size=size).frames
    else:
        clip = pipeline.sample_video(args.video, args.frames)
    print(describe_context(pipeline, clip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
