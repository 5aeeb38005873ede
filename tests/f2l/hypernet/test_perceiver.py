"""f2l.hypernet.perceiver: the perceiver hypernetwork's factors (shapes, the no-op start, independent rank
slots, batching, layers read and written together or apart), its attention and its save/load, on a
random tiny SmolVLM2 (the context encoding it reads is tested in tests/f2l/test_encode.py)."""

from __future__ import annotations

import pytest
import torch

from f2l.adapter import Adapter, use_adapter
from f2l.encode import collect_hidden_states, internalization_inputs
from f2l.hypernet import HypernetConfig, PerceiverHypernet
from f2l.world import render_clip


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """Equal up to float32 summation order: batched and one-at-a-time kernels add the same terms in
    another order on each CPU, so the tolerance is relative to the tensor's largest entry, not fixed."""
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


@pytest.fixture(scope="module")
def clips():
    return [render_clip(1_010_000 + i, num_frames=n, size=64).frames for i, n in enumerate((4, 9))]


@pytest.fixture(scope="module")
def hypernet(random_base):
    torch.manual_seed(0)
    return PerceiverHypernet(
        HypernetConfig.for_base(random_base, "random-tiny", width=64, num_latents=8)
    ).eval()


def test_factor_shapes_and_no_op_initialisation(random_base, hypernet, clips):
    inputs = internalization_inputs(random_base, clips)
    factors = hypernet(random_base, inputs)
    for m, (a, b) in factors.items():
        d_in, d_out = hypernet.config.module_shapes[m]
        assert a.shape == (2, 4, 8, d_in) and b.shape == (2, 4, 8, d_out)
        assert a.abs().sum() > 0 and b.abs().sum() == 0  # B starts at zero: the first adapter is a no-op
    adapter = Adapter(factors, scaling=hypernet.config.scaling)
    prompt = random_base.tokenizer(
        ["<|im_start|>User: what color?<end_of_utterance>\nAssistant:"] * 2, return_tensors="pt"
    )
    with torch.no_grad():
        plain = random_base.model(**prompt).logits
        with use_adapter(random_base.model, adapter):
            adapted = random_base.model(**prompt).logits
    assert torch.equal(plain, adapted)


def test_rank_slots_write_independent_rows_from_the_start(random_base, hypernet, clips):
    """Every rank slot must get its own row of A (and, once B moves, of B): with identical rows delta-W
    has rank 1 whatever r is, and it stays so, since identical A rows give the B rows identical gradients."""
    factors = hypernet(random_base, internalization_inputs(random_base, clips[:1]))
    for m, (a, _) in factors.items():
        rows = torch.nn.functional.normalize(a[0, 0], dim=-1)  # (r, d_in) of layer 0
        off_diagonal = (rows @ rows.T - torch.eye(rows.shape[0])).abs().max()
        s = torch.linalg.svdvals(a[0, 0])
        assert off_diagonal < 0.8, m  # without the per-slot gains every pair has |cos| > 0.99
        assert (s**2).sum() / s[0] ** 2 > 2.0, m  # stable rank of A's rows (1.0 when the slots collapse)


def test_a_clip_in_a_padded_batch_gets_the_adapter_it_gets_alone(random_base, hypernet, clips):
    torch.manual_seed(1)
    for head in hypernet.head_b.values():  # make B non-zero so the comparison means something
        torch.nn.init.normal_(head.weight, std=0.02)
    batched = hypernet(random_base, internalization_inputs(random_base, clips))
    for i, clip in enumerate(clips):
        alone = hypernet(random_base, internalization_inputs(random_base, [clip]))
        for m in alone:
            torch.testing.assert_close(batched[m][0][i], alone[m][0][0], atol=2e-4, rtol=1e-3)
            torch.testing.assert_close(batched[m][1][i], alone[m][1][0], atol=2e-4, rtol=1e-3)


def test_length_scaled_attention_keeps_a_salient_token_visible_as_length_grows():
    """Among T keys with one clearly salient key, plain softmax attention to it decays ~1/T; with
    length-scaled logits (x log T / log T_ref) a key whose margin exceeds log T_ref keeps its weight."""
    from f2l.hypernet.perceiver import LengthScaledAttention

    def weight_on_salient(length_scaled: bool, t: int) -> float:
        attn = LengthScaledAttention(8, 1, ref_tokens=16, length_scaled=length_scaled)
        with torch.no_grad():
            for lin in (attn.q, attn.k, attn.v, attn.out):  # identity maps: output = attention-weighted keys
                lin.weight.copy_(torch.eye(8))
                lin.bias.zero_()
            keys = torch.zeros(1, t, 8)
            keys[0, 0, 0], keys[0, 0, 1] = 3.0, 1.0  # the salient key; dim 1 marks it in the output
            query = torch.zeros(1, 1, 8)
            query[0, 0, 0] = 3.0  # logit margin 9/sqrt(8) = 3.2 > log(T_ref) = 2.8: a clearly salient key
            return float(attn(query, keys)[0, 0, 1])  # = the attention weight on the salient key

    plain = [weight_on_salient(False, t) for t in (16, 256, 2048)]
    scaled = [weight_on_salient(True, t) for t in (16, 256, 2048)]
    assert plain[0] == pytest.approx(scaled[0], rel=1e-5)  # identical at the reference length
    assert plain[2] < 0.05 * plain[0]
    assert scaled[2] > 0.5 * scaled[0]


def test_hypernet_save_load_round_trip(tmp_path, hypernet):
    hypernet.save(tmp_path)
    loaded = PerceiverHypernet.load(tmp_path)
    assert loaded.config == hypernet.config
    for (k, v), (k2, v2) in zip(hypernet.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_factors_written_for_all_layers_at_once_equal_layer_by_layer(random_base, clips):
    """The write step runs once over every layer's latents (few large kernels); each layer's factors
    must be what that layer's latents give alone, its own layer embedding included."""
    torch.manual_seed(1)
    net = PerceiverHypernet(
        HypernetConfig.for_base(random_base, "random-tiny", width=64, num_latents=8, self_blocks=2)
    ).eval()
    for head in net.head_b.values():  # past the no-op start, so that B is compared too
        torch.nn.init.normal_(head.weight, std=0.1)
    inputs = internalization_inputs(random_base, clips)
    with torch.no_grad():
        states = collect_hidden_states(random_base, inputs)
        latents = torch.cat([net.read_layers([s]) for s in states], 1)
        together = net.write_factors(latents, torch.arange(len(states)))
        for layer in range(len(states)):
            alone = net.write_factors(latents[:, layer : layer + 1], torch.tensor([layer]))
            for m, (a, b) in alone.items():
                assert_close_scaled(a[:, 0], together[m][0][:, layer])
                assert_close_scaled(b[:, 0], together[m][1][:, layer])
                assert b.abs().max() > 0
    assert not torch.equal(together["q_proj"][0][:, 0], together["q_proj"][0][:, 1])  # layers differ


def test_layers_read_together_equal_layers_read_one_at_a_time(random_base, clips):
    """Short clips' layers are read as one batch (few kernels); the factors must be those of reading
    every layer alone as it streams, for a padded batch of two clips."""
    torch.manual_seed(2)
    net = PerceiverHypernet(
        HypernetConfig.for_base(random_base, "random-tiny", width=64, num_latents=8)
    ).eval()
    for head in net.head_b.values():
        torch.nn.init.normal_(head.weight, std=0.1)
    inputs = internalization_inputs(random_base, clips)
    with torch.no_grad():
        one_by_one = net(random_base, inputs, group_bytes=0)
        states = collect_hidden_states(random_base, inputs)
        layer_bytes = states[0].hidden.nbytes
        in_pairs = net(random_base, inputs, group_bytes=2 * layer_bytes)  # groups of two layers
        all_at_once = net(random_base, inputs, group_bytes=len(states) * layer_bytes + 1)
        with pytest.raises(ValueError, match="consecutive"):
            net.read_layers([states[0], states[2]])
    for grouped in (in_pairs, all_at_once):
        for m, (a, b) in one_by_one.items():
            assert_close_scaled(grouped[m][0], a)
            assert_close_scaled(grouped[m][1], b)
    assert one_by_one["down_proj"][1].abs().max() > 0

    def grads(group_bytes: int) -> dict[str, torch.Tensor]:  # training reads through the same path
        net.zero_grad()
        factors = net(random_base, inputs, group_bytes=group_bytes)
        sum((a.square().sum() + b.sum()) for a, b in factors.values()).backward()
        return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}

    net.train()
    alone, together = grads(0), grads(len(states) * layer_bytes + 1)
    assert alone.keys() == together.keys() and "in_proj.weight" in alone
    # one scale for every gradient: some (the key biases', which softmax ignores) are zero up to rounding
    # noise of the size of the others' terms, so a per-tensor scale would compare noise with noise
    scale = max(float(g.abs().max()) for g in alone.values())
    for k, g in alone.items():
        torch.testing.assert_close(
            together[k], g, rtol=1e-4, atol=1e-5 * scale, msg=lambda m, k=k: f"{k}: {m}"
        )
