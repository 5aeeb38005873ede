"""Where is the video's effect carried, where the adapter's, and what does the adapter still miss?
Activation patching between the direct, f2l and base runs of the same question.

For each clip the hypernetwork's adapter is made once, and every prompt of the clip (each caption category
and one question of each QA type) runs three ways on the same question tokens: ``direct`` (the video in
context), ``f2l`` (the adapter, no visual tokens) and ``base`` (neither). One activation at a time (a
layer's ``resid_pre``, ``attn_out`` or ``mlp_out``, at the question and answer positions, aligned from
the end of the prompt) is copied from a source run into a target run, and the study records how much of
the gap in the log-probability of the source's greedy answer that one patch closes, for direct -> base,
f2l -> base and direct -> f2l; see ``probes.patching`` for the definitions. Negative controls
(``probes.controls``): the f2l run also uses another clip's adapter (swapped: the next clip of the
manifest) and a blank video's (blank), so that a reader sees what the patching shows when the adapter
carries nothing about this clip.

    python -m analyses.patching                          # shipped tiny checkpoints, 8 test clips (~2 min)
    python -m analyses.patching --full --out results     # the complete sweep (100 clips)
    python -m analyses.patching --directions 'f2l->base'  # one direction only
    python -m analyses.patching --adapters real          # no negative controls
    torchrun --nproc-per-node 4 -m analyses.patching --full   # clips sharded across ranks

Writes ``<out>/patching.nc``, ``<out>/patching.md`` (mean restored fraction per direction, layer and
site, and the log-probability gaps; then the same under each control adapter) and figures. Interrupted
runs resume where they stopped (one part file per clip).

Dataset schema (``patching.nc``; see ``probes.patching``):

- dims ``example_id`` (``"<clip>/<item_id>"``: one prompt of one clip), ``adapter`` ("real", "swapped",
  "blank": the f2l run's adapter), ``layer`` (0 .. L: the decoder layers, then the final residual
  stream), ``site`` ("resid_pre", "attn_out", "mlp_out"), ``direction`` ("direct->base", "f2l->base",
  "direct->f2l"), ``run`` ("direct", "f2l"), and ``failure``.
- coords ``clip``, ``benchmark`` (caption category or QA type), ``kind`` ("caption" | "qa"), ``prompt``
  (the question) on ``example_id``; ``source`` and ``target`` on ``direction``.
- ``restored(example_id, adapter, layer, site, direction)``: ``(logp_patched - logp_target) /
  (logp_source - logp_target)``, NaN where ``|effect| < min_effect`` nats (attrs) and for the sublayers
  at layer L; ``logp_patched(example_id, adapter, layer, site, direction)``, ``logp_source``,
  ``logp_target`` and ``effect = logp_source - logp_target`` (``example_id, adapter, direction``), in
  nats: the summed log-probability of the source's greedy answer (with its stop token);
  ``answer_tokens(example_id, adapter, direction)``, ``question_tokens(example_id)``;
  ``prediction(example_id, adapter, run)``, ``reference``; ``failed_unit(failure)``, ``error(failure)``.
  direct -> base uses no adapter: the same under every ``adapter`` label.
- attrs: provenance (package version, git revision, base model, hypernetwork, seed, command, time), the
  definitions (``logp``, ``restored_definition``, ``min_effect``), the backend, and the study's config.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import xarray as xr

from analyses.common import (
    AnswerStudyConfig,
    ControlsConfig,
    PromptSubsetConfig,
    clip_mean_se,
    open_probe_study,
    study_main,
    study_partners,
)
from f2l.results import markdown_table
from probes.controls import check_adapters
from probes.hooks import NNsightCapture
from probes.patching import DIRECTIONS, MIN_EFFECT, patching

NAME = "patching"


@dataclass
class PatchingConfig(ControlsConfig, PromptSubsetConfig, AnswerStudyConfig):
    """Settings of the activation-patching study (every field is a command-line flag)."""

    directions: tuple[str, ...] = tuple(DIRECTIONS)
    min_effect: float = MIN_EFFECT  # nats: restored is NaN where |logp_source - logp_target| is under it


def summary(ds: xr.Dataset) -> str:
    """Markdown: the log-probability gaps per direction, then the mean restored fraction per layer and
    site of each direction, with the real adapter; then the negative controls: the gaps and the
    residual stream's restored fraction per layer under each adapter."""
    lines = ["# Activation patching: direct, f2l and base runs\n"]
    failures = ds.sizes.get("failure", 0)
    if "restored" not in ds:
        return "\n".join([*lines, f"No clip finished; {failures} failed.\n"])
    n_clips = len(np.unique(ds["clip"].values))
    min_effect = float(ds.attrs.get("min_effect", MIN_EFFECT))
    last = int(ds["layer"].values[-1])
    lines.append(
        f"{n_clips} clips, {ds.sizes['example_id']} prompts, {failures} failed clips. `logp`: "
        f"{ds.attrs.get('logp', '')}. `restored` = {ds.attrs.get('restored_definition', '')}, NaN where "
        f"|effect| < {min_effect:g} nats; values are means over each clip's prompts, then mean ± standard "
        f"error across clips. Layer {last} is the final residual stream (before the final norm). The f2l run "
        f"uses the clip's own adapter (real) unless a section says otherwise.\n"
    )

    def gaps(one: xr.Dataset) -> dict:
        """The columns of one direction's (and adapter's) gap."""
        return {
            "logp source": clip_mean_se(one["logp_source"]),
            "logp target": clip_mean_se(one["logp_target"]),
            "effect (nats)": clip_mean_se(one["effect"]),
            f"examples with abs(effect) >= {min_effect:g}": (
                f"{int((abs(one['effect']) >= min_effect).sum())} / {one['effect'].size}"
            ),
        }

    real = ds.sel(adapter="real")
    lines.append("The gap each direction measures (the source's answer, source vs target run):\n")
    lines.append(
        markdown_table([{"direction": str(d)} | gaps(real.sel(direction=d)) for d in ds["direction"].values])
    )
    for direction in ds["direction"].values:
        source, target = (str(ds[c].sel(direction=direction).values) for c in ("source", "target"))
        restored = real["restored"].sel(direction=direction)
        table = [
            {"layer": int(layer)}
            | {str(s): clip_mean_se(restored.sel(layer=layer, site=s)) for s in ds["site"].values}
            for layer in ds["layer"].values
        ]
        lines.append(f"## {direction}: {source} activation patched into the {target} run\n")
        lines.append(markdown_table(table))
    controls = [str(a) for a in ds["adapter"].values if a != "real"]
    with_f2l = [str(d) for d in ds["direction"].values if "f2l" in DIRECTIONS[str(d)]]
    if not controls or not with_f2l:
        return "\n".join(lines)
    lines.append(
        "## Negative controls: the f2l run under another clip's adapter (swapped) and a blank video's "
        "(blank)\n"
    )
    if "f2l" in ds["run"].values:
        answers = ds["prediction"].sel(run="f2l")
        changed = [(a, int((answers.sel(adapter=a) != answers.sel(adapter="real")).sum())) for a in controls]
        lines.append(
            "Prompts whose f2l answer differs from the real adapter's: "
            + ", ".join(f"{a} {c} / {answers.sizes['example_id']}" for a, c in changed)
            + ".\n"
        )
    lines.append(
        markdown_table(
            [
                {"direction": d, "adapter": str(a)} | gaps(ds.sel(adapter=a, direction=d))
                for d in with_f2l
                for a in ds["adapter"].values
            ]
        )
    )
    for direction in with_f2l:
        restored = ds["restored"].sel(direction=direction, site="resid_pre")
        table = [
            {"layer": int(layer)}
            | {str(a): clip_mean_se(restored.sel(layer=layer, adapter=a)) for a in ds["adapter"].values}
            for layer in ds["layer"].values
        ]
        lines.append(f"### {direction}: resid_pre restored, per adapter\n")
        lines.append(markdown_table(table))
    return "\n".join(lines)


def run(cfg: PatchingConfig) -> xr.Dataset:
    """Run (or resume) the study and return the merged dataset (also written to ``<out>/patching.nc``)."""
    unknown = sorted(set(cfg.directions) - set(DIRECTIONS))
    if unknown or not cfg.directions:
        raise ValueError(f"unknown directions {unknown or '(none)'}; choose from {list(DIRECTIONS)}")
    adapters = check_adapters(cfg.adapters)
    f2l, examples, study = open_probe_study(cfg, NAME)
    partners = study_partners(cfg, adapters)
    # built at the first pending clip: a resumed run that has nothing to do skips it
    capture = functools.cache(lambda: NNsightCapture(f2l.base.model))

    def one_clip(clip_id: str) -> xr.Dataset:
        return patching(
            f2l,
            [examples[clip_id]],
            frames=cfg.frames,
            qa_per_type=cfg.qa_per_type,
            prompts_per_clip=cfg.prompts_per_clip,
            directions=cfg.directions,
            adapters=adapters,
            partners=partners,
            min_effect=cfg.min_effect,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            capture=capture(),
        )

    study.run(list(examples), one_clip, desc="patching")
    return study.finish(list(examples), summary=summary)


def main(argv: list[str] | None = None) -> int:
    return study_main(NAME, PatchingConfig, run, argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
