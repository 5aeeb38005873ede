"""probes.hooks: both hook libraries read the residual stream the model itself reports (its
``hidden_states`` and logits, with and without an adapter, on the float64 random tiny base), and the
TransformerLens hook names mean what the probes take them to mean."""

from __future__ import annotations

import pytest
import torch
from support import random_adapter

from f2l.adapter import Adapter, text_model_of, use_adapter
from f2l.answer import teacher_forced
from probes.hooks import BACKENDS, BridgeCapture, NNsightCapture, make_capture

QUESTIONS = ["what colour is the circle?", "how many squares are there?"]
ANSWERS = [[300, 17, 421], [45]]  # rows of different lengths: the shorter one is right-padded

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def batch(base_f64):
    return teacher_forced(base_f64.processor, QUESTIONS, ANSWERS)


@pytest.fixture(scope="module")
def captures(base_f64):
    return {backend: make_capture(backend, base_f64.model) for backend in BACKENDS}


def own_outputs(model, batch, adapter):
    """The model's own ``hidden_states`` (embeddings, each layer's output, the last one after the final
    norm) and logits at the batch's (row, position) pairs."""
    with torch.no_grad(), use_adapter(model, adapter) if adapter is not None else torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    pick = (batch.rows, batch.positions)
    return [h[pick] for h in out.hidden_states], out.logits[pick]


def test_make_capture_builds_each_backend_and_refuses_others(captures, base_f64):
    assert isinstance(captures["nnsight"], NNsightCapture)
    assert isinstance(captures["transformer_lens"], BridgeCapture)
    assert {c.backend for c in captures.values()} == set(BACKENDS)
    with pytest.raises(ValueError, match="unknown backend 'pyvene'"):
        make_capture("pyvene", base_f64.model)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("adapted", [False, True], ids=["base", "adapter"])
def test_the_captured_stream_is_the_models_own(base_f64, adapter_f64, batch, captures, backend, adapted):
    model, adapter = base_f64.model, adapter_f64 if adapted else None
    hidden, logits = own_outputs(model, batch, adapter)
    layers = len(text_model_of(model).layers)
    assert len(hidden) == layers + 1
    run = captures[backend](batch.input_ids, batch.attention_mask, batch.rows, batch.positions, adapter)
    assert run.resid_pre.shape == run.attn_out.shape == run.mlp_out.shape == (layers, len(batch.rows), 128)
    # nnsight traces the model itself: float64-exact. The bridge runs a copy with eager attention where the
    # model runs SDPA, and every RMSNorm computes in float32 even in a float64 model, so the two agree to
    # float32 rounding there.
    rel = 1e-12 if backend == "nnsight" else 1e-6

    def close(ours, theirs, what):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=rel * theirs.abs().max(), msg=what)

    for layer in range(layers):
        close(run.resid_pre[layer], hidden[layer], f"resid_pre {layer}")
    for layer in range(layers - 1):
        close(run.resid_post()[layer], hidden[layer + 1], f"resid_post {layer}")
    close(text_model_of(model).norm(run.resid_final), hidden[layers], "final norm")
    close(run.logits, logits, "logits")
    # each layer's two writes make up what it hands on
    close(run.resid_pre + run.attn_out + run.mlp_out, run.resid_post(), "attn_out + mlp_out")


def test_the_adapter_changes_what_is_read(base_f64, adapter_f64, batch, captures):
    """So that the adapted half of the test above is not the base's stream twice."""
    hidden, _ = own_outputs(base_f64.model, batch, None)
    adapted, _ = own_outputs(base_f64.model, batch, adapter_f64)
    assert torch.equal(adapted[0], hidden[0])  # the adapter leaves the embeddings alone
    assert (adapted[-1] - hidden[-1]).abs().max() > 0.1 * hidden[-1].abs().max()


def test_transformer_lens_hook_names_mean_what_the_probes_read(captures, batch):
    bridge = captures["transformer_lens"].bridge
    layers = captures["transformer_lens"].layers
    hooks = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
    names = {f"blocks.{layer}.{h}" for layer in range(layers) for h in hooks} | {"ln_final.hook_in"}
    assert names <= set(bridge.hook_dict)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(
            batch.input_ids, attention_mask=batch.attention_mask, names_filter=lambda n: n in names
        )

    def at(layer: int, hook: str):
        return cache[f"blocks.{layer}.{hook}"]

    for layer in range(layers):
        mid = at(layer, "hook_resid_pre") + at(layer, "hook_attn_out")
        torch.testing.assert_close(at(layer, "hook_resid_mid"), mid)
        torch.testing.assert_close(at(layer, "hook_resid_post"), mid + at(layer, "hook_mlp_out"))
        following = at(layer + 1, "hook_resid_pre") if layer + 1 < layers else cache["ln_final.hook_in"]
        assert torch.equal(at(layer, "hook_resid_post"), following)
    # and Residuals.resid_post() is TransformerLens' resid_post at the captured pairs
    run = captures["transformer_lens"](batch.input_ids, batch.attention_mask, batch.rows, batch.positions)
    post = torch.stack([at(layer, "hook_resid_post")[batch.rows, batch.positions] for layer in range(layers)])
    assert torch.equal(run.resid_post(), post)


def test_nnsight_gives_each_row_its_own_adapter_and_the_bridge_refuses_a_batch(
    base_f64, adapter_f64, batch, captures
):
    other = random_adapter(base_f64.model, seed=1).to(torch.float64)
    both = Adapter.stack([adapter_f64, other])  # row 0 under adapter_f64, row 1 under other
    args = (batch.input_ids, batch.attention_mask, batch.rows, batch.positions)
    per_row = captures["nnsight"](*args, both)
    for row, alone in enumerate((adapter_f64, other)):
        expected = captures["nnsight"](*args, alone)
        pick = batch.rows == row
        for field in ("resid_pre", "mlp_out", "resid_final", "logits"):
            a, b = getattr(per_row, field)[..., pick, :], getattr(expected, field)[..., pick, :]
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12 * b.abs().max(), msg=f"{field} row {row}")
    # the bridge sets one adapter on every row: a batch would pair rows with adapters silently
    with pytest.raises(ValueError, match="one adapter to every row"):
        captures["transformer_lens"](*args, both)
