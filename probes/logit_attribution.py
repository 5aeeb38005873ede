"""Direct logit attribution of the adapter: in which layer, and in which sublayer, does the internalized
video push the answer's logit up?

For a clip, the adapter is made once and every prompt of the clip (``clip_prompts``) is answered greedily
with it (text only, zero visual tokens). The answer's tokens (up to, not including, the end-of-utterance
token) are then teacher-forced: ``prompt + answer`` runs through the base VLM twice, with the adapter and
without. At the position that predicts answer token ``p`` (the one before it), per decoder layer ``l``:

    delta_attn_l  = attn_out_l(adapted) - attn_out_l(base)
    delta_mlp_l   = mlp_out_l(adapted)  - mlp_out_l(base)
    delta_resid_l = resid_post_l(adapted) - resid_post_l(base)
                  = delta_embed + sum_{j <= l} (delta_attn_j + delta_mlp_j)

with ``delta_embed = 0`` exactly (the adapter only changes projections inside the layers; checked on
every run), so ``delta_resid`` of the last layer is the change of the final residual (before the final
norm). Each delta is projected onto the **answer direction**

    w = g * (W_U[answer] - W_U[rival]) / rms_adapted               (contrast "rival", the default)
    w = g * (W_U[answer] - mean_v W_U[v]) / rms_adapted          (contrast "mean")

the unembedding row of the answer token contrasted with the row of its *rival*: the token the base run
ranks highest after excluding the answer token (a logit difference, which moves with the answer's
probability against its strongest competitor), or with the mean unembedding over the vocabulary (so a
shift of every logit alike counts for nothing). Rival is the default: an adapter that rescales the
final residual moves the mean contrast of a high answer logit by a lot that the linearisation charges to
the sublayers, while the rival contrast barely moves (measured in the README). Either is passed through the
final RMSNorm linearised at the adapted run's scale: ``g`` is the norm's weight and
``rms_adapted = sqrt(mean(x^2) + eps)`` of the adapted run's final residual ``x`` at that position.
Projections are linear, so the per-layer ``attn`` and ``mlp`` attributions add up to the last layer's
``resid`` attribution. ``logit_delta`` is the exact change of the
same contrast in the model's logits; it differs from the last ``resid`` attribution only through the norm's
change of scale between the runs: ``logit_delta = dla_resid + c_base * (rms_base / rms_adapted - 1)``, with
``c_base`` the base run's contrast logit. Where the adapter rescales the final residual a lot
(``rms_ratio`` far from 1), the linearised attribution and the exact change part ways.

All computations after the forward passes are in float64. The residual stream is read through nnsight
by default, or through TransformerLens' ``TransformerBridge`` hooks (``probes.hooks``); the two agree.

Dataset schema (``logit_attribution.nc``):

- dims ``example_id`` (one prompt of one clip: ``"<clip>/<item_id>"``), ``layer`` (text-model decoder
  layer), ``component`` ("resid", "attn", "mlp"), ``position`` (index of the answer token, 0..P-1; NaN
  past the end of a shorter answer).
- coords ``clip(example_id)``, ``benchmark(example_id)`` (caption category or QA type),
  ``kind(example_id)`` ("caption" | "qa").
- ``dla(example_id, layer, component, position)``: logits. ``resid`` at layer ``l`` is the cumulative
  residual delta after layer ``l`` (``resid_post_l``, entering layer ``l + 1``); ``attn`` and ``mlp`` are
  layer ``l``'s sublayer output deltas.
- ``logit_delta(example_id, position)``: logits, the exact adapted-minus-base change of the contrast
  (``logit[answer] - mean(logit)`` or ``logit[answer] - logit[rival]``); ``rms_ratio(example_id, position)``: ``rms_adapted / rms_base`` of the
  final residual.
- ``answer_token(example_id, position)``: the answer token's text ("" past the end);
  ``answer_length(example_id)``: tokens in the answer; ``prediction(example_id)``: the adapted answer;
  ``reference(example_id)``: the reference text; with contrast "rival", ``rival_token(example_id,
  position)``.
- attrs: ``contrast`` (its name), ``contrast_description``, ``direction``, ``backend``, ``frames``, ``qa_per_type``, ``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from f2l.adapter import Adapter, text_model_of
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, TeacherForced, greedy_answer_ids, teacher_forced
from f2l.data import Example, clip_prompts
from f2l.models import Base
from probes.hooks import Capture, Residuals, make_capture
from probes.prompts import prompt_coords

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
    """Project the adapter's residual deltas onto each answer token's direction (module docstring).

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
    qa_per_type: int = 1,
    contrast: str = "rival",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
    capture: Capture | str = "nnsight",
) -> xr.Dataset:
    """The logit-attribution dataset (schema in the module docstring) of ``examples``, each internalized
    from ``frames`` frames (world clips at the base's frame size) and asked its
    ``clip_prompts(example, qa_per_type)``; ``contrast`` is a key of ``CONTRASTS``. ``capture`` is a backend
    name from ``probes.hooks.BACKENDS`` or a ready capture (reuse one across calls: a bridge copies the
    model)."""
    if not examples:
        raise ValueError("logit_attribution needs at least one example")
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; choose from {list(CONTRASTS)}")
    if isinstance(capture, str):
        capture = make_capture(capture, pipeline.base.model)
    parts = [
        _one_clip(pipeline, e, frames, qa_per_type, contrast, max_new_tokens, batch_size, capture)
        for e in examples
    ]
    out = xr.concat(
        parts, dim="example_id", data_vars="minimal", coords="different", compat="equals", join="outer"
    )
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
        qa_per_type=qa_per_type,
        max_new_tokens=max_new_tokens,
    )
    return out


def _one_clip(
    pipeline,
    example: Example,
    frames: int,
    qa_per_type: int,
    contrast: str,
    max_new_tokens: int,
    batch_size: int,
    capture: Capture,
) -> xr.Dataset:
    """One clip's rows: answers under its adapter, then the attribution of every answer token."""
    base = pipeline.base
    adapter = pipeline.internalize(pipeline.example_frames(example, frames))
    prompts = clip_prompts(example, qa_per_type)
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
            np.array(
                [base.tokenizer.decode(a, skip_special_tokens=True).strip() for a in answers], dtype=str
            ),
            {"description": "the adapted greedy answer"},
        ),
        "reference": (row, np.array([p.reference for p in prompts], dtype=str), {"description": "reference"}),
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
