"""Rank-direction ablation: top-k truncation's two ends (k = r is the adapter, k = 0 the base), single
removals that add back up to the update, the random control's edit size against a dense computation,
the probe's batched answers against each variant answered alone, generated against static rank slots
for an "official" adapter (and none for an f2l one) (the study command:
tests/analyses/test_rank_ablation.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from f2l.adapter import TARGET_MODULES, Adapter, text_model_of, use_adapter
from f2l.adapter.lora import SUBLAYER
from f2l.answer import generate
from f2l.chat import model_inputs, prompt_text
from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.encode import internalization_inputs
from f2l.eval.metrics import score_answers
from f2l.models import load_base
from f2l.pipeline import Frames2LoRA
from probes.rank_ablation import (
    clip_generator,
    rank_ablation,
    remove_random_direction,
    remove_svd_direction,
    slot_indices,
    topk_variants,
)

RANK = 4
TOKENS = 6  # a few greedy tokens tell variants apart on a random model and keep the test fast


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fresh(random_tiny_dir):
    """A private copy of the random tiny base (adapters install wrappers in it)."""
    return load_base(random_tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def adapter(fresh) -> Adapter:
    """Gaussian factors of rank 4, large enough to change the logits visibly."""
    text = text_model_of(fresh.model)
    g = torch.Generator().manual_seed(0)
    factors = {}
    for m in TARGET_MODULES:
        lin = getattr(getattr(text.layers[0], SUBLAYER[m]), m)
        n = len(text.layers)
        factors[m] = (
            0.15 * torch.randn(n, RANK, lin.in_features, generator=g),
            0.15 * torch.randn(n, RANK, lin.out_features, generator=g),
        )
    return Adapter(factors, scaling=0.5)


@pytest.fixture(scope="module")
def inputs(fresh):
    texts = [
        prompt_text(fresh.processor, q, with_video=False) for q in ("what colour is the ball?", "count it")
    ]
    return model_inputs(fresh.processor, texts)


def logits(model, inputs, adapter: Adapter | None = None) -> torch.Tensor:
    with torch.no_grad():
        if adapter is None:
            return model(**inputs).logits
        with use_adapter(model, adapter):
            return model(**inputs).logits


def dense(adapter: Adapter, module: str, layer: int) -> torch.Tensor:
    return adapter.to(torch.float64).delta_weight(module, layer)


def test_topk_at_r_is_the_adapter_and_at_0_the_base(fresh, inputs, adapter):
    plain, full = logits(fresh.model, inputs), logits(fresh.model, inputs, adapter)
    assert (full - plain).abs().max() > 0.1  # the adapter is far from a no-op
    keep_all, keep_none = topk_variants(adapter, [RANK, 0])
    assert keep_all.dtype == adapter.dtype == keep_none.dtype
    torch.testing.assert_close(logits(fresh.model, inputs, keep_all), full, rtol=1e-5, atol=1e-5)
    assert torch.equal(logits(fresh.model, inputs, keep_none), plain)  # zero factors add exactly nothing


def test_single_removals_add_up_to_the_update_and_removing_all_is_the_base(fresh, inputs, adapter):
    exact = adapter.to(torch.float64)
    svd = exact.svd()
    removed = [remove_svd_direction(exact, i) for i in range(RANK)]
    for m in TARGET_MODULES:
        for layer in range(adapter.num_layers):
            dw = dense(exact, m, layer)
            pieces = [dw - dense(r, m, layer) for r in removed]
            for i, piece in enumerate(pieces):  # direction i takes exactly s_i u_i v_i^T
                assert torch.linalg.matrix_norm(piece) == pytest.approx(float(svd[m].S[layer, i]), rel=1e-9)
            torch.testing.assert_close(sum(pieces), dw, rtol=1e-10, atol=1e-10)
    everything = adapter.ablate_directions(range(RANK))
    assert torch.equal(logits(fresh.model, inputs, everything), logits(fresh.model, inputs))


def test_random_control_removes_a_rank_one_edit_of_the_removed_singular_value(adapter):
    exact = adapter.to(torch.float64)
    svd = exact.svd()
    for i in range(RANK):
        edited = remove_random_direction(exact, i, torch.Generator().manual_seed(i))
        again = remove_random_direction(exact, i, torch.Generator().manual_seed(i))
        for m in TARGET_MODULES:
            u, s, v = svd[m]
            for layer in range(adapter.num_layers):
                edit = dense(exact, m, layer) - dense(edited, m, layer)
                sv = torch.linalg.svdvals(edit)
                assert float(sv[0]) == pytest.approx(float(s[layer, i]), rel=1e-9)  # ||edit||_F = s_i ...
                assert float(sv[1]) < 1e-9 * float(s[layer, i])  # ... in one direction
                rows, cols = v[layer] @ v[layer].T, u[layer] @ u[layer].T
                torch.testing.assert_close(edit @ rows, edit)  # within the update's row space
                torch.testing.assert_close(cols @ edit, edit)  # and its column space
                singular = s[layer, i] * torch.outer(u[layer][:, i], v[layer][:, i])
                assert torch.linalg.matrix_norm(edit - singular) > 0.1 * s[layer, i]  # not the svd edit
            assert torch.equal(edited.factors[m][0], again.factors[m][0])  # the generator fixes the draw
    assert not torch.equal(
        torch.randn(3, generator=clip_generator(0, "world-1")),
        torch.randn(3, generator=clip_generator(0, "world-2")),
    )


def test_random_control_leaves_a_zero_direction_alone():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, RANK, 10, generator=g, dtype=torch.float64), torch.randn(2, RANK, 6, generator=g)
    a[:, -1] = 0.0  # rank 3: the last singular value is zero
    deficient = Adapter({"q_proj": (a, b.double())})
    assert float(deficient.svd()["q_proj"].S[:, -1].abs().max()) < 1e-12
    edited = remove_random_direction(deficient, RANK - 1, g)
    for layer in range(2):
        torch.testing.assert_close(dense(edited, "q_proj", layer), dense(deficient, "q_proj", layer))


def test_probe_answers_every_variant_as_if_alone(loud_random_f2l):
    example = world_manifest("test", 1)[0]
    ds = rank_ablation(loud_random_f2l, [example], max_new_tokens=TOKENS, seed=7, batch_size=48)
    size = loud_random_f2l.base.model.config.vision_config.image_size
    adapter = loud_random_f2l.internalize(load_frames(example, num_frames=8, size=size))
    r = adapter.rank
    prompts = clip_prompts(example)
    questions, refs = [p.prompt for p in prompts], [p.reference for p in prompts]
    assert dict(ds.sizes) == {
        "example_id": len(prompts),
        "k": r + 1,
        "singular_direction": r,
        "control": 2,
        "layer": adapter.num_layers,
        "module": len(TARGET_MODULES),
    }
    assert list(ds["k"].values) == list(range(r + 1)) and list(ds["control"].values) == ["svd", "random"]
    assert slot_indices(adapter) is None  # an f2l adapter has no static slots ...
    assert not {"slot_score", "slot_prediction", "slots", "rank_slots"} & set(ds.variables)  # ... nor entries
    assert list(ds["example_id"].values) == [f"{example.id}/{p.item_id}" for p in prompts]
    assert list(ds["benchmark"].values) == [p.label for p in prompts] and ds.attrs["seed"] == 7

    def alone(variant: Adapter) -> list[str]:
        return [loud_random_f2l.generate(variant, q, max_new_tokens=TOKENS).text for q in questions]

    full = alone(adapter)
    assert list(ds["full_prediction"].values) == full
    assert list(ds["topk_prediction"].sel(k=r).values) == full
    no_video = [a.text for a in generate(loud_random_f2l.base, questions, max_new_tokens=TOKENS)]
    assert list(ds["topk_prediction"].sel(k=0).values) == no_video
    assert full != no_video  # so the two ends are different measurements
    without_top = alone(remove_svd_direction(adapter, 0))
    assert list(ds["remove_prediction"].sel(singular_direction=0, control="svd").values) == without_top
    assert without_top != full  # removing the top direction changes answers: the comparisons have teeth
    generator = clip_generator(7, example.id)  # the probe draws direction 0's edit, then direction 1's
    remove_random_direction(adapter, 0, generator)
    assert list(ds["remove_prediction"].sel(singular_direction=1, control="random").values) == alone(
        remove_random_direction(adapter, 1, generator)
    )
    for score, text in (("topk_score", "topk_prediction"), ("remove_score", "remove_prediction")):
        flat = ds[text].transpose("example_id", ...).values.reshape(len(prompts), -1)
        want = np.stack([score_answers("token_f1", list(col), refs) for col in flat.T], axis=-1)
        np.testing.assert_array_equal(
            ds[score].transpose("example_id", ...).values.reshape(len(prompts), -1), want
        )
    np.testing.assert_array_equal(ds["full_score"].values, score_answers("token_f1", full, refs))
    singular = adapter.to(torch.float64).svd()
    for m in ("q_proj", "down_proj"):
        np.testing.assert_allclose(ds["singular_values"].sel(module=m).values[0], singular[m].S.numpy())
    with pytest.raises(ValueError, match="ks"):
        rank_ablation(loud_random_f2l, [example], ks=[0, r + 1])


def test_keep_slots_splits_the_update_into_its_blocks(adapter):
    marked = Adapter(adapter.factors, scaling=adapter.scaling, provenance={"static_rank_slots": [3, 4]})
    slots = slot_indices(marked)
    assert slots == {"generated": [0, 1, 2], "static": [3]}
    generated, static = (marked.keep_rank_slots(slots[name]) for name in ("generated", "static"))
    assert (generated.rank, static.rank) == (3, 1) and "static_rank_slots" not in generated.provenance
    for m in ("q_proj", "down_proj"):
        torch.testing.assert_close(dense(generated, m, 1) + dense(static, m, 1), dense(marked, m, 1))
        a, b = marked.factors[m]
        torch.testing.assert_close(
            dense(generated, m, 1), adapter.scaling * (b[1, :3].T.double() @ a[1, :3].double())
        )
    with pytest.raises(ValueError, match="static_rank_slots"):
        slot_indices(Adapter(adapter.factors, provenance={"static_rank_slots": [3, 9]}))


@pytest.fixture(scope="module")
def official(official_hypernet) -> Frames2LoRA:
    """The official fixture converted for the shipped tiny base (random weights: garbage answers, real
    wiring): its adapters are down_proj only, the generated rank r then a static block of rank r."""
    pipeline = Frames2LoRA.from_pretrained(official_hypernet, device="cpu")
    with torch.no_grad():  # the fixture's static block is ~100x smaller than its generated one: scaled up so
        for b in pipeline.hypernet.bias_B.values():  # that removing either block changes answers
            b.mul_(100.0)
    return pipeline


def test_official_adapter_tells_generated_from_static_slots(official):
    import analyses.rank_ablation as study

    example = world_manifest("test", 1)[0]
    hypernet = official.hypernet
    r = hypernet.config.rank
    ds = rank_ablation(official, [example], ks=[0, 2 * r], max_new_tokens=TOKENS, batch_size=64)
    clip = official.example_frames(example, 8)
    applied = official.internalize(clip)
    assert applied.rank == 2 * r and applied.provenance["static_rank_slots"] == [r, 2 * r]
    assert list(ds["slots"].values) == ["generated", "static"]
    assert list(ds["rank_slots"].values) == [f"0-{r - 1}", f"{r}-{2 * r - 1}"]
    # the SVD parts are of the full applied dW, static block included
    assert ds.sizes["singular_direction"] == 2 * r and list(ds["module"].values) == ["down_proj"]
    np.testing.assert_allclose(
        ds["singular_values"].values[0, :, 0], applied.to(torch.float64).svd()["down_proj"].S.numpy()
    )

    # independent routes to the two blocks: the hypernetwork's generated factors alone, its bias alone
    with torch.inference_mode():
        factors = hypernet(official.base, internalization_inputs(official.base, [clip], hypernet.context))
    scaling = hypernet.config.scaling
    generated = Adapter({m: (a[0], b[0]) for m, (a, b) in factors.items()}, scaling=scaling)
    static = Adapter(
        {m: (hypernet.bias_A[m].detach(), hypernet.bias_B[m].detach()) for m in factors}, scaling
    )
    prompts = clip_prompts(example)
    questions, refs = [p.prompt for p in prompts], [p.reference for p in prompts]

    def alone(variant: Adapter) -> list[str]:
        return [official.generate(variant, q, max_new_tokens=TOKENS).text for q in questions]

    answers = {"full": alone(applied), "generated": alone(generated), "static": alone(static)}
    assert list(ds["full_prediction"].values) == answers["full"]
    for name in ("generated", "static"):
        assert list(ds["slot_prediction"].sel(slots=name).values) == answers[name], name
        np.testing.assert_array_equal(
            ds["slot_score"].sel(slots=name).values, score_answers("token_f1", answers[name], refs)
        )
    assert answers["generated"] != answers["full"] and answers["static"] != answers["full"]  # teeth

    summary = study.summary(ds)
    mean = float(ds["slot_score"].sel(slots="static").mean())
    row = f"| static only (generated block removed: video-independent) | {r}-{2 * r - 1} | {mean:.3f} ± nan |"
    assert row in summary and "| generated only (static block removed) | 0-" in summary
