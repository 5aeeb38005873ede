"""Do adapters made from separate segments of one long video compose in rank space?

Each long world clip (``f2l.world.sample_long_truth``) is internalized segment by segment and the segment
adapters are composed along the rank, plainly (``f2l_composed``) and scaled by ``1/n``
(``f2l_composed_scaled``), against the whole clip's adapter (``f2l_whole``), the whole clip in context
(``direct``) and the question alone (``no_video``), on the questions of ``f2l.world.long_clip_items``.
Writes ``<out>/composition.nc`` and ``<out>/composition.md``, resuming per long clip. The method, the
segment clocks and the dataset schema: docs/studies.md#composition.

    python -m analyses.composition                      # 8 long clips at 2 and 4 segments
    python -m analyses.composition --full               # 100 long clips at 2, 4 and 8 segments
    python -m analyses.composition --hypernet paper-tiny --n-chunks 2 4 8
    torchrun --nproc-per-node 4 -m analyses.composition --full
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr

from analyses.common import AnswersConfig, BatchConfig, FramesConfig, study_main
from f2l.answer import generate
from f2l.data import LongClip, long_clip_prompt
from f2l.eval.harness import answer_clip, score_predictions
from f2l.eval.stats import bootstrap_ci
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, markdown_table, provenance
from f2l.world import split_seeds
from probes.prompts import clip_means

NAME = "composition"
FULL_CHUNKS = (2, 4, 8)
METHODS = ("direct", "f2l_whole", "f2l_composed", "f2l_composed_scaled", "no_video")
NEEDS = ("one", "several")
#: The harness's names for the methods this study names after what they compose.
RENAMED = {"f2l": "f2l_whole", "f2l_chunked": "f2l_composed"}


@dataclass
class CompositionConfig(BatchConfig, AnswersConfig, FramesConfig):
    """Settings of the composition study (every field is a command-line flag). ``manifest`` is refused:
    the questions come from the ground truth of long world clips; ``frames`` is per segment."""

    clips: int = 8  # long clips at each segment count
    n_chunks: tuple[int, ...] = (2, 4)  # segment counts (--full: 2, 4 and 8)

    @property
    def chunk_counts(self) -> tuple[int, ...]:
        counts = tuple(sorted(set(FULL_CHUNKS if self.full else self.n_chunks)))
        if not counts or counts[0] < 1:
            raise ValueError(f"n_chunks must be >= 1, got {counts}")
        return counts


def clip_dataset(pipeline, clip: str, cfg: CompositionConfig) -> xr.Dataset:
    """Every method's token-F1 on the long clip's questions, at the clip's segment count."""
    long_clip = LongClip.from_id(clip)
    n, items = long_clip.segments, long_clip.items
    questions = [long_clip_prompt(it) for it in items]
    video = long_clip.frames(cfg.frames, pipeline.base.model.config.vision_config.image_size)
    opts = {"max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size}
    methods = ("direct", "f2l", "f2l_chunked", "no_video")
    answers = answer_clip(pipeline, video, questions, methods, chunk_frames=cfg.frames, **opts)
    composed = pipeline.internalize(video, chunk_frames=cfg.frames)  # f2l_chunked's adapter, cached
    answers["f2l_composed_scaled"] = generate(
        pipeline.base, questions, adapter=composed.scaled(1 / n), **opts
    )

    counts = cfg.chunk_counts
    shape = (len(items), len(METHODS), len(counts))
    texts, score = np.full(shape, "", dtype=object), np.full(shape, np.nan)
    refs = [it.answer for it in items]
    c = counts.index(n)
    for method, preds in answers.items():
        m = METHODS.index(RENAMED.get(method, method))
        texts[:, m, c] = [p.text for p in preds]
        score[:, m, c] = score_predictions(list(texts[:, m, c]), refs, ["token_f1"])["token_f1"]
    dims = ("example_id", "method", "n_chunks")
    ds = xr.Dataset(
        {
            "score": (dims, score),
            "prediction": (dims, texts.astype(str)),
            "reference": ("example_id", np.array(refs, dtype=str)),
            "question": ("example_id", np.array(questions, dtype=str)),
        },
        coords={
            "example_id": [f"{clip}/{it.id}" for it in items],
            "method": list(METHODS),
            "n_chunks": list(counts),
            "clip": ("example_id", [clip] * len(items)),
            "needs": ("example_id", [it.needs for it in items]),
            "first_segment": ("example_id", [min(it.segments) for it in items]),
            "last_segment": ("example_id", [max(it.segments) for it in items]),
            "benchmark": ("example_id", [it.benchmark for it in items]),
            "kind": ("example_id", [it.kind for it in items]),
            "metric": "token_f1",
        },
    )
    ds["score"].attrs.update(
        units="token-F1 (0 to 1)",
        description="score of the answer against the reference (NaN at another clip's segment count)",
    )
    ds["prediction"].attrs["description"] = 'the method\'s greedy answer ("" at another segment count)'
    ds["reference"].attrs["description"] = "the one right answer, from the clip's ground truth"
    ds["question"].attrs["description"] = "the prompt as asked"
    ds["n_chunks"].attrs["description"] = "segments of --frames frames each, internalized alone and composed"
    ds["needs"].attrs["description"] = "one object's run of segments holds the evidence, or several runs do"
    ds["first_segment"].attrs["description"] = "first segment showing what the answer is about"
    ds["last_segment"].attrs["description"] = "last segment showing what the answer is about (inclusive)"
    return ds


def needs_clip_means(ds: xr.Dataset, method: str, n: int, needs: str) -> np.ndarray:
    """Per-clip mean scores of ``method`` at ``n`` segments on questions that need ``needs``: a clip's
    questions share its adapters, so clips are the unit."""
    da = ds["score"].sel({"method": method, "n_chunks": n})
    da = da.where((ds["needs"] == needs) & da.notnull(), drop=True)
    if da.sizes["example_id"] == 0:
        return np.array([])
    return clip_means(da).values


def _interval(values: np.ndarray, signed: bool = False) -> str:
    if len(values) == 0:
        return "-"
    sign = "+" if signed else ""
    if len(values) < 2:
        return f"{values.mean():{sign}.3f}"
    low, high = bootstrap_ci(values, 0.95)
    return f"{values.mean():{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def summary(ds: xr.Dataset) -> str:
    """Markdown: per segment count, the mean token-F1 per method and kind of question, then the composed
    adapters' paired differences from the whole-clip adapter and from direct (95% bootstrap intervals
    across clips)."""
    failures = ds.sizes.get("failure", 0)
    lines = ["# Composition of segment adapters on long clips (token-F1)\n"]
    if "score" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    lines.append(
        f"{len(np.unique(ds['clip'].values))} long clips, {ds.sizes['example_id']} questions, {failures} "
        f"failed; {ds.attrs.get('segment_frames', '?')} frames a segment. Means over clips (a clip's mean "
        "over its questions) with 95% bootstrap intervals; differences paired per clip.\n"
    )
    needs = [n for n in NEEDS if n in set(ds["needs"].values)]
    for n in (int(v) for v in ds["n_chunks"].values):
        clips = {str(c) for c in ds["clip"].values if LongClip.from_id(str(c)).segments == n}
        if not clips:
            continue
        lines.append(f"## {n} segment{'s' * (n > 1)} ({len(clips)} clips)\n")
        rows = []
        for method in ds["method"].values:
            row = {"method": str(method)}
            row.update({f"needs {need}": _interval(needs_clip_means(ds, method, n, need)) for need in needs})
            rows.append(row)
        lines.append(markdown_table(rows))
        rows = []
        for method in ("f2l_composed", "f2l_composed_scaled"):
            for reference in ("f2l_whole", "direct"):
                row = {"difference": f"{method} - {reference}"}
                for need in needs:
                    diffs = needs_clip_means(ds, method, n, need) - needs_clip_means(ds, reference, n, need)
                    row[f"needs {need}"] = _interval(diffs, signed=True)
                rows.append(row)
        lines.append(markdown_table(rows))
    return "\n".join(lines)


def run(cfg: CompositionConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/composition.nc``)."""
    if cfg.manifest:
        raise ValueError(
            "the composition study builds its questions from the ground truth of long world clips; "
            "a manifest carries no per-segment truth"
        )
    torch.manual_seed(cfg.seed)
    counts = cfg.chunk_counts
    f2l = Frames2LoRA.from_pretrained(cfg.hypernet, device=cfg.device)
    clips = [LongClip(seed, n).id for seed in split_seeds(cfg.split, cfg.num_clips) for n in counts]
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "fresh", "clips", "full")}
    config["n_chunks"] = list(counts)
    attrs = provenance(f2l, seed=cfg.seed, metric="token_f1", segment_frames=cfg.frames)
    study = Study(cfg.out, NAME, config=config, attrs=attrs, fresh=cfg.fresh)
    study.run(clips, lambda clip: clip_dataset(f2l, clip, cfg), desc=NAME)
    return study.finish(clips, summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main(NAME, CompositionConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
