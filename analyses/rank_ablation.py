"""How many singular directions of the generated update carry the video, and does a singular direction
matter more than a random edit of the same size?

For each clip the hypernetwork's adapter is made once; then, in every layer and module, only the top-k
singular directions are kept (k = 0..r: k = r is the adapter, k = 0 the base with no video), and,
separately, one direction at a time is removed, either the singular direction itself (control "svd") or
a random rank-one edit of the same Frobenius norm in the update's row space (control "random"; exactly
what is removed, and why it is a fair control, is in ``probes.rank_ablation``). Every prompt of the clip
(each caption category and one question of each QA type) is re-answered with zero visual tokens and
re-scored. For an adapter with a static rank block (the "official" kind: a learned, video-independent
bias block after the generated rank), the directions are those of the full applied update, static
block included, and two more variants tell the blocks apart: only the generated slots kept (the static
block removed) and only the static slots kept (the video-independent adapter).

    python -m analyses.rank_ablation                        # shipped tiny checkpoints, 4 test clips
    python -m analyses.rank_ablation --full --out results   # the complete sweep (100 clips)
    torchrun --nproc-per-node 4 -m analyses.rank_ablation --full   # clips sharded across ranks

Writes ``<out>/rank_ablation.nc``, ``<out>/rank_ablation.md`` (mean score per k; mean drop per removed
direction, svd against random; energy per direction; generated against static slots when the adapter has
them) and figures. Interrupted runs resume where they stopped (one part file per clip).

Dataset schema (``rank_ablation.nc``; see ``probes.rank_ablation``):

- dims ``example_id`` (``"<clip>/<item_id>"``: one prompt of one clip), ``k`` (directions kept, 0..r),
  ``singular_direction`` (removed direction, 0 = the largest), ``control`` ("svd", "random"), ``layer``, ``module``,
  and ``failure`` (clips whose computation raised).
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa") on
  ``example_id``; scalar ``metric``.
- ``topk_score(example_id, k)``, ``remove_score(example_id, singular_direction, control)``, ``full_score(example_id)``
  in units of the metric (token-F1 by default); ``singular_values(example_id, layer, module, singular_direction)``
  (units of the base weights); ``topk_prediction``, ``remove_prediction``, ``full_prediction`` and
  ``reference`` (strings); ``failed_unit(failure)``, ``error(failure)``.
- only for adapters with static rank slots: dim ``slots`` ("generated", "static": the slots kept), coord
  ``rank_slots(slots)``, ``slot_score(example_id, slots)`` and ``slot_prediction(example_id, slots)``.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time) and
  the study's config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import AnswerStudyConfig, clip_mean_se, open_probe_study, study_main
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


def summary(ds: xr.Dataset) -> str:
    """Markdown: score per k, the drop per removed direction (svd against random), energy per direction."""
    metric = str(ds["metric"].values) if "metric" in ds.coords else ds.attrs.get("metric", "score")
    lines = [f"# Rank-direction ablation ({metric})\n"]
    failures = ds.sizes.get("failure", 0)
    if "topk_score" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips; full adapter (f2l) "
        f"{float(ds['full_score'].mean()):.3f}. Means ± standard error across clips.\n"
    )
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
    return "\n".join(lines)


def run(cfg: RankAblationConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/rank_ablation.nc``)."""
    f2l, examples, study = open_probe_study(cfg, NAME, metric=cfg.metric)

    def one_clip(clip_id: str) -> xr.Dataset:
        return rank_ablation(
            f2l,
            [examples[clip_id]],
            frames=cfg.frames,
            ks=cfg.ks,
            qa_per_type=cfg.qa_per_type,
            metric=cfg.metric,
            seed=cfg.seed,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
        )

    study.run(list(examples), one_clip, desc="rank ablation")
    return study.finish(list(examples), summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main("rank_ablation", RankAblationConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
