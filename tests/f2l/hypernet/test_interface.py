"""``f2l.hypernet.interface``: what every kind shares, on a toy kind (no base needed): the layers' states
read in groups of consecutive layers under a byte budget and written out for every layer, the base's facts
read off a base, and the safetensors + JSON persistence that refuses another kind's directory."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from f2l.adapter import Adapter
from f2l.encode import LayerStates
from f2l.hypernet import HypernetConfig, PerceiverHypernet
from f2l.hypernet.interface import CONFIG_FILE, Hypernet, module_shapes_of

D, LAYERS, N, T = 8, 5, 2, 4  # each layer's states: N * T * D float32 values = 256 bytes


class ToyHypernet(Hypernet):
    """Reads a layer as the projected masked mean of its states and writes layer ``l``'s factors as that
    read times ``l + 1``; records the groups of layers it was asked to read."""

    kind = "toy"
    config_class = HypernetConfig

    def __init__(self, config: HypernetConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.groups: list[list[int]] = []

    def read_layers(self, group: list[LayerStates]) -> torch.Tensor:
        first = self.check_group(group)
        self.groups.append(list(range(first, first + len(group))))
        return torch.stack([self.pool(s) for s in group], 1)  # (N, len(group), 1, D)

    def pool(self, states: LayerStates) -> torch.Tensor:
        mask = states.mask[..., None].to(states.hidden.dtype)
        return self.proj((states.hidden * mask).sum(1) / mask.sum(1))[:, None]

    @property
    def read_width(self) -> int:
        return self.config.d_model

    def write_factors(self, read: torch.Tensor, layers: torch.Tensor):
        a = read * (layers + 1).to(read.dtype)[None, :, None, None]
        return {"down_proj": (a, -a)}

    def to_adapter(self, factors, provenance=None) -> Adapter:
        return Adapter(factors, scaling=self.config.scaling, provenance=provenance or {})


def toy_config() -> HypernetConfig:
    return HypernetConfig(
        base_id="toy-base", d_model=D, num_layers=LAYERS, module_shapes={"down_proj": (D, D)}, rank=1
    )


@pytest.fixture
def toy() -> ToyHypernet:
    torch.manual_seed(0)
    return ToyHypernet(toy_config()).eval()


@pytest.fixture
def states() -> list[LayerStates]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(N, T, dtype=torch.bool)
    mask[1, :2] = False  # the second sample left-padded
    return [LayerStates(layer, torch.randn(N, T, D, generator=g), mask) for layer in range(LAYERS)]


@pytest.mark.parametrize(
    ("group_bytes", "groups"),
    [
        (1, [[0], [1], [2], [3], [4]]),  # a layer over the budget: read alone
        (512, [[0, 1], [2, 3], [4]]),  # two layers reach the budget; the last layer is read at once
        (513, [[0, 1, 2], [3, 4]]),
        (10**9, [[0, 1, 2, 3, 4]]),
    ],
)
def test_layers_are_read_in_groups_under_the_byte_budget_and_the_read_is_the_same(
    toy, states, group_bytes, groups
):
    assert states[0].hidden.nbytes == 256
    read = toy.read_all(None, group_bytes=group_bytes, states=states)
    assert toy.groups == groups
    assert read.shape == (N, LAYERS, 1, D)
    with torch.no_grad():
        for layer, s in enumerate(states):  # each layer's own read, in order, whatever the grouping
            torch.testing.assert_close(read[:, layer], toy.pool(s))
    # padding is left out: the padded sample's read is the mean of its real tokens only
    s = states[3]
    expected = toy.proj(s.hidden[1, 2:].mean(0))
    torch.testing.assert_close(read[1, 3, 0], expected)


def test_every_layer_is_written_from_its_own_read(toy, states):
    read = toy.read_all(None, states=states)
    factors = toy.factors_from_states(states)
    a, b = factors["down_proj"]
    for layer in range(LAYERS):  # write_all passes the layer indices 0..L-1
        torch.testing.assert_close(a[:, layer], (layer + 1) * read[:, layer])
    torch.testing.assert_close(b, -a)
    adapter = toy.adapter_from_states(states, provenance={"video_id": "v"})
    assert (adapter.batch_size, adapter.num_layers) == (N, LAYERS)
    assert adapter.provenance == ({"video_id": "v"},) * N  # one shared dict, copied for each sample
    torch.testing.assert_close(adapter.factors["down_proj"][0], a)


def test_a_group_must_be_consecutive_layers(states):
    assert Hypernet.check_group(states[2:4]) == 2
    with pytest.raises(ValueError, match=r"consecutive layers; got \[0, 2\]"):
        Hypernet.check_group([states[0], states[2]])


def test_save_load_round_trip_and_another_kinds_directory_is_refused(toy, states, tmp_path):
    with torch.no_grad():
        toy.proj.weight.mul_(3.0)  # not the initialisation a fresh toy would have
    toy.save(tmp_path, extra={"trained_steps": 7})
    meta = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert (meta["kind"], meta["trained_steps"]) == ("toy", 7)
    assert HypernetConfig.from_dict(meta["config"]) == toy.config
    loaded = ToyHypernet.load(tmp_path)
    assert loaded.config == toy.config
    for name, tensor in toy.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    torch.testing.assert_close(loaded.factors_from_states(states), toy.factors_from_states(states))
    with pytest.raises(ValueError, match="holds a 'toy' hypernetwork, not 'f2l'"):
        PerceiverHypernet.load(tmp_path)


class _Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn, self.mlp = nn.Module(), nn.Module()
        self.self_attn.q_proj = nn.Linear(D, 12)
        self.mlp.down_proj = nn.Linear(20, D)


def test_the_base_facts_are_read_off_the_base_and_the_settings_rebuild_the_config():
    text_config = SimpleNamespace(hidden_size=D, num_hidden_layers=LAYERS)
    base = SimpleNamespace(
        text_model=SimpleNamespace(layers=[_Layer()]),
        model=SimpleNamespace(config=SimpleNamespace(text_config=text_config)),
    )
    assert module_shapes_of(base, ("q_proj", "down_proj")) == {"q_proj": (D, 12), "down_proj": (20, D)}
    with pytest.raises(ValueError, match=r"\['up_proj'\] not found"):
        module_shapes_of(base, ("down_proj", "up_proj"))
    config = HypernetConfig.for_base(base, "fake", rank=3, target_modules=("down_proj",))
    assert (config.base_id, config.d_model, config.num_layers) == ("fake", D, LAYERS)
    assert (config.module_shapes, config.rank) == ({"down_proj": (20, D)}, 3)
    settings = config.settings()
    assert not {"base_id", "d_model", "num_layers", "module_shapes"} & set(settings)  # facts, not settings
    assert settings["rank"] == 3 and settings["target_modules"] == ("down_proj",)
    assert HypernetConfig.for_base(base, "fake", **settings) == config
