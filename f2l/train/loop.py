"""The distillation run, ``train(cfg)``: set up (base, pool, targets, state cache, a fresh hypernetwork or
``init_from``'s weights), resume from the run's last checkpoint, then step, log, evaluate and checkpoint
until ``cfg.steps``; with ``cfg.ship`` the last checkpoint is packaged for ``Frames2LoRA.from_pretrained``.
Under ``torchrun`` every rank runs it (DDP); rank 0 alone writes the run directory.

Runs are resumable to the bit: the data of step ``s`` is a pure function of (seed, s), and a checkpoint
holds the hypernetwork, the optimizer, the step and the RNG states, so a run killed at any point and
restarted with the same command continues from its last checkpoint and ends with the same weights.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from f2l.adapter import install_lora
from f2l.camera_head import CameraHead, camera_classes, hypernet_of
from f2l.config import config_dict
from f2l.distributed import init_distributed, world_size
from f2l.distributed import rank as dist_rank
from f2l.hypernet import KINDS, Hypernet, load_hypernet
from f2l.io import atomic_write_json
from f2l.models import Base, load_base
from f2l.pipeline import check_compatible, resolve_hypernet
from f2l.train.batches import StepBatches
from f2l.train.checkpoints import latest_checkpoint, load_run_checkpoint, save_run_checkpoint
from f2l.train.config import TrainConfig
from f2l.train.data import build_targets, check_labels, fill_state_cache, load_examples, target_scores
from f2l.train.evaluate import evaluate
from f2l.train.losses import student_loss
from f2l.train.schedule import lr_factor


def build_hypernet(cfg: TrainConfig, base: Base) -> Hypernet:
    """A fresh hypernetwork of ``cfg.kind`` with its section's settings, shaped for ``base``."""
    settings = cfg.hypernet
    config = type(settings).for_base(base, base_id=f"{cfg.base}@{base.digest}", **settings.settings())
    return KINDS[cfg.kind](config)


def start_from(trained: Hypernet | CameraHead, init_from: str, base: Base) -> None:
    """Load the weights of ``init_from`` (a hypernetwork directory or shipped name) into ``trained``'s
    hypernetwork: it must be of the same kind and architecture and made for this base's weights. A
    ``CameraHead`` also takes the head a training checkpoint holds beside it (so a staged recipe continues
    its head), and keeps its fresh one where there is none (a packaged hypernetwork)."""
    hypernet = hypernet_of(trained)
    path = resolve_hypernet(init_from)
    loaded = load_hypernet(path, device=next(hypernet.parameters()).device)
    check_compatible(loaded.config, base)
    if loaded.kind != hypernet.kind or dataclasses.replace(
        loaded.config, base_id=None
    ) != dataclasses.replace(hypernet.config, base_id=None):
        raise ValueError(
            f"--init-from {init_from}: a {loaded.kind} hypernetwork {loaded.config} is not the "
            f"{hypernet.kind} one this run builds ({hypernet.config}); set the run's hypernetwork section "
            "to it"
        )
    hypernet.load_state_dict(loaded.state_dict())
    if isinstance(trained, CameraHead):
        trained.load_head(path)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run ``cfg`` (resuming its run directory), return its summary (rank 0; ``{}`` on the others)."""
    init_distributed()
    rank, world = dist_rank(), world_size()
    if cfg.clips_per_step % world:
        raise ValueError(f"{cfg.clips_per_step} clips a step must divide evenly across {world} ranks")
    device = cfg.device or (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    run_dir = cfg.out_dir
    base = load_base(cfg.base, device=device)
    install_lora(base.model, cfg.hypernet.target_modules)
    frame_size = cfg.frame_size or base.model.config.vision_config.image_size
    pool, val = load_examples(cfg)
    check_labels(cfg, pool)
    if cfg.camera_weight:
        camera_classes(pool)  # every clip has its ground truth, or a one-line error now
    targets = build_targets(base, cfg, pool, frame_size)
    states = fill_state_cache(base, cfg, pool, frame_size) if cfg.state_cache else None
    scored_targets = {}
    if cfg.stage == "chunk" and cfg.targets_from == "teacher" and rank == 0:
        scored_targets = target_scores(base, cfg, pool, targets)
        print(
            "targets' token-F1 against the references by segments: "
            + ", ".join(f"{n}: {v:.3f}" for n, v in scored_targets.items()),
            file=sys.stderr,
        )

    torch.manual_seed(cfg.seed)
    hypernet = build_hypernet(cfg, base).to(device).train()
    trained = CameraHead(hypernet).to(device) if cfg.camera_weight else hypernet  # what the optimiser moves
    if cfg.init_from and latest_checkpoint(run_dir) is None:
        start_from(trained, cfg.init_from, base)
    model = trained
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            trained, device_ids=[torch.cuda.current_device()] if torch.cuda.is_available() else None
        )
    opt = torch.optim.AdamW(
        trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas)
    )
    start = 0
    resume_from = latest_checkpoint(run_dir)
    if resume_from is not None:
        start = load_run_checkpoint(resume_from, trained, opt)
        if rank == 0:
            print(f"f2l.train: resuming {run_dir} from step {start}", file=sys.stderr)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config_dict(cfg))
    writer = None
    if cfg.tensorboard and rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(run_dir / "tensorboard")
        except ImportError:
            writer = None
    log_path = run_dir / "log.jsonl"
    autocast = torch.autocast(
        "cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and str(device).startswith("cuda")
    )

    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        desc="f2l.train",
        unit="step",
        disable=not cfg.progress or rank != 0,
        dynamic_ncols=True,
    )
    last_time, last_logged = time.time(), start
    loader = torch.utils.data.DataLoader(
        StepBatches(cfg, base, pool, targets, start, frame_size, rank, world, hypernet.context, states),
        batch_size=None,  # every item is already one step's batch
        num_workers=cfg.workers,
        pin_memory=str(device).startswith("cuda"),
    )
    for step, batch in zip(bar, loader, strict=True):
        assert batch["step"] == step
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, cfg.warmup, cfg.min_lr_ratio)
        with autocast:
            loss, stats = student_loss(model, base, batch, hypernet, cfg, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # after backward the gradients are all-reduced, so grad_norm is the same number on every rank:
        # a non-finite loss anywhere makes it non-finite everywhere, and all ranks stop together
        grad_norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), cfg.grad_clip)
        evaluating = (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps
        saving = (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps
        if (step + 1) % cfg.log_every == 0 or evaluating or saving:  # the only host syncs of a step
            if not torch.isfinite(grad_norm):
                raise FloatingPointError(
                    f"non-finite loss or gradient (loss {loss.item()}, grad norm {grad_norm.item()}) at step "
                    f"{step + 1}: stopping before the update. The last good checkpoint "
                    f"({latest_checkpoint(run_dir) or 'none yet'}) is untouched; lower --lr or check the "
                    f"data, then rerun the same command to resume from it."
                )
            opt.step()
            if rank == 0:
                now = time.time()
                record = {
                    "step": step + 1,
                    "loss": loss.item(),
                    "grad_norm": float(grad_norm),
                    "lr": opt.param_groups[0]["lr"],
                    "sec_per_step": (now - last_time) / (step + 1 - last_logged),
                    **{k: float(v) for k, v in stats.items()},
                }
                last_time, last_logged = now, step + 1
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                if evaluating:
                    scores = evaluate(base, hypernet, val, cfg, frame_size)
                    record.update({f"val_{k}": v for k, v in scores.items()})
                    bar.write(f"step {step + 1}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for k, v in record.items():
                        if k != "step":
                            writer.add_scalar(k, v, step + 1)
                if saving:
                    save_run_checkpoint(run_dir, step + 1, trained, opt, cfg, cfg.keep_last)
        else:
            opt.step()
        if dist.is_initialized():
            dist.barrier()

    summary = {}
    if rank == 0:
        final = latest_checkpoint(run_dir)
        summary = {"steps": cfg.steps, "checkpoint": str(final)}
        if scored_targets:
            summary["targets_token_f1"] = scored_targets
        records = (
            [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
        )
        evals = [r for r in records if "val_f2l" in r]
        if evals:
            summary["val"] = {k[4:]: v for k, v in evals[-1].items() if k.startswith("val_")}
            print(
                "held-out token-F1 (val): " + ", ".join(f"{k} {v:.3f}" for k, v in summary["val"].items()),
                file=sys.stderr,
            )
        atomic_write_json(run_dir / "summary.json", summary)
        if cfg.ship:
            from f2l.pipeline import package_hypernet

            shipped = {"steps": cfg.steps, "val_token_f1": summary.get("val", {})}
            package_hypernet(final, cfg.ship, base=cfg.base, extra={"summary": shipped})
            print(f"f2l.train: packaged {final} -> {cfg.ship}", file=sys.stderr)
        if writer is not None:
            writer.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary
