"""Applying an ``Adapter`` to the frozen text model through explicit LoRA wrapper modules.

``install_lora`` replaces each target ``nn.Linear`` of the text model's layers by a ``LoRALinear``
that holds the original layer as ``.base`` (the vision tower and connector are never touched).
A wrapper with no factors returns exactly ``base(x)``; ``use_adapter`` sets every wrapper's factors
(``attached``, which also serves code holding the wrappers directly, such as the probes' bridge)
for the duration of a ``with`` block and always clears them, so the adapter's state lives in the
modules that use it and nowhere else.

Two ways to apply an adapter:

- **Unmerged** (``use_adapter``): ``y = base(x) + scaling * (x A^T) B``, batched per sample, so one
  forward or ``generate`` serves a different adapter per row, and the factors keep the
  hypernetwork's gradients (training goes through here).
- **Merged** (``merge_adapter`` / ``unmerge_adapter``): ``scaling * B^T A`` is added into each target
  weight, for serving one adapter at the base model's speed. The original weights are kept aside
  while merged (memory: one extra copy of every targeted weight) so that unmerging restores them
  bit for bit rather than subtracting the delta back, which would leave rounding error behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2l.adapter.adapter import TARGET_MODULES, Adapter

# Where each target projection lives inside a Llama decoder layer.
SUBLAYER = {
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}


@dataclass(frozen=True)
class LoRAFactors:
    """One adapter's factors at one wrapped layer, in the layer's dtype and device, and the two the
    forward multiplies by (folded once per adapter, not per token)."""

    a: Tensor  # A, [r, d_in] or [N, r, d_in]
    b: Tensor  # B, [r, d_out] or [N, r, d_out]
    scaling: float | Tensor  # a float, a 0-d tensor, or [N] per row (already in b_scaled)
    a_t: Tensor  # A^T, [d_in, r] or [N, d_in, r]
    b_scaled: Tensor  # scaling * B, [1 or N, r, d_out]
    shared: bool  # one adapter for every row of any batch (else one per row)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus the current low-rank update, if any.

    The factors are plain tensors held in one ``LoRAFactors`` value, not ``Parameter``s: they are
    written per video by the hypernetwork and carry its gradients; nothing about them belongs in the
    base model's state dict. ``lora_A`` is ``[r, d_in]`` (one adapter for every row of the batch) or
    ``[N, r, d_in]`` (one per row); ``lora_B`` likewise with ``d_out``. Setting and clearing them is one
    write each (``hold``): it is paid for every target of every query.
    """

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.factors: LoRAFactors | None = None
        self._unmerged_weight: Tensor | None = None  # the original weight while an adapter is merged

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> Tensor:
        """The (frozen) base weight, for code that inspects ``module.weight``."""
        return self.base.weight

    @property
    def lora_A(self) -> Tensor | None:
        return None if self.factors is None else self.factors.a

    @property
    def lora_B(self) -> Tensor | None:
        return None if self.factors is None else self.factors.b

    @property
    def scaling(self) -> float | Tensor:
        return 1.0 if self.factors is None else self.factors.scaling

    @property
    def has_factors(self) -> bool:
        return self.factors is not None

    @property
    def merged(self) -> bool:
        return self._unmerged_weight is not None

    def extra_repr(self) -> str:
        if self.factors is None:
            return f"merged={self.merged}"
        return f"lora_A={tuple(self.lora_A.shape)}, lora_B={tuple(self.lora_B.shape)}, merged={self.merged}"

    def set_factors(self, a: Tensor, b: Tensor, scaling: float | Tensor = 1.0) -> None:
        """Use ``y = base(x) + scaling * (x A^T) B`` from now on; ``scaling`` is a float or ``[N]``."""
        if a.dim() not in (2, 3) or b.dim() != a.dim() or a.shape[:-1] != b.shape[:-1]:
            raise ValueError(
                f"Factors must be [r, d] or [N, r, d]; got A {tuple(a.shape)}, B {tuple(b.shape)}."
            )
        stacks = _serving_stacks(a.unsqueeze(-3), b.unsqueeze(-3), scaling, self)  # as one layer's stack
        self.hold(
            LoRAFactors(
                stacks.a[0], stacks.b[0], stacks.scaling, stacks.a_t[0], stacks.b_scaled[0], stacks.shared
            )
        )

    def hold(self, factors: LoRAFactors | None) -> None:
        """Use ``factors`` (``None``: none) from now on. The value goes straight into the instance dict,
        which is where ``nn.Module.__setattr__`` puts a plain attribute too, after type checks that cost
        microseconds per target and query."""
        self.__dict__["factors"] = factors

    def clear_factors(self) -> None:
        self.hold(None)

    def forward(self, x: Tensor) -> Tensor:
        # The base layer's weight is applied here rather than by calling ``self.base``: on a short query
        # the GPU waits on Python, and a module call per target is a cost the base model does not pay
        # (hooks belong on the wrapper, which is where the adapted output is).
        y = F.linear(x, self.base.weight, self.base.bias)
        f = self.factors
        if f is None:
            return y
        b = f.b_scaled
        if b.shape[0] != x.shape[0]:
            if not f.shared:
                raise RuntimeError(
                    f"The adapter batch has {b.shape[0]} samples but the input batch has {x.shape[0]} rows."
                )
            b = b.expand(x.shape[0], -1, -1)
        # [N, T, d_in] @ [(N,) d_in, r] -> [N, T, r], then y += [N, T, r] @ [N, r, d_out] in place (one
        # GEMM accumulating into y, no copy of y; the base matmul's backward does not need y): never
        # forms the d_out x d_in update. One adapter per row calls ``bmm`` itself: ``matmul`` would
        # dispatch an expand, two reshapes and a view around the same kernel.
        a_t = f.a_t
        return y.baddbmm_(torch.bmm(x, a_t) if a_t.dim() == 3 else x @ a_t, b)

    @torch.no_grad()
    def merge(self, a: Tensor, b: Tensor, scaling: float | Tensor = 1.0) -> None:
        """Add ``scaling * B^T A`` into the base weight (computed in float32), keeping the original."""
        if self.merged:
            raise RuntimeError("An adapter is already merged here; unmerge it first.")
        if a.dim() != 2:
            raise ValueError(f"Merge takes one adapter's factors [r, d]; got A {tuple(a.shape)}.")
        w = self.base.weight
        delta = torch.as_tensor(scaling, dtype=torch.float32, device=w.device) * (
            b.to(w.device, torch.float32).T @ a.to(w.device, torch.float32)
        )
        self._unmerged_weight = w.detach().clone()
        w.add_(delta.to(w.dtype))

    @torch.no_grad()
    def unmerge(self) -> None:
        """Restore the original weight exactly (a copy, not a subtraction)."""
        if self._unmerged_weight is None:
            return
        self.base.weight.copy_(self._unmerged_weight)
        self._unmerged_weight = None


# ------------------------------------------------------------------------------ locating modules
def text_model_of(model) -> nn.Module:
    """The Llama decoder inside a ``Base``, a ``SmolVLMForConditionalGeneration``, a ``SmolVLMModel``,
    or the decoder itself (whatever holds ``.layers``)."""
    current = model
    for _ in range(4):
        if hasattr(current, "layers") and isinstance(current.layers, nn.ModuleList):
            return current
        nxt = getattr(current, "text_model", None)
        if nxt is None:
            nxt = getattr(current, "model", None)
        if nxt is None:
            break
        current = nxt
    raise TypeError(f"Cannot find a text model with decoder layers inside {type(model).__name__}.")


def install_lora(model, targets: Iterable[str] = TARGET_MODULES) -> dict[tuple[int, str], LoRALinear]:
    """Wrap the ``targets`` of every text-model layer in ``LoRALinear`` (in place; idempotent).

    Returns every wrapper of the text model keyed by ``(layer, module)`` (also those of earlier calls'
    targets). Outputs are unchanged until factors are set. The model's ``state_dict`` keys gain a
    ``.base`` while wrapped. One walk over the layers: this runs on every ``use_adapter``.
    """
    text = text_model_of(model)
    targets = set(targets)
    unknown = targets - set(TARGET_MODULES)
    if unknown:
        raise ValueError(f"Unknown target modules {sorted(unknown)}: use names from {TARGET_MODULES}.")
    found = {}
    for i, layer in enumerate(text.layers):
        sublayers = {name: getattr(layer, name) for name in ("self_attn", "mlp")}
        for name in TARGET_MODULES:
            parent = sublayers[SUBLAYER[name]]
            module = getattr(parent, name, None)
            if name in targets and not isinstance(module, LoRALinear):
                if not isinstance(module, nn.Linear):
                    raise TypeError(
                        f"{SUBLAYER[name]}.{name} is a {type(module).__name__}, not an nn.Linear."
                    )
                module = LoRALinear(module)
                setattr(parent, name, module)
            if isinstance(module, LoRALinear):
                found[(i, name)] = module
    return found


def lora_modules(model) -> dict[tuple[int, str], LoRALinear]:
    """The installed wrappers, keyed by ``(layer, module)`` in layer order."""
    return install_lora(model, ())


def uninstall_lora(model) -> int:
    """Put the original ``nn.Linear`` modules back (unmerging first); returns how many were unwrapped."""
    text = text_model_of(model)
    wrappers = lora_modules(model)
    for (i, name), wrapper in wrappers.items():
        wrapper.unmerge()
        wrapper.clear_factors()
        setattr(getattr(text.layers[i], SUBLAYER[name]), name, wrapper.base)
    return len(wrappers)


def _check_layers(adapter: Adapter, layers: int) -> None:
    if adapter.num_layers != layers:
        raise ValueError(f"The adapter covers {adapter.num_layers} layers; the text model has {layers}.")


class _Stacks(NamedTuple):
    """One module's factors for every layer, layer first, ready for the forward: ``a`` is
    ``[L, (N,) r, d_in]``, ``a_t`` its transpose, ``b_scaled`` is ``scaling * B`` as
    ``[L, 1 or N, r, d_out]``."""

    a: Tensor
    b: Tensor
    scaling: float | Tensor
    a_t: Tensor
    b_scaled: Tensor
    shared: bool  # one adapter for every row of any batch


def _serving_stacks(a: Tensor, b: Tensor, scaling: float | Tensor, wrapper: LoRALinear) -> _Stacks:
    """``A [(N,) L, r, d_in]`` and ``B [(N,) L, r, d_out]`` of one module, converted to the wrapper's dtype
    and device, A transposed and B scaled once for all layers: a handful of kernels per module and
    adapter, not per target (an fp32 adapter on a bf16 base is 14 conversions, not 2 x 7 x layers)."""
    base = wrapper.base
    if a.shape[-1] != base.in_features or b.shape[-1] != base.out_features:
        raise ValueError(
            f"Factors A {tuple(a.shape)}, B {tuple(b.shape)} do not fit a {base.in_features} -> "
            f"{base.out_features} linear layer."
        )
    w = base.weight
    a, b = a.to(device=w.device, dtype=w.dtype), b.to(device=w.device, dtype=w.dtype)
    if a.dim() == 4 and a.shape[0] == 1:  # a batch of one is one adapter for every row
        a, b = a[0], b[0]
    if isinstance(scaling, Tensor):
        scaling = scaling.to(device=w.device, dtype=w.dtype)
        b_scaled = (scaling.view(-1, 1, 1, 1) if scaling.dim() == 1 else scaling) * b  # per row: [N, L, r, d]
    else:
        b_scaled = b if scaling == 1.0 else scaling * b
    # Layer first: [L, 1 or N, r, d_out] for B (3-D per layer, so one ``baddbmm`` serves one adapter for
    # every row, expanded without a copy, and one per row), [L, (N,) d_in, r] for A^T.
    b_scaled = b_scaled[:, None] if b_scaled.dim() == 3 else b_scaled.movedim(0, 1)
    if a.dim() == 4:
        a, b = a.movedim(0, 1), b.movedim(0, 1)
    return _Stacks(a, b, scaling, a.transpose(-1, -2), b_scaled, b_scaled.shape[1] == 1)


def attach_adapter(wrappers: Mapping[tuple[int, str], LoRALinear], adapter: Adapter) -> list[LoRALinear]:
    """Give each wrapper (keyed ``(layer, module)``, as ``lora_modules`` returns them) its layer's factors
    of ``adapter``; returns the wrappers set, which the caller clears (``clear_factors``) when done.

    Refuses a wrapper that already holds factors (adapters do not nest) and an adapter of another layer
    count.
    """
    layers = len({layer for layer, _ in wrappers})
    _check_layers(adapter, layers)
    busy = [key for key, w in wrappers.items() if w.has_factors]
    if busy:
        raise RuntimeError(f"An adapter is already in use (e.g. at {busy[0]}); nesting is not supported.")
    missing = [name for name in adapter.modules if (0, name) not in wrappers]
    if missing:
        raise ValueError(f"The adapter modifies {missing}, which are not wrapped here.")
    stacks = {
        name: _serving_stacks(a, b, adapter.scaling, wrappers[(0, name)])
        for name, (a, b) in adapter.factors.items()
    }
    # Stacks are made on layer 0's device; a model dispatched over several devices (whole decoder layers
    # each, as ``device_map`` places them) gets each layer's moved.
    first = adapter.modules[0]
    spread = len({wrappers[(layer, first)].base.weight.device for layer in range(layers)}) > 1
    touched: list[LoRALinear] = []
    for name, st in stacks.items():
        per_layer = zip(st.a.unbind(0), st.b.unbind(0), st.a_t.unbind(0), st.b_scaled.unbind(0), strict=True)
        for layer, (a, b, a_t, b_scaled) in enumerate(per_layer):
            wrapper = wrappers[(layer, name)]
            if spread:
                device = wrapper.base.weight.device
                a, b, a_t, b_scaled = (t.to(device) for t in (a, b, a_t, b_scaled))
            wrapper.hold(LoRAFactors(a, b, st.scaling, a_t, b_scaled, st.shared))
            touched.append(wrapper)
    return touched


@contextmanager
def attached(wrappers: Mapping[tuple[int, str], LoRALinear], adapter: Adapter) -> Iterator[None]:
    """``attach_adapter`` for the duration of a ``with`` block; the factors are cleared on exit, also when
    the block raises."""
    touched = attach_adapter(wrappers, adapter)
    try:
        yield
    finally:
        for wrapper in touched:
            wrapper.clear_factors()


# -------------------------------------------------------------------------------- applying adapters
@contextmanager
def use_adapter(model, adapter: Adapter) -> Iterator:
    """Run ``model`` with ``adapter`` inside the ``with`` block (unmerged, per-sample batched).

    A single adapter applies to every row of any batch; a batched adapter's sample ``i`` to row ``i``.
    The factors stay set across all decode steps of ``model.generate`` (the KV cache holds keys and
    values computed with them). They are cleared on exit, also when the block raises. Wrappers are
    installed on first use.
    """
    with attached(install_lora(model, adapter.modules), adapter):
        yield model


def merge_adapter(model, adapter: Adapter) -> None:
    """Fold one adapter into the target weights (in place); ``unmerge_adapter`` restores them exactly."""
    if adapter.batch_size is not None:
        if adapter.batch_size != 1:
            raise ValueError(f"Only one adapter can be merged; this one is a batch of {adapter.batch_size}.")
        adapter = adapter[0]
    _check_layers(adapter, len(text_model_of(model).layers))
    wrappers = install_lora(model, adapter.modules)
    if any(w.merged for w in wrappers.values()):
        raise RuntimeError("An adapter is already merged into this model; unmerge it first.")
    done: list[LoRALinear] = []
    try:
        for name, (a, b) in adapter.factors.items():
            for layer in range(adapter.num_layers):
                wrappers[(layer, name)].merge(a[layer], b[layer], adapter.scaling)
                done.append(wrappers[(layer, name)])
    except BaseException:
        for wrapper in done:
            wrapper.unmerge()
        raise


def unmerge_adapter(model) -> None:
    """Restore every merged weight bit for bit."""
    for wrapper in lora_modules(model).values():
        wrapper.unmerge()


@contextmanager
def merged_adapter(model, adapter: Adapter) -> Iterator:
    """``merge_adapter`` for the duration of a ``with`` block."""
    merge_adapter(model, adapter)
    try:
        yield model
    finally:
        unmerge_adapter(model)
