"""The authors' official Frames2LoRA JSONL manifests, read into ``Example``s and written back out.

An official row is one prompt about one video (``video_path``, ``prompt``, ``target_text``, ...); the rows
of one video make one ``Example`` named by its first row, so the video is encoded once for all its
prompts, and the rest of each row stays in ``meta["rows"]`` so that ``write_official_manifest`` writes the
same rows back. Relative ``video_path`` values resolve against a data root (``data_root``,
``$FRAMES2LORA_DATA_ROOT`` or ``$VIDEO2LORA_DATA_ROOT``), never a guess. Row layout and defaults:
docs/usage.md#the-authors-official-manifests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from f2l.data.manifest import Example, ManifestError, QAItem, VideoRef, iter_prompts
from f2l.io import atomic_write_text

DATA_ROOT_VARIABLES = ("FRAMES2LORA_DATA_ROOT", "VIDEO2LORA_DATA_ROOT")
#: Fields an ``Example`` holds itself; every other field of a row is kept in ``meta["rows"]``.
_EXAMPLE_FIELDS = ("video_path", "prompt", "question", "target_text", "answer", "dataset", "split")


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The folder relative official video paths start from (see module doc), absolute; None if unset."""
    if explicit is not None:
        return Path(explicit).resolve()
    for name in DATA_ROOT_VARIABLES:
        if os.environ.get(name):
            return Path(os.environ[name]).resolve()
    return None


def _text(row: dict, *keys: str) -> str | None:
    """The first of ``keys`` that is present and not null, as text (numbers allowed, as officially)."""
    for key in keys:
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ManifestError(f"'{key}' must be a string, got {value!r}")
        return str(value)
    return None


def _seconds(row: dict, key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ManifestError(f"'{key}' must be a non-negative number or null, got {value!r}")
    return float(value)


def _split(row: dict, row_id: str) -> str | None:
    split = _text(row, "split")
    if split:
        return split
    for name in ("train", "val", "test"):
        if row_id.startswith((f"{name}-", f"{name}_")):
            return name
    return None


def _resolve(path: str, root: Path | None) -> str:
    return os.path.normpath(path if root is None or Path(path).is_absolute() else root / path)


def _parse_row(row: Any, root: Path | None) -> dict[str, Any]:
    """One validated row: the fields of its example and item, and ``rest`` (what ``meta["rows"]`` keeps)."""
    if not isinstance(row, dict):
        raise ManifestError(f"a row must be a JSON object, got {type(row).__name__}")
    video_path = row.get("video_path")
    if not isinstance(video_path, str) or not video_path:
        raise ManifestError(f"'video_path' must be a non-empty string, got {video_path!r}")
    if root is None and not Path(video_path).is_absolute():
        raise ManifestError(
            f"relative video_path {video_path!r} needs a data root: set FRAMES2LORA_DATA_ROOT "
            "(VIDEO2LORA_DATA_ROOT is honoured too) or pass data_root"
        )
    prompt = _text(row, "prompt", "question")
    if not prompt:
        raise ManifestError("missing 'prompt' (or 'question')")
    target = _text(row, "target_text", "answer") or ""
    metadata = {} if row.get("metadata") is None else row["metadata"]
    if not isinstance(metadata, dict):
        raise ManifestError(f"'metadata' must be an object, got {type(metadata).__name__}")
    row_id = _text(row, "id") or Path(video_path).stem
    task_type = _text(row, "task_type") or ("qa" if "question" in row or "answer" in row else "caption")
    start, end = _seconds(row, "clip_start_sec"), _seconds(row, "clip_end_sec")
    source = metadata.get("source_video_path")
    span = (start, end) if source is None or _resolve(source, root) == _resolve(video_path, root) else None
    try:
        video = VideoRef.file(video_path, *(span or (None, None)))
    except ManifestError as e:
        raise ManifestError(f"clip_start_sec/clip_end_sec: {e.message}") from None
    rest = {k: v for k, v in row.items() if k not in _EXAMPLE_FIELDS}
    rest.update(id=row_id, task_type=task_type, metadata=metadata)
    return {
        "video": video,
        "source": _text(row, "dataset") or str(metadata.get("dataset") or "unknown"),
        "split": _split(row, row_id),
        "prompt": prompt,
        "target": target,
        "rest": rest,
    }


def iter_official_manifest(
    path: str | os.PathLike, *, data_root: str | os.PathLike | None = None
) -> Iterator[Example]:
    """Examples of an official manifest, its rows grouped by video (see module doc).

    The file is read whole before the first example is yielded; a bad row raises ``ManifestError``
    naming the file and line.
    """
    path, root = Path(path), resolve_data_root(data_root)
    groups: dict[tuple, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = _parse_row(json.loads(line), root)
            except json.JSONDecodeError as e:
                raise ManifestError(f"invalid JSON: {e.msg} (column {e.colno})", path, lineno) from None
            except ManifestError as e:
                raise ManifestError(e.message, path, lineno) from None
            key = (row["video"], row["split"], row["source"])
            group = groups.setdefault(key, {"first": row, "line": lineno, "caption": {}, "qa": {}})
            task_type, row_id = row["rest"]["task_type"], row["rest"]["id"]
            if task_type == "qa":
                if row_id in group["qa"]:
                    raise ManifestError(f"duplicate id {row_id!r} for the same video", path, lineno)
                group["qa"][row_id] = row
            else:
                category, n = task_type, 2
                while category in group["caption"]:
                    category, n = f"{task_type}_{n}", n + 1
                group["caption"][category] = row
    seen: dict[str, int] = {}
    for group in groups.values():
        first, captions, qa = group["first"], group["caption"], group["qa"]
        example_id = first["rest"]["id"]
        if example_id in seen:
            raise ManifestError(
                f"duplicate id {example_id!r} for another video (first on line {seen[example_id]})",
                path,
                group["line"],
            )
        seen[example_id] = group["line"]
        video = first["video"]
        yield Example(
            id=example_id,
            source=first["source"],
            video=video,
            split=first["split"],
            duration=None if video.start is None or video.end is None else video.end - video.start,
            captions={c: row["target"] for c, row in captions.items()},
            caption_prompts={c: row["prompt"] for c, row in captions.items()},
            qa=tuple(QAItem(q, row["prompt"], row["target"]) for q, row in qa.items()),
            meta={
                "rows": {
                    kind: {i: row["rest"] for i, row in group[kind].items()} for kind in ("caption", "qa")
                }
            },
            root=None if root is None else str(root),
        )


def _official_path(example: Example, root: Path | None) -> str:
    """The example's video as an official ``video_path``: relative to the data root when under it."""
    if example.is_world:
        raise ManifestError(f"example {example.id!r} is a world clip: an official row needs a video file")
    file = Path(os.path.abspath(example.video_path()))
    if root is not None and file.is_relative_to(root):
        return str(file.relative_to(root))
    return str(file)


def _official_rows(example: Example, root: Path | None) -> list[dict[str, Any]]:
    """The example's rows, the one whose id is the example's first (it names the example when read)."""
    video_path = _official_path(example, root)
    stored = example.meta.get("rows", {})
    rows = []
    for prompt in iter_prompts([example]):
        row = {
            "id": f"{example.id}-{prompt.item_id}",
            "video_path": video_path,
            "task_type": prompt.kind,
            "prompt": prompt.prompt,
            **({"target_text": prompt.reference} if prompt.reference else {}),
            "dataset": example.source,
            "split": example.split,
            **stored.get(prompt.kind, {}).get(prompt.item_id, {}),
        }
        row["metadata"] = dict(row.get("metadata") or {})
        if example.video.start is not None or example.video.end is not None:
            row["metadata"]["source_video_path"] = video_path
            row.update(clip_start_sec=example.video.start, clip_end_sec=example.video.end)
        rows.append(row)
    return sorted(rows, key=lambda row: row["id"] != example.id)


def write_official_manifest(
    path: str | os.PathLike, examples: Iterable[Example], *, data_root: str | os.PathLike | None = None
) -> Path:
    """Write examples as official rows, one per caption and QA item, atomically; returns the path.

    Video paths are written relative to the data root (``data_root``, else the environment variables
    of the module doc) when under it, else absolute. A row read from an official file is written back
    as it was (normalized, and reading the file back gives the same examples); others get id
    ``<example id>-<item id>``, task type "caption" or "qa" and the prompt ``iter_prompts`` asks
    (multiple-choice options in its text; categories and QA types are not kept). A video span becomes
    ``clip_start_sec``/``clip_end_sec`` with ``metadata.source_video_path`` the video itself.
    World clips (no file) are an error.
    """
    path, root = Path(path), resolve_data_root(data_root)
    lines: list[str] = []
    seen: set[str] = set()
    for example in examples:
        for row in _official_rows(example, root):
            if row["id"] in seen:
                raise ManifestError(f"duplicate row id {row['id']!r}", path)
            seen.add(row["id"])
            try:
                lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False))
            except (TypeError, ValueError) as e:
                raise ManifestError(f"row {row['id']!r} is not plain JSON: {e}", path) from None
    return atomic_write_text(path, "".join(line + "\n" for line in lines))
