"""What every study command shares: its settings, its command line, which clips it runs on, and how its
summary reports a per-prompt value (mean ± standard error across clips)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import xarray as xr

from f2l.answer import DEFAULT_MAX_NEW_TOKENS
from f2l.cli import entry_point
from f2l.config import parse_config
from f2l.data import Example, read_manifest, world_manifest
from f2l.distributed import init_distributed, rank
from f2l.eval.stats import mean_se
from f2l.pipeline import Frames2LoRA
from f2l.results import Study, provenance
from probes.controls import ADAPTERS, swap_partners
from probes.prompts import clip_means


@dataclass
class StudyConfig:
    """The settings every study has (each a command-line flag); a study's config subclasses it (through
    the shared settings below that it uses), adds its own fields and may give ``clips`` another default."""

    out: str = "results"  # directory of the study's .nc, .md and figures
    hypernet: str = "tiny"  # shipped name or directory of a packaged hypernetwork (and its base)
    manifest: str | None = None  # a JSONL manifest of clips; default: the world's split
    split: str = "test"  # the world split when no manifest is given
    clips: int = 8
    seed: int = 0
    device: str | None = None  # default: cuda when available
    full: bool = False  # the paper-scale version of the study
    fresh: bool = False  # discard an earlier, differently configured result instead of refusing

    full_clips: ClassVar[int] = 100  # the clip count of --full (at least)

    @property
    def num_clips(self) -> int:
        return max(self.clips, self.full_clips) if self.full else self.clips


# The settings most studies share, each declared once with its one default. A study's config subclasses
# those it uses, named last field first (a dataclass lists its last base's fields first, so that
# ``--help`` reads StudyConfig's, then these, then the study's own); a study that needs another default
# overrides it and says why.


@dataclass
class FramesConfig(StudyConfig):
    frames: int = 8  # frames sampled from each clip (the shipped hypernetworks' training length)


@dataclass
class PromptsConfig(StudyConfig):
    qa_per_type: int = 1  # questions of each QA type asked of a clip, besides every caption category


@dataclass
class AnswersConfig(StudyConfig):
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # the longest greedy answer, in tokens


@dataclass
class BatchConfig(StudyConfig):
    batch_size: int = 16  # rows a forward pass (or a generate) holds


@dataclass
class PromptSubsetConfig(PromptsConfig):
    prompts_per_clip: int | None = None  # default: every prompt of the clip


@dataclass
class ControlsConfig(StudyConfig):
    adapters: tuple[str, ...] = ADAPTERS  # the adapters probed: the real one and the negative controls


@dataclass
class AnswerStudyConfig(BatchConfig, AnswersConfig, PromptsConfig, FramesConfig):
    """A study that reads each clip at one frame count and asks it its prompts, answered greedily."""


def study_examples(manifest: str | None, split: str, clips: int, frames: int) -> list[Example]:
    """The first ``clips`` examples of a JSONL manifest, or of the world's ``split`` when none is given."""
    if manifest:
        examples = read_manifest(manifest)
        if not examples:
            raise ValueError(f"{manifest}: no examples")
        return examples[:clips]
    return world_manifest(split, clips, frames=frames)


def open_probe_study(
    cfg: FramesConfig, name: str, dim: str = "example_id", ignore: tuple[str, ...] = (), **attrs
) -> tuple[Frames2LoRA, dict[str, Example], Study]:
    """The opening of every clip-by-clip probe study: the seed, the pipeline, its clips by id (``cfg.frames``
    each), and the resumable ``Study`` of units merged along ``dim`` (a per-prompt dataset's
    ``example_id``, a per-clip one's ``clip``), keyed by the settings that change a clip's numbers: not
    where it is written, nor how many clips (a --full run reuses the clips a default run finished), nor
    ``ignore``."""
    torch.manual_seed(cfg.seed)
    pipeline = Frames2LoRA.from_pretrained(cfg.hypernet, device=cfg.device)
    examples = {e.id: e for e in study_examples(cfg.manifest, cfg.split, cfg.num_clips, cfg.frames)}
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "fresh", "clips", "full", *ignore)}
    study = Study(
        cfg.out,
        name,
        config=config,
        attrs=provenance(pipeline, seed=cfg.seed, **attrs),
        dim=dim,
        fresh=cfg.fresh,
    )
    return pipeline, examples, study


def study_partners(cfg: FramesConfig, adapters: Sequence[str]) -> dict[str, Example]:
    """The swap partners of a study's clips when ``adapters`` holds the swapped control (else none): each
    clip's is the next clip of the manifest (or world split), whatever the number of clips run, so that a
    resumed or extended study pairs every clip as before."""
    if "swapped" not in adapters:
        return {}
    return swap_partners(study_examples(cfg.manifest, cfg.split, cfg.num_clips + 1, cfg.frames))


def clip_mean_se(da: xr.DataArray, fmt: str = "+.3f") -> str:
    """``"mean ± se"`` across clips of each clip's mean over its prompts (``probes.prompts.clip_means``;
    NaN skipped), ``fmt`` the mean's format; ``"n/a"`` when no clip has a value."""
    mean, se = mean_se(clip_means(da).values)
    return "n/a" if math.isnan(mean) else f"{mean:{fmt}} ± {se:.3f}"


def study_main(
    name: str, config_cls: type, run: Callable[..., xr.Dataset], argv: Sequence[str] | None, description: str
) -> int:
    """The body of every ``python -m analyses.<name>``: join torchrun's group when launched by it, parse the
    study's config, run (or resume) it, and on rank 0 draw its figures beside the ``.nc`` and ``.md``.
    A user's mistake (partial results of another config, a missing manifest...) ends in one line
    (``f2l.cli``)."""

    @entry_point(interrupted="interrupted; rerun the same command to resume")
    def main(argv: list[str]) -> int:
        init_distributed()
        cfg = parse_config(config_cls, argv, prog=f"python -m analyses.{name}", description=description)
        ds = run(cfg)
        if rank() == 0:
            from analyses.figures import save_study_figures  # plotting libraries load only here

            figures = save_study_figures(name, ds, cfg.out)
            print(f"wrote {cfg.out}/{name}.nc and {cfg.out}/{name}.md" + "".join(f", {p}" for p in figures))
        return 0

    return main(argv)
