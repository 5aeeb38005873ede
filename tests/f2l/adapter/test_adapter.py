"""The Adapter value object: rank-space algebra checked against dense delta-W, batching, save/load."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from f2l.adapter import TARGET_MODULES, Adapter, compose, stack_adapters

L = 3
DIMS = {"q_proj": (16, 16), "k_proj": (16, 8), "down_proj": (24, 16)}  # (d_in, d_out)


def make(rank: int = 4, seed: int = 0, scaling: float = 0.5, modules=DIMS, **prov) -> Adapter:
    g = torch.Generator().manual_seed(seed)
    factors = {
        m: (torch.randn(L, rank, d_in, generator=g), torch.randn(L, rank, d_out, generator=g))
        for m, (d_in, d_out) in modules.items()
    }
    return Adapter(
        factors, scaling=scaling, provenance={"video_id": f"v{seed}", "base_model": "tiny", **prov}
    )


def dense(adapter: Adapter, module: str) -> torch.Tensor:
    """[L, d_out, d_in] (or [N, L, ...]) computed the obvious way."""
    return torch.stack([adapter.delta_weight(module, layer) for layer in range(adapter.num_layers)], dim=-3)


def test_shape_properties_and_validation():
    a = make(rank=4)
    assert (a.num_layers, a.rank, a.batch_size, a.modules) == (3, 4, None, ("q_proj", "k_proj", "down_proj"))
    assert a.nbytes == 4 * L * 4 * sum(d_in + d_out for d_in, d_out in DIMS.values())
    assert a.dims("k_proj") == (16, 8)
    assert a.delta_weight("k_proj", 1).shape == (8, 16)
    expected = 0.5 * a.factors["k_proj"][1][1].T @ a.factors["k_proj"][0][1]
    torch.testing.assert_close(a.delta_weight("k_proj", 1), expected)
    with pytest.raises(ValueError, match="Unknown modules"):
        Adapter({"out_proj": (torch.zeros(L, 2, 4), torch.zeros(L, 2, 4))})
    with pytest.raises(ValueError, match="disagree"):
        Adapter({"q_proj": (torch.zeros(L, 2, 4), torch.zeros(L, 3, 4))})
    with pytest.raises(ValueError, match="leading shape"):
        Adapter(
            {"q_proj": (torch.zeros(L, 2, 4), torch.zeros(L, 2, 4)), "k_proj": (torch.zeros(L, 3, 4),) * 2}
        )


def test_methods_return_new_adapters_and_never_mutate():
    a = make()
    before = {m: (x.clone(), y.clone()) for m, (x, y) in a.factors.items()}
    for out in (
        a.drop_layers([0]),
        a.truncate_rank(2),
        a.ablate_directions([0]),
        a.scaled(3.0),
        a.to(torch.float64),
    ):
        assert out is not a
    for m, (x, y) in a.factors.items():
        assert torch.equal(x, before[m][0]) and torch.equal(y, before[m][1])
    assert a.scaling == 0.5
    assert a.to(dtype=torch.float64).dtype == torch.float64


def test_compose_sums_weighted_deltas_across_scalings_ranks_and_modules():
    a = make(rank=4, seed=1, scaling=0.5)
    b = make(rank=2, seed=2, scaling=-2.0, modules={"q_proj": (16, 16), "k_proj": (16, 8)})
    c = Adapter.compose(a, b, weights=[0.25, 3.0])
    assert c.rank == 6 and c.scaling == 1.0 and c.modules == a.modules
    for m in a.modules:
        want = 0.25 * dense(a, m) + (3.0 * dense(b, m) if m in b.modules else 0.0)
        torch.testing.assert_close(dense(c, m), want, rtol=1e-5, atol=1e-5)
    assert c.provenance["base_model"] == "tiny"  # shared keys survive
    assert "video_id" not in c.provenance and [p["video_id"] for p in c.provenance["composed_from"]] == [
        "v1",
        "v2",
    ]
    assert compose(a, b).rank == 6


def test_svd_matches_dense_svd():
    a = make(rank=4)
    for m, f in a.svd().items():
        d = dense(a, m)
        k = min(4, *a.dims(m))
        torch.testing.assert_close(f.S, torch.linalg.svdvals(d)[..., :k], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            f.U @ torch.diag_embed(f.S) @ f.V.transpose(-1, -2), d, rtol=1e-4, atol=1e-4
        )
        eye = torch.eye(k).expand(L, k, k)
        torch.testing.assert_close(f.V.transpose(-1, -2) @ f.V, eye, atol=1e-5, rtol=0)


def test_truncate_rank_is_the_best_low_rank_approximation():
    a = make(rank=5)
    full = a.truncate_rank(5)
    for m in a.modules:
        torch.testing.assert_close(dense(full, m), dense(a, m), rtol=1e-5, atol=1e-5)
        assert torch.count_nonzero(dense(a.truncate_rank(0), m)) == 0
    assert a.truncate_rank(0).rank == 0
    t = a.truncate_rank(2)
    assert t.rank == 2 and t.scaling == 1.0
    for m in a.modules:
        u, s, vh = torch.linalg.svd(dense(a, m))
        best = u[..., :2] @ torch.diag_embed(s[..., :2]) @ vh[..., :2, :]
        torch.testing.assert_close(dense(t, m), best, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            torch.linalg.svdvals(dense(t, m))[..., :2], s[..., :2], rtol=1e-4, atol=1e-4
        )
    with pytest.raises(ValueError):
        a.truncate_rank(6)


def test_compose_then_truncate():
    a, b = make(rank=3, seed=3), make(rank=3, seed=4, scaling=1.5)
    c = Adapter.compose(a, b).truncate_rank(4)
    for m in a.modules:
        s = torch.linalg.svdvals(dense(a, m) + dense(b, m))
        torch.testing.assert_close(
            torch.linalg.svdvals(dense(c, m))[..., :4], s[..., :4], rtol=1e-4, atol=1e-4
        )


def test_ablate_directions_removes_exactly_those_singular_values():
    a = make(rank=4)
    out = a.ablate_directions([0, 2])
    assert out.rank == 4
    for m in a.modules:
        s = torch.linalg.svdvals(dense(a, m))[..., :4]
        kept = s[..., [1, 3]]
        got = torch.linalg.svdvals(dense(out, m))[..., :4]
        torch.testing.assert_close(got[..., :2], kept, rtol=1e-4, atol=1e-4)
        assert got[..., 2:].abs().max() < 1e-4
    only = a.ablate_directions([0], layers=[1], modules=["q_proj"])
    torch.testing.assert_close(dense(only, "k_proj"), dense(a, "k_proj"), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dense(only, "q_proj")[0], dense(a, "q_proj")[0], rtol=1e-4, atol=1e-4)
    s = torch.linalg.svdvals(dense(a, "q_proj")[1])
    torch.testing.assert_close(
        torch.linalg.svdvals(dense(only, "q_proj")[1])[:3], s[1:4], rtol=1e-4, atol=1e-4
    )
    with pytest.raises(IndexError):
        a.ablate_directions([4])


def test_drop_and_keep_layers_and_modules():
    a = make()
    dropped = a.drop_layers([0, 2])
    for m in a.modules:
        assert torch.count_nonzero(dense(dropped, m)[[0, 2]]) == 0
        assert torch.equal(dense(dropped, m)[1], dense(a, m)[1])
        assert torch.equal(dense(a.keep_layers([1]), m), dense(dropped, m))
    assert a.select_modules(["k_proj"]).modules == ("k_proj",)
    assert a.drop_modules(["k_proj"]).modules == ("q_proj", "down_proj")
    with pytest.raises(KeyError):
        a.select_modules(["v_proj"])
    with pytest.raises(IndexError):
        a.drop_layers([3])


def test_stack_index_and_batched_operations():
    a, b = make(rank=4, seed=5, scaling=0.5), make(rank=2, seed=6, scaling=2.0)
    batch = Adapter.stack([a, b])
    assert batch.batch_size == 2 and batch.rank == 4
    assert batch.factors["q_proj"][0].shape == (2, L, 4, 16)
    assert torch.equal(batch.scaling, torch.tensor([0.5, 2.0]))
    assert [p["video_id"] for p in batch.provenance] == ["v5", "v6"]
    for i, single in enumerate((a, b)):
        assert batch[i].provenance == single.provenance
        for m in a.modules:
            torch.testing.assert_close(dense(batch, m)[i], dense(single, m))
            torch.testing.assert_close(dense(batch.truncate_rank(2), m)[i], dense(single.truncate_rank(2), m))
            torch.testing.assert_close(dense(batch.drop_layers([1]), m)[i], dense(single.drop_layers([1]), m))
    composed = Adapter.compose(batch, batch, weights=[1.0, 2.0])
    torch.testing.assert_close(dense(composed, "q_proj"), 3 * dense(batch, "q_proj"), rtol=1e-5, atol=1e-5)
    assert len(batch.unbind()) == 2 and batch[0:1].batch_size == 1
    same = stack_adapters([a, a])
    assert same.scaling == 0.5  # equal float scalings stay a float
    with pytest.raises(TypeError):
        a[0]


def test_save_load_round_trip(tmp_path):
    a = make(rank=3, frames=12, resolution=384)
    path = a.save(tmp_path / "a.safetensors")
    back = Adapter.load(path)
    assert back.modules == a.modules and back.scaling == a.scaling and back.provenance == a.provenance
    for m in a.modules:
        assert torch.equal(back.factors[m][0], a.factors[m][0]) and torch.equal(
            back.factors[m][1], a.factors[m][1]
        )
    raw = load_file(path)  # plain safetensors, no pickle
    assert set(raw) == {f"{m}.{x}" for m in a.modules for x in "AB"}

    batch = Adapter.stack([a, make(rank=3, seed=9, scaling=2.0)])
    back = Adapter.load(batch.save(tmp_path / "b.safetensors"))
    assert torch.equal(back.scaling, batch.scaling) and back.provenance == batch.provenance
    assert torch.equal(back.factors["down_proj"][1], batch.factors["down_proj"][1])

    with pytest.raises(TypeError, match="JSON"):
        Adapter(a.factors, provenance={"bad": object()}).save(tmp_path / "c.safetensors")


def test_factors_keep_gradients_through_rank_operations():
    a = make(rank=4)
    x = a.factors["q_proj"][0].clone().requires_grad_(True)
    g = Adapter({"q_proj": (x, a.factors["q_proj"][1])}, scaling=0.5)
    loss = dense(Adapter.compose(g, g).drop_layers([0]), "q_proj").square().sum()
    loss.backward()
    assert x.grad is not None and x.grad[1:].abs().sum() > 0 and torch.count_nonzero(x.grad[0]) == 0
    assert not g.detach().factors["q_proj"][0].requires_grad
    assert set(TARGET_MODULES) >= set(g.modules)


def test_static_slots_are_read_kept_and_dropped_where_the_rank_is_rebuilt():
    marked = make(rank=4, static_rank_slots=[2, 4])
    assert marked.static_slots == range(2, 4) and make(rank=4).static_slots is None
    generated, static = marked.keep_rank_slots([0, 1]), marked.keep_rank_slots([2, 3])
    for m in marked.modules:  # the two blocks add up to the whole update
        torch.testing.assert_close(dense(generated, m) + dense(static, m), dense(marked, m))
    assert generated.static_slots is None and generated.provenance["video_id"] == "v0"
    assert compose(marked, marked).static_slots is None  # the marks of the parts no longer hold
    assert marked.truncate_rank(2).static_slots is None
    with pytest.raises(ValueError, match="do not lie in the adapter's rank"):
        _ = make(rank=4, static_rank_slots=[2, 6]).static_slots
