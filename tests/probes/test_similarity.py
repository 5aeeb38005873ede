"""Residual-stream similarity: the identities on a random tiny SmolVLM (float64: a run against itself has
cosine 1, share 1 and CKA 1, a run whose states are base's has share 0, the embeddings' share is NaN),
CKA's invariance to orthogonal transforms and isotropic scaling, the residuals agreeing with what
activation patching reads at the same positions, the dataset on a random base, an official-kind
hypernetwork (the study command: tests/analyses/test_similarity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import QUESTIONS, FakePipeline, random_adapter

from f2l.adapter import text_model_of
from f2l.data import clip_prompts, world_manifest
from probes.patching import make_runs, read_sites
from probes.prompts import PromptSet
from probes.similarity import MEASURES, linear_cka, per_example, read_residuals, similarity

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def residuals(base_f64, random_video, adapter_f64, capture_f64):
    """Per question: its three runs and their ``[L + 1, K, d]`` residual streams."""
    out = []
    for question in QUESTIONS:
        runs = make_runs(base_f64, question, (), random_video, adapter_f64)  # the prompt alone
        out.append((runs, {name: read_residuals(capture_f64, run) for name, run in runs.items()}))
    return out


def test_the_positions_are_the_prompts_aligned_question_span(base_f64, residuals):
    layers = len(text_model_of(base_f64.model).layers)
    for question, (runs, resid) in zip(QUESTIONS, residuals, strict=True):
        k = runs["base"].span
        assert all(r.span == k and r.answer == 0 for r in runs.values())
        for run in runs.values():  # the span ends the prompt: no answer tokens
            assert run.start + run.span == run.ids.shape[0]
        assert runs["direct"].ids.shape[0] > runs["base"].ids.shape[0]  # the video's tokens
        tail = base_f64.tokenizer.decode(runs["base"].ids[runs["base"].positions].tolist())
        assert question.split(" ", 1)[1] in tail and tail.rstrip().endswith("Assistant:")
        assert all(
            r.shape == (layers + 1, k, base_f64.model.config.text_config.hidden_size) for r in resid.values()
        )


def test_residuals_are_those_patching_reads_at_the_question_positions(
    base_f64, random_video, adapter_f64, capture_f64, residuals
):
    """Causal attention: the question positions' residual stream does not depend on the answer after it."""
    runs = make_runs(base_f64, QUESTIONS[1], [12, 500, 501], random_video, adapter_f64)
    for name, run in runs.items():
        sites = read_sites(capture_f64, run)
        k = run.span - run.answer
        torch.testing.assert_close(sites.resid_pre[:, :k], residuals[1][1][name], rtol=1e-10, atol=1e-10)


def test_identities(residuals):
    for _, r in residuals:
        itself = per_example(r["direct"], r["direct"], r["base"])
        np.testing.assert_allclose(itself["cosine"], 1.0, atol=1e-12)
        np.testing.assert_allclose(itself["share"][1:], 1.0, atol=1e-12)
        as_base = per_example(r["base"], r["direct"], r["base"])
        np.testing.assert_allclose(as_base["share"][1:], 0.0, atol=1e-12)
        np.testing.assert_allclose(as_base["cosine"], as_base["cosine_base"], atol=1e-12)
        real = per_example(r["f2l"], r["direct"], r["base"])
        # layer 0 is the token embedding, the same in every run: cosine 1, and the share undefined
        assert np.isnan(real["share"][0]) and np.isnan(itself["share"][0])
        np.testing.assert_allclose(real["cosine"][0], 1.0, atol=1e-12)
        assert np.isfinite(real["share"][1:]).all() and (real["share"][1:] < 1).all()
        assert (np.abs(real["cosine"]) <= 1 + 1e-12).all()
    # the share by hand, at the final residual of the first question
    r = residuals[0][1]
    f2l, direct, base = (r[n][-1] for n in ("f2l", "direct", "base"))
    expected = 1 - torch.linalg.norm(f2l - direct) / torch.linalg.norm(base - direct)
    np.testing.assert_allclose(per_example(f2l[None], direct[None], base[None])["share"][0], float(expected))


def test_linear_cka_identities_and_invariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 16)), rng.normal(size=(12, 16))
    np.testing.assert_allclose(linear_cka(x, x), 1.0, atol=1e-12)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    np.testing.assert_allclose(linear_cka(x, 3.5 * x @ q), 1.0, atol=1e-12)
    np.testing.assert_allclose(linear_cka(2.0 * x @ q + 7.0, y), linear_cka(x, y), atol=1e-12)
    # the feature-space form ||Y^T X||^2 / (||X^T X|| ||Y^T Y||)
    xc, yc = x - x.mean(0), y - y.mean(0)
    by_features = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    np.testing.assert_allclose(linear_cka(x, y), by_features, atol=1e-12)
    assert 0 < linear_cka(x, y) < 1
    # batched over a leading dim; the two widths may differ
    np.testing.assert_allclose(linear_cka(np.stack([x, x]), np.stack([x, y])), [1.0, linear_cka(x, y)])
    assert 0 < linear_cka(x, y[:, :5]) < 1
    assert np.isnan(linear_cka(x[:1], y[:1]))  # one example
    assert np.isnan(linear_cka(np.tile(x[:1] + 0.1, (5, 1)), y[:5]))  # every example the same
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, y[:5])


def test_dataset_schema_and_the_identities_in_it(random_base):
    examples = world_manifest("test", 2)
    pipeline = FakePipeline(random_base, random_adapter(random_base.model, seed=5))
    ds = similarity(pipeline, examples, frames=2, prompts=PromptSet(prompts_per_clip=3))
    layers = len(text_model_of(random_base.model).layers)
    d = random_base.model.config.text_config.hidden_size
    sizes = {"example_id": 6, "adapter": 1, "layer": layers + 1, "measure": 2, "run": 3, "hidden": d}
    assert dict(ds.sizes) == sizes and list(ds["adapter"].values) == ["real"]
    ds = ds.sel(adapter="real")
    prompts = [(e, p) for e in examples for p in clip_prompts(e)[:3]]
    assert list(ds["example_id"].values) == [f"{e.id}/{p.item_id}" for e, p in prompts]
    assert list(ds["prompt"].values) == [p.prompt for _, p in prompts]
    assert list(ds["benchmark"].values) == [p.label for _, p in prompts]
    assert list(ds["clip"].values) == [e.id for e, _ in prompts]
    assert list(ds["measure"].values) == list(MEASURES) and ds.attrs["min_gap"] == 1e-6
    share = ds["similarity"].sel(measure="share")
    assert share.sel(layer=0).isnull().all() and share.isel(layer=slice(1, None)).notnull().all()
    np.testing.assert_allclose(ds["similarity"].sel(layer=0, measure="cosine"), 1.0, atol=1e-5)
    # CKA across all six examples, from the stored position means
    means = ds["mean_resid"]
    for layer in ds["layer"].values:
        cka = linear_cka(
            means.sel(run="f2l", layer=layer).values, means.sel(run="direct", layer=layer).values
        )
        np.testing.assert_allclose(ds["cka"].sel(layer=layer), cka)
    np.testing.assert_allclose(ds["cka"].sel(layer=0), 1.0, atol=1e-5)  # the same embeddings
    assert ds.attrs["cka_examples"] == 6 and (ds["question_tokens"] >= 5).all()
    # a pipeline whose adapter changes nothing: f2l is base, its share 0 and its CKA base's
    zero = FakePipeline(random_base, random_adapter(random_base.model, seed=5).scaled(0.0))
    same = similarity(zero, examples[:1], frames=2, prompts=PromptSet(prompts_per_clip=2)).sel(adapter="real")
    np.testing.assert_allclose(
        same["similarity"].sel(measure="share").isel(layer=slice(1, None)), 0.0, atol=1e-6
    )
    np.testing.assert_allclose(same["cka"], same["cka_base"], atol=1e-6)


def test_an_official_kind_hypernetwork(official_hypernet):
    """The authors' design (converted from the official fixture): a down_proj-only, rank-2r adapter."""
    from f2l.pipeline import Frames2LoRA

    pipeline = Frames2LoRA.from_pretrained(official_hypernet, device="cpu")
    example = world_manifest("test", 1)[0]
    assert list(pipeline.internalize(pipeline.example_frames(example, 4)).modules) == ["down_proj"]
    ds = similarity(pipeline, [example], frames=4, prompts=PromptSet(prompts_per_clip=3))
    assert ds.sizes["example_id"] == 3 and np.isfinite(ds["cka"].values).all()
    assert ds["similarity"].isel(layer=slice(1, None)).notnull().all()
