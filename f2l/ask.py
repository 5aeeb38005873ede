"""Ask a question about a video file or a world clip.

    python -m f2l.ask --world-seed 1010000 --question "what color is the circle?"
    python -m f2l.ask --video clip.mp4 --frames 12 --question "Describe the video in detail."

Prints the Frames2LoRA answer (adapter only: zero visual tokens in context), the direct
(video-in-context) answer and the base's answer to the question alone (no video), each with its
time to first token and input tokens by kind. Adapter generation is reusable preprocessing, timed
apart from the query.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from f2l.answer import answer
from f2l.cli import entry_point, non_negative_int, positive_int
from f2l.config import parse_config, setting
from f2l.pipeline import Frames2LoRA
from f2l.video import load_video


@dataclass
class AskConfig:
    """The settings of ``python -m f2l.ask`` (each a flag): one of ``--video``, ``--world-seed``."""

    video: str | None = None  # path of a video file (any container/codec PyAV decodes)
    world_seed: int | None = setting(type=non_negative_int)  # a clip of the embedded world, by seed
    question: str | None = setting(required=True)  # the question asked of the clip
    hypernet: str = "tiny"  # a trained hypernetwork directory, or 'tiny' (shipped)
    base: str | None = None  # override the hypernetwork's base: a shipped base name, a Hub id or a dir
    frames: int = setting(8, type=positive_int)  # frames sampled uniformly over the clip
    size: int | None = setting(type=positive_int)  # world clips: rendered side in pixels
    chunk_frames: int | None = setting(
        type=positive_int
    )  # internalize segments of this many frames, composed
    max_new_tokens: int = setting(64, type=positive_int)  # the longest greedy answer, in tokens
    device: str | None = None  # torch device (default: cuda when available)


def parse_args(argv: list[str] | None) -> AskConfig:
    return parse_config(
        AskConfig,
        argv,
        prog="python -m f2l.ask",
        description=__doc__.split("\n\n")[0],
        one_of=(("video", "world_seed"),),
    )


@entry_point
def main(argv: list[str]) -> int:
    args = parse_args(argv)

    frames = load_video(args.video, num_frames=args.frames) if args.video else None  # before the model loads
    pipeline = Frames2LoRA.from_pretrained(args.hypernet, base=args.base, device=args.device)
    base = pipeline.base
    if frames is None:
        from f2l.world import render_clip

        size = args.size or base.model.config.vision_config.image_size
        frames = render_clip(args.world_seed, num_frames=args.frames, size=size).frames
    start = time.perf_counter()
    adapter = pipeline.internalize(frames, chunk_frames=args.chunk_frames)
    internalize_s = time.perf_counter() - start
    adapted = pipeline.generate(adapter, args.question, max_new_tokens=args.max_new_tokens)
    direct = answer(base, frames, args.question, max_new_tokens=args.max_new_tokens)
    no_video = answer(base, None, args.question, max_new_tokens=args.max_new_tokens)
    h, w = frames.pixels.shape[1:3]
    print(f"video     {frames.source}: {len(frames.timestamps)} frames, {w}x{h} px")
    print(
        f"adapter   rank {adapter.rank} x {adapter.num_layers} layers, {adapter.nbytes / 1024:.0f} KiB, "
        f"made in {internalize_s * 1e3:.0f} ms (reusable for every question)"
    )
    print(f"question  {args.question}")
    for name, a in (("f2l", adapted), ("direct", direct), ("no-video", no_video)):
        tokens = f"{a.input_tokens['visual']} visual + {a.input_tokens['text']} text tokens"
        print(f"{name:<9} {a.text!r}  (TTFT {a.ttft_s * 1e3:.1f} ms, {tokens})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
