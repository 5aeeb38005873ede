"""PEFT export: the directory loads with PeftModel.from_pretrained, holds exactly our factors, targets
only the text model, and gives the same logits as applying the adapter ourselves."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from f2l.adapter import TARGET_MODULES, Adapter, export_peft, use_adapter
from f2l.adapter.peft_export import CONFIG_NAME, WEIGHTS_NAME
from f2l.chat import model_inputs, prompt_text
from f2l.models import load_base

peft = pytest.importorskip("peft")


def random_adapter(model, rank: int = 3, seed: int = 0, scaling: float = 0.7, std: float = 0.15) -> Adapter:
    text = model.model.text_model
    g = torch.Generator().manual_seed(seed)
    factors = {}
    for m in TARGET_MODULES:
        sub = (
            text.layers[0].self_attn if m in ("q_proj", "k_proj", "v_proj", "o_proj") else text.layers[0].mlp
        )
        lin = getattr(sub, m)
        n = len(text.layers)
        factors[m] = (
            std * torch.randn(n, rank, lin.in_features, generator=g),
            std * torch.randn(n, rank, lin.out_features, generator=g),
        )
    return Adapter(factors, scaling=scaling, provenance={"video_id": "v0", "base_model": "random-tiny"})


def test_export_loads_in_peft_and_matches_our_logits(random_tiny_dir, tmp_path):
    ours = load_base(random_tiny_dir, device="cpu")
    adapter = random_adapter(ours.model).select_modules(
        ["q_proj", "k_proj", "o_proj", "up_proj", "down_proj"]
    )
    out = export_peft(adapter, ours, tmp_path / "peft")

    config = json.loads((out / CONFIG_NAME).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 3 and not config["use_rslora"]
    assert config["lora_alpha"] == pytest.approx(0.7 * 3)
    assert len(config["target_modules"]) == 4 * 5
    assert all(t.startswith("model.text_model.layers.") for t in config["target_modules"])
    assert len(load_file(out / WEIGHTS_NAME)) == 2 * 4 * 5

    fresh = load_base(random_tiny_dir, device="cpu").model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = peft.PeftModel.from_pretrained(fresh, out)
    assert not [w for w in caught if "key" in str(w.message).lower()]  # no missing/unexpected keys

    lora_layers = {n: mod for n, mod in peft_model.named_modules() if hasattr(mod, "lora_A") and mod.lora_A}
    assert len(lora_layers) == 4 * 5
    assert all(".model.text_model.layers." in n for n in lora_layers)  # the vision tower is untouched
    layer = lora_layers["base_model.model.model.text_model.layers.2.mlp.down_proj"]
    a, b = adapter.factors["down_proj"]
    assert torch.equal(layer.lora_A["default"].weight, a[2]) and torch.equal(
        layer.lora_B["default"].weight, b[2].T
    )
    assert layer.scaling["default"] == pytest.approx(0.7)

    texts = [
        prompt_text(ours.processor, q, with_video=False) for q in ("which way does it move?", "how many")
    ]
    inputs = model_inputs(ours.processor, texts)
    with torch.no_grad():
        base_logits = ours.model(**inputs).logits
        with use_adapter(ours.model, adapter):
            our_logits = ours.model(**inputs).logits
        peft_logits = peft_model(**inputs).logits
    assert (our_logits - base_logits).abs().max() > 0.05  # the comparison is not between two base models
    torch.testing.assert_close(peft_logits, our_logits, rtol=1e-5, atol=1e-5)


def test_export_refuses_batches_and_rank_zero(random_base, tmp_path):
    adapter = random_adapter(random_base.model)
    with pytest.raises(ValueError, match="one adapter at a time"):
        export_peft(Adapter.stack([adapter, adapter]), random_base, tmp_path / "batch")
    with pytest.raises(ValueError, match="rank-0"):
        export_peft(adapter.truncate_rank(0), random_base, tmp_path / "zero")
    assert not (tmp_path / "batch").exists()
