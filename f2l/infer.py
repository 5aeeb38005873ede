"""Batch inference over a manifest: every prompt answered from its video's adapter alone, one JSON row each.

    python -m f2l.infer --hypernet DIR --manifest M.jsonl --out P.jsonl [--direct] [--timed]

Resumable (rows keyed by example, kind and prompt; a file of other settings is refused without
``--fresh``), failures are rows, prompts are batched by video; the row layout and each rule are in
docs/usage.md, "Batch inference".
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from f2l.adapter import Adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, Answer, generate
from f2l.cli import UsageError, entry_point, positive_int
from f2l.config import parse_config as _parse_config
from f2l.config import setting
from f2l.data import Example, Prompt, clip_prompts, iter_prompts, read_manifest
from f2l.io import atomic_write_text
from f2l.pipeline import Frames2LoRA, resolve_hypernet
from f2l.video import Frames, VideoDecodeError

PROG = "python -m f2l.infer"
#: The fields infer adds to a manifest row; a manifest row holding one of them is refused.
ROW_FIELDS = (
    "key",
    "prompt_kind",
    "prompt_id",
    "prompt_label",
    "prompt_text",
    "reference",
    "prediction",
    "direct_prediction",
    "input_tokens",
    "ttft_s",
    "total_s",
    "adapter",
    "run",
    "error",
)


@dataclass(frozen=True)
class InferConfig:
    """The program's settings, one per flag (see ``--help``)."""

    manifest: str = setting(required=True)  # JSONL manifest to answer: f2l's records or official rows
    out: str = setting(required=True)  # JSONL file of answers, one row per prompt; resumed if present
    data_root: str | None = setting(  # official manifests: the folder relative video paths start from
        None  # (default: $FRAMES2LORA_DATA_ROOT, then $VIDEO2LORA_DATA_ROOT)
    )
    hypernet: str = "tiny"  # a packaged hypernetwork directory, or 'tiny' (shipped)
    base: str | None = None  # override the hypernetwork's base: a shipped base name, a Hub id or a dir
    device: str | None = None  # torch device (default: cuda when available)
    frames: int | None = setting(  # frames sampled per video (default: the hypernetwork's training
        type=positive_int  # count, else its format's most)
    )
    direct: bool = False  # also answer with the video in context (the baseline)
    timed: bool = False  # answer one prompt per call and record TTFT and total time
    qa_per_type: int | None = setting(  # per video, every caption and the first N questions of each
        type=positive_int  # QA type (default: every prompt)
    )
    clips: int = setting(8, type=positive_int)  # videos internalized per batch
    batch_size: int = setting(16, type=positive_int)  # prompts per generate call
    max_new_tokens: int = setting(DEFAULT_MAX_NEW_TOKENS, type=positive_int)  # answer length cap in tokens
    limit: int | None = setting(type=positive_int)  # answer at most this many of the prompts still to do
    fresh: bool = False  # discard an existing --out instead of resuming it


class Item(NamedTuple):
    """One prompt to answer: its manifest row as read, the parsed prompt, and its key in the output."""

    row: dict[str, Any]
    prompt: Prompt
    key: str


class Reply(NamedTuple):
    """One method's answer to one prompt; the times are None when it was not timed."""

    text: str
    input_tokens: dict[str, int]
    ttft_s: float | None = None
    total_s: float | None = None

    @classmethod
    def of(cls, a: Answer, timed: bool) -> Reply:
        return cls(a.text, a.input_tokens, *((a.ttft_s, a.total_s) if timed else ()))


# --------------------------------------------------------------------------- command line


def parse_config(argv: Sequence[str] | None = None) -> InferConfig:
    """The settings from the flags (or ``--config x.yaml``); a mistake is one line (``UsageError``)."""
    return _parse_config(
        InferConfig,
        argv,
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog="Rerun the same command to resume: answered prompts are skipped, error rows retried. The "
        "row fields are listed by `pydoc f2l.infer`. Exit status: 0 when every prompt has a prediction, "
        "1 when some rows carry an error, 2 on a usage mistake.",
        one_line_errors=True,
    )


# --------------------------------------------------------------------------- inputs


def read_items(cfg: InferConfig) -> list[Item]:
    """Every prompt of the manifest with its input row, grouped by video (in order of first appearance)."""
    path = Path(cfg.manifest)
    if not path.is_file():
        raise UsageError(f"no manifest at {path}")
    examples = read_manifest(path, data_root=cfg.data_root)
    prompts = [
        p
        for e in examples
        for p in (iter_prompts([e]) if cfg.qa_per_type is None else clip_prompts(e, cfg.qa_per_type))
    ]
    groups: dict[tuple, list[Item]] = {}
    for row, p in zip(input_rows(path, examples, prompts), prompts, strict=True):
        taken = sorted(set(row) & set(ROW_FIELDS))
        if taken:
            raise UsageError(f"{path}: the row of {p.example.id} has field(s) {taken}, which infer writes")
        key = f"{p.example.id}/{p.kind}/{p.item_id}"
        groups.setdefault(_video_key(p.example), []).append(Item(row, p, key))
    return [item for group in groups.values() for item in group]


def input_rows(path: Path, examples: list[Example], prompts: list[Prompt]) -> list[dict[str, Any]]:
    """The manifest row each prompt was read from, as written. A reader that yields one example per line
    (f2l's own records) pairs them in order; one that groups one-prompt rows by video (official rows) is
    undone by content: a prompt's row is an unused one holding its video path, prompt and reference (when
    it has one)."""
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]  # the lines the reader parses
    if len(rows) == len(examples):
        by_example = {e.id: row for e, row in zip(examples, rows, strict=True)}
        return [by_example[p.example.id] for p in prompts]
    holding: dict[str, set[int]] = {}
    for i, row in enumerate(rows):
        for value in row.values():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                holding.setdefault(str(value), set()).add(i)
    found, used = [], set()
    for p in prompts:
        texts = (p.example.video.path, p.prompt, *([p.reference] if p.reference else []))
        fits = [holding.get(text, set()) for text in texts]
        candidates = set.intersection(*fits) - used
        if not candidates:
            raise RuntimeError(f"{path}: no row holds the video, prompt and reference of {p.example.id}")
        used.add(min(candidates))
        found.append(rows[min(candidates)])
    return found


def _video_key(example: Example) -> tuple:
    """Examples with equal keys have the same frames (relative paths resolve against ``root``)."""
    return (example.root, example.video)


def trained_frames(hypernet: str) -> int:
    """The frame count the hypernetwork was trained with, else its context format's most frames (a
    converted checkpoint records no training run: the authors' format reads at most 12)."""
    meta = json.loads((resolve_hypernet(hypernet) / "hypernet_config.json").read_text())
    frames = meta.get("train_config", {}).get("frames") or meta["config"].get("context", {}).get("max_frames")
    if frames is None:
        raise UsageError(f"hypernetwork {hypernet} records no frame count: give --frames")
    return int(frames)


def run_settings(cfg: InferConfig, pipeline: Frames2LoRA, frames: int) -> dict[str, Any]:
    """What changes a row's answers or times: rows of one file must agree on all of it."""
    return {
        "hypernet": pipeline.hypernet_id,
        "base": f"{pipeline.base.name}@{pipeline.base.digest}",
        "device": pipeline.base.device.type,
        "frames": frames,
        "max_new_tokens": cfg.max_new_tokens,
        "direct": cfg.direct,
        "timed": cfg.timed,
    }


# --------------------------------------------------------------------------- the output file


def read_output(path: Path) -> tuple[list[tuple[str, dict]], bool]:
    """The rows of an existing output, each with its line, and whether its last line is torn (no newline:
    a write cut short). A bad line anywhere else means the file is not one infer wrote."""
    if not path.exists():
        return [], False
    lines = path.read_text(encoding="utf-8").split("\n")
    torn = lines.pop() != ""  # the text after the last newline
    rows = []
    for lineno, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not {"key", "run", "error"} <= row.keys():
            raise UsageError(f"{path}:{lineno} is not a row infer wrote; use --fresh or another --out")
        rows.append((line, row))
    return rows, torn


def answered_keys(path: Path, rows: list[tuple[str, dict]], torn: bool, run: dict[str, Any]) -> set[str]:
    """Check that the existing rows were made under ``run``, then keep only the answered ones (dropping a
    torn last line and error rows, which will be redone) and return their keys."""
    for _, row in rows:
        if row["run"] != run:
            changed = sorted(k for k in set(row["run"]) | set(run) if row["run"].get(k) != run.get(k))
            raise UsageError(
                f"{path} holds rows made with another config (differs in {changed}); "
                "rerun with --fresh to discard them, or choose another --out"
            )
    kept = [(line, row) for line, row in rows if row["error"] is None]
    if torn or len(kept) < len(rows):
        atomic_write_text(path, "".join(line + "\n" for line, _ in kept))
    return {row["key"] for _, row in kept}


def write_rows(f, rows: list[dict]) -> None:
    """Append whole lines and push them to disk: a kill leaves at most a torn last line."""
    f.write("".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows))
    f.flush()
    os.fsync(f.fileno())


# --------------------------------------------------------------------------- answering


def video_batches(items: list[Item], clips: int) -> Iterator[list[Item]]:
    """Consecutive items covering at most ``clips`` videos each."""
    batch: list[Item] = []
    videos: set[tuple] = set()
    for item in items:
        key = _video_key(item.prompt.example)
        if key not in videos and len(videos) == clips:
            yield batch
            batch, videos = [], set()
        batch.append(item)
        videos.add(key)
    if batch:
        yield batch


def load_clips(
    pipeline: Frames2LoRA, items: list[Item], frames: int
) -> tuple[dict[tuple, Frames], dict[tuple, str]]:
    """Each video's frames, or why it could not be read."""
    clips, errors = {}, {}
    for item in items:
        example = item.prompt.example
        key = _video_key(example)
        if key in clips or key in errors:
            continue
        try:
            clips[key] = pipeline.example_frames(example, frames=frames)
        except (VideoDecodeError, OSError) as e:
            errors[key] = f"{type(e).__name__}: {e}"
    return clips, errors


def replies(
    pipeline: Frames2LoRA,
    cfg: InferConfig,
    questions: list[str],
    adapters: list[Adapter],
    videos: list[Frames],
) -> dict[str, list[Reply]]:
    """Each method's replies to ``questions``: question i under ``adapters[i]`` (f2l) or with ``videos[i]``
    in context (direct). Batched and untimed (``--batch-size`` rows per generate, each under its own
    adapter), or one timed call each, after an untimed warm-up call per method."""
    n, size = cfg.max_new_tokens, 1 if cfg.timed else cfg.batch_size

    def f2l_batch(i: int) -> list[Answer]:  # stacked a batch at a time: one adapter copy per row
        adapter = adapters[i] if cfg.timed else Adapter.stack(adapters[i : i + size])
        return generate(
            pipeline.base, questions[i : i + size], adapter=adapter, max_new_tokens=n, batch_size=size
        )

    def direct_batch(i: int) -> list[Answer]:
        qs, vs = questions[i : i + size], videos[i : i + size]
        return generate(pipeline.base, qs, videos=vs, max_new_tokens=n, batch_size=size)

    calls = {"f2l": f2l_batch, **({"direct": direct_batch} if cfg.direct else {})}
    if cfg.timed:
        for call in calls.values():
            call(0)  # first calls pay one-off costs (allocations, kernel selection) that are no prompt's
    return {
        m: [Reply.of(a, cfg.timed) for i in range(0, len(questions), size) for a in call(i)]
        for m, call in calls.items()
    }


def prompt_fields(item: Item, run: dict[str, Any]) -> dict[str, Any]:
    p = item.prompt
    return {
        **item.row,
        "key": item.key,
        "prompt_kind": p.kind,
        "prompt_id": p.item_id,
        "prompt_label": p.label,
        "prompt_text": p.prompt,
        "reference": p.reference,
        "run": run,
    }


def answer_batch(
    pipeline: Frames2LoRA, cfg: InferConfig, items: list[Item], run: dict[str, Any]
) -> list[dict]:
    """The output rows of ``items`` (in their order): one internalization pass over their readable videos,
    then every prompt of those answered in one go; prompts of unreadable videos get error rows."""
    clips, errors = load_clips(pipeline, items, run["frames"])
    rows: dict[str, dict] = {}
    for item in items:
        error = errors.get(_video_key(item.prompt.example))
        if error is not None:
            rows[item.key] = {**prompt_fields(item, run), "prediction": None, "error": error}
    ok = [item for item in items if item.key not in rows]
    if ok:
        keys = list(clips)
        made = dict(zip(keys, pipeline.internalize_batch([clips[k] for k in keys]).unbind(), strict=True))
        owners = [_video_key(item.prompt.example) for item in ok]
        adapters = [made[k] for k in owners]
        questions = [item.prompt.prompt for item in ok]
        by_method = replies(pipeline, cfg, questions, adapters, [clips[k] for k in owners])
        for j, item in enumerate(ok):
            got = {m: r[j] for m, r in by_method.items()}
            rows[item.key] = {
                **prompt_fields(item, run),
                "prediction": got["f2l"].text,
                **({"direct_prediction": got["direct"].text} if cfg.direct else {}),
                "input_tokens": {m: r.input_tokens for m, r in got.items()},
                "ttft_s": {m: r.ttft_s for m, r in got.items()} if cfg.timed else None,
                "total_s": {m: r.total_s for m, r in got.items()} if cfg.timed else None,
                "adapter": adapters[j].provenance,
                "error": None,
            }
    return [rows[item.key] for item in items]


# --------------------------------------------------------------------------- the program


def run(cfg: InferConfig) -> int:
    """Answer every prompt of the manifest not yet answered in ``cfg.out``; 1 if some rows hold errors."""
    items = read_items(cfg)
    out = Path(cfg.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory")
    existing, torn = ([], False) if cfg.fresh else read_output(out)
    frames = cfg.frames or trained_frames(cfg.hypernet)
    pipeline = Frames2LoRA.from_pretrained(cfg.hypernet, base=cfg.base, device=cfg.device)
    settings = run_settings(cfg, pipeline, frames)
    done = answered_keys(out, existing, torn, settings)
    todo = [item for item in items if item.key not in done][: cfg.limit]
    if done:
        tqdm.write(f"{PROG}: resuming, {len(done)} prompt(s) already answered in {out}", file=sys.stderr)
    failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(out, "w" if cfg.fresh else "a", encoding="utf-8") as f,
        tqdm(total=len(todo), desc="infer", unit="prompt", disable=not todo) as bar,
    ):
        for batch in video_batches(todo, cfg.clips):
            rows = answer_batch(pipeline, cfg, batch, settings)
            write_rows(f, rows)
            failed += sum(r["error"] is not None for r in rows)
            bar.update(len(batch))
    print(f"{PROG}: wrote {len(todo)} row(s) to {out} ({failed} with an error)")
    if failed:
        print(
            f"{PROG}: {failed} prompt(s) have no prediction (see their 'error'); rerun to retry",
            file=sys.stderr,
        )
    return 1 if failed else 0


@entry_point(interrupted="interrupted; rerun the same command to resume")
def main(argv: list[str]) -> int:
    return run(parse_config(argv))


if __name__ == "__main__":
    sys.exit(main())
