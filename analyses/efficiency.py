"""Efficiency: what answering from an adapter costs next to answering with the video in context.

One clip is sampled at each frame count and every method (``METHODS``) answers the same question about
it; the study writes ``efficiency.nc`` (dim ``frames``, resumable per frame count) and ``efficiency.md``,
with query TTFT, reusable preprocessing, tokens, stored bytes and peak memory per method, and once per run
the batched unmerged mode and a training step. What is measured and how, and the dataset schema:
docs/performance.md#what-the-study-measures.

    python -m analyses.efficiency                      # frames 12, 64, 256
    python -m analyses.efficiency --full --device cuda # frames 12, 64, 256, 1024
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr

from analyses.common import AnswersConfig, study_examples, study_main
from analyses.efficiency_measures import interleaved_rounds, median_times, medians, peak_memories
from f2l.adapter import Adapter, merged_adapter, use_adapter
from f2l.answer import Answer, answer, generate, prefill_video
from f2l.chat import answer_suffix, prompt_text
from f2l.distributed import rank
from f2l.encode import internalization_inputs
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, markdown_table, provenance
from f2l.video import Frames

METHODS = ("direct", "f2l", "f2l_merged", "kv_cache", "no_video")
PREPROCESSING = {"f2l": "internalize", "f2l_merged": "internalize", "kv_cache": "prefill"}
# The queries with no video in context: a few ms each, so they get --overhead-rounds rounds, not --repeats.
TEXT_ONLY = ("f2l", "f2l_merged", "no_video")
DEFAULT_FRAMES = (12, 64, 256)
FULL_FRAMES = (12, 64, 256, 1024)


@dataclass
class EfficiencyConfig(AnswersConfig):
    clips: int = 4  # the first is timed at every frame count; all of them form the batches (query, training)
    frames: tuple[int, ...] | None = None  # default 12 64 256; --full adds 1024
    max_new_tokens: int = 1  # tokens generated per timed query: TTFT needs only the first
    question: str = "what color is the background?"
    warmup: int = 1
    repeats: int = 3
    overhead_rounds: int = 30  # rounds for the text-only queries (TEXT_ONLY), whose ratios are the overhead
    memory: bool = True  # peak memory (on CPU one fresh process per measurement: the slow part)
    training: bool = True  # the training-step measure
    train_frames: int = 8
    # other hypernetworks of the same base (any kind), whose internalization is timed beside --hypernet's
    compare_hypernets: tuple[str, ...] = ()


def frame_counts(cfg: EfficiencyConfig) -> tuple[int, ...]:
    return tuple(cfg.frames) if cfg.frames else FULL_FRAMES if cfg.full else DEFAULT_FRAMES


# --------------------------------------------------------------------------- one frame count

_VARIABLES: dict[str, dict[str, str]] = {
    "ttft_s": {"units": "s", "description": "median query time to the first answer token"},
    "apply_s": {
        "units": "s",
        "description": "median time to apply the adapter for a query and remove it, outside the TTFT "
        "(f2l: set the wrappers' factors; f2l_merged: merge and unmerge); NaN without an adapter",
    },
    "preprocess_s": {
        "units": "s",
        "description": "median reusable preprocessing per video: internalization (f2l, f2l_merged), "
        "KV prefill (kv_cache); NaN where nothing is kept per video",
    },
    "input_tokens": {
        "units": "tokens",
        "description": "tokens the answer attends (kv_cache: cache + question)",
    },
    "visual_tokens": {"units": "tokens", "description": "visual tokens among input_tokens"},
    "prefilled_tokens": {"units": "tokens", "description": "input tokens computed at query time"},
    "stored_bytes": {
        "units": "bytes",
        "description": "stored per video: adapter (f2l, f2l_merged) or KV cache (kv_cache); NaN otherwise",
    },
    "peak_memory_bytes": {
        "units": "bytes",
        "description": "peak memory one query adds (CUDA: max_memory_allocated; CPU: peak RSS growth in a "
        "fresh process); NaN when not measured",
    },
    "preprocess_peak_memory_bytes": {
        "units": "bytes",
        "description": "peak memory of the preprocessing step (internalization; KV prefill)",
    },
    "token_reduction": {"units": "1", "description": "direct input tokens / f2l input tokens"},
    "ttft_rounds_s": {
        "units": "s",
        "description": "query time to the first answer token in each timed round (every method once a "
        "round; past --repeats only the text-only queries, NaN for the others): ratios within a round "
        "pair measurements taken moments apart",
    },
}
# Variables that are not one number per (frames, method).
_NOT_PER_METHOD = ("token_reduction", "ttft_rounds_s")


def measure_frames(
    pipeline: Frames2LoRA, cfg: EfficiencyConfig, example, frames: int, others: Sequence[Frames2LoRA] = ()
) -> xr.Dataset:
    """Every variable of the schema at one frame count (one ``Study`` unit); ``others`` are pipelines of
    the same base whose internalization is timed in the same rounds as ``pipeline``'s."""
    base, device = pipeline.base, pipeline.base.device
    q, n, warmup, repeats = cfg.question, cfg.max_new_tokens, cfg.warmup, cfg.repeats
    clip = pipeline.example_frames(example, frames)
    with torch.inference_mode():
        adapter = pipeline.internalize_batch([clip])[0]
        prefix = prefill_video(base, clip)
    queries = {
        "direct": lambda: answer(base, clip, q, max_new_tokens=n),
        "f2l": lambda: pipeline.generate(adapter, q, max_new_tokens=n),
        "f2l_merged": lambda: pipeline.generate(adapter, q, max_new_tokens=n, merged=True),
        "kv_cache": lambda: answer(base, None, q, prefix=prefix, max_new_tokens=n),
        "no_video": lambda: answer(base, None, q, max_new_tokens=n),
    }
    preprocessing = {
        "internalize": lambda: pipeline.internalize_batch([clip]),
        "prefill": lambda: prefill_video(base, clip),
    }
    by_hypernet = {f"internalize:{i}": other for i, other in enumerate(others, 1)}
    timed_pre = preprocessing | {
        name: (lambda other=other: other.internalize_batch([clip])) for name, other in by_hypernet.items()
    }
    model = base.model

    def apply_and_remove(context) -> Callable[[], None]:
        def fn() -> None:
            with context(model, adapter):
                pass

        return fn

    applying = {"f2l": apply_and_remove(use_adapter), "f2l_merged": apply_and_remove(merged_adapter)}
    row = {name: np.full(len(METHODS), np.nan) for name in _VARIABLES if name not in _NOT_PER_METHOD}
    last: dict[str, Answer] = {}

    def ttft(method: str) -> Callable[[], float]:
        def measure() -> float:
            last[method] = queries[method]()
            return last[method].ttft_s

        return measure

    with torch.inference_mode():
        pre_s = median_times(timed_pre, device, warmup, repeats)
        apply_s = median_times(applying, device, warmup, repeats)
        ttft_rounds = interleaved_rounds({m: ttft(m) for m in METHODS}, warmup, repeats)
        extra = max(cfg.overhead_rounds - repeats, 0)
        more = interleaved_rounds({m: ttft(m) for m in TEXT_ONLY}, 0, extra)
        for method in METHODS:
            ttft_rounds[method] += more.get(method, [np.nan] * extra)
    ttft_s = medians(ttft_rounds)
    for i, method in enumerate(METHODS):
        row["ttft_s"][i] = ttft_s[method]
        tokens = last[method].input_tokens
        row["input_tokens"][i] = sum(tokens.values())
        row["prefilled_tokens"][i] = tokens["visual"] + tokens["text"]
        row["visual_tokens"][i] = prefix.visual_tokens if method == "kv_cache" else tokens["visual"]
        if method in PREPROCESSING:
            row["preprocess_s"][i] = pre_s[PREPROCESSING[method]]
        if method in apply_s:
            row["apply_s"][i] = apply_s[method]
    row["stored_bytes"][[METHODS.index("f2l"), METHODS.index("f2l_merged")]] = adapter.nbytes
    row["stored_bytes"][METHODS.index("kv_cache")] = prefix.nbytes
    if cfg.memory:
        peaks = peak_memories(pipeline, cfg, clip, frames, [*preprocessing, *METHODS])
        for i, method in enumerate(METHODS):
            row["peak_memory_bytes"][i] = peaks[method]
            if method in PREPROCESSING:
                row["preprocess_peak_memory_bytes"][i] = peaks[PREPROCESSING[method]]
    tokens = dict(zip(METHODS, row["input_tokens"], strict=True))
    ds = xr.Dataset(
        {name: (("frames", "method"), values[None]) for name, values in row.items()},
        coords={"frames": [frames], "method": list(METHODS), "clip": example.id},
    )
    ds["token_reduction"] = ("frames", [tokens["direct"] / tokens["f2l"]])
    ds["ttft_rounds_s"] = (("frames", "method", "round"), np.array([[ttft_rounds[m] for m in METHODS]]))
    ds = ds.assign_coords(round=np.arange(repeats + extra))
    for name, attrs in _VARIABLES.items():
        ds[name].attrs.update(attrs)
    hypernets = [pipeline, *others]
    ds["internalize_s"] = (
        ("frames", "hypernet"),
        [[pre_s["internalize"], *(pre_s[name] for name in by_hypernet)]],
        {
            "units": "s",
            "description": "median internalization time of each hypernetwork, same clip and rounds",
        },
    )
    return ds.assign_coords(
        hypernet=[p.hypernet_id for p in hypernets],
        hypernet_kind=("hypernet", [p.hypernet.kind for p in hypernets]),
        hypernet_parameters=(
            "hypernet",
            [sum(t.numel() for t in p.hypernet.parameters()) for p in hypernets],
        ),
    )


# --------------------------------------------------------------------------- batched queries


def batched_overhead(
    pipeline: Frames2LoRA, clips: list[Frames], question: str, max_new_tokens: int, warmup: int, repeats: int
) -> dict[str, float]:
    """TTFT of one batch of ``len(clips)`` questions with row ``i`` under clip ``i``'s adapter (the batched
    unmerged mode: every wrapper multiplies each row by its own factors) against the base answering the
    same batch with no adapter; applying the adapters is outside the TTFT, as for a single query."""
    base = pipeline.base
    with torch.inference_mode():
        adapters = pipeline.internalize_batch(clips)
    questions = [question] * len(clips)

    def query(adapter: Adapter | None) -> Callable[[], float]:
        def measure() -> float:
            rows = len(questions)  # one batch
            answers = generate(
                base, questions, adapter=adapter, max_new_tokens=max_new_tokens, batch_size=rows
            )
            return answers[0].ttft_s

        return measure

    with torch.inference_mode():
        rounds = interleaved_rounds({"f2l": query(adapters), "no_video": query(None)}, warmup, repeats)
    ratio = np.array(rounds["f2l"]) / np.array(rounds["no_video"])
    t = medians(rounds)
    return {
        "batch_size": len(clips),
        "batch_ttft_f2l_s": t["f2l"],
        "batch_ttft_no_video_s": t["no_video"],
        "batch_f2l_vs_no_video": float(np.median(ratio)),
        "batch_f2l_vs_no_video_min": float(ratio.min()),
        "batch_f2l_vs_no_video_max": float(ratio.max()),
    }


# --------------------------------------------------------------------------- training step


def training_overhead(
    pipeline: Frames2LoRA,
    clips: list[Frames],
    question: str,
    warmup: int,
    repeats: int,
    others: Sequence[Frames2LoRA] = (),
):
    """Median seconds of a distillation step (encode + hypernetwork + adapted student forward/backward)
    and of the student forward/backward alone under a fixed adapter, on ``clips`` with 2 prompts each;
    with ``others`` (pipelines of the same base), each one's distillation step too, in the same rounds."""
    base, device = pipeline.base, pipeline.base.device
    texts = [prompt_text(base.processor, question, with_video=False) + answer_suffix(base.processor, "grey.")]
    student = base.tokenizer(texts * 2 * len(clips), return_tensors="pt").to(device)
    index = torch.arange(len(clips), device=device).repeat_interleave(2)

    def full_step(hypernet):
        encode = internalization_inputs(base, clips, hypernet.context)

        def step():
            factors = hypernet(base, encode)
            rows = {m: (a[index], b[index]) for m, (a, b) in factors.items()}
            with use_adapter(base.model, hypernet.to_adapter(rows)):
                base.model(**student).logits.float().logsumexp(-1).mean().backward()
            hypernet.zero_grad()

        return step

    fixed = pipeline.internalize_batch(clips)
    fixed_rows = {
        m: (a[index].clone().requires_grad_(), b[index].clone().requires_grad_())
        for m, (a, b) in fixed.factors.items()
    }

    def student_step():
        with use_adapter(base.model, Adapter(fixed_rows, scaling=fixed.scaling)):
            base.model(**student).logits.float().logsumexp(-1).mean().backward()

    hypernets = [p.hypernet for p in (pipeline, *others)]
    steps = {"student": student_step} | {f"full:{i}": full_step(h) for i, h in enumerate(hypernets)}
    for h in hypernets:
        h.train()
    try:
        with torch.enable_grad():
            t = median_times(steps, device, warmup, repeats)
    finally:
        for h in hypernets:
            h.eval()
    out = {
        "train_step_s": t["full:0"],
        "student_fwd_bwd_s": t["student"],
        "train_step_vs_student": t["full:0"] / t["student"],
    }
    if others:  # aligned with the dataset's hypernet coordinate
        out["train_step_by_hypernet_s"] = [t[f"full:{i}"] for i in range(len(hypernets))]
    return out


# --------------------------------------------------------------------------- summary


def _ratio(a: float, b: float) -> str:
    r = a / b if b else np.nan
    return "n/a" if not np.isfinite(r) else f"{r:,.1f}x" if r >= 10 else f"{r:.2f}x"


def _mib(n: float) -> str:
    return "n/a" if not np.isfinite(n) else f"{n / 2**20:,.1f}"


def overhead_per_round(ds: xr.Dataset) -> list[dict]:
    """Rows of ``f2l / no_video`` and ``f2l_merged / no_video`` TTFT ratios taken within each round, the
    time to apply and remove each kind of adapter (``apply_s``), and what one unmerged question costs
    with applying included (medians: apply + TTFT over the base's TTFT)."""
    rounds = ds["ttft_rounds_s"]
    rows = []
    for f in ds["frames"].values:
        r = rounds.sel(frames=f)
        row = {"frames": int(f)}
        for method in ("f2l", "f2l_merged"):
            ratio = (r.sel({"method": method}) / r.sel({"method": "no_video"})).values  # not sel(method=)
            row[f"{method} / no_video per round"] = (
                f"{_ratio(np.median(ratio), 1)} ({_ratio(ratio.min(), 1)}-{_ratio(ratio.max(), 1)})"
            )
        if "apply_s" in ds:
            apply = ds["apply_s"].sel(frames=f)
            row["apply + remove ms (unmerged / merged)"] = " / ".join(
                f"{float(apply.sel({'method': m})) * 1e3:,.2f}" for m in ("f2l", "f2l_merged")
            )
            ttft = ds["ttft_s"].sel(frames=f)
            row["unmerged query with apply / no_video"] = _ratio(
                float(apply.sel({"method": "f2l"}) + ttft.sel({"method": "f2l"})),
                float(ttft.sel({"method": "no_video"})),
            )
        rows.append(row)
    return rows


def internalize_table(ds: xr.Dataset) -> str:
    """Each hypernetwork's internalization time per frame count (and its training step, when measured),
    with its ratio to the first's."""
    first = ds["internalize_s"].isel(hypernet=0)
    steps = json.loads(ds.attrs.get("train_step_by_hypernet_s", "null"))  # provenance stores lists as JSON
    rows = []
    for i, h in enumerate(ds["hypernet"].values):
        t = ds["internalize_s"].sel(hypernet=h)
        row = {
            "hypernet": f"{h} ({ds['hypernet_kind'].sel(hypernet=h).item()}, "
            f"{int(ds['hypernet_parameters'].sel(hypernet=h)):,} parameters)"
        }
        for f in ds["frames"].values:
            row[f"{int(f)} frames"] = (
                f"{float(t.sel(frames=f)):.3f} s ({_ratio(t.sel(frames=f), first.sel(frames=f))})"
            )
        if steps is not None:
            row["training step"] = f"{steps[i] * 1e3:.0f} ms ({_ratio(steps[i], steps[0])})"
        rows.append(row)
    return markdown_table(rows)


def summarize(ds: xr.Dataset) -> str:
    """Markdown tables: ratios within this run, per frame count, then storage and memory."""
    timing, storage = [], []
    for f in ds["frames"].values:
        v = {name: ds[name].sel(frames=f).to_series() for name in _VARIABLES if name not in _NOT_PER_METHOD}
        t, pre, tok, peak = v["ttft_s"], v["preprocess_s"], v["input_tokens"], v["peak_memory_bytes"]
        timing.append(
            {
                "frames": int(f),
                "input tokens direct / f2l": f"{tok['direct']:,.0f} / {tok['f2l']:,.0f}",
                "reduction": f"{float(ds['token_reduction'].sel(frames=f)):,.0f}x",
                "TTFT direct ms": f"{t['direct'] * 1e3:,.1f}",
                "TTFT f2l ms": f"{t['f2l'] * 1e3:,.1f}",
                "direct / f2l": _ratio(t["direct"], t["f2l"]),
                "kv_cache / f2l": _ratio(t["kv_cache"], t["f2l"]),
                "f2l / no_video (unmerged / merged)": f"{_ratio(t['f2l'], t['no_video'])} / "
                f"{_ratio(t['f2l_merged'], t['no_video'])}",
                "internalize / KV prefill": f"{pre['f2l']:.2f} s / {pre['kv_cache']:.2f} s "
                f"({_ratio(pre['f2l'], pre['kv_cache'])})",
            }
        )
        stored, pre_peak = v["stored_bytes"], v["preprocess_peak_memory_bytes"]
        storage.append(
            {
                "frames": int(f),
                "adapter KiB": f"{stored['f2l'] / 1024:,.0f}",
                "KV cache KiB": f"{stored['kv_cache'] / 1024:,.0f}",
                "KV / adapter": _ratio(stored["kv_cache"], stored["f2l"]),
                "peak MiB query direct / f2l / kv_cache": " / ".join(
                    _mib(peak[m]) for m in ("direct", "f2l", "kv_cache")
                ),
                "peak MiB internalize / KV prefill": f"{_mib(pre_peak['f2l'])} / {_mib(pre_peak['kv_cache'])} "
                f"({_ratio(pre_peak['f2l'], pre_peak['kv_cache'])})",
            }
        )
    attrs = ds.attrs
    lines = [
        f"# Efficiency ({attrs.get('base_model', '?')}, {attrs.get('device', '?')}, clip {ds['clip'].item()})",
        "",
        f"Question: {attrs.get('question', '')!r}. Medians of {attrs.get('repeats', '?')} rounds after "
        f"{attrs.get('warmup', '?')} warm-up, each round timing every method once (the text-only queries "
        f"f2l, f2l_merged and no_video: {attrs.get('overhead_rounds', '?')} rounds); every ratio is taken "
        "within this run.",
        "",
        markdown_table(timing),
        "The adapter's query overhead paired within each round, median (range over rounds): merged "
        "serving does the base's work exactly, so its spread is the measurement's noise. Applying the "
        "adapter and removing it again is paid per query outside the TTFT (merging, once per adapter "
        "when it serves many questions); the last column adds it back for one unmerged question.",
        "",
        markdown_table(overhead_per_round(ds)),
        markdown_table(storage),
    ]
    if "internalize_s" in ds and ds.sizes.get("hypernet", 1) > 1:
        lines += ["Internalization by hypernetwork (same clip, same rounds):", "", internalize_table(ds)]
    if "batch_f2l_vs_no_video" in attrs:
        lines.append(
            f"Batched unmerged: {attrs['batch_size']} questions in one batch, row i under clip i's own "
            f"adapter, TTFT {attrs['batch_ttft_f2l_s'] * 1e3:.1f} ms vs "
            f"{attrs['batch_ttft_no_video_s'] * 1e3:.1f} ms with no adapter: "
            f"{_ratio(attrs['batch_f2l_vs_no_video'], 1)} paired per round (median; "
            f"{_ratio(attrs['batch_f2l_vs_no_video_min'], 1)}-{_ratio(attrs['batch_f2l_vs_no_video_max'], 1)}).\n"
        )
    if "train_step_vs_student" in attrs:
        lines.append(
            f"Training step (encode + hypernetwork + student fwd/bwd) {attrs['train_step_s'] * 1e3:.0f} ms vs "
            f"student fwd/bwd alone {attrs['student_fwd_bwd_s'] * 1e3:.0f} ms: "
            f"{attrs['train_step_vs_student']:.2f}x.\n"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command


def run(cfg: EfficiencyConfig) -> xr.Dataset:
    torch.manual_seed(cfg.seed)
    pipeline = Frames2LoRA.from_pretrained(cfg.hypernet, device=cfg.device)
    frames = frame_counts(cfg)
    examples = study_examples(cfg.manifest, cfg.split, cfg.clips, cfg.train_frames)
    overhead, rounds = {}, max(cfg.overhead_rounds, cfg.repeats)
    others = [Frames2LoRA.from_pretrained(h, base=pipeline.base) for h in cfg.compare_hypernets]
    if rank() == 0:
        clips = [pipeline.example_frames(e, cfg.train_frames) for e in examples]
        overhead = batched_overhead(pipeline, clips, cfg.question, cfg.max_new_tokens, cfg.warmup, rounds)
        if cfg.training:
            overhead |= training_overhead(pipeline, clips, cfg.question, cfg.warmup, cfg.repeats, others)
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "fresh")} | {"frames": list(frames)}
    attrs = provenance(
        pipeline,
        seed=cfg.seed,
        device=str(pipeline.base.device),
        torch=torch.__version__,
        question=cfg.question,
        warmup=cfg.warmup,
        repeats=cfg.repeats,
        overhead_rounds=rounds,
        **overhead,
    )
    study = Study(cfg.out, "efficiency", config=config, attrs=attrs, dim="frames", fresh=cfg.fresh)
    units = [str(f) for f in frames]
    study.run(
        units, lambda unit: measure_frames(pipeline, cfg, examples[0], int(unit), others), desc="frame counts"
    )
    return study.finish(units, summary=summarize)


def main(argv: list[str] | None = None) -> int:
    return study_main(
        "efficiency",
        EfficiencyConfig,
        run,
        argv,
        "Query TTFT, preprocessing, tokens, stored bytes and peak memory of f2l against "
        "video-in-context answering, per frame count.",
    )


if __name__ == "__main__":
    raise SystemExit(main())
