"""How many singular directions of the generated update carry the video, and does a singular direction
matter more than a random edit of the same size?

Per clip, in every layer and module, only the top-k singular directions of the adapter's update are kept
(k = 0..r), and one direction at a time is removed (the singular direction, or a random rank-one edit of
the same norm); every prompt is re-answered with no visual tokens and re-scored. An adapter with a static
rank block adds two variants: only its generated, only its static slots. ``python -m
analyses.rank_ablation [--full]`` writes ``<out>/rank_ablation.nc`` (schema: ``probes.rank_ablation``),
``.md`` and figures; method: docs/probes/rank_ablation.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from analyses.common import AnswerStudyConfig, clip_mean_se
from analyses.study import ProbeRun, ProbeStudy, counts, metric_of
from f2l.data import Example
from f2l.results import markdown_table
from probes.rank_ablation import rank_ablation

NAME = "rank_ablation"


@dataclass
class RankAblationConfig(AnswerStudyConfig):
    """Settings of the rank-ablation study (every field is a command-line flag)."""

    clips: int = 4
    ks: tuple[int, ...] | None = None
    metric: str = "token_f1"
    batch_size: int = 64  # a clip's edited adapters x prompts are hundreds of rows: fewer, larger generates


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    return rank_ablation(run.pipeline, [example], **run.kwargs())


def report(ds: xr.Dataset) -> list[str]:
    """Score per k, the drop per removed direction (svd against random), energy per direction."""
    metric = metric_of(ds)
    lines = [
        f"{counts(ds)}; full adapter (f2l) {float(ds['full_score'].mean()):.3f}. Means ± standard error "
        "across clips.\n"
    ]
    full = ds["full_score"]
    rows = [
        {
            "k": int(k),
            metric: clip_mean_se(ds["topk_score"].sel(k=k), ".3f"),
            "- full": clip_mean_se(ds["topk_score"].sel(k=k) - full),
        }
        for k in ds["k"].values
    ]
    lines.append("Keeping only the top-k singular directions (k = 0: the base with no video):\n")
    lines.append(markdown_table(rows))
    sv = ds["singular_values"].groupby("clip").first()
    energy = 100 * (sv**2 / (sv**2).sum("singular_direction")).mean(["clip", "layer", "module"])
    drop = full - ds["remove_score"]
    rows = [
        {
            "direction": int(d),
            "energy %": float(energy.sel(singular_direction=d)),
        }
        | {
            f"drop ({c})": clip_mean_se(drop.sel(singular_direction=d, control=c))
            for c in ds["control"].values
        }
        | {
            "svd - random": clip_mean_se(
                drop.sel(singular_direction=d, control="svd")
                - drop.sel(singular_direction=d, control="random")
            )
        }
        for d in ds["singular_direction"].values
    ]
    lines.append(
        "Removing one direction: drop = full_score - score (positive = the direction helps); energy = mean "
        "share of ||dW||_F^2 per layer and module:\n"
    )
    lines.append(markdown_table(rows))
    if "slot_score" in ds:
        labels = {
            "generated": "generated only (static block removed)",
            "static": "static only (generated block removed: video-independent)",
        }
        ranges = (
            ds["rank_slots"] if "rank_slots" in ds.coords else xr.full_like(ds["slots"], "", dtype=object)
        )
        rows = [
            {
                "slots kept": labels.get(str(name), str(name)),
                "rank slots": str(ranges.sel(slots=name).values),
                metric: clip_mean_se(ds["slot_score"].sel(slots=name), ".3f"),
                "- full": clip_mean_se(ds["slot_score"].sel(slots=name) - full),
            }
            for name in ds["slots"].values
        ]
        lines.append(
            "Generated against static rank slots (the singular directions above are of the full applied "
            "dW, static block included):\n"
        )
        lines.append(markdown_table(rows))
    return lines


STUDY = ProbeStudy(
    NAME, RankAblationConfig, one_clip, report, __doc__, probe=rank_ablation,
    title="Rank-direction ablation ({metric})", needs="topk_score",
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
