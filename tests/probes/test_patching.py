"""Activation patching: the identities on a random tiny SmolVLM (float64) in every direction (nothing
patched restores 0, every site at once restores 1, the final residual gives the source's logp, a run
patched into itself is unchanged, the embeddings restore 0), the alignment of the question tokens across
runs of different lengths, the greedy answers and their teacher forcing, the dataset on a random base,
and an official-kind hypernetwork (the study command: tests/analyses/test_patching.py)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import xarray as xr
from support import ANSWERS, QUESTIONS, FakePipeline, random_adapter, random_frames

from f2l.adapter import text_model_of, use_adapter
from f2l.answer import greedy_answer_ids
from f2l.data import clip_prompts, world_manifest
from f2l.results import read_netcdf
from probes.patching import (
    DIRECTIONS,
    SITES,
    make_runs,
    patched_logp,
    patching,
    question_span,
    read_sites,
    restored_fraction,
)
from probes.prompts import PromptSet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sites(capture_f64, runs_f64):
    return [{name: read_sites(capture_f64, run) for name, run in by_name.items()} for by_name in runs_f64]


def every_sublayer(layers: int) -> list[tuple[int, str]]:
    """The embeddings and every layer's attention and MLP outputs: together they make the residual stream."""
    return [(0, "resid_pre")] + [(layer, s) for layer in range(layers) for s in ("attn_out", "mlp_out")]


def test_the_runs_share_the_question_and_answer_tokens_aligned_from_the_end(base_f64, runs_f64):
    tokenizer = base_f64.tokenizer
    for by_name, question, answer in zip(runs_f64, QUESTIONS, ANSWERS, strict=True):
        direct, f2l, base = by_name["direct"], by_name["f2l"], by_name["base"]
        assert direct.ids.shape[0] > base.ids.shape[0] + 50  # the visual tokens
        assert torch.equal(f2l.ids, base.ids) and "pixel_values" in direct.inputs
        assert f2l.adapter is not None and base.adapter is None and direct.adapter is None
        spans = [r.ids[r.positions].tolist() for r in (direct, f2l, base)]
        assert spans[0] == spans[1] == spans[2]
        for r in (direct, f2l, base):  # the span ends the row; the answer ends the span
            assert int(r.positions[-1]) == r.ids.shape[0] - 1
            assert r.answer_ids.tolist() == answer
            assert r.ids[r.predicting + 1].tolist() == answer
        text = tokenizer.decode(spans[0][: base.span - base.answer])
        assert text.endswith("<end_of_utterance>\nAssistant:")
        assert question.split(" ", 1)[1] in text
        # all of the question's tokens, or all but a first one merged with the space before it
        tail = tokenizer(f"{question}<end_of_utterance>\nAssistant:", add_special_tokens=False)["input_ids"]
        assert base.span - base.answer in (len(tail), len(tail) - 1)


def test_prompts_that_differ_inside_the_question_are_refused(base_f64):
    tail = "how many squares are there?<end_of_utterance>\nAssistant:"
    tail_ids = base_f64.tokenizer(tail, add_special_tokens=False)["input_ids"]
    text = [1, 2, 3, *tail_ids]
    assert (
        question_span(base_f64.tokenizer, [9, 9, *tail_ids[1:]], text, "how many", tail) == len(tail_ids) - 1
    )
    broken = [9, 9, *tail_ids[1:3], 7, *tail_ids[4:]]
    with pytest.raises(AssertionError, match="differs"):
        question_span(base_f64.tokenizer, broken, text, "how many", tail)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_identities_of_patching_in_every_direction(capture_f64, runs_f64, sites, direction):
    source, target = DIRECTIONS[direction]
    for i in range(len(QUESTIONS)):
        src, tgt = sites[i][source], sites[i][target]
        # (the fixture teacher-forces one fixed answer in all three runs, standing in for the source's)
        layers = src.num_layers
        gap = src.logp - tgt.logp
        assert abs(gap) > 1e-2, "the runs must differ for the identities to mean anything"
        final = (layers, "resid_pre")
        logp = patched_logp(
            capture_f64,
            runs_f64[i][target],
            src,
            [[], every_sublayer(layers), [final], [(0, "resid_pre")], [(0, "resid_pre"), final]],
            batch_size=2,  # several batches, one with two rows
        )
        tol = 1e-8 * max(1.0, abs(src.logp), abs(tgt.logp))
        nothing, everything, last, embeddings, both = logp.tolist()
        assert nothing == pytest.approx(tgt.logp, abs=tol)  # patching nothing: the target
        assert everything == pytest.approx(src.logp, abs=tol)  # every site: the source
        assert last == pytest.approx(src.logp, abs=tol)  # the final residual: the source's logp
        assert embeddings == pytest.approx(tgt.logp, abs=tol)  # the same tokens embed alike in every run
        assert both == pytest.approx(src.logp, abs=tol)
        restored = restored_fraction(logp.numpy(), src.logp, tgt.logp, min_effect=0.0)
        np.testing.assert_allclose(restored, [0, 1, 1, 0, 1], atol=1e-8)


def test_a_run_patched_into_itself_is_unchanged(capture_f64, runs_f64, sites):
    for name in ("direct", "f2l", "base"):
        run, own = runs_f64[1][name], sites[1][name]
        layers = own.num_layers
        single = [[(layer, s)] for layer in range(layers) for s in SITES] + [[(layers, "resid_pre")]]
        logp = patched_logp(capture_f64, run, own, [every_sublayer(layers), *single])
        np.testing.assert_allclose(logp.numpy(), own.logp, rtol=0, atol=1e-9 * abs(own.logp))


def test_read_sites_are_the_residual_stream_nnsight_capture_reads(capture_f64, runs_f64, sites):
    for name in ("f2l", "base"):
        run, own = runs_f64[0][name], sites[0][name]
        rows = torch.zeros(run.span, dtype=torch.long)
        ids, mask = run.inputs["input_ids"], run.inputs["attention_mask"]
        residuals = capture_f64(ids, mask, rows, run.positions, run.adapter)
        torch.testing.assert_close(own.resid_pre[:-1], residuals.resid_pre, rtol=0, atol=0)
        torch.testing.assert_close(own.attn_out, residuals.attn_out, rtol=0, atol=0)
        torch.testing.assert_close(own.mlp_out, residuals.mlp_out, rtol=0, atol=0)
        torch.testing.assert_close(own.resid_pre[-1], residuals.resid_final, rtol=0, atol=0)
        # resid_pre_{l+1} = resid_pre_l + attn_out_l + mlp_out_l, the final residual included
        torch.testing.assert_close(own.resid_pre[1:], own.resid_pre[:-1] + own.attn_out + own.mlp_out)
    # the video changes the text positions' residual stream from the first layer's attention on
    direct, base = sites[0]["direct"], sites[0]["base"]
    assert torch.equal(direct.resid_pre[0], base.resid_pre[0])
    assert (direct.attn_out[0] - base.attn_out[0]).abs().max() > 1e-3


def test_bad_patches_are_refused(capture_f64, runs_f64, sites):
    run, own = runs_f64[0]["base"], sites[0]["base"]
    layers = own.num_layers
    with pytest.raises(ValueError, match="unknown sites"):
        patched_logp(capture_f64, run, own, [[(0, "resid_post")]])
    with pytest.raises(ValueError, match="no such sites"):
        patched_logp(capture_f64, run, own, [[(layers, "mlp_out")]])
    with pytest.raises(ValueError, match="aligned tokens"):
        patched_logp(capture_f64, runs_f64[1]["base"], own, [[]])


def test_greedy_answers_end_with_their_stop_token_and_teacher_force_back(random_base):
    base = random_base
    adapter = random_adapter(base.model, seed=3)
    video = random_frames(size=base.model.config.vision_config.image_size, seed=1)
    stops = {base.model.generation_config.pad_token_id}
    eos = base.model.generation_config.eos_token_id
    stops |= {eos} if isinstance(eos, int) else set(eos or [])
    for kwargs in ({"video": video}, {"adapter": adapter}):
        answers = greedy_answer_ids(base, QUESTIONS, max_new_tokens=6, keep_stop=True, **kwargs)
        assert all(answers) and all(len(a) <= 6 for a in answers)
        for answer in answers:
            assert not stops & set(answer[:-1])  # a stop token only at the end, where it stopped
        for question, answer in zip(QUESTIONS, answers, strict=True):
            run = make_runs(base, question, answer, video, adapter)["direct" if "video" in kwargs else "f2l"]
            with torch.no_grad(), use_adapter(base.model, adapter) if run.adapter else nullcontext():
                logits = base.model(**run.inputs).logits[0]
            assert logits[run.predicting].argmax(-1).tolist() == answer


def test_dataset_schema_and_the_identities_in_it(random_base):
    example = world_manifest("test", 1)[0]
    pipeline = FakePipeline(random_base, random_adapter(random_base.model, seed=5))
    # this pipeline's blank control is the real adapter itself: every number must come out the same
    ds = patching(
        pipeline, [example], frames=2, prompts=PromptSet(prompts_per_clip=3), max_new_tokens=5, min_effect=0.3,
        adapters=("real", "blank"),
    )  # fmt: skip
    layers = len(text_model_of(random_base.model).layers)
    prompts = clip_prompts(example)[:3]
    assert dict(ds.sizes) == {
        "example_id": 3, "adapter": 2, "layer": layers + 1, "site": 3, "direction": 3, "run": 2
    }  # fmt: skip
    assert list(ds["adapter"].values) == ["real", "blank"]
    for name in ("logp_patched", "logp_source", "logp_target", "answer_tokens", "prediction"):
        xr.testing.assert_equal(
            ds[name].sel(adapter="blank", drop=True), ds[name].sel(adapter="real", drop=True)
        )
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert list(ds["prompt"].values) == [p.prompt for p in prompts]
    assert list(ds["benchmark"].values) == [p.label for p in prompts]
    assert list(ds["source"].values) == ["direct", "f2l", "direct"]
    assert list(ds["target"].values) == ["base", "base", "f2l"]
    assert ds.attrs["min_effect"] == 0.3 and ds["logp_patched"].attrs["units"] == "nats"
    np.testing.assert_allclose(ds["effect"], ds["logp_source"] - ds["logp_target"])
    # the sublayers do not exist past the last layer; every other site has a patched logp
    assert ds["logp_patched"].isel(layer=-1).sel(site=["attn_out", "mlp_out"]).isnull().all()
    assert ds["logp_patched"].isel(layer=slice(0, -1)).notnull().all()
    # the identities in float32: the final residual gives the source's logp, the embeddings the target's
    final = ds["logp_patched"].isel(layer=-1).sel(site="resid_pre")
    np.testing.assert_allclose(final, ds["logp_source"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(
        ds["logp_patched"].sel(layer=0, site="resid_pre"), ds["logp_target"], atol=1e-3
    )
    # restored: NaN exactly where the gap is under the threshold
    small = abs(ds["effect"]) < 0.3
    assert ds["restored"].where(small).isnull().all()
    expected = (ds["logp_patched"] - ds["logp_target"]) / ds["effect"]
    xr.testing.assert_allclose(ds["restored"], expected.where(~small))
    # the answers scored: each direction's source's greedy answer (the same in both directions from direct)
    np.testing.assert_array_equal(
        ds["answer_tokens"].sel(direction="direct->base"), ds["answer_tokens"].sel(direction="direct->f2l")
    )
    assert (ds["answer_tokens"] >= 1).all() and (ds["question_tokens"] >= 5).all()
    one = patching(
        pipeline,
        [example],
        frames=2,
        prompts=PromptSet(prompts_per_clip=1),
        max_new_tokens=5,
        directions=["f2l->base"],
    )
    assert list(one["direction"].values) == ["f2l->base"] and list(one["run"].values) == ["f2l"]
    assert list(one["adapter"].values) == ["real"]
    with pytest.raises(ValueError, match="unknown directions"):
        patching(pipeline, [example], directions=["base->direct"])
    with pytest.raises(ValueError, match="at least two different clips"):  # no other clip to swap in
        patching(pipeline, [example], adapters=("real", "swapped"))


def test_an_official_kind_hypernetwork(official_hypernet, tmp_path, monkeypatch):
    """The authors' design (converted from the official fixture): a down_proj-only, rank-2r adapter, through
    the study command."""
    import analyses.patching as study
    from f2l.pipeline import Frames2LoRA

    pipeline = Frames2LoRA.from_pretrained(official_hypernet, device="cpu")
    example = world_manifest("test", 1)[0]
    assert list(pipeline.internalize(pipeline.example_frames(example, 4)).modules) == ["down_proj"]
    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])
    argv = [
        "--hypernet",
        str(official_hypernet),
        "--out",
        str(tmp_path / "out"),
        "--clips",
        "1",
        "--frames",
        "4",
        "--adapters",
        "real",
    ]
    assert study.main([*argv, "--prompts-per-clip", "2", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    ds = read_netcdf(tmp_path / "out" / "patching.nc")
    assert ds.attrs["hypernet"].startswith("tiny-official@") and ds.sizes["failure"] == 0
    final = ds["logp_patched"].isel(layer=-1).sel(site="resid_pre")
    np.testing.assert_allclose(final, ds["logp_source"], rtol=0, atol=1e-3)
    assert ds["logp_patched"].isel(layer=slice(0, -1)).notnull().all()
