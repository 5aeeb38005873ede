"""What every hypernetwork kind is: layer states in, an ``Adapter`` out.

A kind reads the states of the frozen base's decoder layers (``read_layers``, run while the base
streams, on groups of consecutive layers) and writes the generated LoRA factors of every layer from
what it read (``write_factors``); ``to_adapter`` turns generated factors into the adapter applied to the
model (scaling, and for the authors' design a static rank block), and ``compose_segments`` composes the
factors of a video's consecutive segments into one adapter, each kind by its own rule. Streaming,
persistence and the one loader (``f2l.hypernet.load_hypernet``) are shared, so the pipeline, training,
evaluation and probes never ask which kind they hold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from f2l.adapter import Adapter
from f2l.config import NOT_A_SETTING
from f2l.encode import ContextFormat, LayerStates, stream_hidden_states

Factors = dict[str, tuple[Tensor, Tensor]]  # module -> (A (N, L, r, d_in), B (N, L, r, d_out))

# How many bytes of streamed hidden states a hypernetwork may hold before reading them together: a short
# clip is read in a few batches of layers (8 layers of a 12-frame clip at the SmolVLM2 500M shape, 2 MiB
# each, instead of 32 launch-bound reads), a long one a layer at a time (163 MiB a layer at 1,024
# frames). Reading a group briefly takes about 8x its bytes (the held states, their concatenation, float32
# copies, the projected tokens), so the budget stays small enough not to lift a short clip's peak memory
# over the KV prefill's.
READ_GROUP_BYTES = 16 * 2**20

CONFIG_FILE, WEIGHTS_FILE = "hypernet_config.json", "hypernet.safetensors"


def module_shapes_of(base, target_modules: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{module: (d_in, d_out)}`` of the named projections in the base's decoder layers."""
    layer = base.text_model.layers[0]
    linears = {name.rsplit(".", 1)[-1]: m for name, m in layer.named_modules() if hasattr(m, "in_features")}
    missing = [t for t in target_modules if t not in linears]
    if missing:
        raise ValueError(f"target modules {missing} not found in the base's decoder layer")
    return {t: (linears[t].in_features, linears[t].out_features) for t in target_modules}


@dataclass
class BaseFacts:
    """The part of every kind's config read off the base it is built for (``for_base`` fills it). A
    training config's hypernetwork section leaves it unset: it holds settings only (``NOT_A_SETTING``)."""

    base_id: str | None = field(default=None, metadata=NOT_A_SETTING)
    d_model: int | None = field(default=None, metadata=NOT_A_SETTING)  # the width of the states read
    num_layers: int | None = field(default=None, metadata=NOT_A_SETTING)
    # target module -> (d_in, d_out)
    module_shapes: dict[str, tuple[int, int]] = field(default_factory=dict, metadata=NOT_A_SETTING)

    @classmethod
    def for_base(cls, base, base_id: str, **settings):
        """A config of ``settings`` for ``base``: its width, layer count and the shapes of the config's
        ``target_modules``."""
        config = cls(**settings)
        text = base.model.config.text_config
        return dataclasses.replace(
            config,
            base_id=base_id,
            d_model=text.hidden_size,
            num_layers=text.num_hidden_layers,
            module_shapes=module_shapes_of(base, config.target_modules),
        )

    def settings(self) -> dict:
        """The fields that are settings, as ``for_base`` takes them."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("setting", True)
        }


class Hypernet(nn.Module):
    """The interface of every kind; subclasses set ``kind`` and ``config_class`` and implement the four
    methods that differ. ``config`` is a ``BaseFacts`` with ``target_modules`` (PEFT's name: the adapted
    projections), ``context`` (a ``ContextFormat``), ``to_dict`` and ``from_dict``."""

    kind: ClassVar[str]
    config_class: ClassVar[type]

    def read_layers(self, group: list[LayerStates]) -> Tensor:
        """What the kind keeps of each layer in ``group`` (consecutive layers): ``(N, len(group), ...)``."""
        raise NotImplementedError

    def write_factors(self, read: Tensor, layers: Tensor) -> Factors:
        """The generated factors of layers ``layers`` from their ``read_layers`` output."""
        raise NotImplementedError

    @property
    def read_width(self) -> int:
        """The width of ``read_layers``' output, ``(N, L, latents, read_width)``."""
        raise NotImplementedError

    def to_adapter(self, factors: Factors, provenance: Any = None) -> Adapter:
        """The batched adapter applied to the model for generated ``factors`` (one sample a row)."""
        raise NotImplementedError

    def compose_segments(self, factors: Factors, provenance: Mapping[str, Any]) -> Adapter:
        """One adapter for a video from the generated factors of its consecutive segments (rows, in order)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------
    @staticmethod
    def check_group(group: list[LayerStates]) -> int:
        """The first layer of a group of consecutive layers (anything else is a caller's error)."""
        first = group[0].layer
        if [s.layer for s in group] != list(range(first, first + len(group))):
            raise ValueError(f"a group is consecutive layers; got {[s.layer for s in group]}")
        return first

    def factors_from_states(self, states: Sequence[LayerStates]) -> Factors:
        """Generated factors from every layer's states already at hand (no base: a state cache, tests,
        probes), read as ``forward`` reads them."""
        return self.forward(None, states=states)

    def adapter_from_states(self, states: Sequence[LayerStates], provenance: Any = None) -> Adapter:
        """The applied adapter (factors and scaling) from every layer's states."""
        return self.to_adapter(self.factors_from_states(states), provenance)

    def forward(
        self,
        base,
        inputs=None,
        group_bytes: int = READ_GROUP_BYTES,
        states: Sequence[LayerStates] | None = None,
    ) -> Factors:
        """Every layer's generated factors from what ``read_all`` keeps of the layers' states."""
        return self.write_all(self.read_all(base, inputs, group_bytes, states))

    def write_all(self, read: Tensor) -> Factors:
        """``write_factors`` of every layer from ``read_all``'s output."""
        # arange on the device, not a tensor from a host list: no host-device copy in a training step
        return self.write_factors(read, torch.arange(read.shape[1], device=read.device))

    def read_all(
        self,
        base,
        inputs=None,
        group_bytes: int = READ_GROUP_BYTES,
        states: Sequence[LayerStates] | None = None,
    ) -> Tensor:
        """Stream the frozen base over ``inputs``, reading layers' states as they arrive (``read_layers``),
        or, given ``states`` (layers 0..L-1, e.g. from ``f2l.state_cache``), read those the same way
        without the base: ``(N, L, ...)``. Gradients reach only the hypernetwork.

        States are held until the held layers reach ``group_bytes`` (or the last layer arrives), then
        read together: a short clip is read in a few batches, a long clip (whose single layer exceeds
        the budget) one layer at a time, so the states held are one layer's or ``group_bytes``,
        whichever is larger."""
        read: list[Tensor] = []
        held: list[LayerStates] = []
        last = self.config.num_layers - 1
        # the base streams under no_grad: a hypernetwork in training reads its layers with gradients
        streaming = states is None

        def consume(layer: LayerStates) -> None:
            held.append(layer)
            if layer.layer < last and sum(s.hidden.nbytes for s in held) < group_bytes:
                return
            with torch.enable_grad() if self.training and streaming else contextlib.nullcontext():
                read.append(self.read_layers(held))
            held.clear()

        if streaming:
            stream_hidden_states(base, inputs, consume)  # layers 0..L-1, in order
        else:
            for layer in states:
                consume(layer)
        return torch.cat(read, 1)

    @property
    def context(self) -> ContextFormat:
        return self.config.context

    # -- persistence: safetensors + JSON, never pickle ----------------------------------------------
    def save(self, directory: str | Path, extra: dict | None = None) -> Path:
        from f2l.io import atomic_save_safetensors, atomic_write_json

        directory = Path(directory)
        atomic_save_safetensors(directory / WEIGHTS_FILE, self.state_dict())
        meta = {"kind": self.kind, "config": self.config.to_dict(), **(extra or {})}
        atomic_write_json(directory / CONFIG_FILE, meta)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Hypernet:
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        if meta.get("kind", "f2l") != cls.kind:
            raise ValueError(f"{directory} holds a {meta.get('kind')!r} hypernetwork, not {cls.kind!r}")
        model = cls(cls.config_class.from_dict(meta["config"]))
        model.load_state_dict(load_file(directory / WEIGHTS_FILE, device=str(device)))
        return model.to(device)
