"""The logit lens: on a random tiny SmolVLM (float64), the read-out at the final layer is the model's own
logits (the same probability and rank, KL 0) in every run, every layer's read-out is the final RMSNorm and
the unembedding of the residual stream written out by hand, the measures by hand, the TransformerLens
bridge giving the same numbers (the video's pixels and the adapter inside it), the dataset on a random
base and an official-kind hypernetwork (the study command: tests/analyses/test_logit_lens.py)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import xarray as xr
from support import FakePipeline, random_adapter

from f2l.adapter import text_model_of, use_adapter
from f2l.data import clip_prompts, world_manifest
from probes.controls import ADAPTERS
from probes.hooks import BridgeCapture
from probes.logit_lens import MEASURES, RUNS, hook_names, lens, lens_of_run, logit_lens, read_out, read_stream
from probes.patching import read_sites
from probes.prompts import PromptSet

pytestmark = pytest.mark.usefixtures("one_thread")


def own_logits(model, run) -> torch.Tensor:
    """The model's logits at the positions predicting ``run``'s answer, from a plain forward."""
    with torch.no_grad(), use_adapter(model, run.adapter) if run.adapter is not None else nullcontext():
        return model(**run.inputs).logits[0, run.predicting]


def test_the_final_read_out_is_the_models_own_logits(base_f64, capture_f64, runs_f64):
    model = base_f64.model
    for by_name in runs_f64:
        for name in RUNS:
            run = by_name[name]
            stream = read_stream(capture_f64, run)
            readout = read_out(capture_f64, stream[:, run.predicting - run.start])
            logits = own_logits(model, run)
            torch.testing.assert_close(readout[-1], logits, rtol=0, atol=1e-10 * logits.abs().max())
            at_final = {m: v[-1] for m, v in lens(readout, run.answer_ids).items()}
            own = {m: v[0] for m, v in lens(logits[None], run.answer_ids).items()}
            assert at_final["rank"] == own["rank"] and at_final["kl"] == 0.0
            np.testing.assert_allclose(at_final["prob"], own["prob"], rtol=1e-10)
            np.testing.assert_allclose(at_final["logp"], own["logp"], rtol=1e-10)
            # and the KL of the model's own distribution from the final read-out is 0
            p, q = torch.log_softmax(logits, -1), torch.log_softmax(readout[-1], -1)
            assert float((p.exp() * (p - q)).sum(-1).abs().max()) < 1e-10
            # the final logp is patching's logp of the same answer in the same run
            np.testing.assert_allclose(at_final["logp"], read_sites(capture_f64, run).logp, rtol=1e-10)


def test_every_read_out_is_the_final_norm_and_unembedding_by_hand(base_f64, capture_f64, runs_f64):
    """Against the residual stream as ``NNsightCapture`` returns it and an RMSNorm written out here."""
    model = base_f64.model
    norm = text_model_of(model).norm
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    w_u = model.get_output_embeddings().weight
    for name in ("f2l", "base"):
        run = runs_f64[1][name]
        rows = torch.zeros(run.answer, dtype=torch.long)
        residuals = capture_f64(
            run.inputs["input_ids"], run.inputs["attention_mask"], rows, run.predicting, run.adapter
        )
        stream = torch.cat([residuals.resid_pre, residuals.resid_final[None]])
        by_hand = (norm.weight * stream / (stream.pow(2).mean(-1, keepdim=True) + eps).sqrt()) @ w_u.T
        readout = read_out(capture_f64, read_stream(capture_f64, run)[:, run.predicting - run.start])
        assert readout.shape == (len(model.model.text_model.layers) + 1, run.answer, w_u.shape[0])
        torch.testing.assert_close(readout, by_hand, rtol=0, atol=1e-5 * by_hand.abs().max())


def test_the_measures_by_hand():
    logits = torch.tensor(
        [
            [[0.0, 1.0, 2.0, 3.0], [3.0, 0.0, 0.0, 0.0]],  # layer 0
            [[3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 3.0]],  # layer 1: the final read-out
        ],
        dtype=torch.float64,
    )
    answer = torch.tensor([1, 3])
    out = lens(logits, answer)
    p = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(out["prob"], [(p[0, 0, 1] + p[0, 1, 3]) / 2, (p[1, 0, 1] + p[1, 1, 3]) / 2])
    np.testing.assert_allclose(out["rank"], [(2 + 1) / 2, (1 + 0) / 2])  # ties with the answer do not count
    np.testing.assert_allclose(
        out["logp"], [np.log(p[0, 0, 1] * p[0, 1, 3]), np.log(p[1, 0, 1] * p[1, 1, 3])]
    )
    kl = (p[1] * (np.log(p[1]) - np.log(p[0]))).sum(-1).mean()
    np.testing.assert_allclose(out["kl"], [kl, 0.0])


def test_transformer_lens_bridge_gives_the_same_numbers(base_f64, capture_f64, runs_f64):
    bridge = BridgeCapture(base_f64.model)
    for by_name in runs_f64:
        for name in RUNS:  # the direct run through the bridge too: its pixels are passed on
            run = by_name[name]
            ours, theirs = read_stream(capture_f64, run), read_stream(bridge, run)
            # float32 rounding, not float64: RMSNorm computes in float32, the bridge's attention is eager
            torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6 * ours.abs().max())
            a, b = lens_of_run(capture_f64, run), lens_of_run(bridge, run)
            for m in MEASURES:
                np.testing.assert_allclose(b[m], a[m], rtol=1e-6, atol=1e-9, err_msg=f"{name} {m}")
    # the adapter runs inside the bridge: its f2l and base read-outs differ as nnsight's do
    f2l, base = (lens_of_run(bridge, runs_f64[0][name]) for name in ("f2l", "base"))
    assert np.abs(f2l["logp"] - base["logp"]).max() > 0.1
    assert hook_names(bridge.layers)[-1] == "ln_final.hook_in"


def test_dataset_schema(random_base):
    example = world_manifest("test", 1)[0]
    pipeline = FakePipeline(random_base, random_adapter(random_base.model, seed=5))
    # this pipeline's blank control is the real adapter itself: its numbers must come out the same
    ds = logit_lens(
        pipeline,
        [example],
        frames=2,
        prompts=PromptSet(prompts_per_clip=3),
        max_new_tokens=5,
        adapters=("real", "blank"),
    )
    layers = len(text_model_of(random_base.model).layers)
    prompts = clip_prompts(example)[:3]
    assert dict(ds.sizes) == {"example_id": 3, "adapter": 2, "run": 3, "layer": layers + 1}
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert list(ds["prompt"].values) == [p.prompt for p in prompts]
    assert list(ds["hook"].values) == [f"blocks.{i}.hook_resid_pre" for i in range(layers)] + [
        "ln_final.hook_in"
    ]
    assert ds.attrs["backend"] == "nnsight" and ds["kl"].attrs["units"] == "nats"
    for m in MEASURES:
        assert ds[m].notnull().all()
        xr.testing.assert_equal(ds[m].sel(adapter="blank", drop=True), ds[m].sel(adapter="real", drop=True))
    final = ds.isel(layer=-1)
    np.testing.assert_array_equal(final["kl"], 0.0)
    # the direct run is read on its own greedy answer: at the final layer every token is its top token
    np.testing.assert_array_equal(final["rank"].sel(run="direct"), 0.0)
    assert (final["prob"].sel(run="direct") > final["prob"].sel(run="base")).all()
    assert (ds["rank"] >= 0).all() and ((ds["prob"] > 0) & (ds["prob"] <= 1)).all()
    assert (ds["logp"] < 0).all() and (ds["answer_tokens"] >= 1).all()
    with pytest.raises(ValueError, match="must include 'real'"):
        logit_lens(pipeline, [example], adapters=("swapped",))


def test_an_official_kind_hypernetwork(official_hypernet):
    """The authors' design (converted from the official fixture): a down_proj-only, rank-2r adapter."""
    from f2l.pipeline import Frames2LoRA

    pipeline = Frames2LoRA.from_pretrained(official_hypernet, device="cpu")
    examples = world_manifest("test", 2)
    ds = logit_lens(
        pipeline,
        examples[:1],
        frames=4,
        prompts=PromptSet(prompts_per_clip=2),
        max_new_tokens=4,
        adapters=ADAPTERS,
        partners={examples[0].id: examples[1]},
    )
    assert dict(ds.sizes) == {"example_id": 2, "adapter": 3, "run": 3, "layer": 5}
    np.testing.assert_array_equal(ds["kl"].isel(layer=-1), 0.0)
    assert ds["prob"].notnull().all()
