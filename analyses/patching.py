"""Where is the video's effect carried, where the adapter's, and what does the adapter still miss?
Activation patching between the direct, f2l and base runs of the same question.

Per clip every prompt runs three ways on the same question tokens: direct (the video in context), f2l
(the adapter, no visual tokens) and base (neither). One activation at a time (a layer's ``resid_pre``,
``attn_out`` or ``mlp_out``) is copied from a source run into a target run, and the study records the
share of the source's answer log-probability gap it restores, for direct -> base, f2l -> base and
direct -> f2l, with the swapped and blank controls. ``python -m analyses.patching [--full]`` writes
``<out>/patching.nc`` (schema: ``probes.patching``), ``.md`` and figures; method:
docs/probes/patching.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from analyses.common import AnswerStudyConfig, ControlsConfig, PromptSubsetConfig, clip_mean_se
from analyses.study import ProbeRun, ProbeStudy, counts, layer_table
from f2l.data import Example
from f2l.results import markdown_table
from probes.patching import DIRECTIONS, MIN_EFFECT, patching

NAME = "patching"


@dataclass
class PatchingConfig(ControlsConfig, PromptSubsetConfig, AnswerStudyConfig):
    """Settings of the activation-patching study (every field is a command-line flag)."""

    directions: tuple[str, ...] = tuple(DIRECTIONS)
    min_effect: float = MIN_EFFECT  # nats: restored is NaN where |logp_source - logp_target| is under it


def prepare(cfg: PatchingConfig) -> PatchingConfig:
    unknown = sorted(set(cfg.directions) - set(DIRECTIONS))
    if unknown or not cfg.directions:
        raise ValueError(f"unknown directions {unknown or '(none)'}; choose from {list(DIRECTIONS)}")
    return cfg


def one_clip(run: ProbeRun, example: Example) -> xr.Dataset:
    return patching(run.pipeline, [example], **run.kwargs())


def report(ds: xr.Dataset) -> list[str]:
    """The log-probability gaps per direction, then the mean restored fraction per layer and site of each
    direction, with the real adapter; then the negative controls: the gaps and the residual stream's
    restored fraction per layer under each adapter."""
    min_effect = float(ds.attrs.get("min_effect", MIN_EFFECT))
    last = int(ds["layer"].values[-1])
    lines = [
        f"{counts(ds)}. `logp`: "
        f"{ds.attrs.get('logp', '')}. `restored` = {ds.attrs.get('restored_definition', '')}, NaN where "
        f"|effect| < {min_effect:g} nats; values are means over each clip's prompts, then mean ± standard "
        f"error across clips. Layer {last} is the final residual stream (before the final norm). The f2l run "
        f"uses the clip's own adapter (real) unless a section says otherwise.\n"
    ]

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
        lines.append(f"## {direction}: {source} activation patched into the {target} run\n")
        lines.append(layer_table(real["restored"].sel(direction=direction), "site"))
    controls = [str(a) for a in ds["adapter"].values if a != "real"]
    with_f2l = [str(d) for d in ds["direction"].values if "f2l" in DIRECTIONS[str(d)]]
    if not controls or not with_f2l:
        return lines
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
        lines.append(f"### {direction}: resid_pre restored, per adapter\n")
        lines.append(layer_table(ds["restored"].sel(direction=direction, site="resid_pre"), "adapter"))
    return lines


STUDY = ProbeStudy(
    NAME, PatchingConfig, one_clip, report, __doc__, probe=patching,
    title="Activation patching: direct, f2l and base runs", needs="restored", prepare=prepare,
)  # fmt: skip
summary, run, main = STUDY.summary, STUDY.run, STUDY.main

if __name__ == "__main__":
    raise SystemExit(main())
