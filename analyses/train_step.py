"""What one distillation step of ``f2l.train`` costs with the frozen base encoding the step's clips, and with
their states read from the state cache (``f2l.state_cache``), against the student's forward/backward alone.

    python -m analyses.train_step                        # the tiny preset's step: 8 clips x 2 prompts, 8 frames
    python -m analyses.train_step --hypernet paper-tiny  # the official design's

A step is what the training loop does with ``--workers 0``: the step's inputs prepared (``StepBatches``:
the clips rendered and run through the processor, or their states read from disk; the student rows), the
hypernetwork and the adapted student forward, backward, clipping and the AdamW update. ``student`` is the
adapted student's forward/backward alone under a fixed adapter (what ``analyses.efficiency`` divides by).
Rounds are interleaved (``analyses.efficiency.interleaved_rounds``), so drift falls on every variant
alike. The targets are the references' tokens with random top-k log-probs (the KL's arithmetic is what
costs, not its values). A timing taken anew each run (about a minute on 2 cores): ``<out>/train_step.json``
holds each variant's per-round seconds, the medians, their ratios and the cache's bytes per clip.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from analyses.efficiency_measures import interleaved_rounds
from f2l.adapter import use_adapter
from f2l.cli import entry_point
from f2l.config import parse_config
from f2l.data import world_manifest
from f2l.io import atomic_write_json
from f2l.pipeline import Frames2LoRA
from f2l.results import provenance
from f2l.state_cache import as_layers
from f2l.teacher import TeacherTarget
from f2l.train import StepBatches, TrainConfig, distillation_loss, fill_state_cache, student_loss
from f2l.train import parse_config as train_config
from probes.prompts import PromptSet

VARIANTS = ("encoded", "cached", "student")


@dataclass
class TrainStepConfig:
    out: str = "results"
    hypernet: str = "tiny"  # shipped name or directory of a packaged hypernetwork (and its base)
    preset: str = (
        "tiny"  # the f2l.train preset whose step is timed (batch, prompts, frames), --hypernet's net
    )
    clips: int = 16  # the pool the steps draw from
    state_cache: str = "runs/state-cache"
    warmup: int = 2
    repeats: int = 10
    seed: int = 0


def random_targets(base, pool, cfg: TrainConfig) -> dict:
    """The references' tokens, each with random top-``cfg.top_k`` teacher log-probs."""
    g = torch.Generator().manual_seed(0)
    eou = base.tokenizer.end_of_utterance_token
    targets = {}
    for e in pool:
        for p in PromptSet(cfg.qa_per_type).of(e):
            tokens = torch.tensor(
                base.tokenizer(f" {p.reference}{eou}", add_special_tokens=False)["input_ids"]
            )
            ids = torch.randint(5, len(base.tokenizer), (len(tokens), cfg.top_k), generator=g)
            targets[(e.id, p.prompt)] = TeacherTarget(tokens, ids, torch.randn(ids.shape, generator=g))
    return targets


def run(cfg: TrainStepConfig) -> dict:
    torch.manual_seed(cfg.seed)
    pipeline = Frames2LoRA.from_pretrained(cfg.hypernet, device="cpu")
    base, hypernet = pipeline.base, pipeline.hypernet
    train_cfg = train_config(["--preset", cfg.preset, "--state-cache", cfg.state_cache, "--no-progress"])
    pool = world_manifest("train", cfg.clips, frames=train_cfg.frames)
    size = base.model.config.vision_config.image_size
    targets = random_targets(base, pool, train_cfg)
    files = fill_state_cache(base, train_cfg, pool, size)
    batches = {
        "encoded": StepBatches(train_cfg, base, pool, targets, 0, size, 0, 1, hypernet.context),
        "cached": StepBatches(train_cfg, base, pool, targets, 0, size, 0, 1, hypernet.context, files),
    }
    hypernet.train().requires_grad_(True)
    opt = torch.optim.AdamW(hypernet.parameters(), lr=1e-12)  # the update's cost, not its effect
    step = {"encoded": 0, "cached": 0}

    def training_step(variant: str):
        def measure() -> float:
            start = time.perf_counter()
            batch = batches[variant][step[variant] % len(batches[variant])]
            step[variant] += 1
            loss, _ = student_loss(hypernet, base, batch, hypernet, train_cfg, "cpu")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hypernet.parameters(), train_cfg.grad_clip)
            opt.step()
            return time.perf_counter() - start

        return measure

    fixed = batches["cached"][0]
    with torch.no_grad():
        factors = hypernet(None, states=as_layers(fixed["states"], fixed["state_mask"]))
    rows = {
        m: (a[fixed["row_clip"]].requires_grad_(), b[fixed["row_clip"]].requires_grad_())
        for m, (a, b) in factors.items()
    }
    adapter = hypernet.to_adapter(rows)

    def student_step() -> float:
        """The adapted student's forward/backward on the step's rows under a fixed adapter."""
        start = time.perf_counter()
        with use_adapter(base.model, adapter):
            logits = base.model(input_ids=fixed["input_ids"], attention_mask=fixed["attention_mask"]).logits
        loss, _ = distillation_loss(logits, fixed["target_pos"], fixed["targets"], train_cfg)
        loss.backward()
        return time.perf_counter() - start

    rounds = interleaved_rounds(
        {"encoded": training_step("encoded"), "cached": training_step("cached"), "student": student_step},
        cfg.warmup,
        cfg.repeats,
    )
    hypernet.eval().requires_grad_(False)
    medians = {v: float(np.median(rounds[v])) for v in VARIANTS}
    entry_bytes = [files[e.id].stat().st_size for e in pool]
    result = {
        "config": asdict(cfg),
        "provenance": provenance(pipeline, seed=cfg.seed),
        "rounds_s": rounds,
        "median_s": medians,
        "encoded_vs_student": medians["encoded"] / medians["student"],
        "cached_vs_student": medians["cached"] / medians["student"],
        "encoded_vs_cached": medians["encoded"] / medians["cached"],
        "cache_bytes_per_clip": float(np.mean(entry_bytes)),
    }
    atomic_write_json(f"{cfg.out}/train_step.json", result)
    print(
        f"step with the base encoding {medians['encoded'] * 1e3:.0f} ms ({result['encoded_vs_student']:.2f}x the "
        f"student's forward/backward, {medians['student'] * 1e3:.0f} ms), reading the state cache "
        f"{medians['cached'] * 1e3:.0f} ms ({result['cached_vs_student']:.2f}x); "
        f"{result['cache_bytes_per_clip'] / 1024:.0f} KiB of states a clip -> {cfg.out}/train_step.json",
        file=sys.stderr,
    )
    return result


@entry_point
def main(argv: list[str]) -> int:
    run(
        parse_config(
            TrainStepConfig, argv, prog="python -m analyses.train_step", description=__doc__.split("\n\n")[0]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
