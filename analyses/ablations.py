"""What closes the gap between adapter-only and video-in-context answering: declared training ablations of
the tiny hypernetwork, one change at a time, each trained, benchmarked and compared with the baseline.

A row (``ROWS``) is one change to the ``tiny`` preset of ``f2l.train`` at ``BASELINE_FLAGS``; each row
trains into ``<work>/<row>``, is benchmarked there by ``analyses.benchmark``, and is compared with the
``baseline`` row. Writes ``<out>/ablations.nc`` and ``<out>/ablations.md``. The rows, resumption, the
issue's criterion and the dataset schema: docs/ablations.md#the-runner.

    python -m analyses.ablations                                  # every row, 12 benchmark clips
    python -m analyses.ablations --rows steps-3000 rank-16 --clips 200
    python -m analyses.ablations --rows rank-16 -- --train-clips 64 --steps 100   # f2l.train flags, every row
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from analyses import benchmark
from analyses.compare_hypernets import compare_runs
from f2l.cli import UsageError, entry_point
from f2l.config import NOT_A_SETTING, config_dict, dotted_settings, parse_config
from f2l.eval.stats import DEFAULT_ALPHA, DEFAULT_MARGIN
from f2l.io import atomic_write_text
from f2l.results import StudyConfigError, markdown_table, provenance, write_netcdf
from f2l.train import TrainConfig, train
from f2l.train import parse_config as parse_train_config

NAME = "ablations"
PRESET = "tiny"
BASELINE = "baseline"
# The baseline is the tiny preset as it stood when this table was run: 1,500 steps. The preset now
# trains 3,000 (the ``steps-3000`` row, the one change that met the criterion; docs/ablations.md,
# "Training length").
BASELINE_FLAGS = ("--steps", "1500")
METHODS = ("direct", "f2l", "no_video")
CONTRAST = "f2l - direct"
FLOOR = "no_video - direct"  # the video matters on a benchmark where this is "inferior"
PASSING = ("equivalent", "non-inferior")
BUDGET_MINUTES = 30  # the issue's: training the shipped tiny hypernetwork on 2 cores


@dataclass(frozen=True)
class Row:
    """One ablation: what it changes, in words, and the ``f2l.train`` flags that change it."""

    description: str
    flags: tuple[str, ...] = ()

    @property
    def change(self) -> str:
        return " ".join(self.flags) or f"(the {PRESET} preset, {' '.join(BASELINE_FLAGS)})"


ROWS: dict[str, Row] = {
    BASELINE: Row(
        f"the {PRESET} preset at 1,500 steps, as it stood before this table: every other row changes one "
        "thing of it"
    ),
    # training length and clips
    "steps-3000": Row("twice the training (3,000 steps; the warm-up stays 5% of them)", ("--steps", "3000")),
    "train-clips-2048": Row("four times the train clips (2,048 of the world's)", ("--train-clips", "2048")),
    # the perceiver
    "width-256": Row("a perceiver twice as wide (256)", ("--f2l.width", "256")),
    "latents-32": Row("twice the latents (32)", ("--f2l.num-latents", "32")),
    "self-blocks-2": Row("a second latent self-attention block", ("--f2l.self-blocks", "2")),
    # the adapter
    "rank-16": Row("LoRA rank 16, alpha / rank kept at 1", ("--f2l.rank", "16", "--f2l.alpha", "16")),
    # the loss
    "kl-only": Row("KL to the teacher's top-k only (no CE on its tokens)", ("--ce-weight", "0")),
    "ce-only": Row("CE on the teacher's tokens only (no KL)", ("--kl-weight", "0")),
    # the teacher's prompts
    "prompts-4": Row("4 prompts of a clip a step (twice the student rows)", ("--prompts-per-clip", "4")),
    "qa-3": Row("3 questions of each QA type a clip among the teacher's prompts", ("--qa-per-type", "3")),
    "camera-3x": Row("the camera caption drawn 3x as often as any other prompt", ("--prompt-weights", "camera=3")),
    # the targets
    "ground-truth": Row("the references as targets, not the teacher's", ("--targets-from", "ground_truth")),
    "camera-truth": Row("the camera caption's reference as its target, not the teacher's", ("--reference-labels", "camera")),
    "camera-head": Row("an auxiliary head names the camera's motion from the read latents (weight 0.5)", ("--camera-weight", "0.5")),
    "camera-head-0.1": Row("the camera head at a fifth of that weight (0.1)", ("--camera-weight", "0.1")),
    # the learning-rate schedule
    "lr-3e-3": Row("peak learning rate 3e-3 (3x)", ("--lr", "3e-3")),
    "lr-3e-4": Row("peak learning rate 3e-4 (a third)", ("--lr", "3e-4")),
    "warmup-20": Row("warm-up over 20% of the steps (4x)", ("--warmup", "0.2")),
}  # fmt: skip

#: Fields one change moves together: the adapter's scale is alpha / rank, so a rank row keeps it.
COUPLED = (frozenset({"f2l.rank", "f2l.alpha"}),)
#: The runner's own settings of every run, never among a row's flags or the shared ones.
RESERVED = ("--preset", "--out", "--ship")
#: Settings of a run that do not change its weights: a stored run that differs only in them is the same run.
BOOKKEEPING = ("progress", "tensorboard", "device", "workers")


@dataclass
class AblationsConfig:
    """The runner's settings (each a flag); the benchmark's default to ``analyses.benchmark``'s."""

    rows: tuple[str, ...] | None = None  # the rows to run (the baseline always runs); None: all of them
    work: str = "runs/ablations"  # each row's training run and benchmarks
    out: str = "results"  # ablations.nc and ablations.md
    clips: int = benchmark.BenchmarkConfig.clips  # benchmark test clips
    split: str = "test"
    benchmarks: tuple[str, ...] | None = None  # only these caption categories / QA types; None: all
    max_new_tokens: int = benchmark.BenchmarkConfig.max_new_tokens
    batch_size: int = benchmark.BenchmarkConfig.batch_size
    metric: str = "token_f1"
    margin: float = DEFAULT_MARGIN
    alpha: float = DEFAULT_ALPHA
    seed: int = 0  # the benchmark's and the bootstrap's (the training seed is f2l.train's --seed)
    device: str | None = None  # training and benchmark; default: cuda when available
    fresh: bool = False  # discard a row's run and benchmarks made with another config instead of refusing
    # f2l.train flags for every row (after ``--`` on the command line)
    train_args: tuple[str, ...] = field(default=(), metadata=NOT_A_SETTING)

    def __post_init__(self):
        unknown = [r for r in self.rows or () if r not in ROWS]
        if unknown:
            raise ValueError(f"unknown row(s) {', '.join(unknown)}; the rows are: {', '.join(ROWS)}")
        reserved = [a for a in self.train_args if a.split("=")[0] in RESERVED]
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: the runner sets {', '.join(RESERVED)} of every row")

    @property
    def selected(self) -> list[str]:
        """The rows to run, in registry order, the baseline first."""
        chosen = {BASELINE, *(self.rows or ROWS)}
        return [r for r in ROWS if r in chosen]


def row_config(
    name: str, work: str | Path = AblationsConfig.work, train_args: Sequence[str] = ()
) -> TrainConfig:
    """Row ``name``'s training config: the preset, then ``train_args`` (every row's), then the row's flags;
    it trains into ``<work>/<name>`` and ships ``<work>/<name>/hypernet``."""
    out = Path(work) / name
    argv = [
        "--preset",
        PRESET,
        *BASELINE_FLAGS,
        *train_args,
        *ROWS[name].flags,
        "--out",
        str(out),
        "--ship",
        str(out / "hypernet"),
    ]
    return parse_train_config(argv)


def flat_settings(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """A run config as JSON values under dotted names (``f2l.rank``), the form ``config.json`` stores. A
    setting a stored config lacks was added after its run, which trained with the setting's default."""
    data = json.loads(json.dumps(config_dict(cfg) if isinstance(cfg, TrainConfig) else cfg))
    if isinstance(cfg, TrainConfig):
        return dotted_settings(TrainConfig, data)
    return {**flat_settings(TrainConfig()), **dotted_settings(TrainConfig, data)}


def changed_settings(a: TrainConfig | dict, b: TrainConfig | dict, ignore: Sequence[str] = ()) -> list[str]:
    """The dotted settings in which two run configs differ, but for ``ignore``."""
    fa, fb = flat_settings(a), flat_settings(b)
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k) != fb.get(k))


def check_rows(cfg: AblationsConfig) -> dict[str, TrainConfig]:
    """Every selected row's training config, refused up front (before hours of training) when a row
    changes nothing under the shared flags, or when its directory holds a run of another config (unless
    ``--fresh``: then that run and its benchmarks are removed)."""
    configs = {name: row_config(name, cfg.work, cfg.train_args) for name in cfg.selected}
    baseline = configs[BASELINE]
    for name, run in configs.items():
        if name != BASELINE and not changed_settings(run, baseline, ignore=("out", "ship")):
            raise UsageError(f"row {name} ({ROWS[name].change}) changes nothing under the shared flags")
        stored = run.out_dir / "config.json"
        if not stored.exists():
            continue
        changed = changed_settings(json.loads(stored.read_text()), run, ignore=BOOKKEEPING)
        if changed and not cfg.fresh:
            raise UsageError(
                f"{run.out_dir} holds a run of another config (differs in {changed}); rerun with --fresh to "
                "discard it and its benchmarks, or choose another --work"
            )
        if changed:
            print(f"{NAME}: {name}: discarding {run.out_dir} (another config: {changed})", file=sys.stderr)
            shutil.rmtree(run.out_dir)
    return configs


def trained(run: TrainConfig) -> bool:
    """Whether a run has finished: its summary (of all its steps) and its shipped hypernetwork exist."""
    summary = run.out_dir / "summary.json"
    return (
        summary.exists()
        and json.loads(summary.read_text()).get("steps") == run.steps
        and (Path(run.ship) / "hypernet_config.json").exists()
    )


def training_seconds(run_dir: str | Path) -> float:
    """The wall time of a run's steps from its ``log.jsonl``: each record's seconds a step times the steps
    since the record before. A resumed run logs again the steps after its last checkpoint; the last record
    of a step counts (it made the final weights)."""
    per_step = {}
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        per_step[record["step"]] = record["sec_per_step"]
    total, previous = 0.0, 0
    for step in sorted(per_step):
        total += per_step[step] * (step - previous)
        previous = step
    return total


def bench_config(
    run: TrainConfig, cfg: AblationsConfig, methods: tuple[str, ...] = METHODS
) -> benchmark.BenchmarkConfig:
    """The benchmark of a row's shipped hypernetwork at the run's frame count: ``methods`` (the baseline
    runs direct, f2l and no_video; another row f2l alone, see ``beside_baseline``)."""
    return benchmark.BenchmarkConfig(
        out=str(run.out_dir / f"bench-{cfg.clips}"),
        hypernet=str(run.ship),
        split=cfg.split,
        clips=cfg.clips,
        seed=cfg.seed,
        device=cfg.device,
        frames=run.frames,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        methods=methods,
        metrics=(cfg.metric,),
        benchmarks=cfg.benchmarks,
        margin=cfg.margin,
        alpha=cfg.alpha,
    )


def run_benchmark(bench: benchmark.BenchmarkConfig, fresh: bool) -> xr.Dataset:
    """``analyses.benchmark.run`` (clips already scored are read back); with ``fresh``, partial results of
    another config are discarded, and only then."""
    try:
        ds = benchmark.run(bench)
    except StudyConfigError:
        if not fresh:
            raise
        ds = benchmark.run(dataclasses.replace(bench, fresh=True))
    if ds.sizes.get("failure", 0):
        first = f"{ds['failed_unit'].values[0]}: {ds['error'].values[0]}"
        raise RuntimeError(
            f"{bench.out}: {ds.sizes['failure']} clip(s) failed (e.g. {first}); rerun to retry"
        )
    return ds


def beside_baseline(row: xr.Dataset, baseline: xr.Dataset, cfg: AblationsConfig) -> xr.Dataset:
    """A row's f2l scores beside the baseline's direct and no_video, with the benchmark's statistics.
    Direct and no_video never see the hypernetwork, so on the same base, clips and prompts they are the
    baseline's answers: a row answers only with its adapter (a benchmark of a third of the work)."""
    if list(row["example_id"].values) != list(baseline["example_id"].values):
        raise RuntimeError("a row's benchmark holds other prompts than the baseline's: rerun it with --fresh")
    # (``sel`` takes ``method`` as its own keyword: the dim goes in a dict)
    score = xr.concat(
        [(row if m == "f2l" else baseline)["score"].sel({"method": [m]}) for m in METHODS], dim="method"
    )
    scores = xr.Dataset({"score": score}, coords={k: baseline[k] for k in ("clip", "benchmark")})
    return benchmark.add_statistics(scores, margin=cfg.margin, alpha=cfg.alpha, seed=cfg.seed)


def run(cfg: AblationsConfig) -> xr.Dataset:
    """Train and benchmark every selected row that is not done yet, then collect them (also written to
    ``<out>/ablations.nc`` and ``<out>/ablations.md``)."""
    configs = check_rows(cfg)
    benches = {}
    for i, (name, run_cfg) in enumerate(configs.items(), 1):
        where = f"{NAME} [{i}/{len(configs)}] {name} ({ROWS[name].change})"
        if trained(run_cfg):
            print(f"{where}: trained already in {run_cfg.out_dir}", file=sys.stderr)
        else:
            if cfg.device:
                run_cfg = dataclasses.replace(run_cfg, device=cfg.device)
            print(f"{where}: training {run_cfg.steps} steps into {run_cfg.out_dir}", file=sys.stderr)
            train(run_cfg)
        bench = bench_config(run_cfg, cfg, METHODS if name == BASELINE else ("f2l",))
        print(f"{where}: benchmark of {cfg.clips} clips into {bench.out}", file=sys.stderr)
        ds = run_benchmark(bench, cfg.fresh)
        benches[name] = ds if name == BASELINE else beside_baseline(ds, benches[BASELINE], cfg)
    ds = collect(configs, benches, cfg)
    out = Path(cfg.out)
    write_netcdf(ds, out / f"{NAME}.nc")
    atomic_write_text(out / f"{NAME}.md", summary(ds))
    return ds


# ------------------------------------------------------------------------------------------ the dataset


def collect(
    configs: dict[str, TrainConfig], benches: dict[str, xr.Dataset], cfg: AblationsConfig
) -> xr.Dataset:
    """The rows' benchmarks side by side (schema: docs/ablations.md#rows-flags-and-resumption)."""
    rows, metric = list(configs), cfg.metric
    reference = benches[BASELINE]
    suites = [str(s) for s in reference["suite"].values]
    shape = (len(rows), len(suites))
    stats = {
        f: np.full(shape, np.nan)
        for f in ("diff_mean", "ci_low", "ci_high", "p_equivalence", "p_noninferiority")
    }
    versus = {
        f: np.full(shape, np.nan) for f in ("vs_baseline_diff", "vs_baseline_ci_low", "vs_baseline_ci_high")
    }
    verdicts = {
        f: np.full(shape, benchmark.NOT_TESTED, dtype=object)
        for f in ("verdict", "video_verdict", "vs_baseline_verdict")
    }
    means = np.full((*shape, len(METHODS)), np.nan)
    for r, name in enumerate(rows):
        ds = benches[name].sel(metric=metric).reindex(suite=suites)
        means[r] = ds["mean_score"].sel({"method": list(METHODS)}).values
        for f in stats:
            stats[f][r] = ds[f].sel(contrast=CONTRAST).values
        verdicts["verdict"][r] = ds["verdict"].sel(contrast=CONTRAST).values
        verdicts["video_verdict"][r] = ds["verdict"].sel(contrast=FLOOR).values
        table = compare_runs(reference, benches[name], metric=metric, margin=cfg.margin, alpha=cfg.alpha)
        table = table.set_index("suite").reindex(suites)
        for f, column in (
            ("vs_baseline_diff", "B - A"),
            ("vs_baseline_ci_low", "ci_low"),
            ("vs_baseline_ci_high", "ci_high"),
        ):
            if column in table:
                versus[f][r] = table[column].astype(float).values
        if "verdict" in table:
            verdicts["vs_baseline_verdict"][r] = table["verdict"].fillna(benchmark.NOT_TESTED).values
    video_matters = verdicts["video_verdict"] == "inferior"
    meets = video_matters & np.isin(verdicts["verdict"], PASSING)
    cell = ("row", "benchmark")
    ds = xr.Dataset(
        {
            "mean_score": ((*cell, "method"), means),
            **{f: (cell, v) for f, v in stats.items()},
            **{f: (cell, v) for f, v in verdicts.items()},
            "video_matters": (cell, video_matters),
            "meets": (cell, meets),
            **{f: (cell, v) for f, v in versus.items()},
            "n_meeting": ("row", meets.sum(1)),
            "n_video_matters": ("row", video_matters.sum(1)),
            "train_seconds": ("row", [training_seconds(configs[n].out_dir) for n in rows]),
            "steps": (
                "row",
                [json.loads((configs[n].out_dir / "summary.json").read_text())["steps"] for n in rows],
            ),
        },
        coords={
            "row": rows,
            "benchmark": suites,
            "method": list(METHODS),
            "description": ("row", [ROWS[n].description for n in rows]),
            "change": ("row", [ROWS[n].change for n in rows]),
            "train_config": ("row", [json.dumps(config_dict(configs[n]), sort_keys=True) for n in rows]),
        },
    )
    level = f"{1 - 2 * cfg.alpha:.0%}"
    describe = {
        "mean_score": f"mean over clips of each clip's mean {metric}",
        "diff_mean": "f2l - direct: mean per-clip difference",
        "ci_low": f"f2l - direct: {level} bootstrap interval, lower end",
        "ci_high": f"f2l - direct: {level} bootstrap interval, upper end",
        "p_equivalence": "f2l - direct: TOST p-value within +-margin, Holm-adjusted across benchmarks",
        "p_noninferiority": "f2l - direct: non-inferiority p-value at -margin, Holm-adjusted",
        "verdict": "f2l - direct: equivalent / non-inferior / inferior / inconclusive / not tested",
        "video_verdict": "no_video - direct: its verdict (the benchmark's own test)",
        "video_matters": "no_video - direct is inferior: the question alone is worse by the margin",
        "meets": "the issue's criterion: the video matters and f2l - direct is equivalent or non-inferior",
        "vs_baseline_diff": "the row's f2l minus the baseline's, mean per-clip difference",
        "vs_baseline_ci_low": f"row - baseline: {level} bootstrap interval, lower end",
        "vs_baseline_ci_high": f"row - baseline: {level} bootstrap interval, upper end",
        "vs_baseline_verdict": "row - baseline: verdict at the margin, Holm across benchmarks",
        "n_meeting": "benchmarks meeting the criterion",
        "n_video_matters": "benchmarks where the video matters",
        "train_seconds": "wall time of the run's steps (log.jsonl), evaluations included, caches not",
        "steps": "optimizer steps of the run",
        "description": "the row's one change, in words",
        "change": "the row's f2l.train flags over the preset",
        "train_config": "the run's resolved f2l.train config (JSON)",
    }
    for name, text in describe.items():
        ds[name].attrs["description"] = text
    for name in ("mean_score", "diff_mean", "ci_low", "ci_high", *versus):
        ds[name].attrs["units"] = f"{metric} units"
    ds["train_seconds"].attrs["units"] = "s"
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("fresh",)}
    ds.attrs.update(
        provenance(seed=cfg.seed, config=settings, preset=PRESET, study=NAME),
        metric=metric,
        margin=float(cfg.margin),
        alpha=float(cfg.alpha),
        clips=len(np.unique(reference["clip"].values)),
        base_model=str(reference.attrs.get("base_model", "")),
    )
    return ds


# ------------------------------------------------------------------------------------------ the summary

#: The verdict of a contrast as one mark beside its difference.
MARKS = {
    "equivalent": "=",
    "non-inferior": "≥",
    "inferior": "<",
    "inconclusive": "?",
    benchmark.NOT_TESTED: "",
}


def marked(diff: float, verdict: str) -> str:
    """A difference and its verdict's mark (``-0.050 ?``); empty where it was not tested."""
    return "" if verdict == benchmark.NOT_TESTED else f"{diff:+.3f} {MARKS[verdict]}"


def summary(ds: xr.Dataset) -> str:
    """Markdown: per row, its change, training minutes and each benchmark's ``f2l - direct`` with its
    verdict and whether the criterion holds; then each row's f2l against the baseline's."""
    benches = [str(b) for b in ds["benchmark"].values]
    matters = [b for b in benches if bool(ds["video_matters"].sel(row=BASELINE, benchmark=b))]
    lines = [
        "# Ablations: what closes the gap between f2l and direct\n",
        f"{ds.attrs['clips']} test clips, {ds.attrs['metric']}, margin {ds.attrs['margin']:g}, alpha "
        f"{ds.attrs['alpha']:g}. A cell is the mean paired per-clip difference `f2l - direct` and its "
        f"verdict ({', '.join(f'{m} {v}' for v, m in MARKS.items() if m)}; Holm across benchmarks). The "
        "criterion asks for = or ≥ where the video matters (`no_video - direct` inferior: in the baseline's "
        f"benchmark, on {', '.join(matters) or 'none'}); a cell in parentheses is on a benchmark where it "
        "does not. Minutes: the wall time of the run's steps.\n",
    ]
    rows = []
    for row in ds["row"].values:
        sel = ds.sel(row=row)
        entry = {
            "row": str(row),
            "change": f"`{sel['change'].item()}`",
            "minutes": f"{float(sel['train_seconds']) / 60:.1f}",
            "steps": int(sel["steps"]),
        }
        for b in benches:
            cell = sel.sel(benchmark=b)
            text = marked(float(cell["diff_mean"]), str(cell["verdict"].item()))
            entry[b] = text if bool(cell["video_matters"]) else f"({text})"
        entry["meets"] = f"{int(sel['n_meeting'])}/{int(sel['n_video_matters'])}"
        rows.append(entry)
    lines.append(markdown_table(rows))
    over = [str(r) for r in ds["row"].values if ds["train_seconds"].sel(row=r) > 60 * BUDGET_MINUTES]
    if over:
        lines.append(
            f"Over the shipped hypernetwork's {BUDGET_MINUTES}-minute training budget: {', '.join(over)}.\n"
        )
    if ds.sizes["row"] > 1:
        lines.append("## Each row against the baseline\n")
        lines.append(
            "The row's f2l minus the baseline's, paired by clip, with the verdict of `row - baseline` at the "
            "same margin (≥: no worse than the baseline; <: worse by more than the margin).\n"
        )
        rows = []
        for row in ds["row"].values[1:]:
            sel = ds.sel(row=row)
            entry = {"row": str(row), "change": f"`{sel['change'].item()}`"}
            for b in benches:
                cell = sel.sel(benchmark=b)
                entry[b] = marked(float(cell["vs_baseline_diff"]), str(cell["vs_baseline_verdict"].item()))
            rows.append(entry)
        lines.append(markdown_table(rows))
    lines.append("## Rows\n")
    lines += [f"- `{row}`: {ds['description'].sel(row=row).item()}" for row in ds["row"].values]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ the CLI


def epilog() -> str:
    width = max(map(len, ROWS))
    listed = "\n".join(f"  {name:<{width}}  {row.change}: {row.description}" for name, row in ROWS.items())
    return (
        f"rows (each one change to f2l.train's {PRESET} preset):\n{listed}\n\n"
        "Arguments after -- are f2l.train flags for every row (python -m f2l.train --help lists them), "
        "applied before each row's own change."
    )


@entry_point(interrupted="interrupted; rerun the same command to resume")
def main(argv: list[str]) -> int:
    cut = argv.index("--") if "--" in argv else len(argv)
    cfg = parse_config(
        AblationsConfig,
        argv[:cut],
        prog=f"python -m analyses.{NAME}",
        description=__doc__.split("\n\n")[0],
        epilog=epilog(),
    )
    cfg = dataclasses.replace(cfg, train_args=tuple(argv[cut + 1 :]))
    run(cfg)
    print(f"wrote {cfg.out}/{NAME}.nc and {cfg.out}/{NAME}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
