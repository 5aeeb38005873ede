"""Layer removal: the two ends (everything removed = the base without video, nothing removed = f2l),
the batched per-layer variants against answering each variant alone, only the module groups the adapter
has (a down_proj-only "official" adapter has no attention group) (the study command:
tests/analyses/test_layer_removal.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from f2l.adapter import Adapter, use_adapter
from f2l.answer import generate
from f2l.chat import model_inputs, prompt_text
from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import score_answers
from f2l.pipeline import Frames2LoRA
from probes.controls import ADAPTERS, blank_frames
from probes.layer_removal import MODULE_GROUPS, adapter_groups, layer_removal, remove_layer

TOKENS = 6  # a few greedy tokens tell variants apart on a random model and keep the test fast


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def examples():
    return world_manifest("test", 2)


@pytest.fixture(scope="module")
def probed(loud_random_f2l, examples) -> xr.Dataset:
    return layer_removal(loud_random_f2l, examples, max_new_tokens=TOKENS, batch_size=24)


def adapter_of(pipeline: Frames2LoRA, example) -> Adapter:
    size = pipeline.base.model.config.vision_config.image_size
    return pipeline.internalize(load_frames(example, num_frames=8, size=size))


def alone(pipeline: Frames2LoRA, adapter: Adapter, questions: list[str]) -> list[str]:
    """Each question answered by itself (no batch, no padding) under ``adapter``."""
    return [pipeline.generate(adapter, q, max_new_tokens=TOKENS).text for q in questions]


def test_dataset_layout(probed, examples, loud_random_f2l):
    layers = loud_random_f2l.base.model.config.text_config.num_hidden_layers
    prompts = [p for e in examples for p in clip_prompts(e)]
    sizes = {"example_id": len(prompts), "adapter": 1, "layer": layers, "module_group": 3}
    assert dict(probed.sizes) == sizes and list(probed["adapter"].values) == ["real"]
    probed = probed.sel(adapter="real")
    assert list(probed["example_id"].values) == [f"{p.example.id}/{p.item_id}" for p in prompts]
    assert list(probed["clip"].values) == [p.example.id for p in prompts]
    assert list(probed["benchmark"].values) == [p.label for p in prompts]
    assert list(probed["module_group"].values) == ["all", "attention", "mlp"]
    assert list(probed["group_modules"].values) == [
        "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
        "q_proj, k_proj, v_proj, o_proj",
        "gate_proj, up_proj, down_proj",
    ]
    assert str(probed["metric"].values) == "token_f1"
    for name in ("score", "effect", "full_score", "none_score"):
        assert "units" in probed[name].attrs and not probed[name].isnull().any()
    xr.testing.assert_equal(probed["effect"], probed["score"] - probed["full_score"])
    refs = list(probed["reference"].values)
    assert refs == [p.reference for p in prompts]
    for g in probed["module_group"].values:
        for layer in probed["layer"].values:
            cell = probed.sel(layer=layer, module_group=g)
            np.testing.assert_array_equal(
                cell["score"].values, score_answers("token_f1", list(cell["prediction"].values), refs)
            )


def test_removing_every_layer_is_the_base_without_video(loud_random_f2l, examples, probed):
    probed = probed.sel(adapter="real")
    model = loud_random_f2l.base.model
    adapter = adapter_of(loud_random_f2l, examples[0])
    text = prompt_text(loud_random_f2l.base.processor, "what colour is the circle?", with_video=False)
    inputs = model_inputs(loud_random_f2l.base.processor, [text])
    with torch.no_grad():
        plain = model(**inputs).logits
        with use_adapter(model, adapter.drop_layers(range(adapter.num_layers))):
            removed = model(**inputs).logits
        with use_adapter(model, adapter):
            full = model(**inputs).logits
    assert torch.equal(removed, plain)  # zero factors add exactly nothing
    assert (full - plain).abs().max() > 0.1  # and the adapter itself is far from a no-op

    questions = [p.prompt for e in examples for p in clip_prompts(e)]
    base_answers = [a.text for a in generate(loud_random_f2l.base, questions, max_new_tokens=TOKENS)]
    assert list(probed["none_prediction"].values) == base_answers
    np.testing.assert_array_equal(
        probed["none_score"].values, score_answers("token_f1", base_answers, list(probed["reference"].values))
    )


def test_removing_nothing_is_f2l(loud_random_f2l, examples, probed):
    probed = probed.sel(adapter="real")
    for example in examples:
        rows = probed.sel(example_id=probed["clip"] == example.id)
        answers = alone(
            loud_random_f2l, adapter_of(loud_random_f2l, example), [p.prompt for p in clip_prompts(example)]
        )
        assert list(rows["full_prediction"].values) == answers
        np.testing.assert_array_equal(
            rows["full_score"].values, score_answers("token_f1", answers, list(rows["reference"].values))
        )
    # the adapter changes answers, so the two ends are not the same measurement
    assert (probed["full_prediction"] != probed["none_prediction"]).sum() >= probed.sizes["example_id"] // 2


def test_batched_removals_equal_each_removal_answered_alone(loud_random_f2l, examples, probed):
    probed = probed.sel(adapter="real")
    example = examples[0]
    adapter = adapter_of(loud_random_f2l, example)
    questions = [p.prompt for p in clip_prompts(example)]
    rows = probed.sel(example_id=probed["clip"] == example.id)
    changed = 0
    for layer in range(adapter.num_layers):
        for group, modules in MODULE_GROUPS.items():
            if group == "all":
                reference = adapter.drop_layers([layer])
            else:  # an independent route to the same weights: the group's factors minus layer l, plus the rest
                reference = Adapter.compose(
                    adapter.drop_modules(modules), adapter.select_modules(modules).drop_layers([layer])
                )
            answers = alone(loud_random_f2l, reference, questions)
            batched = list(rows["prediction"].sel(layer=layer, module_group=group).values)
            assert batched == answers, (layer, group)
            changed += sum(a != f for a, f in zip(answers, rows["full_prediction"].values, strict=True))
    assert changed > 0  # some single-layer removal changes some answer: the comparison has teeth


def test_control_adapters_are_edited_alike(loud_random_f2l, examples):
    """The swapped and blank controls: another clip's adapter (the next example's) and a blank video's,
    each removed layer by layer in the same batch as the real one, as if answered alone."""
    ds = layer_removal(
        loud_random_f2l,
        examples,
        module_groups=("all",),
        adapters=ADAPTERS,
        max_new_tokens=TOKENS,
        batch_size=48,
    )
    assert list(ds["adapter"].values) == ["real", "swapped", "blank"]
    assert "adapter" not in ds["none_score"].dims  # the base: the same whatever the adapter
    example, partner = examples
    rows = ds.sel(example_id=ds["clip"] == example.id, module_group="all")
    questions = [p.prompt for p in clip_prompts(example)]
    video = load_frames(
        example, num_frames=8, size=loud_random_f2l.base.model.config.vision_config.image_size
    )
    controls = {
        "swapped": adapter_of(loud_random_f2l, partner),
        "blank": loud_random_f2l.internalize(blank_frames(video)),
    }
    for label, adapter in controls.items():
        assert list(rows["full_prediction"].sel(adapter=label).values) == alone(
            loud_random_f2l, adapter, questions
        )
        removed = alone(loud_random_f2l, adapter.drop_layers([1]), questions)
        assert list(rows["prediction"].sel(adapter=label, layer=1).values) == removed
    # the controls answer otherwise than the clip's own adapter
    full = ds["full_prediction"]
    assert (full.sel(adapter="swapped") != full.sel(adapter="real")).sum() >= ds.sizes["example_id"] // 2
    assert (full.sel(adapter="blank") != full.sel(adapter="real")).sum() >= ds.sizes["example_id"] // 2
    np.testing.assert_array_equal(ds["effect"], ds["score"] - ds["full_score"])


def test_remove_layer_zeroes_exactly_that_layer_and_group(loud_random_f2l, examples):
    adapter = adapter_of(loud_random_f2l, examples[0])
    edited = remove_layer(adapter, 2, "mlp")
    for m in adapter.modules:
        for layer in range(adapter.num_layers):
            got, want = edited.delta_weight(m, layer), adapter.delta_weight(m, layer)
            if layer == 2 and m in MODULE_GROUPS["mlp"]:
                assert not got.any()
            else:
                assert torch.equal(got, want) and want.abs().max() > 0
    with pytest.raises(ValueError, match="unknown module groups"):
        layer_removal(loud_random_f2l, examples[:1], module_groups=("all", "norms"))
    down_only = adapter.select_modules(["down_proj"])
    with pytest.raises(ValueError, match="hold none of the adapter's modules"):
        remove_layer(down_only, 2, "attention")  # it would remove nothing
    edited = remove_layer(down_only, 2, "mlp").factors["down_proj"]
    assert not edited[0][2].any() and not edited[1][2].any()
    assert torch.equal(edited[0][1], down_only.factors["down_proj"][0][1])


def test_adapter_groups_are_the_groups_holding_the_adapters_modules():
    assert adapter_groups(MODULE_GROUPS["all"]) == MODULE_GROUPS
    assert adapter_groups(["down_proj"]) == {"all": ("down_proj",), "mlp": ("down_proj",)}
    assert adapter_groups(["q_proj", "up_proj"]) == {
        "all": ("q_proj", "up_proj"),
        "attention": ("q_proj",),
        "mlp": ("up_proj",),
    }
    assert adapter_groups(["down_proj"], ["mlp"]) == {"mlp": ("down_proj",)}
    with pytest.raises(
        ValueError, match=r"\['attention'\] hold none of the adapter's modules \['down_proj'\]"
    ):
        adapter_groups(["down_proj"], ["mlp", "attention"])
    with pytest.raises(ValueError, match="unknown module groups"):
        adapter_groups(["down_proj"], ["norms"])


@pytest.fixture(scope="module")
def official_dir(official_hypernet) -> Path:
    return official_hypernet


def test_down_proj_only_adapter_has_no_attention_group(official_dir, examples):
    official = Frames2LoRA.from_pretrained(official_dir, device="cpu")
    example = examples[0]
    adapter = adapter_of(official, example)
    assert adapter.modules == ("down_proj",)
    ds = layer_removal(official, [example], max_new_tokens=TOKENS, batch_size=48).sel(adapter="real")
    assert list(ds["module_group"].values) == ["all", "mlp"]  # no attention group: it would remove nothing
    assert list(ds["group_modules"].values) == ["down_proj", "down_proj"]
    assert ds["module_group"].attrs["description"] == "all: down_proj; mlp: down_proj"
    # both groups hold the same module, so they are the same measurement
    for name in ("prediction", "score"):
        np.testing.assert_array_equal(
            ds[name].sel(module_group="all").values, ds[name].sel(module_group="mlp").values
        )

    questions = [p.prompt for p in clip_prompts(example)]
    assert list(ds["full_prediction"].values) == alone(official, adapter, questions)
    changed = 0
    for layer in (0, adapter.num_layers - 1):
        answers = alone(official, adapter.drop_layers([layer]), questions)
        assert list(ds["prediction"].sel(layer=layer, module_group="mlp").values) == answers, layer
        changed += sum(a != f for a, f in zip(answers, ds["full_prediction"].values, strict=True))
    assert changed > 0  # removing a layer of the official adapter changes answers: the check has teeth
    with pytest.raises(ValueError, match=r"\['attention'\] hold none"):
        layer_removal(official, [example], module_groups=("attention",), max_new_tokens=TOKENS)
