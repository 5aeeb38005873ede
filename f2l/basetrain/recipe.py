"""The recipe of a shipped base: the pretraining stages, in order, that build it (the tiny from
nothing, the small from the tiny, the smol's vision front against SmolLM2).

    python -m f2l.basetrain.recipe                     # rebuild f2l/checkpoints/tiny
    python -m f2l.basetrain.recipe --preset smol       # the smol's vision front (f2l/checkpoints/smol)
    python -m f2l.basetrain.recipe --work runs/recipe --out /tmp/tiny

A from-scratch VLM this small does not reach the shipped base in one run: the first stage learns to
see at a high learning rate, later ones refine at a low one with fresh auxiliary heads (a trained
base jolted by a high rate loses its colour binding within a few dozen steps; docs/bases.md). Each stage is one ``f2l.basetrain.pretrain`` run written to ``<work>/<preset>-stage<i>`` and
continuing the stage before. A stage whose directory already holds a finished checkpoint of the same
settings is not run again, and an interrupted stage resumes from its own snapshot, so the same command
picks a rebuild up wherever it stopped (a stage after one that was trained again is trained again
too). The last stage's checkpoint goes to ``--out`` (swapped into place whole) with every stage's loss
log and, in ``pretrain_scores.json``, a ``stages`` list: each stage's command, settings, held-out
token-F1 and training time.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from f2l.basetrain.pretrain import PretrainConfig, pretrain
from f2l.config import config_program
from f2l.io import atomic_directory, atomic_write_json
from f2l.models import CHECKPOINTS_DIR

# Stage settings beyond PretrainConfig's defaults (the first stage is the plain `python -m
# f2l.basetrain.pretrain`); `out` and `init_from` are the recipe's to set.
RECIPES: dict[str, tuple[dict, ...]] = {
    "tiny": (
        {},
        {
            "steps": 1000,
            "lr": 5e-4,
            "warmup": 30,
            "head_warmup": 100,
            "eval_every": 250,
            "val_clips": 24,
        },
    ),
    # The second scale starts from the shipped tiny grown to its sizes (f2l.basetrain.grow: the same
    # answers at step 0), then trains at the tiny's refining rate with fresh heads. From nothing by the
    # tiny's stages it stayed on the answer-prior plateau, twice (docs/bases.md, "How it is built").
    "small": (
        {
            "grow_from": "tiny",
            "steps": 1500,
            "lr": 5e-4,
            "warmup": 30,
            "head_warmup": 100,
            "eval_every": 250,
            "val_clips": 24,
        },
    ),
    # A vision front for SmolLM2-135M-Instruct (frozen): the tiny's vision tower, a fresh connector into
    # 576 and the new image tokens' rows train against the LM's answers on the world (docs/smol.md).
    # No text-only turns: with the LM frozen they train nothing. No auxiliary heads: with them on (the
    # tiny's weights) the answer loss fell more slowly at equal steps (docs/smol.md, the one-change run).
    "smol": (
        {
            "vision_from": "tiny",
            "grounding_weight": 0.0,
            "temporal_weight": 0.0,
            "steps": 300,
            "batch_size": 4,
            "lr": 1e-3,
            "warmup": 30,
            "min_frames": 4,
            "max_frames": 8,
            "no_video_share": 0.0,
            "eval_every": 150,
            "val_clips": 2,
            "test_clips": 4,
            "save_every": 25,
        },
        {
            "seed": 1,  # the first stage's seed would draw its batches again
            "grounding_weight": 0.0,
            "temporal_weight": 0.0,
            "steps": 600,
            "batch_size": 4,
            "lr": 5e-4,
            "warmup": 30,
            "min_frames": 4,
            "max_frames": 8,
            "no_video_share": 0.0,
            "eval_every": 200,
            "val_clips": 2,
            "test_clips": 4,
            "save_every": 25,
        },
    ),
}


@dataclass
class RecipeConfig:
    preset: str = "tiny"
    work: str = "runs/recipe"  # where each stage's checkpoint is kept (a rebuild resumes from them)
    out: str | None = None  # default: the shipped checkpoint directory of the preset
    threads: int = 0  # 0: torch's default

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else CHECKPOINTS_DIR / self.preset


def stage_configs(cfg: RecipeConfig, stages: tuple[dict, ...]) -> list[PretrainConfig]:
    """One PretrainConfig per stage, each continuing from the directory of the one before."""
    out, previous = [], None
    for i, overrides in enumerate(stages, start=1):
        stage = PretrainConfig(
            preset=cfg.preset,
            threads=cfg.threads,
            **overrides,
            out=str(Path(cfg.work) / f"{cfg.preset}-stage{i}"),
            init_from=previous,
        )
        out.append(stage)
        previous = stage.out
    return out


def command(stage: PretrainConfig) -> str:
    """The ``python -m f2l.basetrain.pretrain`` line that runs this stage on its own."""
    default = PretrainConfig()
    flags = [
        f"--{f.name.replace('_', '-')} {getattr(stage, f.name)}"
        for f in fields(PretrainConfig)
        if f.name not in ("threads", "fresh") and getattr(stage, f.name) != getattr(default, f.name)
    ]
    return " ".join(["python -m f2l.basetrain.pretrain", *flags])


def _same_settings(stage: PretrainConfig, scores: dict) -> bool:
    """Whether a finished stage's recorded config is this stage's (the paths aside: the recipe sets them)."""
    recorded = {k: v for k, v in scores["config"].items() if k not in ("out", "init_from")}
    wanted = {k: v for k, v in stage.identity().items() if k not in ("out", "init_from")}
    default = asdict(PretrainConfig())  # a field added since the stage ran: it ran with the default
    return all(recorded.get(k, default[k]) == v for k, v in wanted.items())


def build(cfg: RecipeConfig, stages: tuple[dict, ...] | None = None) -> dict:
    """Run (or pick up) every stage, then ship the last one with the record of all of them."""
    stages = RECIPES[cfg.preset] if stages is None else stages
    configs = stage_configs(cfg, stages)
    records, trained = [], False
    for i, stage in enumerate(configs, start=1):
        scores_path = stage.out_dir / "pretrain_scores.json"
        summary = json.loads(scores_path.read_text()) if scores_path.is_file() else None
        if summary and _same_settings(stage, summary) and not trained:
            # (a stage after a retrained one starts from new weights: it reruns too)
            print(f"f2l.basetrain.recipe: stage {i} already finished in {stage.out_dir}", file=sys.stderr)
        else:
            print(f"f2l.basetrain.recipe: stage {i}/{len(configs)}: {command(stage)}", file=sys.stderr)
            summary = pretrain(stage)
            trained = True
        records.append(
            {
                "stage": i,
                "command": command(stage),
                "config": summary["config"],
                "log": f"pretrain_log_stage{i}.jsonl",
                "test_token_f1": {
                    "clips": summary["test_split"]["clips"],
                    "direct": summary["test"]["direct"]["token_f1"],
                    "no_video": summary["test"]["no_video"]["token_f1"],
                },
                "train_seconds": summary["train_seconds"],
            }
        )
    final = configs[-1].out_dir  # `summary` is the last stage's
    summary.update(
        recipe={"command": f"python -m f2l.basetrain.recipe --preset {cfg.preset}", **asdict(cfg)},
        stages=records,
        train_seconds=sum(r["train_seconds"] for r in records),
    )
    with atomic_directory(cfg.out_dir) as tmp:
        shutil.copytree(final, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("pretrain_log.jsonl"))
        for stage, record in zip(configs, records, strict=True):
            shutil.copyfile(stage.out_dir / "pretrain_log.jsonl", tmp / record["log"])
        atomic_write_json(tmp / "pretrain_scores.json", summary)
    print(
        f"f2l.basetrain.recipe: {len(records)} stages, test token-F1 direct "
        f"{summary['test']['direct']['token_f1']:.3f}, no-video {summary['test']['no_video']['token_f1']:.3f}"
        f" -> {cfg.out_dir}",
        file=sys.stderr,
    )
    return summary


parse_config, main = config_program(RecipeConfig, build, prog="python -m f2l.basetrain.recipe", doc=__doc__)

if __name__ == "__main__":
    sys.exit(main())
