"""Is adapter-only answering as good as video-in-context answering? Every method on the same prompts,
scored, then paired equivalence statistics per benchmark.

Each clip is asked its prompts (``PromptSet(--qa-per-type)``: by default one question of each QA type of a
world clip, every item of a manifest record) under each method of ``f2l.eval.harness``; every answer is
scored, and per contrast ``<method> - direct``, benchmark and metric ``f2l.eval.stats.compare_family``
gives a verdict, clips being the unit of replication. Writes ``<out>/benchmark.nc`` and
``<out>/benchmark.md``, resuming per clip. The method and the dataset schema:
docs/studies.md#how-the-benchmark-runs-and-its-dataset.

    python -m analyses.benchmark                                   # 12 test clips, direct f2l no_video kv_cache
    python -m analyses.benchmark --full                            # every method, 100 clips
    python -m analyses.benchmark --manifest nextqa.jsonl --clips 500 --methods direct f2l no_video
    python -m analyses.benchmark --base smol --methods direct no_video --clips 100   # a base alone
    torchrun --nproc-per-node 4 -m analyses.benchmark --full       # clips sharded across ranks
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from analyses.common import AnswerStudyConfig, study_examples, study_main
from f2l.data import Example, Prompt
from f2l.eval.harness import METHODS, METRIC_NAMES, answer_clip, is_closed, score_predictions
from f2l.eval.stats import DEFAULT_ALPHA, DEFAULT_MARGIN, compare_family
from f2l.eval.token_merge import DEFAULT_FACTOR
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, markdown_table, provenance
from probes.prompts import PromptSet, prompt_coords

NAME = "benchmark"
ADAPTER_METHODS = {"f2l", "f2l_chunked", "f2l_token_merge"}  # the methods that internalize
REFERENCE = "direct"
NOT_TESTED = "not tested"


@dataclass
class BenchmarkConfig(AnswerStudyConfig):
    """Settings of the benchmark study (every field is a command-line flag). ``qa_per_type`` defaults to
    None: one question of each QA type on world clips (each has ~20 near-duplicates), as elsewhere, but
    every item of a manifest record, since a real benchmark's items are all its questions."""

    clips: int = 12
    # a base alone instead of --hypernet's pipeline: the methods that need no adapter (direct, no_video,
    # kv_cache, token_merge), to judge whether a base sees before it has a hypernetwork
    base: str | None = None
    methods: tuple[str, ...] = ("direct", "f2l", "no_video", "kv_cache")
    metrics: tuple[str, ...] = METRIC_NAMES
    qa_per_type: int | None = None
    benchmarks: tuple[str, ...] | None = None  # only these caption categories / QA types / labels; None: all
    chunk_frames: int | None = None  # f2l_chunked segment length; None: half the frames (two segments)
    merge_factor: int = DEFAULT_FACTOR
    timed: bool = False
    margin: float = DEFAULT_MARGIN
    alpha: float = DEFAULT_ALPHA

    @property
    def run_methods(self) -> tuple[str, ...]:
        """The methods to run, in ``METHODS`` order (``--full``: all of them). Without direct a run has no
        contrasts, only its means: scores to set beside another run's direct of the same clips, as
        ``analyses.ablations`` does (direct never sees the hypernetwork)."""
        chosen = set(METHODS if self.full else self.methods)
        unknown = sorted(chosen - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
        return tuple(m for m in METHODS if m in chosen)


def benchmark_prompts(
    example: Example, qa_per_type: int | None = None, benchmarks: tuple[str, ...] | None = None
) -> list[Prompt]:
    """A clip's prompts, ``PromptSet(qa_per_type)``'s (with None: one question per QA type of a world clip,
    every item of a manifest record); only the prompts labelled one of ``benchmarks`` when given."""
    prompts = PromptSet(qa_per_type).of(example)
    return prompts if benchmarks is None else [p for p in prompts if p.label in benchmarks]


def clip_dataset(pipeline, example: Example, cfg: BenchmarkConfig, judge=None) -> xr.Dataset:
    """One clip's rows: every method's answers to the clip's prompts, scored under every metric."""
    prompts = benchmark_prompts(example, cfg.qa_per_type, cfg.benchmarks)
    if not prompts:
        raise ValueError(f"{example.id}: no captions or questions to ask")
    frames = pipeline.example_frames(example, cfg.frames)
    methods = cfg.run_methods
    answers = answer_clip(
        pipeline,
        frames,
        [p.prompt for p in prompts],
        methods,
        max_new_tokens=cfg.max_new_tokens,
        chunk_frames=cfg.chunk_frames or max(frames.num_frames // 2, 1),
        merge_factor=cfg.merge_factor,
        timed=cfg.timed,
        batch_size=cfg.batch_size,
    )
    refs = [p.reference for p in prompts]
    closed = [is_closed(p) for p in prompts]
    score = np.full((len(prompts), len(methods), len(cfg.metrics)), np.nan)
    for j, method in enumerate(methods):
        scored = score_predictions(
            [a.text for a in answers[method]], refs, cfg.metrics, closed=closed, judge=judge
        )
        for k, metric in enumerate(cfg.metrics):
            score[:, j, k] = scored[metric]
    rows = ("example_id", "method")
    ds = xr.Dataset(
        {
            "score": (("example_id", "method", "metric"), score),
            "prediction": (rows, np.array([[a.text for a in answers[m]] for m in methods], dtype=object).T),
            "ttft_s": (rows, np.array([[a.ttft_s for a in answers[m]] for m in methods], dtype=float).T),
            "reference": ("example_id", np.array(refs, dtype=object)),
            "question": ("example_id", np.array([p.prompt for p in prompts], dtype=object)),
        },
        coords={
            **prompt_coords(example, prompts),
            "method": list(methods),
            "metric": list(cfg.metrics),
            "closed": ("example_id", np.array(closed, dtype=np.int8)),
        },
    )
    return _describe_rows(ds)


def _describe_rows(ds: xr.Dataset) -> xr.Dataset:
    ds["score"].attrs.update(
        units="token_f1, exact_match: [0, 1]; embedding: cosine similarity in [-1, 1]",
        description="score of each method's answer against the reference (exact match NaN on open items)",
    )
    ds["prediction"].attrs["description"] = "the method's greedy answer"
    ds["ttft_s"].attrs.update(units="s", description="time to first token of a timed answer (NaN: untimed)")
    ds["reference"].attrs["description"] = "reference answer or caption"
    ds["question"].attrs["description"] = "the prompt as asked"
    ds["closed"].attrs["description"] = "1 where exact match applies (closed QA: choices or a short answer)"
    ds["benchmark"].attrs["description"] = "caption category or QA type (world), or manifest label"
    return ds


def contrasts_of(methods) -> list[str]:
    """``"<method> - direct"`` for every method other than direct, in ``METHODS`` order (none without
    direct)."""
    if REFERENCE not in set(methods):
        return []
    return [f"{m} - {REFERENCE}" for m in METHODS if m in set(methods) and m != REFERENCE]


def per_clip_scores(ds: xr.Dataset, metric: str) -> pd.DataFrame:
    """Clip-level means per (benchmark, clip) and method: rows (benchmark, clip), columns methods."""
    frame = ds["score"].sel(metric=metric).to_pandas()
    frame.index = pd.MultiIndex.from_arrays(
        [ds["benchmark"].values, ds["clip"].values], names=["benchmark", "clip"]
    )
    return frame.groupby(level=["benchmark", "clip"], sort=False).mean()


def add_statistics(
    ds: xr.Dataset, *, margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA, seed: int = 0
) -> xr.Dataset:
    """``ds`` with ``mean_score`` and the paired statistics of every contrast (schema:
    docs/studies.md#how-the-benchmark-runs-and-its-dataset): per (contrast, metric), ``compare_family`` over the suites with at least two clips of
    finite paired scores, so Holm's correction runs across the benchmarks of one claim."""
    methods = [str(m) for m in ds["method"].values]
    metrics = [str(m) for m in ds["metric"].values]
    suites = list(dict.fromkeys(str(b) for b in ds["benchmark"].values))
    contrasts = contrasts_of(methods)
    fields = ("diff_mean", "ci_low", "ci_high", "p_equivalence", "p_noninferiority", "p_inferiority")
    stats = {f: np.full((len(contrasts), len(suites), len(metrics)), np.nan) for f in fields}
    n_clips = np.zeros((len(contrasts), len(suites), len(metrics)), dtype=np.int64)
    verdict = np.full((len(contrasts), len(suites), len(metrics)), NOT_TESTED, dtype=object)
    means = np.full((len(suites), len(methods), len(metrics)), np.nan)
    for k, metric in enumerate(metrics):
        clips = per_clip_scores(ds, metric)
        for s, suite in enumerate(suites):
            means[s, :, k] = clips.loc[suite].mean().reindex(methods).values
        for c, contrast in enumerate(contrasts):
            method = contrast.split(" - ")[0]
            pairs = {}
            for s, suite in enumerate(suites):
                table = clips.loc[suite, [method, REFERENCE]].dropna()
                n_clips[c, s, k] = len(table)
                if len(table) >= 2:
                    pairs[suite] = (table[method].values, table[REFERENCE].values)
            if not pairs:
                continue
            family = compare_family(pairs, margin=margin, alpha=alpha, seed=seed)
            for suite, result in family.items():
                s = suites.index(suite)
                stats["diff_mean"][c, s, k] = result.mean_diff
                stats["ci_low"][c, s, k], stats["ci_high"][c, s, k] = result.ci_low, result.ci_high
                stats["p_equivalence"][c, s, k] = result.p_equivalent
                stats["p_noninferiority"][c, s, k] = result.p_noninferior
                stats["p_inferiority"][c, s, k] = result.p_inferior
                verdict[c, s, k] = result.verdict
    cube = ("contrast", "suite", "metric")
    out = ds.assign_coords(suite=suites)
    out["mean_score"] = (("suite", "method", "metric"), means)
    out["mean_score"].attrs.update(
        units="metric units", description="mean over clips of each clip's mean score on the suite"
    )
    out["suite"].attrs["description"] = "benchmark (caption category / QA type / manifest label)"
    out.attrs.update(margin=float(margin), alpha=float(alpha))
    if not contrasts:  # a run without direct: its means alone
        return out
    out = out.assign_coords(contrast=contrasts)
    for field, values in stats.items():
        out[field] = (cube, values)
    out["n_clips"] = (cube, n_clips)
    out["verdict"] = (cube, verdict)
    level = f"{1 - 2 * alpha:.0%}"
    out["diff_mean"].attrs.update(
        units="metric units", description="mean per-clip difference method - direct"
    )
    out["ci_low"].attrs.update(units="metric units", description=f"{level} bootstrap interval, lower end")
    out["ci_high"].attrs.update(units="metric units", description=f"{level} bootstrap interval, upper end")
    for field, test in (
        ("p_equivalence", "TOST equivalence within +-margin"),
        ("p_noninferiority", "one-sided non-inferiority at -margin"),
        ("p_inferiority", "one-sided inferiority beyond -margin"),
    ):
        out[field].attrs["description"] = f"{test}, paired t-tests, Holm-adjusted across suites"
    out["n_clips"].attrs["description"] = "clips with finite paired scores on the suite"
    out["verdict"].attrs["description"] = (
        f"equivalent / non-inferior / inferior / inconclusive at alpha {alpha}, or '{NOT_TESTED}'"
    )
    out["contrast"].attrs["description"] = "method - direct, paired by clip"
    return out


def summary(ds: xr.Dataset) -> str:
    """Markdown: per metric, one row per benchmark with the mean of every method and each contrast's
    difference, interval and verdict (the paper's summary table)."""
    failures = ds.sizes.get("failure", 0)
    lines = ["# Benchmark: adapter-only vs video-in-context answering\n"]
    if "score" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    clips = len(np.unique(ds["clip"].values))
    lines.append(
        f"{clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips. Scores are means over "
        f"clips; contrasts are mean paired per-clip differences with their "
        f"{1 - 2 * ds.attrs['alpha']:.0%} bootstrap interval and the verdict at margin "
        f"{ds.attrs['margin']:g}, alpha {ds.attrs['alpha']:g} (TOST / non-inferiority, Holm across "
        f"benchmarks).\n"
    )
    methods = [str(m) for m in ds["method"].values]
    contrasts = ds["contrast"].values if "contrast" in ds.coords else []
    for metric in ds["metric"].values:
        lines.append(f"## {metric}\n")
        rows = []
        for suite in ds["suite"].values:
            on_suite = ds["clip"].values[ds["benchmark"].values == suite]
            row = {"benchmark": str(suite), "clips": len(np.unique(on_suite))}
            for m in methods:
                row[m] = float(ds["mean_score"].sel({"suite": suite, "method": m, "metric": metric}))
            for c in contrasts:
                sel = {"contrast": c, "suite": suite, "metric": metric}
                v = str(ds["verdict"].sel(sel).values)
                if v != NOT_TESTED:
                    d, lo, hi = (float(ds[f].sel(sel)) for f in ("diff_mean", "ci_low", "ci_high"))
                    v = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {v}"
                row[str(c)] = v
            rows.append(row)
        lines.append(markdown_table(rows))
        counts = []
        for c in contrasts:
            verdicts = [str(v) for v in ds["verdict"].sel(contrast=c, metric=metric).values]
            tested = [v for v in verdicts if v != NOT_TESTED]
            if tested:
                tally = ", ".join(f"{tested.count(v)} {v}" for v in dict.fromkeys(tested))
                counts.append(f"- `{c}`: {tally} of {len(tested)} benchmarks")
        floor = f"no_video - {REFERENCE}"
        if floor in contrasts:
            blind = ds["suite"].values[
                ds["verdict"].sel(contrast=floor, metric=metric).values == "equivalent"
            ]
            if len(blind):
                counts.append(
                    f"- the question alone is equivalent to the video on {', '.join(map(str, blind))}: "
                    "there these benchmarks do not measure what the video adds"
                )
        lines.append("\n".join(counts) + "\n")
    return "\n".join(lines)


def run(cfg: BenchmarkConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset with its statistics (also written to
    ``<out>/benchmark.nc`` and ``<out>/benchmark.md``)."""
    torch.manual_seed(cfg.seed)
    methods = cfg.run_methods
    unknown = sorted(set(cfg.metrics) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRIC_NAMES)}")
    if cfg.base is None:
        f2l = Frames2LoRA.from_pretrained(cfg.hypernet, device=cfg.device)
    else:
        needs_adapter = sorted(set(methods) & ADAPTER_METHODS)
        if needs_adapter:
            raise ValueError(f"--base judges a base alone: drop {needs_adapter} from --methods")
        f2l = Frames2LoRA.from_base(cfg.base, device=cfg.device)
    judge = None
    if "embedding" in cfg.metrics:
        from f2l.eval.judge import EmbeddingJudge

        judge = EmbeddingJudge()
    examples = {e.id: e for e in study_examples(cfg.manifest, cfg.split, cfg.num_clips, cfg.frames)}
    # margin and alpha only shape the statistics, recomputed from the merged scores on every run
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "fresh", "margin", "alpha")}
    config["methods"] = list(methods)
    study = Study(cfg.out, NAME, config=config, attrs=provenance(f2l, seed=cfg.seed), fresh=cfg.fresh)
    study.run(list(examples), lambda clip_id: clip_dataset(f2l, examples[clip_id], cfg, judge), desc=NAME)

    def statistics(ds: xr.Dataset) -> xr.Dataset:
        if "score" in ds:
            return add_statistics(ds, margin=cfg.margin, alpha=cfg.alpha, seed=cfg.seed)
        return ds.assign_attrs(margin=float(cfg.margin), alpha=float(cfg.alpha))

    return study.finish(list(examples), derive=statistics, summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("benchmark", BenchmarkConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
