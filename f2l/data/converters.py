"""Converters from public annotation files to manifest examples.

Each converter reads one annotation file (FineVideo: a folder of per-video files), finds each video under ``videos_dir`` and returns
``list[Example]``. Videos are looked up as ``videos_dir/<video_id>.<ext>`` for the common
extensions (mp4, mkv, webm, avi, mov), then anywhere below ``videos_dir`` by file stem (NExT-QA, for
one, ships its videos in numbered sub-folders). Stored paths are ``videos_dir`` joined with the
file's place in it, so they are relative when ``videos_dir`` is; the examples are anchored at the
working directory (``Example.root``), and ``write_manifest`` rebases them onto the manifest's directory.

A video that cannot be found is skipped with a warning that counts them (``keep_missing=False``, the
default: an example without pixels cannot be trained or evaluated on). With ``keep_missing=True`` it
is kept, its path set to ``videos_dir/<video_id>.mp4`` and ``meta["video_missing"] = True``, so the
annotations can be converted before the videos are downloaded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from f2l.data.manifest import Example, QAItem, VideoRef

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")

#: NExT-QA question codes -> readable type (causal why/how; temporal next/current/previous;
#: descriptive location/count/other/binary).
NEXTQA_TYPES: dict[str, str] = {
    "CW": "causal",
    "CH": "causal",
    "TN": "temporal",
    "TC": "temporal",
    "TP": "temporal",
    "DL": "descriptive",
    "DC": "descriptive",
    "DO": "descriptive",
    "DB": "descriptive",
}
NEXTQA_COLUMNS = ("video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")

#: VDC caption fields -> manifest caption categories.
VDC_CAPTION_KEYS: dict[str, str] = {
    "short_caption": "short",
    "detailed_caption": "detailed",
    "background_caption": "background",
    "main_object_caption": "main_object",
    "camera_caption": "camera",
}


#: FineVideo's span mix of the official stage-1 manifests: one scene, 2-3 adjacent scenes, the whole video.
FINEVIDEO_MIX: dict[str, float] = {"scene": 0.6, "adjacent": 0.3, "full": 0.1}
#: The official instructions per span type; each span is asked one, picked by a hash of its id.
FINEVIDEO_PROMPTS: dict[str, tuple[str, ...]] = {
    "scene": ("Describe what is happening in this scene.", "Write a short summary of this scene."),
    "adjacent": ("Summarize this video segment.", "Describe the sequence of events in this segment."),
    "full": ("Summarize this video in 1-3 sentences.",),
}
FINEVIDEO_WINDOWS = (2, 3)  # scenes per adjacent span


class AnnotationError(ValueError):
    """An annotation file that does not have the expected format; the message names file and place."""


class VideoFinder:
    """Find ``<video_id>.<ext>`` in a folder, falling back to a recursive index built on the first miss."""

    def __init__(self, videos_dir: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS):
        self.videos_dir = Path(videos_dir)
        self.anchor = str(Path.cwd())  # where a relative videos_dir (and so each stored path) starts
        self.extensions = tuple(e.lower() for e in extensions)
        self._index: dict[str, Path] | None = None

    def _candidates(self, name: str) -> Iterable[Path]:
        if Path(name).suffix.lower() in self.extensions:
            yield self.videos_dir / name
        for ext in self.extensions:
            yield self.videos_dir / f"{name}{ext}"

    def _build_index(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        if self.videos_dir.is_dir():
            for p in sorted(self.videos_dir.rglob("*")):
                if p.suffix.lower() in self.extensions and p.is_file():
                    index.setdefault(p.name, p)
                    index.setdefault(p.stem, p)
        return index

    def find(self, *names: str) -> Path | None:
        """The first existing file for any of ``names`` (tried in order), or None."""
        for name in names:
            for path in self._candidates(name):
                if path.is_file():
                    return path
        if self._index is None:
            self._index = self._build_index()
        for name in names:
            if name in self._index:
                return self._index[name]
        return None


def _video(finder: VideoFinder, names: Sequence[str], start: float | None = None, end: float | None = None):
    """(VideoRef, found): the located file, or the conventional path when it is missing."""
    path = finder.find(*names)
    if path is None:
        return VideoRef.file(finder.videos_dir / f"{names[0]}.mp4", start, end), False
    return VideoRef.file(path, start, end), True


def _with_missing_flag(meta: dict[str, Any], found: bool) -> dict[str, Any]:
    return meta if found else {**meta, "video_missing": True}


def _example(
    finder: VideoFinder,
    names: Sequence[str],
    meta: dict[str, Any],
    start: float | None = None,
    end: float | None = None,
    **fields: Any,
) -> Example:
    """An ``Example`` of ``fields`` whose video is the first of ``names`` found under ``finder`` (its span
    ``start`` to ``end``), ``meta`` flagged ``video_missing`` when none is (``_video``)."""
    video, found = _video(finder, names, start, end)
    return Example(video=video, meta=_with_missing_flag(meta, found), root=finder.anchor, **fields)


def _drop_missing(
    examples: list[Example], keep_missing: bool, source: str, videos_dir: Path
) -> list[Example]:
    if keep_missing:
        return examples
    kept = [e for e in examples if not e.meta.get("video_missing")]
    if len(kept) < len(examples):
        warnings.warn(
            f"{source}: {len(examples) - len(kept)} of {len(examples)} videos not found under {videos_dir}; "
            "skipped (keep_missing=True keeps them)",
            stacklevel=3,
        )
    return kept


def _sentence(text: str) -> str:
    """Whitespace collapsed, ending in punctuation, so joined sentences read as a paragraph."""
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?" else text + "."


_LOWERABLE = frozenset(
    ("a", "an", "the", "he", "she", "they", "it", "we", "his", "her", "their", "its", "this", "that")
    + ("these", "those", "there", "two", "three", "several", "some", "many", "another", "one", "people")
)


def _after_ordering_word(text: str) -> str:
    """Lower-case a sentence's first word when it is a common function word ("A man" -> "a man")."""
    first, _, rest = text.partition(" ")
    return f"{first.lower()} {rest}".rstrip() if first.lower() in _LOWERABLE else text


_LEADING_ORDER_WORD = re.compile(
    r"^(?:then|next|finally|first|later|afterwards|after that)\b,?\s+", re.IGNORECASE
)


def temporal_paragraph(sentences: Sequence[str]) -> str:
    """Events joined with ordering words: "First, ... Then, ... Finally, ..." (a sentence's own leading
    ordering word is dropped so it is not doubled)."""
    sentences = [_sentence(s) for s in sentences]
    if len(sentences) <= 1:
        return "".join(sentences)
    sentences = [_LEADING_ORDER_WORD.sub("", s) for s in sentences]
    words = ["First,"] + ["Then,"] * (len(sentences) - 2) + ["Finally,"]
    return " ".join(f"{w} {_after_ordering_word(s)}" for w, s in zip(words, sentences, strict=True))


def _activitynet_names(video_id: str) -> list[str]:
    other = video_id[2:] if video_id.startswith("v_") else f"v_{video_id}"
    return [video_id, other]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: invalid JSON: {e}") from None


def convert_activitynet(
    annotation: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    split: str | None = None,
    keep_missing: bool = False,
    per_segment: bool = False,
    frames: int | None = None,
) -> list[Example]:
    """ActivityNet Captions (``{"v_x": {"duration", "timestamps", "sentences"}}``) -> examples.

    Whole-video mode (default): one example a video, events sorted by (start, end); caption "dense" is
    the sentences joined in that order, "temporal" the same with ordering words (``temporal_paragraph``);
    meta keeps the sorted timestamps and raw sentences. ``per_segment``: one example per event, its
    video span clamped to [0, duration] (events empty after clamping are dropped), caption "short" =
    the event's sentence, id ``activitynet-<video>-<i>`` with i the event's place in time order.
    """
    annotation, finder = Path(annotation), VideoFinder(videos_dir)
    data = _load_json(annotation)
    if not isinstance(data, dict):
        raise AnnotationError(f"{annotation}: expected an object mapping video ids to annotations")
    examples: list[Example] = []
    for video_id, ann in data.items():
        if not isinstance(ann, dict) or not {"timestamps", "sentences"} <= set(ann):
            raise AnnotationError(f"{annotation}: video {video_id!r} needs 'timestamps' and 'sentences'")
        stamps, sentences = ann["timestamps"], ann["sentences"]
        if len(stamps) != len(sentences):
            raise AnnotationError(
                f"{annotation}: video {video_id!r} has {len(stamps)} timestamps but {len(sentences)} sentences"
            )
        order = sorted(range(len(stamps)), key=lambda i: (float(stamps[i][0]), float(stamps[i][1])))
        stamps = [[float(stamps[i][0]), float(stamps[i][1])] for i in order]
        sentences = [" ".join(str(sentences[i]).split()) for i in order]
        duration = None if ann.get("duration") is None else float(ann["duration"])
        names = _activitynet_names(video_id)
        if per_segment:
            for i, ((s, e), text) in enumerate(zip(stamps, sentences, strict=True)):
                start, end = max(0.0, s), (min(e, duration) if duration else e)
                if not end > start:
                    continue
                meta = {"video_id": video_id, "segment": i, "timestamp": [s, e], "video_duration": duration}
                examples.append(
                    _example(
                        finder,
                        names,
                        meta,
                        start,
                        end,
                        id=f"activitynet-{video_id}-{i}",
                        source="activitynet_captions",
                        frames=frames,
                        split=split,
                        duration=end - start,
                        captions={"short": _sentence(text)},
                    )
                )
            continue
        captions = {
            "dense": " ".join(_sentence(s) for s in sentences),
            "temporal": temporal_paragraph(sentences),
        }
        meta = {"video_id": video_id, "timestamps": stamps, "sentences": sentences}
        examples.append(
            _example(
                finder,
                names,
                meta,
                id=f"activitynet-{video_id}",
                source="activitynet_captions",
                frames=frames,
                split=split,
                duration=duration,
                captions={k: v for k, v in captions.items() if v},
            )
        )
    return _drop_missing(examples, keep_missing, "activitynet", finder.videos_dir)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def convert_nextqa(
    annotation: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    split: str | None = None,
    keep_missing: bool = False,
    frames: int | None = None,
) -> list[Example]:
    """NExT-QA CSV -> one example a video (in order of first appearance) holding its questions.

    Each row becomes a multiple-choice QA item ``q<qid>``: choices a0..a4, answer the text of choice
    number ``answer``, type the readable ``NEXTQA_TYPES`` name; ``meta["qa_codes"]`` keeps the raw codes
    by QA id, and frame_count/width/height are kept in meta when present.
    """
    annotation, finder = Path(annotation), VideoFinder(videos_dir)
    groups: dict[str, dict[str, Any]] = {}
    with annotation.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing_cols = [c for c in NEXTQA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing_cols:
            raise AnnotationError(f"{annotation}: missing column(s) {missing_cols}")
        for row in reader:
            where = f"{annotation}:{reader.line_num}"
            code = row["type"].strip()
            if code not in NEXTQA_TYPES:
                raise AnnotationError(
                    f"{where}: unknown question type {code!r}; known: {sorted(NEXTQA_TYPES)}"
                )
            choices = [row[f"a{k}"].strip() for k in range(5)]
            try:
                answer = choices[int(row["answer"])]
            except (ValueError, IndexError):
                raise AnnotationError(
                    f"{where}: answer {row['answer']!r} is not a choice index 0-4"
                ) from None
            if not answer:
                raise AnnotationError(f"{where}: the answer's choice a{row['answer']} is empty")
            video_id = row["video"].strip()
            group = groups.setdefault(video_id, {"qa": [], "codes": {}, "row": row})
            qa_id = f"q{row['qid'].strip()}"
            if qa_id in group["codes"]:
                raise AnnotationError(f"{where}: duplicate qid {row['qid']!r} for video {video_id!r}")
            group["codes"][qa_id] = code
            group["qa"].append(
                QAItem(
                    qa_id, row["question"].strip(), answer, NEXTQA_TYPES[code], tuple(c for c in choices if c)
                )
            )
    examples = []
    for video_id, group in groups.items():
        first = group["row"]
        meta: dict[str, Any] = {"video_id": video_id, "qa_codes": group["codes"]}
        for key in ("frame_count", "width", "height"):
            if _int_or_none(first.get(key)) is not None:
                meta[key] = int(first[key])
        examples.append(
            _example(
                finder,
                [video_id],
                meta,
                id=f"nextqa-{video_id}",
                source="nextqa",
                frames=frames,
                split=split,
                qa=tuple(group["qa"]),
            )
        )
    return _drop_missing(examples, keep_missing, "nextqa", finder.videos_dir)


def _read_records(path: Path) -> list[Any]:
    """A JSON list of records, one JSON record, or JSONL of records."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise AnnotationError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
        return records
    return data if isinstance(data, list) else [data]


_CAPTION_SUFFIX = re.compile(r"_caption$")


def convert_vdc(
    annotation: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    split: str | None = None,
    keep_missing: bool = False,
    frames: int | None = None,
) -> list[Example]:
    """VDC-style records (``{"video_id", "captions": {"short_caption", ...}}``, JSON list or JSONL) -> examples.

    Caption fields map through ``VDC_CAPTION_KEYS`` to short, detailed, background, main_object and
    camera; the fields may also sit at the record's top level. Other ``*_caption`` fields go to
    ``meta["extra_captions"]`` and other record fields to ``meta["extra"]``; empty captions are dropped.
    """
    annotation, finder = Path(annotation), VideoFinder(videos_dir)
    examples: list[Example] = []
    seen: set[str] = set()
    for i, record in enumerate(_read_records(annotation)):
        if not isinstance(record, dict) or not isinstance(record.get("video_id"), str):
            raise AnnotationError(f"{annotation}: record {i} needs a string 'video_id'")
        video_id = record["video_id"]
        stem = Path(video_id).stem if Path(video_id).suffix.lower() in VIDEO_EXTENSIONS else video_id
        if stem in seen:
            raise AnnotationError(f"{annotation}: duplicate video_id {video_id!r} (record {i})")
        seen.add(stem)
        if isinstance(record.get("captions"), dict):
            fields = record["captions"]
        else:
            fields = {k: v for k, v in record.items() if k.endswith("_caption")}
        captions, extra_captions = {}, {}
        for key, value in fields.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if key in VDC_CAPTION_KEYS:
                captions[VDC_CAPTION_KEYS[key]] = value.strip()
            elif key.endswith("_caption"):
                extra_captions[_CAPTION_SUFFIX.sub("", key)] = value.strip()
        extra = {k: v for k, v in record.items() if k not in ("video_id", "captions") and k not in fields}
        meta: dict[str, Any] = {"video_id": video_id}
        if extra_captions:
            meta["extra_captions"] = extra_captions
        if extra:
            meta["extra"] = extra
        examples.append(
            _example(
                finder,
                [stem, video_id] if stem != video_id else [video_id],
                meta,
                id=f"vdc-{stem}",
                source="vdc",
                frames=frames,
                split=split,
                captions=captions,
            )
        )
    return _drop_missing(examples, keep_missing, "vdc", finder.videos_dir)


def _clock_seconds(value: Any) -> float | None:
    """FineVideo's "HH:MM:SS(.fff)" in seconds; None for anything else."""
    parts = str(value or "").strip().split(":")
    if len(parts) != 3:
        return None
    try:
        seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
    except ValueError:
        return None
    return round(seconds, 6) if math.isfinite(seconds) else None  # no float noise on millisecond stamps


def _scene_bounds(scene: Any) -> tuple[float, float] | None:
    stamps = scene.get("timestamps") if isinstance(scene, dict) else None
    if not isinstance(stamps, dict):
        return None
    start, end = _clock_seconds(stamps.get("start_timestamp")), _clock_seconds(stamps.get("end_timestamp"))
    return (start, end) if start is not None and end is not None and end > start else None


def _scene_text(scene: Any, key: str) -> str:
    return _sentence(str(scene.get(key) or "")) if isinstance(scene, dict) else ""


def _activities(scene: Any) -> list[str]:
    items = scene.get("activities") if isinstance(scene, dict) else None
    texts = (_sentence(str(a.get("description") or "")) for a in items or [] if isinstance(a, dict))
    return [t for t in texts if t]


def _scene_caption(scene: dict) -> str:
    """Its first two activities; else its title; else its mood."""
    activities = _activities(scene)
    if activities:
        return " ".join(activities[:2])
    mood = str((scene.get("mood") or {}).get("description") or "").strip()
    return _scene_text(scene, "title") or (_sentence(f"The scene mood is {mood.lower()}") if mood else "")


def _finevideo_spans(
    content: dict[str, Any],
) -> Iterator[tuple[str, str, tuple[float, float] | None, list[int], str]]:
    """(type, key, (start, end) or None for the whole video, scenes covered, caption) of each usable span."""
    scenes = content["scenes"]
    for i, scene in enumerate(scenes):
        bounds = _scene_bounds(scene)
        caption = _scene_caption(scene) if bounds else ""
        if caption:
            yield "scene", f"s{i:02d}", bounds, [i], caption
    for size in FINEVIDEO_WINDOWS:
        for i in range(len(scenes) - size + 1):
            window = scenes[i : i + size]
            first, last = _scene_bounds(window[0]), _scene_bounds(window[-1])
            if not (first and last and last[1] > first[0]):
                continue
            activities = [a for scene in window for a in _activities(scene)]
            titles = [t for t in (_scene_text(scene, "title") for scene in window) if t]
            caption = " ".join(activities[:4]) if activities else " ".join(titles[:3])
            if caption:
                yield "adjacent", f"a{i:02d}w{size}", (first[0], last[1]), list(range(i, i + size)), caption
    caption = _sentence(str(content.get("description") or ""))
    if caption:
        yield "full", "full", None, list(range(len(scenes))), caption


def _draw_mix(pools: dict[str, list[Example]], total: int | None, seed: int, where: Path) -> list[Example]:
    """``total`` spans at ``FINEVIDEO_MIX`` (None: the most the pools give), drawn without replacement."""
    if total is None:
        total = min(math.floor(len(pools[kind]) / share) for kind, share in FINEVIDEO_MIX.items())
    *rounded, last = FINEVIDEO_MIX
    counts = {kind: round(total * FINEVIDEO_MIX[kind]) for kind in rounded}
    counts[last] = total - sum(counts.values())
    for kind, count in counts.items():
        if count > len(pools[kind]):
            raise AnnotationError(
                f"{where}: {total} spans at the 60/30/10 mix need {count} {kind} spans; "
                f"the videos give {len(pools[kind])}"
            )
    rng = random.Random(seed)
    drawn = [example for kind, count in counts.items() for example in rng.sample(pools[kind], count)]
    rng.shuffle(drawn)
    return drawn


def convert_finevideo(
    annotation: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    split: str | None = None,
    keep_missing: bool = False,
    frames: int | None = None,
    total: int | None = None,
    seed: int = 42,
) -> list[Example]:
    """FineVideo metadata -> caption examples of video spans, drawn in the official stage-1 mix.

    ``annotation`` is one video's FineVideo metadata JSON or a folder of them (searched recursively, in
    sorted order); the video is the file stem under ``videos_dir``. Files without scenes
    (``content_metadata.scenes``) are skipped with a warning. The spans of all videos are pooled by type:
    "scene", one scene with valid "HH:MM:SS.fff" timestamps, captioned by its first two activity
    descriptions (else its title, else its mood); "adjacent", 2 or 3 consecutive scenes from the first's
    start to the last's end, captioned by their first four activities (else three titles); "full", the
    whole video, captioned by ``content_metadata.description``. ``total`` spans (None: the most the pools
    allow) are drawn at ``FINEVIDEO_MIX`` as the official builder does: round(total * share) scenes and
    adjacent runs, the rest whole videos, sampled without replacement by ``random.Random(seed)``, then
    shuffled. Missing videos leave the pools first (unless ``keep_missing``), so the mix holds.

    Each example: id ``finevideo-<stem>-<s03 | a02w3 | full>``, the span as the video's start/end (none
    for the whole video), one caption whose category is the span type, asked with one of
    ``FINEVIDEO_PROMPTS`` picked by a hash of the id; meta: video_id, span_type, the scenes covered.
    """
    annotation, finder = Path(annotation), VideoFinder(videos_dir)
    files = sorted(annotation.rglob("*.json")) if annotation.is_dir() else [annotation]
    candidates: list[Example] = []
    unusable = 0
    for file in files:
        record = _load_json(file)
        content = record.get("content_metadata") if isinstance(record, dict) else None
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("scenes"), list)
            or not content["scenes"]
        ):
            unusable += 1
            continue
        for kind, key, bounds, scenes, caption in _finevideo_spans(content):
            example_id = f"finevideo-{file.stem}-{key}"
            prompts = FINEVIDEO_PROMPTS[kind]
            prompt = prompts[hashlib.sha256(example_id.encode()).digest()[0] % len(prompts)]
            meta = {"video_id": file.stem, "span_type": kind, "scenes": scenes}
            candidates.append(
                _example(
                    finder,
                    [file.stem],
                    meta,
                    *(bounds or (None, None)),
                    id=example_id,
                    source="finevideo",
                    frames=frames,
                    split=split,
                    duration=None if bounds is None else bounds[1] - bounds[0],
                    captions={kind: caption},
                    caption_prompts={kind: prompt},
                )
            )
    if unusable:
        warnings.warn(
            f"finevideo: {unusable} of {len(files)} metadata files have no scenes; skipped", stacklevel=2
        )
    candidates = _drop_missing(candidates, keep_missing, "finevideo", finder.videos_dir)
    pools: dict[str, list[Example]] = {kind: [] for kind in FINEVIDEO_MIX}
    for example in candidates:
        pools[example.meta["span_type"]].append(example)
    return _draw_mix(pools, total, seed, annotation)


CONVERTERS = {
    "activitynet": convert_activitynet,
    "finevideo": convert_finevideo,
    "nextqa": convert_nextqa,
    "vdc": convert_vdc,
}
