"""Performance of Frames2LoRA against video-in-context answering, measured as ratios in one run.

    python -m f2l.bench                          # shipped tiny base + hypernetwork, CPU
    python -m f2l.bench --device cuda --frames 12 64 256 1024 --out bench.json

For each frame count (same held-out world clip, sampled more densely):

- query TTFT with the adapter vs with the video in context (the paper reports 6-80x),
- adapter query TTFT vs the base answering the same text with no adapter (the floor, 1.0x), unmerged
  (batched LoRA wrappers) and merged (weights folded in),
- internalization (base forward + hypernetwork, the reusable preprocessing) vs one direct prefill,
- peak memory of internalization vs the direct prefill (CUDA: ``max_memory_allocated``; CPU: the
  peak resident set of a fresh subprocess per measurement),

and once: a training step vs a teacher-free student forward+backward. Every number is the median of
``--repeats`` timed runs after ``--warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from f2l.adapter import Adapter, use_adapter
from f2l.answer import answer
from f2l.chat import model_inputs, prompt_text
from f2l.encode import internalization_inputs
from f2l.io import atomic_write_json
from f2l.pipeline import Frames2LoRA
from f2l.world import render_clip

CLIP_SEED = 1_010_000
QUESTION = "what color is the background?"


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_ttft(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(fn().ttft_s for _ in range(repeats))


@torch.inference_mode()
def measure_frames(f2l: Frames2LoRA, frames: int, warmup: int, repeats: int) -> dict:
    base, device = f2l.base, f2l.base.device
    clip = render_clip(CLIP_SEED, num_frames=frames, size=base.model.config.vision_config.image_size).frames
    adapter = f2l.internalize_batch([clip])[0]
    direct_inputs = model_inputs(
        base.processor, [prompt_text(base.processor, QUESTION, with_video=True)], [clip], device=device
    )
    enc_inputs = internalization_inputs(base, [clip])
    row = {
        "frames": frames,
        "direct_input_tokens": int(direct_inputs["attention_mask"].sum()),
        "adapter_input_tokens": answer(base, None, QUESTION, max_new_tokens=1).input_tokens,
        "ttft_direct_s": median_ttft(lambda: answer(base, clip, QUESTION, max_new_tokens=1), warmup, repeats),
        "ttft_adapter_s": median_ttft(
            lambda: f2l.generate(adapter, QUESTION, max_new_tokens=1), warmup, repeats
        ),
        "ttft_adapter_merged_s": median_ttft(
            lambda: f2l.generate(adapter, QUESTION, max_new_tokens=1, merged=True), warmup, repeats
        ),
        "ttft_base_text_s": median_ttft(
            lambda: answer(base, None, QUESTION, max_new_tokens=1), warmup, repeats
        ),
        "prefill_direct_s": median_time(lambda: base.model(**direct_inputs), device, warmup, repeats),
        "internalize_s": median_time(lambda: f2l.hypernet(base, enc_inputs), device, warmup, repeats),
        "adapter_bytes": adapter.nbytes,
    }
    row["kv_cache_bytes"] = _kv_cache_bytes(base, row["direct_input_tokens"])
    row["ttft_speedup"] = row["ttft_direct_s"] / row["ttft_adapter_s"]
    row["adapter_vs_base_ttft"] = row["ttft_adapter_s"] / row["ttft_base_text_s"]
    row["merged_vs_base_ttft"] = row["ttft_adapter_merged_s"] / row["ttft_base_text_s"]
    row["internalize_vs_prefill"] = row["internalize_s"] / row["prefill_direct_s"]
    return row


def _kv_cache_bytes(base, tokens: int) -> int:
    c = base.model.config.text_config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * tokens * base.dtype.itemsize


def peak_memory(hypernet: str, frames: int, what: str, device: str) -> int:
    """Peak memory (bytes) of one internalization or one direct prefill, in a fresh process."""
    code = (
        "from f2l.bench import _peak_child\n"
        f"print(_peak_child({hypernet!r}, {frames}, {what!r}, {device!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def _peak_child(hypernet: str, frames: int, what: str, device: str) -> int:
    f2l = Frames2LoRA.from_pretrained(hypernet, device=device)
    base = f2l.base
    clip = render_clip(CLIP_SEED, num_frames=frames, size=base.model.config.vision_config.image_size).frames
    if what == "internalize":
        inputs = internalization_inputs(base, [clip])
    else:
        inputs = model_inputs(
            base.processor,
            [prompt_text(base.processor, QUESTION, with_video=True)],
            [clip],
            device=base.device,
        )

    def run():
        with torch.inference_mode():
            if what == "internalize":
                f2l.hypernet(base, inputs)
            else:
                base.model(**inputs, use_cache=True)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        return torch.cuda.max_memory_allocated() - before
    return _peak_rss_growth(run)


def _peak_rss_growth(fn: Callable[[], object], interval_s: float = 0.0005) -> int:
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


def training_overhead(f2l: Frames2LoRA, warmup: int, repeats: int) -> dict:
    """A distillation step (encode + hypernetwork + adapted student fwd/bwd) vs the student forward +
    backward alone with a fixed adapter (teacher targets are cached, so they cost nothing per step)."""
    base, hypernet, device = f2l.base, f2l.hypernet, f2l.base.device
    clips = [
        render_clip(CLIP_SEED + i, num_frames=8, size=base.model.config.vision_config.image_size).frames
        for i in range(4)
    ]
    texts = [prompt_text(base.processor, QUESTION, with_video=False) + " grey.<end_of_utterance>"] * 8
    student = base.tokenizer(texts, return_tensors="pt").to(device)
    index = torch.arange(4, device=device).repeat_interleave(2)
    hypernet.train()

    def full_step():
        factors = hypernet(base, internalization_inputs(base, clips))
        rows = {m: (a[index], b[index]) for m, (a, b) in factors.items()}
        with use_adapter(base.model, Adapter(rows, scaling=hypernet.config.scaling)):
            base.model(**student).logits.float().logsumexp(-1).mean().backward()
        hypernet.zero_grad()

    fixed = f2l.internalize_batch(clips)
    fixed_rows = {
        m: (a[index].clone().requires_grad_(), b[index].clone().requires_grad_())
        for m, (a, b) in fixed.factors.items()
    }

    def student_step():
        with use_adapter(base.model, Adapter(fixed_rows, scaling=hypernet.config.scaling)):
            base.model(**student).logits.float().logsumexp(-1).mean().backward()

    with torch.enable_grad():
        t_full = median_time(full_step, device, warmup, repeats)
        t_student = median_time(student_step, device, warmup, repeats)
    hypernet.eval()
    return {
        "train_step_s": t_full,
        "student_fwd_bwd_s": t_student,
        "train_step_vs_student": t_full / t_student,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m f2l.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hypernet", default="tiny")
    parser.add_argument("--device", default=None)
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 64, 256, 1024])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-measurement subprocesses")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    f2l = Frames2LoRA.from_pretrained(args.hypernet, device=args.device)
    device = str(f2l.base.device)
    rows = []
    for frames in args.frames:
        row = measure_frames(f2l, frames, args.warmup, args.repeats)
        if not args.no_memory:
            row["peak_internalize_bytes"] = peak_memory(args.hypernet, frames, "internalize", device)
            row["peak_prefill_bytes"] = peak_memory(args.hypernet, frames, "prefill", device)
            row["peak_internalize_vs_prefill"] = row["peak_internalize_bytes"] / max(
                row["peak_prefill_bytes"], 1
            )
        rows.append(row)
        print(
            f"{frames:>5} frames: TTFT direct {row['ttft_direct_s'] * 1e3:8.1f} ms, adapter "
            f"{row['ttft_adapter_s'] * 1e3:6.1f} ms ({row['ttft_speedup']:.1f}x); adapter/base "
            f"{row['adapter_vs_base_ttft']:.2f}x unmerged, {row['merged_vs_base_ttft']:.2f}x merged; "
            f"internalize/prefill {row['internalize_vs_prefill']:.2f}x"
            + (
                f"; peak memory internalize/prefill {row['peak_internalize_vs_prefill']:.2f}x"
                if "peak_internalize_vs_prefill" in row
                else ""
            ),
            flush=True,
        )
    overhead = training_overhead(f2l, args.warmup, args.repeats)
    print(f"training step / student fwd+bwd: {overhead['train_step_vs_student']:.2f}x", flush=True)
    result = {
        "device": device,
        "torch": torch.__version__,
        "hypernet": f2l.hypernet_id,
        "frames": rows,
        "training": overhead,
    }
    if args.out:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
