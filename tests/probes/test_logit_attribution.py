"""Direct logit attribution: the per-layer deltas add up to the final residual delta (float64 model), the
attribution reproduces the exact logit change up to the final norm's rescaling, nnsight and the
TransformerLens bridge read the same residual stream (adapter included), teacher forcing reproduces the
greedy answers (the study command: tests/analyses/test_logit_attribution.py)."""

from __future__ import annotations

import pytest
import torch
from support import random_adapter

from f2l.adapter import text_model_of, use_adapter
from f2l.answer import greedy_answer_ids, teacher_forced
from f2l.models import load_base
from probes.hooks import BridgeCapture, NNsightCapture, Residuals
from probes.logit_attribution import (
    COMPONENTS,
    attribute,
    direct_logit_attribution,
)

QUESTIONS = ["what colour is the circle?", "Describe the video in detail.", "how many squares are there?"]
ANSWERS = [[300, 17, 421, 88], [45, 46], [12, 500, 501, 502, 503, 9]]  # teacher-forced: any tokens will do


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch(base_f64):
    return teacher_forced(base_f64.processor, QUESTIONS, ANSWERS)


@pytest.fixture(scope="module")
def nnsight_runs(base_f64, adapter_f64, batch):
    capture = NNsightCapture(base_f64.model)
    return {c: attribute(base_f64.model, capture, batch, adapter_f64, c) for c in ("mean", "rival")}


def test_teacher_forced_layout(base_f64, batch):
    assert batch.input_ids.shape[0] == len(QUESTIONS)
    assert batch.answer_ids.tolist() == [t for a in ANSWERS for t in a]
    for i, answer in enumerate(ANSWERS):
        positions = batch.positions[batch.rows == i]
        # the token at each answer position + 1 is the answer token it predicts; padding only after the answer
        assert batch.input_ids[i, positions + 1].tolist() == answer
        assert int(batch.attention_mask[i].sum()) == int(positions[-1]) + 2
        assert not batch.attention_mask[i, int(positions[-1]) + 2 :].any()


@pytest.mark.parametrize("contrast", ["mean", "rival"])
def test_layer_deltas_add_up_to_the_final_residual_delta(nnsight_runs, contrast):
    result, adapted, base = nnsight_runs[contrast]
    # the adapter does not touch the embeddings: the decomposition needs no embedding term
    assert torch.equal(adapted.resid_pre[0], base.resid_pre[0])
    delta_final = adapted.resid_final - base.resid_final
    sublayers = (adapted.attn_out - base.attn_out) + (adapted.mlp_out - base.mlp_out)
    assert delta_final.norm() > base.resid_final.norm()  # the random adapter moves the residual stream a lot
    torch.testing.assert_close(sublayers.sum(0), delta_final, rtol=0, atol=1e-10 * delta_final.abs().max())
    # and layer by layer: resid_post_l - resid_pre_l = attn_l + mlp_l in both runs
    for run in (adapted, base):
        torch.testing.assert_close(run.resid_post() - run.resid_pre, run.attn_out + run.mlp_out)

    dla = result.dla  # [L, component, N]
    assert dla.dtype == torch.float64 and dla.shape == (4, len(COMPONENTS), sum(map(len, ANSWERS)))
    resid, attn, mlp = (dla[:, COMPONENTS.index(c)] for c in COMPONENTS)
    scale = dla.abs().max()
    assert scale > 0.1
    torch.testing.assert_close(resid, (attn + mlp).cumsum(0), rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("contrast", ["mean", "rival"])
def test_attribution_is_the_exact_logit_change_up_to_the_norm_rescaling(
    base_f64, batch, nnsight_runs, contrast
):
    """``logit_delta = dla_resid(last) + c_base * (rms_base / rms_adapted - 1)``: an identity between the
    linearised projection and the logits the model computed, through an independent route."""
    result, adapted, base = nnsight_runs[contrast]
    logits = base.logits.double()
    answer = logits.gather(-1, batch.answer_ids[:, None]).squeeze(-1)
    if contrast == "rival":
        rival = result.rival_ids
        assert not (rival == batch.answer_ids).any()
        others = logits.clone()
        others[torch.arange(len(rival)), batch.answer_ids] = -torch.inf
        assert torch.equal(rival, others.argmax(-1))
        c_base = answer - logits.gather(-1, rival[:, None]).squeeze(-1)
    else:
        assert result.rival_ids is None
        c_base = answer - logits.mean(-1)
    predicted = result.dla[-1, 0] + c_base * (1 / result.rms_ratio - 1)
    assert (result.rms_ratio - 1).abs().max() > 0.01  # the identity's correction term is really exercised
    # the model's final RMSNorm runs in float32 even in a float64 model, so the logits are float32-exact
    torch.testing.assert_close(
        predicted, result.logit_delta, rtol=0, atol=1e-4 * result.logit_delta.abs().max()
    )


def test_an_embedding_change_is_refused(nnsight_runs, base_f64, batch):
    _, adapted, base = nnsight_runs["mean"]
    shifted = Residuals(base.resid_pre + 1e-3, base.attn_out, base.mlp_out, base.resid_final, base.logits)
    norm = text_model_of(base_f64.model).norm
    with pytest.raises(ValueError, match="embeddings"):
        direct_logit_attribution(
            adapted, shifted, base_f64.model.lm_head.weight, norm.weight, 1e-5, batch.answer_ids
        )
    with pytest.raises(ValueError, match="unknown contrast"):
        direct_logit_attribution(
            adapted, base, base_f64.model.lm_head.weight, norm.weight, 1e-5, batch.answer_ids, "median"
        )


def test_transformer_lens_bridge_hooks_give_the_same_numbers(base_f64, adapter_f64, batch, nnsight_runs):
    model = base_f64.model
    layer_type = type(text_model_of(model).layers[0])
    attention = model.config._attn_implementation
    bridge = BridgeCapture(model)
    # Agreement is to float32 rounding (~1e-7), not float64: each layer's RMSNorm computes in float32 even
    # in a float64 model, and the bridge runs eager attention where the model runs SDPA, so the two
    # backends' float64 differences of ~1e-16 can round differently there.
    # the bridge rewrote only its private copy: the model itself, and use_adapter on it, are untouched
    assert (
        type(text_model_of(model).layers[0]) is layer_type and model.config._attn_implementation == attention
    )
    assert type(text_model_of(bridge.model).layers[0]).__name__ == "BlockBridge"

    for contrast in ("mean", "rival"):
        via_bridge, bridge_adapted, bridge_base = attribute(model, bridge, batch, adapter_f64, contrast)
        via_nnsight, nn_adapted, nn_base = nnsight_runs[contrast]
        for ours, theirs in ((nn_adapted, bridge_adapted), (nn_base, bridge_base)):
            for field in ("resid_pre", "attn_out", "mlp_out", "resid_final", "logits"):
                a, b = getattr(ours, field), getattr(theirs, field)
                torch.testing.assert_close(b, a, rtol=0, atol=1e-6 * a.abs().max(), msg=field)
        # the adapter really runs inside the bridge: its adapted and base runs differ as nnsight's do
        assert (bridge_adapted.mlp_out - bridge_base.mlp_out).abs().max() > 0.1
        for field in ("dla", "logit_delta", "rms_ratio"):
            a, b = getattr(via_nnsight, field), getattr(via_bridge, field)
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6 * a.abs().max(), msg=field)

    # the bridge cleared its factors: another base run equals the first
    again = bridge(batch.input_ids, batch.attention_mask, batch.rows, batch.positions, None)
    assert torch.equal(again.resid_final, bridge_base.resid_final)


def test_teacher_forcing_reproduces_the_greedy_answers(random_tiny_dir):
    base = load_base(random_tiny_dir, device="cpu")
    model = base.model
    adapter = random_adapter(model, seed=3)
    answers = greedy_answer_ids(base, QUESTIONS, adapter=adapter, max_new_tokens=6)
    assert all(len(a) > 0 for a in answers)
    batch = teacher_forced(base.processor, QUESTIONS, answers)
    with torch.no_grad(), use_adapter(model, adapter):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.equal(logits[batch.rows, batch.positions].argmax(-1), batch.answer_ids)
    # the captured logits are the model's own, and nnsight's instrumentation leaves the model's outputs as
    # they were
    captured = NNsightCapture(model)(
        batch.input_ids, batch.attention_mask, batch.rows, batch.positions, adapter
    )
    torch.testing.assert_close(captured.logits, logits[batch.rows, batch.positions])
    with torch.no_grad(), use_adapter(model, adapter):
        after = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.equal(after, logits)
