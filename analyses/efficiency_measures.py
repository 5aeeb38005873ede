"""How the efficiency study measures a cost: wall time in interleaved rounds, and peak memory.

Times are medians over rounds that run every measurement once, so drift falls on all alike; peak memory
is CUDA's allocator statistics, or on CPU the resident-set growth of the call in a fresh process
(docs/performance.md#what-the-study-measures).
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from analyses.common import study_examples
from f2l.answer import answer, prefill_video, synchronize
from f2l.pipeline import Frames2LoRA
from f2l.video import Frames

if TYPE_CHECKING:
    from analyses.efficiency import EfficiencyConfig


def timed(fn: Callable[[], object], device) -> Callable[[], float]:
    """``fn`` as a measurement: its wall time in seconds, the device synchronised on both sides."""

    def measure() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - start

    return measure


def interleaved_rounds(
    measures: dict[str, Callable[[], float]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Each measurement's value in each of ``repeats`` rounds, after ``warmup`` untimed rounds.

    Each round runs every measurement once, starting one further along the list each round, rather
    than one measurement's repeats back to back: whatever drifts during a run (clocks, caches, the
    host's other load) then falls on every method alike, which is what their ratios need. On a GPU a
    short query is bound by the host issuing kernels, and blocks of repeats measured one method after
    another disagreed between methods doing identical work (docs/performance.md)."""
    names = list(measures)
    for _ in range(warmup):
        for name in names:
            measures[name]()
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            values[name].append(measures[name]())
    return values


def medians(rounds: dict[str, list[float]]) -> dict[str, float]:
    """Each measurement's median over the rounds it was timed in (NaN marks a round it sat out)."""
    return {name: float(np.nanmedian(v)) for name, v in rounds.items()}


def median_times(fns: dict[str, Callable[[], object]], device, warmup: int, repeats: int) -> dict[str, float]:
    """The median wall time of each of ``fns``, timed in interleaved rounds."""
    return medians(interleaved_rounds({k: timed(fn, device) for k, fn in fns.items()}, warmup, repeats))


# --------------------------------------------------------------------------- peak memory


def memory_probe(
    pipeline: Frames2LoRA, clip: Frames, what: str, question: str, max_new_tokens: int
) -> Callable[[], object]:
    """The call whose peak memory ``what`` names (a method's query, or "internalize" / "prefill"), with
    its setup already done: the adapter made for f2l, the video prefilled for kv_cache."""
    base = pipeline.base
    if what == "direct":
        return lambda: answer(base, clip, question, max_new_tokens=max_new_tokens)
    if what == "no_video":
        return lambda: answer(base, None, question, max_new_tokens=max_new_tokens)
    if what in ("f2l", "f2l_merged"):
        adapter = pipeline.internalize_batch([clip])[0]
        merged = what == "f2l_merged"
        return lambda: pipeline.generate(adapter, question, max_new_tokens=max_new_tokens, merged=merged)
    if what == "kv_cache":
        prefix = prefill_video(base, clip)
        return lambda: answer(base, None, question, prefix=prefix, max_new_tokens=max_new_tokens)
    if what == "internalize":
        return lambda: pipeline.internalize_batch([clip])
    if what == "prefill":
        return lambda: prefill_video(base, clip)
    raise ValueError(f"unknown memory measurement {what!r}")


def _release_freed_memory() -> None:
    """Give freed heap back to the OS (glibc), so that a setup's freed memory does not hide the next
    call's peak from the resident-set sampler."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_growth(fn: Callable[[], object], interval_s: float = 0.0005) -> int:
    """Peak resident-set growth while ``fn`` runs, sampled by a thread (CPU has no allocator stats)."""
    import threading

    import psutil

    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return max(peak, process.memory_info().rss) - baseline


def measure_peak(fn: Callable[[], object], device: torch.device | str) -> int:
    """Peak memory (bytes) that ``fn`` adds: CUDA allocator statistics, or resident-set growth on CPU."""
    if torch.device(device).type == "cuda":
        gc.collect()
        synchronize(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.inference_mode():
            fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated() - before)
    _release_freed_memory()
    with torch.inference_mode():
        return peak_rss_growth(fn)


def peak_memories(
    pipeline: Frames2LoRA, cfg: EfficiencyConfig, clip: Frames, frames: int, what: list[str]
) -> dict[str, int]:
    """Peak memory of each measurement in ``what`` at ``frames`` frames: in this process on CUDA; on CPU
    each in its own fresh process, forked from a server that has imported the libraries but never run a
    model (so a measurement does not pay the imports, and no allocator has held an earlier one's memory)."""
    device = pipeline.base.device
    if device.type == "cuda":
        return {
            w: measure_peak(memory_probe(pipeline, clip, w, cfg.question, cfg.max_new_tokens), device)
            for w in what
        }
    ctx = multiprocessing.get_context("forkserver")
    # the libraries, not this module: a child re-runs the main module, which must not be imported yet
    ctx.set_forkserver_preload(["f2l.pipeline", "analyses.common"])
    args = (cfg.hypernet, cfg.manifest, cfg.split, frames)
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return {w: pool.apply(_peak_child, (*args, w, cfg.question, cfg.max_new_tokens)) for w in what}


def _peak_child(
    hypernet: str,
    manifest: str | None,
    split: str,
    frames: int,
    what: str,
    question: str,
    max_new_tokens: int,
) -> int:
    """One measurement in a fresh CPU process (run by ``peak_memories``)."""
    pipeline = Frames2LoRA.from_pretrained(hypernet, device="cpu")
    clip = pipeline.example_frames(study_examples(manifest, split, 1, frames)[0], frames)
    with torch.inference_mode():
        probe = memory_probe(pipeline, clip, what, question, max_new_tokens)
    return measure_peak(probe, "cpu")
