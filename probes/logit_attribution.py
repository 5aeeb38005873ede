"""Direct logit attribution of the adapter: in which layer, and in which sublayer, does the internalized
video push the answer's logit up?

``logit_attribution(pipeline, examples, ...)`` answers every prompt greedily with the adapter,
teacher-forces the answer with and without it, and projects the adapter's change of the residual stream
after each layer and of each attention and MLP output onto the answer direction (the unembedding of the
answer token against its rival's or the mean, through the final norm linearised at the adapted run's
scale): ``dla(example_id, layer, component, position)`` in logits, beside the exact ``logit_delta``. The
method and full schema: docs/probes/logit_attribution.md (Method).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import Adapter, text_model_of
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, TeacherForced, answer_text, greedy_answer_ids, teacher_forced
from f2l.data import Example
from f2l.models import Base
from probes.hooks import Capture, Residuals, make_capture
from probes.prompts import DEFAULT_PROMPTS, PromptSet, concat_prompts, prompt_coords, reference_variable

COMPONENTS = ("resid", "attn", "mlp")
CONTRASTS = {
    "mean": "logit of the answer token minus the mean logit over the vocabulary",
    "rival": "logit of the answer token minus that of the token the base run ranks highest after it",
}
DIRECTION = (
    "g * (W_U[answer] - W_U[contrast]) / rms_adapted: the contrast's unembedding through the final RMSNorm "
    "(weight g) linearised at the adapted run's scale rms_adapted = sqrt(mean(x^2) + eps) of its final "
    "residual x"
)


@dataclass(frozen=True)
class Attribution:
    """``dla[L, component, N]`` (``COMPONENTS`` order), ``logit_delta[N]`` and ``rms_ratio[N]`` (adapted over
    base RMS of the final residual) for ``N`` answer tokens; ``rival_ids[N]`` with contrast "rival"."""

    dla: Tensor
    logit_delta: Tensor
    rms_ratio: Tensor
    rival_ids: Tensor | None = None


def direct_logit_attribution(
    adapted: Residuals,
    base: Residuals,
    unembed: Tensor,
    norm_weight: Tensor,
    eps: float,
    answer_ids: Tensor,
    contrast: str = "rival",
) -> Attribution:
    """Project the adapter's residual deltas onto each answer token's direction (the method:
    docs/probes/logit_attribution.md).

    ``unembed`` is ``W_U[V, d]``; ``norm_weight`` the final RMSNorm's ``g[d]`` with its ``eps``; ``contrast``
    a key of ``CONTRASTS``. Raises if the embeddings differ between the runs: the decomposition has no
    embedding term because the adapter has none.
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose from {list(CONTRASTS)}")
    if not torch.equal(adapted.resid_pre[0], base.resid_pre[0]):
        raise ValueError(
            "the adapted and base runs differ at the embeddings; the adapter has no embedding term"
        )
    f64 = torch.float64
    w_u = unembed.to(f64)
    rival = None
    if contrast == "rival":
        others = base.logits.to(f64).scatter(-1, answer_ids[:, None], float("-inf"))
        rival = others.argmax(-1)
        other_row, other_logit = w_u[rival], lambda logits: logits.gather(-1, rival[:, None]).squeeze(-1)
    else:
        other_row, other_logit = w_u.mean(0), lambda logits: logits.mean(-1)
    unembed_contrast = w_u[answer_ids] - other_row  # [N, d]

    def rms(final: Tensor) -> Tensor:  # [N, d] -> [N]
        return (final.to(f64).square().mean(-1) + eps).sqrt()

    scale = rms(adapted.resid_final)
    direction = norm_weight.to(f64) * unembed_contrast / scale[:, None]  # [N, d]

    def project(delta: Tensor) -> Tensor:  # [L, N, d] -> [L, N]
        return torch.einsum("lnd,nd->ln", delta.to(f64), direction)

    dla = torch.stack(
        [
            project(adapted.resid_post().to(f64) - base.resid_post().to(f64)),
            project(adapted.attn_out.to(f64) - base.attn_out.to(f64)),
            project(adapted.mlp_out.to(f64) - base.mlp_out.to(f64)),
        ],
        dim=1,
    )

    def contrast_logit(logits: Tensor) -> Tensor:
        logits = logits.to(f64)
        return logits.gather(-1, answer_ids[:, None]).squeeze(-1) - other_logit(logits)

    return Attribution(
        dla=dla,
        logit_delta=contrast_logit(adapted.logits) - contrast_logit(base.logits),
        rms_ratio=scale / rms(base.resid_final),
        rival_ids=rival,
    )


def attribute(
    model, capture: Capture, batch: TeacherForced, adapter: Adapter, contrast: str = "rival"
) -> tuple[Attribution, Residuals, Residuals]:
    """Run ``batch`` with and without ``adapter`` through ``capture`` and attribute; also returns both
    runs' residual streams."""
    args = (batch.input_ids, batch.attention_mask, batch.rows, batch.positions)
    adapted = capture(*args, adapter)
    base = capture(*args, None)
    norm = text_model_of(model).norm
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    unembed = model.get_output_embeddings().weight.detach()
    result = direct_logit_attribution(
        adapted, base, unembed, norm.weight.detach(), eps, batch.answer_ids, contrast
    )
    return result, adapted, base


def logit_attribution(
    pipeline,
    examples: Sequence[Example],
    *,
    frames: int = 8,
    prompts: PromptSet = DEFAULT_PROMPTS,
    contrast: str = "rival",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
    capture: Capture | str = "nnsight",
) -> xr.Dataset:
    """The logit-attribution dataset (schema: docs/probes/logit_attribution.md) of ``examples``, each
    internalized from ``frames`` frames (world clips at the base's frame size) and asked its
    ``prompts``; ``contrast`` is a key of ``CONTRASTS``. ``capture`` is a backend
    name from ``probes.hooks.BACKENDS`` or a ready capture (reuse one across calls: a bridge copies the
    model)."""
    if not examples:
        raise ValueError("logit_attribution needs at least one example")
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose from {list(CONTRASTS)}")
    if isinstance(capture, str):
        capture = make_capture(capture, pipeline.base.model)
    parts = [
        _one_clip(pipeline, e, frames, prompts, contrast, max_new_tokens, batch_size, capture)
        for e in examples
    ]
    out = concat_prompts(parts, join="outer")
    for name in ("answer_token", "rival_token"):
        if name in out:
            out[name] = out[name].fillna("").astype(str)
    out["layer"].attrs["description"] = "text-model decoder layer"
    out["component"].attrs["description"] = (
        "resid: residual delta after the layer (cumulative); attn / mlp: that layer's sublayer output delta"
    )
    out["position"].attrs["description"] = "index of the answer token (predicted at the position before it)"
    out.attrs.update(
        probe="logit_attribution",
        contrast=contrast,
        contrast_description=CONTRASTS[contrast],
        direction=DIRECTION,
        backend=capture.backend,
        frames=frames,
        **prompts.attrs(),
        max_new_tokens=max_new_tokens,
    )
    return out


def _one_clip(
    pipeline,
    example: Example,
    frames: int,
    prompt_set: PromptSet,
    contrast: str,
    max_new_tokens: int,
    batch_size: int,
    capture: Capture,
) -> xr.Dataset:
    """One clip's rows: answers under its adapter, then the attribution of every answer token."""
    base = pipeline.base
    adapter = pipeline.internalize(pipeline.example_frames(example, frames))
    prompts = prompt_set.of(example)
    questions = [p.prompt for p in prompts]
    answers = greedy_answer_ids(
        base, questions, adapter=adapter, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    length = max(1, max(len(a) for a in answers))
    per_token = (len(prompts), length)
    dla = np.full((len(prompts), adapter.num_layers, len(COMPONENTS), length), np.nan)
    logit_delta, rms_ratio = np.full(per_token, np.nan), np.full(per_token, np.nan)
    rival = np.full(per_token, -1)
    for start in range(0, len(prompts), batch_size):
        chunk = answers[start : start + batch_size]
        if not any(chunk):
            continue
        batch = teacher_forced(
            base.processor, questions[start : start + batch_size], chunk, device=base.device
        )
        result, _, _ = attribute(base.model, capture, batch, adapter, contrast)
        rows = batch.rows.cpu().numpy() + start
        cols = np.array([p for a in chunk for p in range(len(a))])
        dla[rows, :, :, cols] = result.dla.permute(2, 0, 1).cpu().numpy()
        logit_delta[rows, cols] = result.logit_delta.cpu().numpy()
        rms_ratio[rows, cols] = result.rms_ratio.cpu().numpy()
        if result.rival_ids is not None:
            rival[rows, cols] = result.rival_ids.cpu().numpy()
    answer_ids = np.full(per_token, -1)
    for i, answer in enumerate(answers):
        answer_ids[i, : len(answer)] = answer
    row, token = "example_id", ("example_id", "position")
    data = {
        "dla": (
            (row, "layer", "component", "position"),
            dla,
            {"units": "logits", "description": f"adapted minus base, projected on {DIRECTION}"},
        ),
        "logit_delta": (
            token,
            logit_delta,
            {"units": "logits", "description": f"adapted minus base change of the {CONTRASTS[contrast]}"},
        ),
        "rms_ratio": (
            token,
            rms_ratio,
            {"units": "ratio", "description": "RMS of the final residual, adapted over base"},
        ),
        "answer_token": (token, _token_texts(base, answer_ids), {"description": "answer token text"}),
        "answer_length": (
            row,
            [len(a) for a in answers],
            {"units": "tokens", "description": "answer tokens"},
        ),
        "prediction": (
            row,
            np.array([answer_text(base.tokenizer, a) for a in answers], dtype=str),
            {"description": "the adapted greedy answer"},
        ),
        "reference": reference_variable(prompts),
    }
    if contrast == "rival":
        data["rival_token"] = (
            token,
            _token_texts(base, rival),
            {"description": "the base run's highest-ranked token other than the answer token"},
        )
    return xr.Dataset(
        data,
        coords={
            **prompt_coords(example, prompts),
            "layer": np.arange(adapter.num_layers),
            "component": list(COMPONENTS),
            "position": np.arange(length),
        },
    )


def _token_texts(base: Base, ids: np.ndarray) -> np.ndarray:
    """Each token id's text; "" where the id is -1 (past an answer's end)."""
    return np.vectorize(lambda t: base.tokenizer.decode([int(t)]) if t >= 0 else "", otypes=[str])(ids)
