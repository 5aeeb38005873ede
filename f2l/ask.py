"""Ask a question about a video file or a world clip.

    python -m f2l.ask --world-seed 1010000 --question "what color is the circle?"
    python -m f2l.ask --video clip.mp4 --frames 12 --question "Describe the video in detail."

Prints the direct (video-in-context) answer with its time to first token and input tokens by
kind, and, for comparison, the base's answer to the question alone (no video).
"""

from __future__ import annotations

import argparse
import sys

from f2l.answer import answer
from f2l.models import BASE_NAMES, load_base
from f2l.video import Frames, load_video


def load_clip(args: argparse.Namespace, frame_size: int) -> Frames:
    if args.world_seed is not None:
        from f2l.world import render_clip

        return render_clip(args.world_seed, num_frames=args.frames, size=args.size or frame_size).frames
    return load_video(args.video, num_frames=args.frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m f2l.ask", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="path of a video file (any container/codec PyAV decodes)")
    source.add_argument("--world-seed", type=int, help="a clip of the embedded world, by seed")
    parser.add_argument("--question", required=True)
    parser.add_argument(
        "--base", default="tiny", help=f"{', '.join(BASE_NAMES)}, a Hub id or a checkpoint dir"
    )
    parser.add_argument("--frames", type=int, default=8, help="frames sampled uniformly over the clip")
    parser.add_argument("--size", type=int, default=None, help="world clips: rendered side in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    base = load_base(args.base, device=args.device)
    frames = load_clip(args, base.model.config.vision_config.image_size)
    direct = answer(base, frames, args.question, max_new_tokens=args.max_new_tokens)
    no_video = answer(base, None, args.question, max_new_tokens=args.max_new_tokens)
    print(
        f"video     {frames.source}: {len(frames.timestamps)} frames, {frames.pixels.shape[2]}x{frames.pixels.shape[1]} px"
    )
    print(f"question  {args.question}")
    for name, a in (("direct", direct), ("no-video", no_video)):
        tokens = f"{a.input_tokens['visual']} visual + {a.input_tokens['text']} text tokens"
        print(f"{name:<9} {a.text!r}  (TTFT {a.ttft_s * 1e3:.1f} ms, {tokens})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
