"""Ask a question about a video file or a world clip.

    python -m f2l.ask --world-seed 1010000 --question "what color is the circle?"
    python -m f2l.ask --video clip.mp4 --frames 12 --question "Describe the video in detail."

Prints the Frames2LoRA answer (adapter only: zero visual tokens in context), the direct
(video-in-context) answer and the base's answer to the question alone (no video), each with its
time to first token and input tokens by kind. Adapter generation is reusable preprocessing, timed
apart from the query.
"""

from __future__ import annotations

import argparse
import sys
import time

from f2l.answer import answer
from f2l.cli import add_debug_flag, entry_point, non_negative_int, positive_int
from f2l.models import BASE_NAMES
from f2l.pipeline import Frames2LoRA
from f2l.video import load_video


@entry_point
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m f2l.ask", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="path of a video file (any container/codec PyAV decodes)")
    source.add_argument("--world-seed", type=non_negative_int, help="a clip of the embedded world, by seed")
    parser.add_argument("--question", required=True)
    parser.add_argument(
        "--hypernet", default="tiny", help="a trained hypernetwork directory, or 'tiny' (shipped)"
    )
    parser.add_argument(
        "--base", help=f"override the hypernetwork's base: {', '.join(BASE_NAMES)}, a Hub id or a dir"
    )
    parser.add_argument(
        "--frames", type=positive_int, default=8, help="frames sampled uniformly over the clip"
    )
    parser.add_argument(
        "--size", type=positive_int, default=None, help="world clips: rendered side in pixels"
    )
    parser.add_argument(
        "--chunk-frames",
        type=positive_int,
        default=None,
        help="internalize segments of this many frames and compose",
    )
    parser.add_argument("--max-new-tokens", type=positive_int, default=64)
    parser.add_argument("--device", default=None)
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    frames = load_video(args.video, num_frames=args.frames) if args.video else None  # before the model loads
    f2l = Frames2LoRA.from_pretrained(args.hypernet, base=args.base, device=args.device)
    base = f2l.base
    if frames is None:
        from f2l.world import render_clip

        size = args.size or base.model.config.vision_config.image_size
        frames = render_clip(args.world_seed, num_frames=args.frames, size=size).frames
    start = time.perf_counter()
    adapter = f2l.internalize(frames, chunk_frames=args.chunk_frames)
    internalize_s = time.perf_counter() - start
    adapted = f2l.generate(adapter, args.question, max_new_tokens=args.max_new_tokens)
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
