"""Applying adapters to the frozen VLM: LoRALinear wrappers against a dense reference, batching,
generate() with the KV cache, merge/unmerge, and leaving the model exactly as it was."""

from __future__ import annotations

import pytest
import torch
from support import random_adapter
from torch import nn

from f2l.adapter import (
    TARGET_MODULES,
    Adapter,
    LoRALinear,
    attach_adapter,
    install_lora,
    lora_modules,
    merge_adapter,
    merged_adapter,
    text_model_of,
    uninstall_lora,
    unmerge_adapter,
    use_adapter,
)
from f2l.adapter.lora import SUBLAYER
from f2l.chat import model_inputs, prompt_text
from f2l.models import load_base


@pytest.fixture(scope="module")
def fresh(random_tiny_dir):
    """A private copy of the random tiny base that these tests may wrap."""
    return load_base(random_tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def inputs(fresh):
    texts = [
        prompt_text(fresh.processor, q, with_video=False) for q in ("what colour is the ball?", "count it")
    ]
    return model_inputs(fresh.processor, texts)


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def dense_reference(random_tiny_dir, adapter: Adapter, inputs) -> torch.Tensor:
    """Logits of an unwrapped model whose weights had delta-W added by hand."""
    ref = load_base(random_tiny_dir, device="cpu").model
    text = text_model_of(ref)
    with torch.no_grad():
        for m in adapter.modules:
            for layer in range(adapter.num_layers):
                getattr(getattr(text.layers[layer], SUBLAYER[m]), m).weight += adapter.delta_weight(m, layer)
    return logits(ref, inputs)


def test_install_wraps_only_text_model_and_is_idempotent(fresh, inputs):
    base_logits = logits(fresh.model, inputs)
    wrappers = install_lora(fresh.model)
    assert len(wrappers) == 4 * len(TARGET_MODULES)
    assert install_lora(fresh.model) == wrappers
    everywhere = [n for n, mod in fresh.model.named_modules() if isinstance(mod, LoRALinear)]
    assert len(everywhere) == len(wrappers) and all(
        n.startswith("model.text_model.layers.") for n in everywhere
    )
    assert not any(isinstance(mod, LoRALinear) for mod in fresh.model.model.vision_model.modules())
    assert torch.equal(logits(fresh.model, inputs), base_logits)  # no factors: exactly the base


def test_use_adapter_matches_dense_reference_and_restores(fresh, inputs, random_tiny_dir):
    base_logits = logits(fresh.model, inputs)
    adapter = random_adapter(fresh.model)
    zero = Adapter({m: (a * 0, b * 0) for m, (a, b) in adapter.factors.items()}, scaling=adapter.scaling)
    with use_adapter(fresh.model, zero):
        assert torch.equal(logits(fresh.model, inputs), base_logits)
    with use_adapter(fresh.model, adapter):
        adapted = logits(fresh.model, inputs)
    assert (adapted - base_logits).abs().max() > 0.05  # the adapter matters
    torch.testing.assert_close(
        adapted, dense_reference(random_tiny_dir, adapter, inputs), rtol=1e-5, atol=1e-5
    )
    assert torch.equal(logits(fresh.model, inputs), base_logits)
    assert not any(w.has_factors for w in lora_modules(fresh.model).values())


def test_exception_inside_the_context_still_clears(fresh, inputs):
    base_logits = logits(fresh.model, inputs)
    with pytest.raises(ZeroDivisionError), use_adapter(fresh.model, random_adapter(fresh.model)):
        1 / 0  # noqa: B018
    assert not any(w.has_factors for w in lora_modules(fresh.model).values())
    assert torch.equal(logits(fresh.model, inputs), base_logits)


def test_batched_adapters_match_each_applied_alone(fresh, inputs):
    a, b = random_adapter(fresh.model, seed=1), random_adapter(fresh.model, rank=2, seed=2, scaling=2.0)
    with use_adapter(fresh.model, a):
        alone_a = logits(fresh.model, inputs)
    with use_adapter(fresh.model, b):
        alone_b = logits(fresh.model, inputs)
    with use_adapter(fresh.model, Adapter.stack([a, b])):
        both = logits(fresh.model, inputs)
    torch.testing.assert_close(both[0], alone_a[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[1], alone_b[1], rtol=1e-5, atol=1e-5)
    assert (alone_a[1] - alone_b[1]).abs().max() > 0.05
    with use_adapter(fresh.model, Adapter.stack([a, a])):  # a single adapter broadcasts like a batch of it
        torch.testing.assert_close(logits(fresh.model, inputs), alone_a, rtol=1e-5, atol=1e-5)
    with (
        pytest.raises(RuntimeError, match="already in use"),
        use_adapter(fresh.model, a),
        use_adapter(fresh.model, b),
    ):
        pass


def test_gradients_reach_the_factors(fresh, inputs):
    adapter = random_adapter(fresh.model)
    a, b = adapter.factors["v_proj"]
    a = a.clone().requires_grad_(True)
    live = Adapter({**adapter.factors, "v_proj": (a, b)}, scaling=adapter.scaling)
    with use_adapter(fresh.model, live):
        fresh.model(**inputs).logits.logsumexp(-1).mean().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in fresh.model.parameters())  # the base stays frozen


def test_generate_with_kv_cache_equals_greedy_full_forwards(fresh):
    processor, model = fresh.processor, fresh.model
    text = prompt_text(processor, "describe the clip", with_video=False)
    batch = model_inputs(processor, [text, text])  # same prompt: no padding, different adapter per row
    adapter = Adapter.stack([random_adapter(model, seed=3), random_adapter(model, seed=4, scaling=1.0)])
    steps = 4
    with use_adapter(model, adapter), torch.no_grad():
        out = model.generate(**batch, max_new_tokens=steps, do_sample=False)
        ids = batch["input_ids"]
        for _ in range(steps):
            nxt = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[:, -1]
            ids = torch.cat([ids, nxt.argmax(-1, keepdim=True)], dim=1)
    new = out[:, batch["input_ids"].shape[1] :]
    assert new.shape[1] == steps  # no early stop: the comparison covers every step
    assert torch.equal(new, ids[:, -steps:])
    assert not torch.equal(new[0], new[1])  # the two rows really used different adapters


def test_merge_equals_unmerged_and_unmerge_is_bit_exact(fresh, inputs):
    adapter = random_adapter(fresh.model, seed=5)
    with use_adapter(fresh.model, adapter):
        unmerged = logits(fresh.model, inputs)
    weights = {k: v.clone() for k, v in fresh.model.state_dict().items()}
    merge_adapter(fresh.model, adapter)
    torch.testing.assert_close(logits(fresh.model, inputs), unmerged, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="already merged"):
        merge_adapter(fresh.model, adapter)
    unmerge_adapter(fresh.model)
    assert all(torch.equal(v, weights[k]) for k, v in fresh.model.state_dict().items())
    with merged_adapter(fresh.model, Adapter.stack([adapter])):  # a batch of one merges as one
        torch.testing.assert_close(logits(fresh.model, inputs), unmerged, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, weights[k]) for k, v in fresh.model.state_dict().items())
    with pytest.raises(ValueError, match="batch of 2"):
        merge_adapter(fresh.model, Adapter.stack([adapter, adapter]))


def test_uninstall_restores_plain_linear_modules(random_tiny_dir, inputs):
    base = load_base(random_tiny_dir, device="cpu")
    keys = list(base.model.state_dict())
    before = logits(base.model, inputs)
    merge_adapter(base.model, random_adapter(base.model).select_modules(["q_proj", "down_proj"]))
    assert len(lora_modules(base.model)) == 4 * 2  # installed on demand, only where needed
    assert uninstall_lora(base.model) == 8  # unmerges first
    assert lora_modules(base.model) == {}
    assert type(base.text_model.layers[0].self_attn.q_proj) is nn.Linear
    assert list(base.model.state_dict()) == keys
    assert torch.equal(logits(base.model, inputs), before)


def test_adapter_must_fit_the_model(fresh):
    adapter = random_adapter(fresh.model)
    short = Adapter({m: (a[:2], b[:2]) for m, (a, b) in adapter.factors.items()})
    with pytest.raises(ValueError, match="covers 2 layers"), use_adapter(fresh.model, short):
        pass
    wrong = Adapter({"q_proj": (torch.zeros(4, 2, 64), torch.zeros(4, 2, 128))})
    with pytest.raises(ValueError, match="do not fit"), use_adapter(fresh.model, wrong):
        pass
    assert not any(w.has_factors for w in lora_modules(fresh.model).values())


@pytest.mark.parametrize(
    ("a_shape", "scaling"),
    [
        ((4, 12), 0.5),  # one adapter, float scaling: every row
        ((1, 4, 12), torch.tensor(0.5)),  # one adapter as a batch of one: broadcast to every row
        ((3, 4, 12), 0.5),  # one adapter per row
        ((3, 4, 12), torch.tensor([0.5, 1.0, 2.0])),  # per row, per-row gains
        ((4, 12), torch.tensor([0.5, 1.0, 2.0])),  # one adapter, per-row gains
    ],
)
def test_lora_linear_matches_the_dense_update_in_every_factor_layout(a_shape, scaling):
    """The wrapper folds scaling into B once and takes a 2-D or batched path; each must equal
    ``x W^T + b + s_n x A_n^T B_n`` row by row, and gradients must reach both factors."""
    g = torch.Generator().manual_seed(0)
    base = nn.Linear(12, 10)
    wrapper = LoRALinear(base)
    a = torch.randn(*a_shape, generator=g).requires_grad_()
    b = torch.randn(*a_shape[:-1], 10, generator=g).requires_grad_()
    x = torch.randn(3, 5, 12, generator=g)
    wrapper.set_factors(a, b, scaling)
    y = wrapper(x)
    s = torch.as_tensor(scaling).reshape(-1).expand(3)
    for n in range(3):
        a_n = a if a.dim() == 2 else a[min(n, a.shape[0] - 1)]
        b_n = b if b.dim() == 2 else b[min(n, b.shape[0] - 1)]
        want = base(x[n]) + s[n] * (x[n] @ a_n.T @ b_n)
        torch.testing.assert_close(y[n], want, rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    wrapper.clear_factors()
    assert torch.equal(wrapper(x), base(x))


def test_lora_linear_refuses_an_adapter_batch_that_is_not_the_input_batch():
    wrapper = LoRALinear(nn.Linear(12, 10))
    wrapper.set_factors(torch.zeros(2, 4, 12), torch.zeros(2, 4, 10))
    with pytest.raises(RuntimeError, match="2 samples but the input batch has 3 rows"):
        wrapper(torch.zeros(3, 5, 12))


def test_install_walk_returns_every_wrapper_and_wraps_only_the_targets(random_tiny_dir):
    """``install_lora`` and ``lora_modules`` share one walk: a later install returns the earlier
    wrappers too, and ``lora_modules`` wraps nothing."""
    model = load_base(random_tiny_dir, device="cpu").model
    assert lora_modules(model) == {}
    q = install_lora(model, ["q_proj"])
    assert sorted(q) == [(layer, "q_proj") for layer in range(4)]
    both = install_lora(model, ["v_proj"])
    assert sorted(both) == sorted([(layer, m) for layer in range(4) for m in ("q_proj", "v_proj")])
    assert all(both[key] is wrapper for key, wrapper in q.items())  # the same wrappers, not new ones
    assert lora_modules(model) == both
    assert type(text_model_of(model).layers[0].self_attn.k_proj) is nn.Linear


def test_attach_converts_once_per_module_and_matches_setting_each_layer():
    """``attach_adapter`` folds dtype, transpose and scaling over the stacked layers; each wrapper must
    end up with exactly what ``set_factors`` gives it for its own layer, in the wrapper's dtype."""
    g = torch.Generator().manual_seed(0)
    layers = [LoRALinear(nn.Linear(12, 10).to(torch.bfloat16)) for _ in range(3)]
    wrappers = {(i, "o_proj"): w for i, w in enumerate(layers)}
    twins = [LoRALinear(w.base) for w in layers]
    x = torch.randn(2, 5, 12, generator=g).to(torch.bfloat16)
    for a_shape, scaling in [((3, 4, 12), 0.5), ((2, 3, 4, 12), torch.tensor([0.5, 2.0]))]:
        a = torch.randn(*a_shape, generator=g)
        b = torch.randn(*a_shape[:-1], 10, generator=g)
        touched = attach_adapter(wrappers, Adapter({"o_proj": (a, b)}, scaling=scaling))
        assert touched == layers
        for i, (wrapper, twin) in enumerate(zip(layers, twins, strict=True)):
            assert wrapper.factors.a_t.dtype == wrapper.factors.b_scaled.dtype == torch.bfloat16
            twin.set_factors(a[..., i, :, :], b[..., i, :, :], scaling)
            assert torch.equal(wrapper(x), twin(x))
            assert (wrapper(x) - wrapper.base(x)).abs().max() > 0.1
            twin.clear_factors()
        with pytest.raises(RuntimeError, match="already in use"):
            attach_adapter(wrappers, Adapter({"o_proj": (a, b)}, scaling=scaling))
        for wrapper in touched:
            wrapper.clear_factors()
    with pytest.raises(ValueError, match=r"modifies \['q_proj'\], which are not wrapped"):
        attach_adapter(wrappers, Adapter({"q_proj": (torch.zeros(3, 4, 12), torch.zeros(3, 4, 10))}))
    assert not any(w.has_factors for w in layers)


def test_attach_follows_each_layer_to_its_device():
    """A model dispatched over devices (``device_map``) holds layers apart; each wrapper must get its
    factors on its own layer's device (the meta device stands in for a second one here)."""
    layers = [LoRALinear(nn.Linear(12, 10)), LoRALinear(nn.Linear(12, 10, device="meta"))]
    wrappers = {(i, "o_proj"): w for i, w in enumerate(layers)}
    adapter = Adapter({"o_proj": (torch.randn(2, 4, 12), torch.randn(2, 4, 10))}, scaling=0.5)
    attach_adapter(wrappers, adapter)
    for wrapper in layers:
        f = wrapper.factors
        assert {t.device for t in (f.a, f.b, f.a_t, f.b_scaled)} == {wrapper.base.weight.device}
    assert layers[1](torch.zeros(1, 3, 12, device="meta")).shape == (1, 3, 10)
