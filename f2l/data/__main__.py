"""Command line for manifests: ``python -m f2l.data {convert,world,check} ...`` (each with ``--help``)."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass

from f2l.cli import UsageError, entry_point, non_negative_int, one_line, positive_int
from f2l.config import Subcommand, parse_subcommand, setting
from f2l.data.converters import CONVERTERS
from f2l.data.manifest import ManifestError, read_manifest, world_manifest, write_manifest
from f2l.world.splits import SPLITS


@dataclass
class ConvertConfig:
    """``python -m f2l.data convert FORMAT ANNOTATION --videos DIR --out M.jsonl``."""

    format: str | None = setting(choices=CONVERTERS)  # annotation format (also by position)
    annotation: str | None = None  # annotation file (finevideo: a folder of per-video JSON files)
    videos: str | None = setting(required=True)  # folder holding the videos
    out: str | None = setting(required=True)  # manifest to write (.jsonl)
    split: str | None = None  # split name stored on every example (e.g. val)
    frames: int | None = setting(type=positive_int)  # frame count stored on every example
    keep_missing: bool = False  # keep examples whose video is not found (meta.video_missing = true)
    per_segment: bool = False  # activitynet only: one example per captioned event
    seed: int | None = setting(type=non_negative_int)  # finevideo only: seed of the span draw (42)
    total: int | None = setting(
        type=positive_int
    )  # finevideo only: spans to draw (default: all the mix allows)


@dataclass
class WorldConfig:
    """``python -m f2l.data world --out M.jsonl``."""

    split: str = setting("test", choices=("train", "val", "test"))  # the world split the clips come from
    n: int = setting(100, type=non_negative_int)  # number of clips
    frames: int = setting(8, type=positive_int)  # frames per clip
    offset: int = setting(0, type=non_negative_int)  # skip this many seeds of the split first
    out: str | None = setting(required=True)  # manifest to write (.jsonl)


@dataclass
class CheckConfig:
    """``python -m f2l.data check M.jsonl [M2.jsonl ...]``."""

    manifests: tuple[str, ...] = ()  # manifest files (also by position)
    data_root: str | None = (
        None  # official manifests: folder of relative video paths (default: $FRAMES2LORA_DATA_ROOT)
    )


COMMANDS = {
    "convert": Subcommand(
        ConvertConfig,
        "convert a public annotation file to a manifest",
        positional=("format", "annotation"),
        description="Convert ActivityNet Captions JSON, NExT-QA CSV, VDC JSON/JSONL or FineVideo metadata "
        "(a folder of per-video JSON files) to a JSONL manifest. "
        "Videos are looked up as VIDEOS/<video_id>.{mp4,mkv,webm,avi,mov} (then anywhere below VIDEOS); "
        "examples whose video is missing are skipped and counted unless --keep-missing is given. "
        "FineVideo becomes scene / 2-3 adjacent scene / whole-video spans drawn 60/30/10 as the official "
        "stage-1 manifests are.",
    ),
    "world": Subcommand(WorldConfig, "write a manifest of procedural world clips"),
    "check": Subcommand(
        CheckConfig,
        "validate manifests (f2l or official Frames2LoRA) and print a summary",
        positional=("manifests",),
    ),
}


def _convert(args: ConvertConfig) -> int:
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


def _check(args: CheckConfig) -> int:
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
    command, args = parse_subcommand(
        COMMANDS,
        argv,
        prog="python -m f2l.data",
        description="Dataset manifests: convert public annotations, write world manifests, check files.",
    )
    if command == "convert":
        return _convert(args)
    if command == "world":
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
