"""Command line for manifests: ``python -m f2l.data {convert,world,check} ...`` (each with ``--help``)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from f2l.cli import UsageError, add_debug_flag, entry_point, non_negative_int, one_line, positive_int
from f2l.data.converters import CONVERTERS
from f2l.data.manifest import ManifestError, read_manifest, world_manifest, write_manifest
from f2l.world.splits import SPLITS


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m f2l.data",
        description="Dataset manifests: convert public annotations, write world manifests, check files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    conv = sub.add_parser(
        "convert",
        help="convert a public annotation file to a manifest",
        description="Convert ActivityNet Captions JSON, NExT-QA CSV, VDC JSON/JSONL or FineVideo metadata "
        "(a folder of per-video JSON files) to a JSONL manifest. "
        "Videos are looked up as VIDEOS/<video_id>.{mp4,mkv,webm,avi,mov} (then anywhere below VIDEOS); "
        "examples whose video is missing are skipped and counted unless --keep-missing is given. "
        "FineVideo becomes scene / 2-3 adjacent scene / whole-video spans drawn 60/30/10 as the official "
        "stage-1 manifests are.",
    )
    conv.add_argument("format", choices=sorted(CONVERTERS), help="annotation format")
    conv.add_argument("annotation", help="annotation file (finevideo: a folder of per-video JSON files)")
    conv.add_argument("--videos", required=True, help="folder holding the videos")
    conv.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    conv.add_argument("--split", default=None, help="split name stored on every example (e.g. val)")
    conv.add_argument("--frames", type=positive_int, default=None, help="frame count stored on every example")
    conv.add_argument(
        "--keep-missing",
        action="store_true",
        help="keep examples whose video is not found (meta.video_missing = true)",
    )
    conv.add_argument(
        "--per-segment", action="store_true", help="activitynet only: one example per captioned event"
    )
    conv.add_argument(
        "--seed", type=non_negative_int, default=None, help="finevideo only: seed of the span draw (42)"
    )
    conv.add_argument(
        "--total",
        type=positive_int,
        default=None,
        help="finevideo only: spans to draw (default: all the mix allows)",
    )

    world = sub.add_parser("world", help="write a manifest of procedural world clips")
    world.add_argument("--split", default="test", choices=("train", "val", "test"))
    world.add_argument("--n", type=non_negative_int, default=100, help="number of clips")
    world.add_argument("--frames", type=positive_int, default=8, help="frames per clip")
    world.add_argument(
        "--offset", type=non_negative_int, default=0, help="skip this many seeds of the split first"
    )
    world.add_argument("--out", required=True, help="manifest to write (.jsonl)")

    check = sub.add_parser(
        "check", help="validate manifests (f2l or official Frames2LoRA) and print a summary"
    )
    check.add_argument("manifests", nargs="+", help="manifest files")
    check.add_argument(
        "--data-root",
        default=None,
        help="official manifests: folder of relative video paths (default: $FRAMES2LORA_DATA_ROOT)",
    )
    for command_parser in (conv, world, check):
        add_debug_flag(command_parser)
    return parser


def _convert(args: argparse.Namespace) -> int:
    kwargs = {"split": args.split, "frames": args.frames, "keep_missing": True}
    if args.per_segment:
        if args.format != "activitynet":
            raise UsageError("--per-segment applies to activitynet only")
        kwargs["per_segment"] = True
    if args.format == "finevideo":
        # missing videos must leave before the span draw, or dropping them afterwards would skew the mix
        kwargs.update(keep_missing=args.keep_missing, total=args.total)
        if args.seed is not None:
            kwargs["seed"] = args.seed
    elif args.seed is not None or args.total is not None:
        raise UsageError("--seed and --total apply to finevideo only")
    examples = CONVERTERS[args.format](args.annotation, args.videos, **kwargs)
    missing = sum(1 for e in examples if e.meta.get("video_missing"))
    if not args.keep_missing:
        examples = [e for e in examples if not e.meta.get("video_missing")]
    write_manifest(args.out, examples)
    note = "kept" if args.keep_missing else "skipped"
    print(f"wrote {len(examples)} examples to {args.out}")
    if missing:
        print(f"warning: {missing} video(s) not found under {args.videos} ({note})", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.manifests:
        try:
            examples = read_manifest(path, data_root=args.data_root)
        except (ManifestError, OSError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            status = 1
            continue
        files = [e for e in examples if not e.is_world]
        absent = sum(1 for e in files if not e.video_path().is_file())
        sources = Counter(e.source for e in examples)
        captions = Counter(c for e in examples for c in e.captions)
        qa_types = Counter(q.type for e in examples for q in e.qa)
        print(f"{path}: {len(examples)} examples, sources {dict(sources)}")
        print(f"  captions {dict(captions)}; qa {dict(qa_types)} ({sum(qa_types.values())} items)")
        print(f"  video files: {len(files)} ({absent} not found)")
    return status


@entry_point
def main(argv: list[str]) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "convert":
        return _convert(args)
    if args.command == "world":
        if args.offset + args.n > len(SPLITS[args.split]):
            raise UsageError(
                f"the {args.split} split has {len(SPLITS[args.split])} seeds; --offset + --n exceeds it"
            )
        examples = world_manifest(args.split, args.n, frames=args.frames, offset=args.offset)
        write_manifest(args.out, examples)
        print(f"wrote {len(examples)} examples to {args.out}")
        return 0
    return _check(args)


if __name__ == "__main__":
    sys.exit(main())
