"""Activation patching between three runs of the same question: where is the video's effect carried, where
the adapter's, and what does the adapter still miss?

``patching(pipeline, examples, ...)`` runs every prompt three ways on the same question tokens (direct:
the video in context; f2l: an adapter, the clip's own or a control's; base: neither), copies one
activation (``resid_pre``, ``attn_out``, ``mlp_out`` of a layer, at the aligned question and answer
positions) from a source run into a target run, and returns ``restored(example_id, adapter, layer, site,
direction)``, the share of the source answer's log-probability gap that patch closes, with the
log-probabilities it is made of. The definitions travel in the dataset's attrs (``logp``,
``restored_definition``); the method and full schema: docs/probes/patching.md (Method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import Adapter, text_model_of, use_adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, TeacherForced, answer_text, greedy_answer_ids, teacher_forced
from f2l.chat import prompt_text
from f2l.data import Example
from f2l.models import Base
from f2l.video import Frames
from probes.controls import clip_controls, label_probe, probe_controls
from probes.hooks import NNsightCapture
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords, reference_variable

SITES = ("resid_pre", "attn_out", "mlp_out")
RUNS = ("direct", "f2l")  # the runs whose greedy answers are scored (every direction's source)
DIRECTIONS: dict[str, tuple[str, str]] = {
    "direct->base": ("direct", "base"),
    "f2l->base": ("f2l", "base"),
    "direct->f2l": ("direct", "f2l"),
}
MIN_EFFECT = 0.5  # nats: under this |logp_source - logp_target|, restored is NaN
LOGP = (
    "sum over the source run's greedy answer tokens (with its stop token when it stopped) of their "
    "teacher-forced log-probabilities, in nats"
)
RESTORED = "(logp_patched - logp_target) / (logp_source - logp_target)"

Site = tuple[int, str]  # (layer, site name); layer L with "resid_pre" is the final residual


@dataclass(frozen=True)
class Run:
    """One teacher-forced run, a single row: ``prompt + answer`` (and the video's pixels for direct), under
    ``adapter`` or none. The aligned span is ``span`` tokens from ``start``: the question span, then the
    ``answer`` scored tokens, which end the row."""

    name: str
    inputs: Mapping[str, Tensor]
    adapter: Adapter | None
    start: int
    span: int
    answer: int

    @property
    def ids(self) -> Tensor:
        return self.inputs["input_ids"][0]

    @property
    def positions(self) -> Tensor:
        """The aligned positions, ``[span]``."""
        return torch.arange(self.start, self.start + self.span, device=self.ids.device)

    @property
    def predicting(self) -> Tensor:
        """The positions whose logits predict the answer's tokens, ``[answer]``."""
        first = self.start + self.span - self.answer - 1
        return torch.arange(first, first + self.answer, device=self.ids.device)

    @property
    def answer_ids(self) -> Tensor:
        return self.ids[self.start + self.span - self.answer :]


@dataclass(frozen=True)
class Sites:
    """A run's activations at its aligned positions: ``resid_pre[L + 1, S, d]`` (index ``L``: the final
    residual), ``attn_out[L, S, d]``, ``mlp_out[L, S, d]``; and the run's ``logp`` of its answer."""

    resid_pre: Tensor
    attn_out: Tensor
    mlp_out: Tensor
    logp: float

    @property
    def num_layers(self) -> int:
        return self.attn_out.shape[0]

    def at(self, site: Site) -> Tensor:
        layer, name = site
        return getattr(self, name)[layer]


def every_site(num_layers: int) -> list[Site]:
    """Every site one at a time: ``(l, s)`` for each layer and ``SITES`` entry, then the final residual."""
    return [(layer, s) for layer in range(num_layers) for s in SITES] + [(num_layers, "resid_pre")]


def question_span(
    tokenizer, direct_ids: Sequence[int], text_ids: Sequence[int], question: str, tail: str
) -> int:
    """``K``: the length of the longest common suffix of the direct and text-only prompts' ids. ``tail`` is
    the text-only prompt's text from the question on (question, end of turn, ``Assistant:``); the common
    suffix must hold all of its tokens but, at most, the first (an ``AssertionError`` otherwise)."""
    k = 0
    while k < min(len(direct_ids), len(text_ids)) and direct_ids[-1 - k] == text_ids[-1 - k]:
        k += 1
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    shared = tokenizer.decode(list(text_ids[len(text_ids) - k :])) if k else ""
    assert list(text_ids[len(text_ids) - len(tail_ids) + 1 :]) == tail_ids[1:] and k >= len(tail_ids) - 1, (
        f"what follows the video differs between the prompts with and without it beyond the question's first "
        f"token: they share {shared!r}, not {tail!r} ({question!r})"
    )
    return k


def make_runs(
    base: Base, question: str, answer_ids: Sequence[int], video: Frames, adapter: Adapter | None
) -> dict[str, Run]:
    """The three runs of ``question`` with ``answer_ids`` teacher-forced after the prompt
    (``f2l.answer.teacher_forced``, the video in context for direct); ``answer_ids`` may be empty, for a
    probe of the prompt alone. The f2l run is under ``adapter`` (``with_adapter`` gives it another)."""
    direct, text = (
        teacher_forced(base.processor, [question], [answer_ids], videos=videos, device=base.device)
        for videos in ([video], None)
    )
    full = prompt_text(base.processor, question, with_video=False)
    tail = full[full.rindex(question) :]
    n_direct, n_text = int(direct.prompt_lengths[0]), int(text.prompt_lengths[0])
    k = question_span(
        base.tokenizer,
        direct.input_ids[0, :n_direct].tolist(),
        text.input_ids[0, :n_text].tolist(),
        question,
        tail,
    )
    a = len(answer_ids)

    def run(name: str, rows: TeacherForced, n: int, adapter: Adapter | None) -> Run:
        return Run(name, rows.inputs, adapter, start=n - k, span=k + a, answer=a)

    runs = {
        "direct": run("direct", direct, n_direct, None),
        "f2l": run("f2l", text, n_text, adapter),
        "base": run("base", text, n_text, None),
    }
    spans = {name: r.ids[r.positions].tolist() for name, r in runs.items()}
    assert spans["direct"] == spans["f2l"] == spans["base"], "the aligned tokens differ between the runs"
    return runs


def with_adapter(runs: Mapping[str, Run], adapter: Adapter | None) -> dict[str, Run]:
    """``runs`` with the f2l run under ``adapter`` instead (the same tensors: the prompts and the answer
    do not depend on the adapter)."""
    return {**runs, "f2l": replace(runs["f2l"], adapter=adapter)}


def _answer_logp(logits: Tensor, answer_ids: Tensor) -> Tensor:
    """``[B]``: the summed log-probability of ``answer_ids[A]`` from ``logits[B, A, V]``, in float64."""
    logp = torch.log_softmax(logits.to(torch.float64), -1)
    return logp.gather(-1, answer_ids[None, :, None].expand(logp.shape[0], -1, 1)).squeeze(-1).sum(-1)


@torch.no_grad()
def read_sites(capture: NNsightCapture, run: Run) -> Sites:
    """Every site's activation at ``run``'s aligned positions, and its answer's ``logp``."""
    text = capture.text_model
    pos = run.positions
    pre: list[Tensor] = []
    attn: list[Tensor] = []
    mlp: list[Tensor] = []
    saved: dict[str, Tensor] = {}
    applied = use_adapter(capture.model, run.adapter) if run.adapter is not None else nullcontext()
    with applied, capture.traced.trace(**run.inputs):
        for layer in text.layers:  # in execution order, as nnsight requires
            pre.append(layer.input[0, pos].save())
            attn.append(layer.self_attn.output[0][0, pos].save())
            mlp.append(layer.mlp.output[0, pos].save())
        saved["final"] = text.norm.input[0, pos].save()
        saved["logits"] = capture.traced.output.logits[:, run.predicting].save()
    return Sites(
        torch.stack([*pre, saved["final"]]),
        torch.stack(attn),
        torch.stack(mlp),
        float(_answer_logp(saved["logits"], run.answer_ids)[0]),
    )


@torch.no_grad()
def patched_logp(
    capture: NNsightCapture,
    target: Run,
    source: Sites,
    patches: Sequence[Sequence[Site]],
    *,
    batch_size: int = 32,
) -> Tensor:
    """``[len(patches)]`` float64: the target's ``logp`` with each set of sites in ``patches`` (an empty
    set: nothing) replaced by the source's activations at the aligned positions, all sites of a set in
    the same forward. Rows of ``batch_size`` sets at a time run as one batch of copies of the target."""
    unknown = {s for sites in patches for _, s in sites} - set(SITES)
    if unknown:
        raise ValueError(f"unknown sites {sorted(unknown)}; choose from {SITES}")
    layers = source.num_layers
    outside = [site for sites in patches for site in sites if not 0 <= site[0] <= layers]
    outside += [site for sites in patches for site in sites if site[0] == layers and site[1] != "resid_pre"]
    if outside:
        raise ValueError(f"no such sites {sorted(set(outside))} in a model of {layers} layers")
    if source.resid_pre.shape[1] != target.span:
        raise ValueError(
            f"the source has {source.resid_pre.shape[1]} aligned tokens, the target {target.span}"
        )
    out = [
        _patched_batch(capture, target, source, patches[i : i + batch_size])
        for i in range(0, len(patches), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _patched_batch(capture: NNsightCapture, target: Run, source: Sites, patches: Sequence[Sequence[Site]]):
    text = capture.text_model
    pos = target.positions
    rows: dict[Site, Tensor] = {}
    for row, sites in enumerate(patches):
        for site in sites:
            rows.setdefault(site, [])
            rows[site].append(row)
    rows = {site: torch.tensor(r, device=pos.device) for site, r in rows.items()}

    def patch(proxy, site: Site) -> None:
        if site in rows:
            r = rows[site]
            proxy[r[:, None], pos[None, :]] = source.at(site)[None].expand(len(r), -1, -1).to(proxy.dtype)

    inputs = {k: v.expand(len(patches), *v.shape[1:]).contiguous() for k, v in target.inputs.items()}
    saved: dict[str, Tensor] = {}
    applied = use_adapter(capture.model, target.adapter) if target.adapter is not None else nullcontext()
    with applied, capture.traced.trace(**inputs):
        for index, layer in enumerate(text.layers):  # in execution order, as nnsight requires
            if (index, "resid_pre") in rows:
                patch(layer.input, (index, "resid_pre"))
            if (index, "attn_out") in rows:
                patch(layer.self_attn.output[0], (index, "attn_out"))
            if (index, "mlp_out") in rows:
                patch(layer.mlp.output, (index, "mlp_out"))
        if (source.num_layers, "resid_pre") in rows:
            patch(text.norm.input, (source.num_layers, "resid_pre"))
        saved["logits"] = capture.traced.output.logits[:, target.predicting].save()
    return _answer_logp(saved["logits"], target.answer_ids)


def restored_fraction(patched, source, target, min_effect: float = MIN_EFFECT):
    """``(patched - target) / (source - target)``; NaN where ``|source - target| < min_effect``."""
    effect = np.asarray(source, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = (np.asarray(patched, dtype=np.float64) - target) / effect
    return np.where(np.abs(effect) < min_effect, np.nan, fraction)


@torch.no_grad()
def patch_prompt(
    capture: NNsightCapture,
    runs_by_answer: Mapping[str, Mapping[str, Run]],
    directions: Sequence[str],
    *,
    batch_size: int = 32,
) -> dict[str, dict]:
    """Every direction's numbers for one prompt: ``runs_by_answer[source]`` are the three runs scoring the
    source run's answer. Returns ``{direction: {"source", "target", "patched", "answer_tokens"}}``, the
    patched ``logp`` in ``every_site`` order."""
    sites: dict[tuple[str, str], Sites] = {}
    results = {}
    for direction in directions:
        source, target = DIRECTIONS[direction]
        runs = runs_by_answer[source]
        if not runs[target].answer:
            raise ValueError(f"{direction}: an answer to score needs at least one token")
        for name in (source, target):
            if (source, name) not in sites:
                sites[source, name] = read_sites(capture, runs[name])
        src, tgt = sites[source, source], sites[source, target]
        order = every_site(src.num_layers)
        logp = patched_logp(capture, runs[target], src, [[s] for s in order], batch_size=batch_size)
        results[direction] = {
            "source": src.logp,
            "target": tgt.logp,
            "patched": logp.numpy(),
            "answer_tokens": runs[target].answer,
        }
    return results


def patching(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    prompts: PromptSet = DEFAULT_PROMPTS,
    directions: Sequence[str] = tuple(DIRECTIONS),
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    min_effect: float = MIN_EFFECT,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
    capture: NNsightCapture | None = None,
) -> xr.Dataset:
    """The activation-patching dataset (schema: docs/probes/patching.md) of ``examples``, each internalized
    from ``frames`` frames (world clips at the base's frame size) and asked its ``prompts``. ``directions``: keys of
    ``DIRECTIONS``. ``adapters``: the f2l run's adapters (``probes.controls``; the swap partners from
    ``partners``, by default the next example of ``examples``). ``capture``: an ``NNsightCapture`` of
    ``pipeline.base.model`` to reuse across calls."""
    adapters, partners = probe_controls("patching", examples, adapters, partners)
    unknown = sorted(set(directions) - set(DIRECTIONS))
    if unknown or not directions:
        raise ValueError(f"unknown directions {unknown or '(none)'}; choose from {list(DIRECTIONS)}")
    if capture is None:
        capture = NNsightCapture(pipeline.base.model)
    parts = [
        clip_patching(
            pipeline, e, frames, prompts, list(directions), adapters,
            partners.get(e.id), min_effect, max_new_tokens, batch_size, capture,
        )
        for e in examples
    ]  # fmt: skip
    out = concat_prompts(parts)
    out["layer"].attrs["description"] = (
        "text-model decoder layer; the last index is the final residual stream (resid_pre only)"
    )
    out["site"].attrs["description"] = (
        "resid_pre: the layer's input; attn_out / mlp_out: its sublayers' outputs, at the aligned positions"
    )
    out["direction"].attrs["description"] = "source -> target: whose activation is patched into which run"
    return label_probe(
        out,
        "patching",
        prompts,
        frames=frames,
        logp=LOGP,
        restored_definition=RESTORED,
        min_effect=min_effect,
        backend=capture.backend,
        max_new_tokens=max_new_tokens,
    )


def clip_patching(
    pipeline,
    example: Example,
    frames: int,
    prompt_set: PromptSet,
    directions: list[str],
    adapters: Sequence[str],
    partner: Example | None,
    min_effect: float,
    max_new_tokens: int,
    batch_size: int,
    capture: NNsightCapture,
) -> xr.Dataset:
    """One clip's rows: its adapters (``probes.controls``) and the greedy answers, then every direction of
    every prompt under every adapter (a direction without the f2l run once)."""
    base = pipeline.base
    video, by_label = clip_controls(pipeline, example, frames, partner=partner, adapters=adapters)
    prompts = prompt_set.of(example)
    questions = [p.prompt for p in prompts]
    needed = sorted({DIRECTIONS[d][0] for d in directions}, key=RUNS.index)

    def greedy(run: str, adapter: Adapter) -> list[list[int]]:
        return greedy_answer_ids(
            base,
            questions,
            video=video if run == "direct" else None,
            adapter=adapter if run == "f2l" else None,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            keep_stop=True,
        )

    direct = greedy("direct", None) if "direct" in needed else None
    answers = {
        label: {run: direct if run == "direct" else greedy(run, adapter) for run in needed}
        for label, adapter in by_label.items()
    }
    free = [d for d in directions if "f2l" not in DIRECTIONS[d]]  # no adapter in either run
    layers = len(text_model_of(base.model).layers)
    n, m, sites = len(prompts), len(by_label), every_site(layers)
    patched = np.full((n, m, layers + 1, len(SITES), len(directions)), np.nan)
    source = np.full((n, m, len(directions)), np.nan)
    target = np.full((n, m, len(directions)), np.nan)
    scored = np.zeros((n, m, len(directions)), dtype=np.int64)
    k_tokens = np.zeros(n, dtype=np.int64)
    index = [(layer, SITES.index(s)) for layer, s in sites]
    for i, question in enumerate(questions):
        # the runs scoring the direct answer are the same under every adapter but for the f2l run's
        scoring_direct = make_runs(base, question, direct[i], video, None) if direct is not None else None
        for a, (label, adapter) in enumerate(by_label.items()):
            runs = {
                run: with_adapter(scoring_direct, adapter)
                if run == "direct"
                else make_runs(base, question, answers[label][run][i], video, adapter)
                for run in needed
            }
            first = runs[needed[0]]["base"]
            k_tokens[i] = first.span - first.answer
            todo = directions if a == 0 else [d for d in directions if d not in free]
            result = patch_prompt(capture, runs, todo, batch_size=batch_size)
            for j, direction in enumerate(directions):
                if direction in result:
                    r = result[direction]
                    source[i, a, j], target[i, a, j] = r["source"], r["target"]
                    scored[i, a, j] = r["answer_tokens"]
                    for (layer, s), value in zip(index, r["patched"], strict=True):
                        patched[i, a, layer, s, j] = value
    for j in [directions.index(d) for d in free]:  # computed under the first adapter: the same numbers
        for array in (patched, source, target, scored):
            array[:, 1:, ..., j] = array[:, :1, ..., j]
    restored = restored_fraction(
        patched, source[:, :, None, None, :], target[:, :, None, None, :], min_effect
    )
    row = "example_id"
    cube = ("example_id", "adapter", "layer", "site", "direction")
    pair = ("example_id", "adapter", "direction")
    nats = "nats"
    data = {
        "restored": (
            cube,
            restored,
            {
                "units": "fraction",
                "description": f"{RESTORED}; NaN where |effect| < {min_effect:g} nats",
            },
        ),
        "logp_patched": (
            cube,
            patched,
            {"units": nats, "description": f"target run with the site patched: {LOGP}"},
        ),
        "logp_source": (pair, source, {"units": nats, "description": f"source run: {LOGP}"}),
        "logp_target": (pair, target, {"units": nats, "description": f"target run: {LOGP}"}),
        "effect": (pair, source - target, {"units": nats, "description": "logp_source - logp_target"}),
        "answer_tokens": (
            pair,
            scored,
            {"units": "tokens", "description": "the source's answer tokens scored (with its stop token)"},
        ),
        "question_tokens": (
            row,
            k_tokens,
            {"units": "tokens", "description": "aligned tokens before the answer (the question span)"},
        ),
        "prediction": (
            (row, "adapter", "run"),
            np.array(
                [
                    [
                        [answer_text(base.tokenizer, answers[label][run][i]) for run in needed]
                        for label in by_label
                    ]
                    for i in range(n)
                ],
                dtype=str,
            ).reshape(n, m, len(needed)),
            {"description": "greedy answer of the run (the answer every direction from it scores)"},
        ),
        "reference": reference_variable(prompts),
    }
    return xr.Dataset(
        data,
        coords={
            **prompt_coords(example, prompts, questions=True),
            "adapter": list(by_label),
            "layer": np.arange(layers + 1),
            "site": list(SITES),
            "direction": list(directions),
            "run": needed,
            "source": ("direction", [DIRECTIONS[d][0] for d in directions]),
            "target": ("direction", [DIRECTIONS[d][1] for d in directions]),
        },
    )
