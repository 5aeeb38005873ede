"""The dataset manifest: one JSONL file, one video per line, shared by the procedural world and real datasets.

A record names its video by a world seed (rendered on demand by ``f2l.world``) or by a file path, and
carries reference captions by category and QA items. Everything downstream (teacher targets, training,
evaluation) reads examples through this one format, so validation is strict: a typo in a key or a wrong
type is an error that names the file and line. The authors' official manifests are read by the same
``read_manifest``/``iter_manifest``, detected per file (``f2l.data.official``). Record layout, relative
paths and caption prompts: docs/usage.md#manifests.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from f2l import world
from f2l.io import atomic_write_text
from f2l.video import Frames, load_video

#: The instruction that asks for each caption category. The one place these strings live.
CAPTION_PROMPTS: dict[str, str] = {
    "short": "Describe the video in one sentence.",
    "detailed": "Describe the video in detail.",
    "background": "Describe the background.",
    "main_object": "Describe the main object.",
    "camera": "Describe the camera motion.",
    "temporal": "Describe what happens in order.",
    "dense": "Describe the events in the video.",
}

RECORD_KEYS = (
    "id",
    "source",
    "video",
    "frames",
    "fps",
    "split",
    "duration",
    "captions",
    "caption_prompts",
    "qa",
    "meta",
)
REQUIRED_KEYS = ("id", "source", "video")
QA_KEYS = ("id", "question", "answer", "type", "choices")
DEFAULT_WORLD_FRAMES = 8
DEFAULT_WORLD_SIZE = 64


class ManifestError(ValueError):
    """A record that does not follow the manifest format; names the file and line when known."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        where = self.path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class VideoRef:
    """Where the pixels come from: exactly one of ``world_seed`` or ``path`` (optionally a [start, end) s span)."""

    world_seed: int | None = None
    path: str | None = None
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if (self.world_seed is None) == (self.path is None):
            raise ManifestError("video needs exactly one of 'path' and 'world_seed'")
        if self.world_seed is not None and (self.start is not None or self.end is not None):
            raise ManifestError("a world video takes no 'start'/'end'")
        if self.start is not None and self.end is not None and not self.start < self.end:
            raise ManifestError(f"video start {self.start} must be before end {self.end}")

    @classmethod
    def world(cls, seed: int) -> VideoRef:
        return cls(world_seed=seed)

    @classmethod
    def file(cls, path: str | os.PathLike, start: float | None = None, end: float | None = None) -> VideoRef:
        return cls(path=str(path), start=start, end=end)

    def to_dict(self) -> dict[str, Any]:
        if self.world_seed is not None:
            return {"world_seed": self.world_seed}
        return {"path": self.path, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class QAItem:
    """One question about a video; ``answer`` is the reference text (for multiple choice, one of ``choices``)."""

    id: str
    question: str
    answer: str
    type: str = "open"
    choices: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "type": self.type,
            "choices": None if self.choices is None else list(self.choices),
        }


@dataclass(frozen=True)
class Example:
    """One manifest record. ``root`` is the directory relative video paths resolve against (see module doc)."""

    id: str
    source: str
    video: VideoRef
    frames: int | None = None
    fps: float | None = None
    split: str | None = None
    duration: float | None = None
    captions: dict[str, str] = field(default_factory=dict)
    caption_prompts: dict[str, str] = field(default_factory=dict)
    qa: tuple[QAItem, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    root: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_world(self) -> bool:
        return self.video.world_seed is not None

    def video_path(self, root: str | os.PathLike | None = None) -> Path:
        """The video file: absolute paths as stored; relative ones joined to ``root``, else ``self.root``."""
        if self.video.path is None:
            raise ValueError(
                f"example {self.id!r} is a world clip (seed {self.video.world_seed}), not a file"
            )
        path = Path(self.video.path)
        if path.is_absolute():
            return path
        base = root if root is not None else self.root
        return Path(base) / path if base is not None else path

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``root`` is not part of it: it belongs to where the manifest lives)."""
        return {
            "id": self.id,
            "source": self.source,
            "video": self.video.to_dict(),
            "frames": self.frames,
            "fps": self.fps,
            "split": self.split,
            "duration": self.duration,
            "captions": dict(self.captions),
            "caption_prompts": dict(self.caption_prompts),
            "qa": [q.to_dict() for q in self.qa],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, record: Any, *, root: str | os.PathLike | None = None) -> Example:
        """Validate a JSON record and build the example; raises ``ManifestError`` naming the bad field."""
        return _parse_record(record, None if root is None else str(root))


# --------------------------------------------------------------------------- validation


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) and math.isfinite(x)


def _opt(record: Mapping, key: str, check, what: str, ctx: str = "") -> Any:
    value = record.get(key)
    if value is not None and not check(value):
        raise ManifestError(f"{ctx}'{key}' must be {what} or null, got {value!r}")
    return value


def _parse_video(video: Any) -> VideoRef:
    if not isinstance(video, dict):
        raise ManifestError(f"'video' must be an object, got {video!r}")
    has_seed, has_path = "world_seed" in video, "path" in video
    if has_seed == has_path:
        raise ManifestError(f"'video' needs exactly one of 'path' and 'world_seed', got keys {sorted(video)}")
    allowed = {"world_seed"} if has_seed else {"path", "start", "end"}
    unknown = sorted(set(video) - allowed)
    if unknown:
        raise ManifestError(f"unknown key(s) in 'video': {unknown} (allowed: {sorted(allowed)})")
    if has_seed:
        if not _is_int(video["world_seed"]) or video["world_seed"] < 0:
            raise ManifestError(
                f"'video.world_seed' must be a non-negative integer, got {video['world_seed']!r}"
            )
        return VideoRef.world(video["world_seed"])
    if not isinstance(video["path"], str) or not video["path"]:
        raise ManifestError(f"'video.path' must be a non-empty string, got {video['path']!r}")
    start = _opt(video, "start", lambda v: _is_number(v) and v >= 0, "a non-negative number", "video.")
    end = _opt(video, "end", lambda v: _is_number(v) and v > 0, "a positive number", "video.")
    return VideoRef.file(video["path"], start, end)


def _parse_qa(items: Any) -> tuple[QAItem, ...]:
    if not isinstance(items, list):
        raise ManifestError(f"'qa' must be a list, got {type(items).__name__}")
    out: list[QAItem] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        ctx = f"qa[{i}]"
        if not isinstance(item, dict):
            raise ManifestError(f"{ctx} must be an object, got {item!r}")
        unknown = sorted(set(item) - set(QA_KEYS))
        if unknown:
            raise ManifestError(f"unknown key(s) in {ctx}: {unknown} (allowed: {list(QA_KEYS)})")
        for key in ("id", "question", "answer"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise ManifestError(f"{ctx}.{key} must be a non-empty string, got {item.get(key)!r}")
        qtype = item.get("type", "open")
        if not isinstance(qtype, str) or not qtype:
            raise ManifestError(f"{ctx}.type must be a non-empty string, got {qtype!r}")
        choices = item.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                raise ManifestError(
                    f"{ctx}.choices must be a non-empty list of strings or null, got {choices!r}"
                )
            if item["answer"] not in choices:
                raise ManifestError(f"{ctx}.answer {item['answer']!r} is not one of its choices {choices!r}")
            choices = tuple(choices)
        if item["id"] in seen:
            raise ManifestError(f"duplicate qa id {item['id']!r}")
        seen.add(item["id"])
        out.append(QAItem(item["id"], item["question"], item["answer"], qtype, choices))
    return tuple(out)


def _parse_record(record: Any, root: str | None) -> Example:
    if not isinstance(record, dict):
        raise ManifestError(f"a record must be a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(RECORD_KEYS))
    if unknown:
        raise ManifestError(
            f"unknown key(s) {unknown}; allowed: {list(RECORD_KEYS)} (free-form data goes in 'meta')"
        )
    for key in REQUIRED_KEYS:
        if key not in record:
            raise ManifestError(f"missing required key {key!r}")
    for key in ("id", "source"):
        if not isinstance(record[key], str) or not record[key]:
            raise ManifestError(f"'{key}' must be a non-empty string, got {record[key]!r}")
    video = _parse_video(record["video"])
    frames = _opt(record, "frames", lambda v: _is_int(v) and v > 0, "a positive integer")
    fps = _opt(record, "fps", lambda v: _is_number(v) and v > 0, "a positive number")
    split = _opt(record, "split", lambda v: isinstance(v, str) and v, "a non-empty string")
    duration = _opt(record, "duration", lambda v: _is_number(v) and v >= 0, "a non-negative number")
    captions = record.get("captions") or {}
    if not isinstance(captions, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in captions.items()
    ):
        raise ManifestError(f"'captions' must map category names to strings, got {captions!r}")
    caption_prompts = record.get("caption_prompts") or {}
    if not isinstance(caption_prompts, dict) or not all(
        isinstance(v, str) and v for v in caption_prompts.values()
    ):
        raise ManifestError(
            f"'caption_prompts' must map categories to non-empty strings, got {caption_prompts!r}"
        )
    stray = sorted(set(caption_prompts) - set(captions))
    if stray:
        raise ManifestError(f"'caption_prompts' names categories without a caption: {stray}")
    qa = _parse_qa(record.get("qa") or [])
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise ManifestError(f"'meta' must be an object, got {type(meta).__name__}")
    return Example(
        id=record["id"],
        source=record["source"],
        video=video,
        frames=frames,
        fps=fps,
        split=split,
        duration=duration,
        captions=dict(captions),
        caption_prompts=dict(caption_prompts),
        qa=qa,
        meta=meta,
        root=root,
    )


# --------------------------------------------------------------------------- reading and writing


def _is_official(path: Path) -> bool:
    """Whether the file's first record is an official Frames2LoRA row (``video_path``, no ``video``)."""
    with path.open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False  # reported, with its line, by the f2l reader
    return isinstance(record, dict) and "video_path" in record and "video" not in record


def iter_manifest(
    path: str | os.PathLike, *, data_root: str | os.PathLike | None = None
) -> Iterator[Example]:
    """Stream examples from a JSONL manifest; blank lines are skipped, ids must be unique in the file.

    A file whose first record is an official Frames2LoRA row is read by
    ``f2l.data.official.iter_official_manifest`` (whole, its rows grouped by video), with ``data_root``
    for its relative video paths; f2l manifests ignore ``data_root``.
    """
    path = Path(path)
    if _is_official(path):
        from f2l.data.official import iter_official_manifest

        yield from iter_official_manifest(path, data_root=data_root)
        return
    root = str(path.resolve().parent)
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"invalid JSON: {e.msg} (column {e.colno})", path, lineno) from None
            try:
                example = _parse_record(record, root)
            except ManifestError as e:
                raise ManifestError(e.message, path, lineno) from None
            if example.id in seen:
                raise ManifestError(
                    f"duplicate id {example.id!r} (first on line {seen[example.id]})", path, lineno
                )
            seen[example.id] = lineno
            yield example


def read_manifest(path: str | os.PathLike, *, data_root: str | os.PathLike | None = None) -> list[Example]:
    """All examples of a JSONL manifest, f2l's or the official one, validated (see ``iter_manifest``)."""
    return list(iter_manifest(path, data_root=data_root))


def _rebased_path(example: Example, out_dir: Path) -> Example:
    """Keep a relative video path pointing at the same file once the manifest lives in ``out_dir``."""
    stored = example.video.path
    if stored is None or example.root is None or Path(stored).is_absolute():
        return example
    base = Path(example.root)
    if base.resolve() == out_dir:
        return example
    new = os.path.relpath(base.resolve() / stored, out_dir)
    return replace(example, video=replace(example.video, path=new), root=str(out_dir))


def write_manifest(path: str | os.PathLike, examples: Iterable[Example]) -> Path:
    """Write examples as JSONL atomically; validates each record and rejects duplicate ids.

    Relative video paths of examples with a ``root`` are rewritten relative to the new manifest's
    directory, so they keep naming the same files; with ``root=None`` they are written as is.
    """
    path = Path(path)
    out_dir = path.resolve().parent
    lines: list[str] = []
    seen: set[str] = set()
    for i, example in enumerate(examples):
        record = _rebased_path(example, out_dir).to_dict()
        try:
            line = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ManifestError(f"example {i} ({example.id!r}) is not plain JSON: {e}", path) from None
        try:
            _parse_record(json.loads(line), None)
        except ManifestError as e:
            raise ManifestError(f"example {i} ({example.id!r}): {e.message}", path) from None
        if example.id in seen:
            raise ManifestError(f"duplicate id {example.id!r}", path)
        seen.add(example.id)
        lines.append(line)
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------- frames


def load_frames(
    example: Example,
    *,
    num_frames: int | None = None,
    size: int | None = None,
    root: str | os.PathLike | None = None,
) -> Frames:
    """Decode or render the example's frames as ``f2l.video.Frames``.

    The frame count is ``num_frames``, else ``example.frames``; ``size`` is the target resolution.
    World clips: rendered square, ``size`` x ``size`` (default 64), ``num_frames`` defaulting to 8.
    Video files: ``size`` is the longest edge (aspect ratio kept; None = native resolution); with no
    frame count the file is sampled at ``example.fps`` if set, else every frame is decoded; the
    record's ``start``/``end`` span is honoured. ``root`` overrides ``example.root`` for relative paths.
    """
    count = num_frames if num_frames is not None else example.frames
    if example.is_world:
        return world.render_clip(
            example.video.world_seed,
            num_frames=count or DEFAULT_WORLD_FRAMES,
            size=size or DEFAULT_WORLD_SIZE,
        ).frames
    sampling: dict[str, Any] = {"num_frames": count} if count is not None else {"fps": example.fps}
    return load_video(
        example.video_path(root),
        **sampling,
        longest_edge=size,
        start=example.video.start,
        end=example.video.end,
    )


# --------------------------------------------------------------------------- world examples


def world_example(seed: int, *, split: str | None = None, frames: int = DEFAULT_WORLD_FRAMES) -> Example:
    """The manifest record of one world clip: its captions and QA come from the clip's ground truth."""
    truth = world.sample_truth(seed)
    qa_items = tuple(
        QAItem(
            id=f"q{i}",
            question=q.question,
            answer=q.answer,
            type=q.type,
            choices=None if q.choices is None else tuple(q.choices),
        )
        for i, q in enumerate(world.qa(truth))
    )
    duration = getattr(truth, "duration", None)
    return Example(
        id=f"world-{seed}",
        source="world",
        video=VideoRef.world(seed),
        frames=frames,
        split=split,
        duration=None if duration is None else float(duration),
        captions=dict(world.captions(truth)),
        qa=qa_items,
        meta={"truth": json.loads(json.dumps(truth.to_dict()))},  # tuples -> lists, as read back
    )


def world_manifest(
    split: str, n: int, *, frames: int = DEFAULT_WORLD_FRAMES, offset: int = 0
) -> list[Example]:
    """``n`` examples of a fixed world split (seeds from ``f2l.world.split_seeds``), ids ``world-<seed>``."""
    return [
        world_example(seed, split=split, frames=frames) for seed in world.split_seeds(split, n, offset=offset)
    ]


# --------------------------------------------------------------------------- prompts


class Prompt(NamedTuple):
    """One (example, prompt, reference) row: ``kind`` is "caption" or "qa"; ``label`` the category or
    QA type; ``item_id`` the category or QA id, unique within the example."""

    example: Example
    kind: str
    label: str
    prompt: str
    reference: str
    item_id: str
    choices: tuple[str, ...] | None = None


def caption_prompt(category: str, prompts: Mapping[str, str] = CAPTION_PROMPTS) -> str:
    """The instruction for a caption category; unknown categories are an error, not a guess."""
    try:
        return prompts[category]
    except KeyError:
        raise KeyError(f"no caption prompt for category {category!r}; known: {sorted(prompts)}") from None


def qa_prompt(item: QAItem) -> str:
    """The question as asked; multiple-choice questions list their options, one a line."""
    if not item.choices:
        return item.question
    options = "\n".join(f"- {c}" for c in item.choices)
    return f"{item.question}\nOptions:\n{options}\nAnswer with one of the options."


def iter_prompts(
    examples: Iterable[Example],
    kinds: Sequence[str] = ("caption", "qa"),
    *,
    categories: Sequence[str] | None = None,
    qa_types: Sequence[str] | None = None,
    prompts: Mapping[str, str] = CAPTION_PROMPTS,
) -> Iterator[Prompt]:
    """Flatten examples into prompt rows: per example, its captions (in stored order) then its QA.

    A caption is asked with the example's own ``caption_prompts`` entry, else ``prompts[category]``.
    ``categories`` / ``qa_types`` keep only those caption categories / QA types.
    """
    bad = sorted(set(kinds) - {"caption", "qa"})
    if bad:
        raise ValueError(f"unknown prompt kind(s) {bad}; use 'caption' and/or 'qa'")
    for example in examples:
        if "caption" in kinds:
            for category, text in example.captions.items():
                if categories is None or category in categories:
                    instruction = example.caption_prompts.get(category) or caption_prompt(category, prompts)
                    yield Prompt(example, "caption", category, instruction, text, category)
        if "qa" in kinds:
            for item in example.qa:
                if qa_types is None or item.type in qa_types:
                    yield Prompt(
                        example, "qa", item.type, qa_prompt(item), item.answer, item.id, item.choices
                    )


def clip_prompts(example: Example, qa_per_type: int = 1) -> list[Prompt]:
    """The prompts a clip is trained and evaluated on: every caption category and the first
    ``qa_per_type`` questions of every QA type (so no type outweighs another by its count)."""
    rows, seen = [], {}
    for row in iter_prompts([example]):
        if row.kind == "qa":
            seen[row.label] = seen.get(row.label, 0) + 1
            if seen[row.label] > qa_per_type:
                continue
        rows.append(row)
    return rows
