"""The logit lens: at which layer does each run's residual stream already predict the video's answer?

``logit_lens(pipeline, examples, ...)`` teacher-forces the direct run's greedy answer in the direct, f2l
and base runs (``probes.patching``'s runs) and reads each layer's residual stream through the final norm
and unembedding: ``prob``, ``rank``, ``logp`` and ``kl`` on ``(example_id, adapter, run, layer)``. The
method and full schema: docs/probes/logit_lens.md (Method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import attached, text_model_of
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, answer_text, greedy_answer_ids
from f2l.data import Example
from probes.controls import clip_controls, label_probe, probe_controls
from probes.hooks import BridgeCapture, Capture, NNsightCapture, make_capture
from probes.patching import Run, make_runs, with_adapter
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords, reference_variable
from probes.similarity import read_residuals

RUNS = ("direct", "f2l", "base")
MEASURES = ("prob", "rank", "logp", "kl")
ANSWER = (
    "the direct run's greedy answer (with its stop token when it stopped), teacher-forced after the prompt "
    "in every run"
)
READOUT = (
    "logits_l = W_U norm(resid_l): the residual stream through the model's final RMSNorm and unembedding"
)
KL = "KL(p_L || p_l): the run's final distribution against the layer's read-out, nats, mean over positions"
UNITS = {"prob": "probability", "rank": "tokens ranked above", "logp": "nats", "kl": "nats"}
DESCRIPTIONS = {
    "prob": "the answer token's read-out probability, mean over the answer's tokens",
    "rank": "vocabulary tokens with a higher read-out logit than the answer token (0: top), mean over tokens",
    "logp": "summed read-out log-probability of the answer's tokens",
    "kl": KL,
}


def hook_names(num_layers: int) -> list[str]:
    """The TransformerLens hooks read: each decoder layer's ``resid_pre``, then the final norm's input."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(num_layers)] + ["ln_final.hook_in"]


@torch.no_grad()
def read_stream(capture: Capture, run: Run) -> Tensor:
    """``[L + 1, S, d]``: ``hook_names``' residual stream at ``run``'s aligned positions, through nnsight
    (``probes.similarity.read_residuals``) or the TransformerLens bridge."""
    if isinstance(capture, NNsightCapture):
        return read_residuals(capture, run)
    if not isinstance(capture, BridgeCapture):
        raise TypeError(f"no residual stream reader for {type(capture).__name__}")
    names = hook_names(capture.layers)
    inputs = dict(run.inputs)
    input_ids = inputs.pop("input_ids")
    with attached(capture.wrappers, run.adapter) if run.adapter is not None else nullcontext():
        _, cache = capture.bridge.run_with_cache(input_ids, names_filter=lambda n: n in names, **inputs)
    return torch.stack([cache[name][0, run.positions] for name in names])


@torch.no_grad()
def read_out(capture: Capture, resid: Tensor) -> Tensor:
    """The logits ``resid[..., d]`` would give at the end of the model: the final norm, then the
    unembedding (the model's own modules with nnsight, the bridge's ``ln_final`` and ``unembed``)."""
    if isinstance(capture, BridgeCapture):
        return capture.bridge.unembed(capture.bridge.ln_final(resid))
    model = capture.model
    return model.get_output_embeddings()(text_model_of(model).norm(resid))


def lens(logits: Tensor, answer_ids: Tensor) -> dict[str, np.ndarray]:
    """``{"prob", "rank", "logp", "kl"}``, each ``[L + 1]``, from the read-out ``logits[L + 1, A, V]`` at the
    ``A`` positions predicting ``answer_ids[A]`` (the last layer's read-out is the run's final
    distribution); float64."""
    logp = torch.log_softmax(logits.to(torch.float64), -1)
    token = logp.gather(-1, answer_ids[None, :, None].expand(logp.shape[0], -1, 1))  # [L + 1, A, 1]
    final = logp[-1]
    kl = (final.exp() * (final - logp)).sum(-1)  # [L + 1, A]
    return {
        "prob": token.squeeze(-1).exp().mean(-1).numpy(),
        "rank": (logp > token).sum(-1).to(torch.float64).mean(-1).numpy(),
        "logp": token.squeeze(-1).sum(-1).numpy(),
        "kl": kl.mean(-1).numpy(),
    }


def lens_of_run(capture: Capture, run: Run) -> dict[str, np.ndarray]:
    """``lens`` of ``run``: its residual stream at the positions predicting its answer, read out."""
    predicting = run.predicting - run.start  # within the aligned span
    logits = read_out(capture, read_stream(capture, run)[:, predicting])
    return lens(logits, run.answer_ids)


def logit_lens(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    prompts: PromptSet = DEFAULT_PROMPTS,
    adapters: Sequence[str] = ("real",),
    partners: Mapping[str, Example] | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
    capture: Capture | str = "nnsight",
) -> xr.Dataset:
    """The logit-lens dataset (schema: docs/probes/logit_lens.md) of ``examples``, each internalized from
    ``frames`` frames and asked its ``prompts``, the f2l run under each of ``adapters`` (``probes.controls``; the swap partners from
    ``partners``, by default the next example of ``examples``). ``capture``: a backend name of
    ``probes.hooks.BACKENDS`` or a ready capture of ``pipeline.base.model`` (reuse one: a bridge copies the
    model)."""
    adapters, partners = probe_controls("logit_lens", examples, adapters, partners)
    if isinstance(capture, str):
        capture = make_capture(capture, pipeline.base.model)
    parts = [
        clip_lens(
            pipeline, e, frames, prompts, adapters, partners.get(e.id),
            max_new_tokens, batch_size, capture,
        )
        for e in examples
    ]  # fmt: skip
    return concat_prompts(parts)


def clip_lens(
    pipeline,
    example: Example,
    frames: int,
    prompt_set: PromptSet,
    adapters: Sequence[str],
    partner: Example | None,
    max_new_tokens: int,
    batch_size: int,
    capture: Capture,
) -> xr.Dataset:
    """One clip's rows: the direct run's greedy answers, then every run's lens under every adapter."""
    base = pipeline.base
    video, by_label = clip_controls(pipeline, example, frames, partner=partner, adapters=adapters)
    prompts = prompt_set.of(example)
    questions = [p.prompt for p in prompts]
    answers = greedy_answer_ids(
        base, questions, video=video, max_new_tokens=max_new_tokens, batch_size=batch_size, keep_stop=True
    )
    layers = len(text_model_of(base.model).layers)
    values = {m: np.full((len(prompts), len(by_label), len(RUNS), layers + 1), np.nan) for m in MEASURES}
    for i, question in enumerate(questions):
        scoring = make_runs(base, question, answers[i], video, None)  # the f2l run's adapter set below
        shared: dict[str, dict[str, np.ndarray]] = {}
        for a, adapter in enumerate(by_label.values()):
            runs = with_adapter(scoring, adapter)
            for r, name in enumerate(RUNS):
                if name == "f2l":
                    result = lens_of_run(capture, runs[name])
                else:  # no adapter in the run: the same under every label, read once
                    if name not in shared:
                        shared[name] = lens_of_run(capture, runs[name])
                    result = shared[name]
                for m in MEASURES:
                    values[m][i, a, r] = result[m]
    row, cube = "example_id", ("example_id", "adapter", "run", "layer")
    data = {m: (cube, values[m], {"units": UNITS[m], "description": DESCRIPTIONS[m]}) for m in MEASURES}
    data |= {
        "answer_tokens": (
            row,
            np.array([len(a) for a in answers], dtype=np.int64),
            {"units": "tokens", "description": "the answer's tokens scored (with its stop token)"},
        ),
        "answer": (
            row,
            np.array([answer_text(base.tokenizer, a) for a in answers], dtype=str),
            {"description": "the direct run's greedy answer: the answer every run is read on"},
        ),
        "reference": reference_variable(prompts),
    }
    out = xr.Dataset(
        data,
        coords={
            **prompt_coords(example, prompts, questions=True),
            "adapter": list(by_label),
            "run": list(RUNS),
            "layer": np.arange(layers + 1),
            "hook": ("layer", hook_names(layers)),
        },
    )
    out["layer"].attrs["description"] = "the decoder layer whose input is read; the last: the final residual"
    return label_probe(
        out,
        "logit_lens",
        prompt_set,
        frames=frames,
        answer_definition=ANSWER,
        readout=READOUT,
        kl_definition=KL,
        backend=capture.backend,
        max_new_tokens=max_new_tokens,
    )
