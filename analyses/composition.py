"""Do adapters made from separate segments of a video compose in rank space?

A video is split into ``n_chunks`` non-overlapping segments, each segment is internalized alone, and
the segment adapters are composed along the rank (``Adapter.compose``): plainly (the sum of their
weight changes, ``f2l_composed``) and scaled by ``1/n`` (their mean, ``f2l_composed_scaled``: every
segment adapter was trained to be the only one, so their plain sum grows with ``n``). Both are compared
with the adapter of the whole video (``f2l_whole``), the video in context (``direct``) and the question
alone (``no_video``), on questions whose answers need one segment or both.

**Which videos and questions.** The answers must be known exactly per segment, so the videos are built
from the world's ground truth: a *composite* is two held-out world clips shown one after the other, A
then B (B's timestamps continue where A's end). A and B are paired so that no colour or shape occurs in
both and they hold at most four objects together; every question below then has one right answer.

- ``needs = "one"``: the colour, shape and size of A's main object, and of B's ("what color is the
  square?"): the evidence lies in one clip's segments (the main object is on screen all clip, so any
  one of them shows it). A composed adapter must keep each segment's content despite the others.
- ``needs = "both"``: "which is there first, the <A main> or the <B main>?" (two options; the world's
  temporal-order template), "how many objects are there?" (A's plus B's), and the detailed caption,
  scored against A's caption followed by B's: the answer combines what the two clips show.

The world offers no questions of this kind inside one clip that the tiny base can answer (it has not
learned what only the sequence shows, see README), while it reads colours and shapes well; so the
composite tests composition where the base has something to compose.

**Segments.** Each segment has ``--frames`` frames (default 8, the length the hypernetwork was trained
on), so every segment adapter is made in distribution; the composite of ``n`` segments therefore has
``n x frames`` frames (A and B ``n/2`` segments each), and the whole-clip adapter and ``direct`` see all
of them. ``n_chunks`` must be even, so that no segment straddles the cut between A and B.

    python -m analyses.composition                      # 8 composites of test clips, 2 segments
    python -m analyses.composition --full               # 100 composites, 2, 4 and 8 segments
    torchrun --nproc-per-node 4 -m analyses.composition --full

Writes ``<out>/composition.nc`` and ``<out>/composition.md``; resumes where it stopped (a part file
per composite).

Dataset schema (``composition.nc``):

- dims ``example_id`` (``"<composite>/<item>"``, the composite ``"world-<A>+world-<B>"``), ``method``
  (direct, f2l_whole, f2l_composed, f2l_composed_scaled, no_video), ``n_chunks`` (segments composed),
  ``failure`` (composites whose computation raised).
- coords on ``example_id``: ``clip`` (the composite), ``needs`` ("one" | "both"), ``segment`` (where the
  evidence is: "first" (A), "second" (B) or "both"), ``benchmark`` (color, shape, size, order, count,
  detailed), ``kind`` ("qa" | "caption"); scalar ``metric`` ("token_f1").
- ``score(example_id, method, n_chunks)``: token-F1 in [0, 1] against the reference;
  ``prediction(example_id, method, n_chunks)``, ``reference(example_id)``, ``question(example_id)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time) and
  the study's config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import torch
import xarray as xr

from analyses.common import StudyConfig, study_main
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, generate
from f2l.data import CAPTION_PROMPTS, QAItem, qa_prompt
from f2l.eval.harness import answer_clip, score_predictions
from f2l.eval.stats import bootstrap_ci
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, markdown_table, provenance
from f2l.video import Frames
from f2l.world import SPLITS, ClipTruth, captions, render_clip, sample_truth
from f2l.world.language import NUMBER_WORDS

NAME = "composition"
FULL_CHUNKS = (2, 4, 8)
METHODS = ("direct", "f2l_whole", "f2l_composed", "f2l_composed_scaled", "no_video")
#: The harness's names for the methods this study names after what they compose.
RENAMED = {"f2l": "f2l_whole", "f2l_chunked": "f2l_composed"}
#: How far past a clip to look for a partner that shares no colour or shape with it.
PARTNER_SEARCH = 200


@dataclass
class CompositionConfig(StudyConfig):
    """Settings of the composition study (every field is a command-line flag). ``manifest`` is refused:
    the questions come from the world's ground truth of each segment."""

    clips: int = 8  # composites, each of two world clips
    frames: int = 8  # frames per segment
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    n_chunks: tuple[int, ...] = (2,)
    batch_size: int = 16

    @property
    def chunk_counts(self) -> tuple[int, ...]:
        counts = tuple(sorted(set(FULL_CHUNKS if self.full else self.n_chunks)))
        if any(n < 2 or n % 2 for n in counts):
            raise ValueError(f"n_chunks must be even and >= 2 (no segment may straddle A|B), got {counts}")
        return counts


@dataclass(frozen=True)
class Item:
    """One question about a composite: what it asks, its one right answer, and where the evidence is."""

    item_id: str
    needs: str  # "one" | "both"
    segment: str  # "first" | "second" | "both"
    benchmark: str
    kind: str  # "qa" | "caption"
    prompt: str
    reference: str


truth_of = cache(sample_truth)


def compatible(a: ClipTruth, b: ClipTruth) -> bool:
    """Whether A and B can share a composite: no colour or shape in both (so "the square" names one
    object), and at most four objects together (the world's counting vocabulary)."""
    colors_a, colors_b = {o.color for o in a.objects}, {o.color for o in b.objects}
    shapes_a, shapes_b = {o.shape for o in a.objects}, {o.shape for o in b.objects}
    fits = len(a.objects) + len(b.objects) < len(NUMBER_WORDS)
    return fits and not (colors_a & colors_b) and not (shapes_a & shapes_b)


def composite_pairs(split: str, n: int) -> list[tuple[int, int]]:
    """``n`` disjoint (A, B) seed pairs of ``split``: each unused seed in order, with the first later
    unused seed it is ``compatible`` with. Deterministic."""
    seeds, used, pairs = SPLITS[split], set(), []
    for i, a in enumerate(seeds):
        if len(pairs) == n:
            break
        if a in used:
            continue
        for b in seeds[i + 1 : i + 1 + PARTNER_SEARCH]:
            if b not in used and compatible(truth_of(a), truth_of(b)):
                pairs.append((a, b))
                used.update((a, b))
                break
    if len(pairs) < n:
        raise ValueError(f"split {split!r} yields only {len(pairs)} composites, not {n}")
    return pairs


def composite_id(a: int, b: int) -> str:
    return f"world-{a}+world-{b}"


def parse_composite_id(unit: str) -> tuple[int, int]:
    a, b = unit.split("+")
    return int(a.removeprefix("world-")), int(b.removeprefix("world-"))


def composite_items(a: int, b: int) -> list[Item]:
    """The questions about composite A|B (see the module docstring)."""
    ta, tb = truth_of(a), truth_of(b)
    items = []
    for side, segment, truth in (("a", "first", ta), ("b", "second", tb)):
        main = truth.main
        for benchmark, question, answer in (
            ("color", f"what color is the {main.shape}?", main.color),
            ("shape", f"what shape is the {main.color} object?", main.shape),
            ("size", f"what size is the {main.name}?", main.size),
        ):
            items.append(Item(f"{side}-{benchmark}", "one", segment, benchmark, "qa", question, answer))
    first, second = f"the {ta.main.name}", f"the {tb.main.name}"
    options = (first, second) if np.random.default_rng([a, b]).random() < 0.5 else (second, first)
    order = QAItem("order", f"which is there first, {options[0]} or {options[1]}?", first, choices=options)
    detailed = f"{captions(ta)['detailed']} {captions(tb)['detailed']}"
    count = NUMBER_WORDS[len(ta.objects) + len(tb.objects)]
    return [
        *items,
        Item("order", "both", "both", "order", "qa", qa_prompt(order), first),
        Item("count", "both", "both", "count", "qa", "how many objects are there?", count),
        Item("detailed", "both", "both", "detailed", "caption", CAPTION_PROMPTS["detailed"], detailed),
    ]


def composite_frames(a: int, b: int, num_frames: int, size: int) -> Frames:
    """A's ``num_frames / 2`` frames, then B's with timestamps shifted past A's end."""
    clip_a = render_clip(a, num_frames=num_frames // 2, size=size)
    clip_b = render_clip(b, num_frames=num_frames // 2, size=size)
    return Frames(
        pixels=np.concatenate([clip_a.frames.pixels, clip_b.frames.pixels]),
        timestamps=np.concatenate(
            [clip_a.frames.timestamps, clip_b.frames.timestamps + clip_a.truth.duration]
        ),
        source=f"world:{a}+world:{b}",
    )


def composite_dataset(pipeline, unit: str, cfg: CompositionConfig) -> xr.Dataset:
    """Every method's token-F1 on the composite's questions at each segment count."""
    a, b = parse_composite_id(unit)
    items = composite_items(a, b)
    questions = [it.prompt for it in items]
    size = pipeline.base.model.config.vision_config.image_size
    opts = {"max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size}
    counts = cfg.chunk_counts
    texts = np.empty((len(items), len(METHODS), len(counts)), dtype=object)
    for c, n in enumerate(counts):
        video = composite_frames(a, b, cfg.frames * n, size)
        methods = ("direct", "f2l", "f2l_chunked") + (("no_video",) if c == 0 else ())
        answers = answer_clip(pipeline, video, questions, methods, chunk_frames=cfg.frames, **opts)
        # the plain composition is the f2l_chunked adapter (cached by the pipeline); the mean is 1/n of it
        composed = pipeline.internalize(video, chunk_frames=cfg.frames)
        answers["f2l_composed_scaled"] = generate(
            pipeline.base, questions, adapter=composed.scaled(1.0 / n), **opts
        )
        for method, preds in answers.items():
            texts[:, METHODS.index(RENAMED.get(method, method)), c] = [p.text for p in preds]
    no_video = METHODS.index("no_video")
    texts[:, no_video, 1:] = texts[:, no_video, :1]  # the question alone does not depend on the segments
    refs = [it.reference for it in items]
    score = np.full(texts.shape, np.nan)
    for m in range(len(METHODS)):
        for c in range(len(counts)):
            score[:, m, c] = score_predictions(list(texts[:, m, c]), refs, ["token_f1"])["token_f1"]
    ds = xr.Dataset(
        {
            "score": (("example_id", "method", "n_chunks"), score),
            "prediction": (("example_id", "method", "n_chunks"), texts),
            "reference": ("example_id", np.array(refs, dtype=object)),
            "question": ("example_id", np.array(questions, dtype=object)),
        },
        coords={
            "example_id": [f"{unit}/{it.item_id}" for it in items],
            "method": list(METHODS),
            "n_chunks": list(counts),
            "clip": ("example_id", [unit] * len(items)),
            "needs": ("example_id", [it.needs for it in items]),
            "segment": ("example_id", [it.segment for it in items]),
            "benchmark": ("example_id", [it.benchmark for it in items]),
            "kind": ("example_id", [it.kind for it in items]),
            "metric": "token_f1",
        },
    )
    ds["score"].attrs.update(
        units="token-F1 (0 to 1)", description="score of the answer against the reference"
    )
    ds["prediction"].attrs["description"] = "the method's greedy answer"
    ds["reference"].attrs["description"] = "the one right answer (detailed: A's caption, then B's)"
    ds["question"].attrs["description"] = "the prompt as asked"
    ds["n_chunks"].attrs["description"] = "segments of --frames frames each, composed (A and B n/2 each)"
    ds["needs"].attrs["description"] = "whether the answer needs one source clip's segments or both"
    ds["segment"].attrs["description"] = "where the evidence lies: first (A), second (B) or both"
    return ds


def _clip_means(da: xr.DataArray) -> np.ndarray:
    """Per-composite means: a composite's questions share its adapters, so composites are the unit."""
    return da.groupby("clip").mean("example_id").values


def _mean_se(values: np.ndarray) -> str:
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {se:.3f}"


def summary(ds: xr.Dataset) -> str:
    """Markdown: mean token-F1 per method and question kind at each segment count, then the composed
    adapters' paired differences from the whole-clip adapter and from direct."""
    failures = ds.sizes.get("failure", 0)
    lines = ["# Composition of segment adapters (token-F1)\n"]
    if "score" not in ds:
        return "\n".join([*lines, f"No composite finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    lines.append(
        f"{n_clips} composites (two world clips each), {ds.sizes['example_id']} questions, {failures} failed. "
        "Means ± standard error across composites; differences are paired per composite with a 95% "
        "bootstrap interval.\n"
    )
    needs = [n for n in ("one", "both") if n in set(ds["needs"].values)]
    for n in ds["n_chunks"].values:
        at = ds["score"].sel(n_chunks=n)
        lines.append(f"## {int(n)} segments of {ds.attrs.get('segment_frames', '?')} frames\n")
        rows = []
        for method in ds["method"].values:
            row = {"method": str(method)}
            for need in needs:
                part = at.sel({"method": method}).where(ds["needs"] == need, drop=True)
                row[f"needs {need}"] = _mean_se(_clip_means(part))
            rows.append(row)
        lines.append(markdown_table(rows))
        rows = []
        for method in ("f2l_composed", "f2l_composed_scaled"):
            for reference in ("f2l_whole", "direct"):
                row = {"difference": f"{method} - {reference}"}
                for need in needs:
                    mask = ds["needs"] == need
                    diffs = _clip_means(at.sel({"method": method}).where(mask, drop=True)) - _clip_means(
                        at.sel({"method": reference}).where(mask, drop=True)
                    )
                    low, high = bootstrap_ci(diffs, 0.95) if len(diffs) > 1 else (np.nan, np.nan)
                    row[f"needs {need}"] = f"{diffs.mean():+.3f} [{low:+.3f}, {high:+.3f}]"
                rows.append(row)
        lines.append(markdown_table(rows))
    return "\n".join(lines)


def run(cfg: CompositionConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/composition.nc``)."""
    if cfg.manifest:
        raise ValueError(
            "the composition study builds its questions from the world's ground truth; "
            "a manifest carries no per-segment truth"
        )
    torch.manual_seed(cfg.seed)
    counts = cfg.chunk_counts
    f2l = Frames2LoRA.from_pretrained(cfg.hypernet, device=cfg.device)
    units = [composite_id(a, b) for a, b in composite_pairs(cfg.split, cfg.num_clips)]
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "fresh")}
    config["n_chunks"] = list(counts)
    attrs = provenance(f2l, seed=cfg.seed, metric="token_f1", segment_frames=cfg.frames)
    study = Study(cfg.out, NAME, config=config, attrs=attrs, fresh=cfg.fresh)
    study.run(units, lambda unit: composite_dataset(f2l, unit, cfg), desc=NAME)
    return study.finish(units, summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("composition", CompositionConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
