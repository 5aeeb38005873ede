"""The ``Adapter``: a LoRA adapter for every layer of the frozen text model, as one value object.

An adapter holds, per target module (``q_proj`` ... ``down_proj``), factors ``A[L, r, d_in]`` and
``B[L, r, d_out]`` over the text model's ``L`` layers, a ``scaling`` and a ``provenance`` dict. The
weight change of layer ``l`` is

    delta_W_l = scaling * B_l^T @ A_l            (d_out x d_in)

so ``y = W x + scaling * B_l^T (A_l x)``. Every rank-space operation (compose, truncate, ablate,
SVD) works through the small ``r x r`` core and never forms ``delta_W``; ``delta_weight`` does, for
tests and small models.

**Batched adapters are the same class.** The hypernetwork writes a batch of videos' factors in one
pass, so factors may carry a leading batch dimension: ``A[N, L, r, d_in]``, ``B[N, L, r, d_out]``.
Then ``batch_size`` is ``N`` (``None`` for a single adapter), ``scaling`` is a float or a tensor
``[N]`` (per sample), ``provenance`` is a tuple of ``N`` dicts, ``adapter[i]`` is sample ``i`` and
``Adapter.stack`` builds a batch from single adapters (zero-padding ranks: zero rows add nothing).
Every method below works on both forms, sample by sample.

Adapters are values: methods return new adapters and never modify the factors in place. Factors may
carry gradients (the hypernetwork's); every operation here is differentiable except ``save``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from f2l.io import atomic_save_safetensors

# The projections of a Llama decoder layer that adapters may modify, in the order layers apply them.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

FORMAT = "f2l.adapter/1"  # written into saved files; bump when the layout changes

Scaling = float | Tensor

# Provenance key naming the rank slots ``[start, stop)`` that a hypernetwork writes independently of the
# video (the official kind's static bias block). It describes slot positions, so operations that rebuild
# the rank (composition, SVD truncation and ablation) drop it.
STATIC_SLOTS = "static_rank_slots"


class FactoredSVD(NamedTuple):
    """``delta_W = U @ diag(S) @ V^T`` for every layer (and sample), never formed densely.

    Shapes (``...`` is ``[N]`` for a batched adapter): ``U[..., L, d_out, k]``, ``S[..., L, k]`` in
    descending order, ``V[..., L, d_in, k]``, with ``k = min(r, d_in, d_out)``.
    """

    U: Tensor
    S: Tensor
    V: Tensor


@dataclass(frozen=True, eq=False)
class Adapter:
    """LoRA factors for the text model's layers, with scaling and provenance (see the module docstring).

    ``factors`` maps short module names from ``TARGET_MODULES`` (any subset) to ``(A, B)``; all
    modules share the layer count, rank and batch size. ``provenance`` is JSON-able: base model id,
    hypernet id, video id, frame count, resolution, and whatever else produced the adapter.
    """

    factors: Mapping[str, tuple[Tensor, Tensor]]
    scaling: Scaling = 1.0
    provenance: Mapping[str, Any] | Sequence[Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("An adapter needs factors for at least one module.")
        ordered = {}
        for name in TARGET_MODULES:  # canonical order, so equal adapters iterate identically
            if name in self.factors:
                a, b = self.factors[name]
                ordered[name] = (a, b)
        unknown = set(self.factors) - set(TARGET_MODULES)
        if unknown:
            raise ValueError(f"Unknown modules {sorted(unknown)}: use names from {TARGET_MODULES}.")
        lead = None
        for name, (a, b) in ordered.items():
            if a.dim() not in (3, 4) or b.dim() != a.dim():
                raise ValueError(
                    f"{name}: A and B must both be [L, r, d] or [N, L, r, d]; got {tuple(a.shape)} and "
                    f"{tuple(b.shape)}."
                )
            if a.shape[:-1] != b.shape[:-1]:
                raise ValueError(f"{name}: A {tuple(a.shape)} and B {tuple(b.shape)} disagree on [N,] L, r.")
            if lead is None:
                lead = a.shape[:-1]
            elif a.shape[:-1] != lead:
                raise ValueError(f"{name}: leading shape {tuple(a.shape[:-1])} differs from {tuple(lead)}.")
        object.__setattr__(self, "factors", ordered)
        n = None if len(lead) == 2 else lead[0]
        if isinstance(self.scaling, Tensor):
            want = () if n is None else (n,)
            if self.scaling.dim() == 0 and n is not None:
                pass  # one scaling shared by every sample
            elif tuple(self.scaling.shape) != want:
                raise ValueError(f"scaling has shape {tuple(self.scaling.shape)}; expected {want} or ().")
        else:
            object.__setattr__(self, "scaling", float(self.scaling))
        object.__setattr__(self, "provenance", _normalise_provenance(self.provenance, n))

    # ----------------------------------------------------------------------------- shape and storage
    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.factors)

    @property
    def _first(self) -> Tensor:
        return next(iter(self.factors.values()))[0]

    @property
    def batch_size(self) -> int | None:
        """``N`` for a batched adapter, ``None`` for a single one."""
        a = self._first
        return a.shape[0] if a.dim() == 4 else None

    @property
    def num_layers(self) -> int:
        return self._first.shape[-3]

    @property
    def rank(self) -> int:
        return self._first.shape[-2]

    @property
    def device(self) -> torch.device:
        return self._first.device

    @property
    def dtype(self) -> torch.dtype:
        return self._first.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held by the factors (what storing or shipping the adapter costs)."""
        return sum(t.numel() * t.element_size() for ab in self.factors.values() for t in ab)

    def dims(self, module: str) -> tuple[int, int]:
        """``(d_in, d_out)`` of a module."""
        a, b = self.factors[module]
        return a.shape[-1], b.shape[-1]

    def __repr__(self) -> str:
        batch = "" if self.batch_size is None else f"batch_size={self.batch_size}, "
        s = self.scaling if isinstance(self.scaling, float) else f"tensor{tuple(self.scaling.shape)}"
        return (
            f"Adapter({batch}layers={self.num_layers}, rank={self.rank}, modules={list(self.modules)}, "
            f"scaling={s}, dtype={self.dtype}, device={self.device})"
        )

    def _replace(self, factors=None, scaling=None, provenance=None) -> Adapter:
        return Adapter(
            factors=self.factors if factors is None else factors,
            scaling=self.scaling if scaling is None else scaling,
            provenance=self.provenance if provenance is None else provenance,
        )

    def _map(self, fn) -> Adapter:
        """A new adapter with ``fn`` applied to every factor tensor."""
        return self._replace(factors={m: (fn(a), fn(b)) for m, (a, b) in self.factors.items()})

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Adapter:
        """Move/cast the factors (and a tensor scaling); differentiable, like ``Tensor.to``."""
        if isinstance(device, torch.dtype):  # a.to(torch.float64), as with tensors
            device, dtype = None, device
        out = self._map(lambda t: t.to(device=device, dtype=dtype))
        if isinstance(self.scaling, Tensor):
            out = out._replace(scaling=self.scaling.to(device=device, dtype=dtype))
        return out

    def detach(self) -> Adapter:
        """The same adapter cut from the hypernetwork's autograd graph."""
        out = self._map(Tensor.detach)
        if isinstance(self.scaling, Tensor):
            out = out._replace(scaling=self.scaling.detach())
        return out

    def scaling_tensor(self) -> Tensor:
        """The scaling as a tensor broadcastable against factors: ``[]`` or ``[N, 1, 1, 1]``."""
        s = torch.as_tensor(self.scaling, device=self.device, dtype=self.dtype)
        return s.reshape(-1, 1, 1, 1) if s.dim() == 1 else s

    # ------------------------------------------------------------------------------------ batching
    def __getitem__(self, index: int | slice) -> Adapter:
        """Sample ``index`` of a batched adapter (a slice gives a smaller batch)."""
        if self.batch_size is None:
            raise TypeError("A single adapter has no batch dimension to index.")
        s = self.scaling
        if isinstance(s, Tensor) and s.dim() == 1:
            s = s[index]
        prov = self.provenance[index]
        return Adapter(
            factors={m: (a[index], b[index]) for m, (a, b) in self.factors.items()},
            scaling=s,
            provenance=prov if isinstance(index, slice) else dict(prov),
        )

    def unbind(self) -> list[Adapter]:
        """The samples of a batched adapter as single adapters."""
        if self.batch_size is None:
            raise TypeError("A single adapter has no batch dimension to unbind.")
        return [self[i] for i in range(self.batch_size)]

    @classmethod
    def stack(cls, adapters: Sequence[Adapter]) -> Adapter:
        """Batch single adapters: ``A[N, L, r_max, d_in]``; lower ranks and missing modules are zero-padded
        (zero rows contribute nothing), and each sample keeps its own scaling and provenance."""
        adapters = list(adapters)
        if not adapters:
            raise ValueError("Nothing to stack.")
        if any(a.batch_size is not None for a in adapters):
            raise ValueError("Stack single adapters; index or unbind batched ones first.")
        r_max = max(a.rank for a in adapters)
        factors = {}
        for m, pairs in _aligned(adapters).items():
            a_list, b_list = zip(*pairs, strict=True)
            factors[m] = (
                torch.stack([_pad_rank(a, r_max) for a in a_list]),
                torch.stack([_pad_rank(b, r_max) for b in b_list]),
            )
        scalings = [a.scaling for a in adapters]
        if all(isinstance(s, float) for s in scalings) and len(set(scalings)) == 1:
            scaling: Scaling = scalings[0]
        else:
            ref = adapters[0]
            scaling = torch.stack([torch.as_tensor(s, device=ref.device, dtype=ref.dtype) for s in scalings])
        return cls(factors=factors, scaling=scaling, provenance=[dict(a.provenance) for a in adapters])

    # ------------------------------------------------------------------- composition and selection
    @classmethod
    def compose(cls, *adapters: Adapter, weights: Sequence[float] | None = None) -> Adapter:
        """Sum the adapters' weight changes by concatenating their factors along ``r``.

        ``delta(compose(a, b, weights=(wa, wb))) = wa * delta(a) + wb * delta(b)`` exactly. Adapters may
        have different scalings and ranks: each adapter's ``weight * scaling`` is folded into its ``B``
        rows, so the composition has scaling 1.0 and rank ``sum(r_i)``. Modules missing from some
        adapters contribute zero rows. Batched adapters compose sample by sample (equal batch sizes).
        """
        if not adapters:
            raise ValueError("Nothing to compose.")
        weights = [1.0] * len(adapters) if weights is None else list(weights)
        if len(weights) != len(adapters):
            raise ValueError(f"{len(adapters)} adapters but {len(weights)} weights.")
        if len({a.batch_size for a in adapters}) != 1:
            raise ValueError("Compose adapters of one kind: all single, or all batched with one batch size.")
        folded = [a._folded(w) for a, w in zip(adapters, weights, strict=True)]
        factors = {}
        for m, pairs in _aligned(folded).items():
            a_list, b_list = zip(*pairs, strict=True)
            factors[m] = (torch.cat(a_list, dim=-2), torch.cat(b_list, dim=-2))
        return cls(factors=factors, scaling=1.0, provenance=_compose_provenance(adapters, weights))

    def _folded(self, weight: float = 1.0) -> Adapter:
        """The same delta with ``weight * scaling`` moved into ``B`` and scaling 1.0."""
        s = weight * self.scaling_tensor()
        return self._replace(factors={m: (a, b * s) for m, (a, b) in self.factors.items()}, scaling=1.0)

    def scaled(self, alpha: float | Tensor) -> Adapter:
        """The adapter with its weight change multiplied by ``alpha`` (a float, or ``[N]`` per sample)."""
        return self._replace(scaling=self.scaling * alpha)

    def select_modules(self, names: Iterable[str]) -> Adapter:
        """Only the named modules (the others are left at the base weights)."""
        names = set(names)
        missing = names - set(self.modules)
        if missing:
            raise KeyError(f"The adapter has no modules {sorted(missing)}; it has {list(self.modules)}.")
        return self._replace(factors={m: ab for m, ab in self.factors.items() if m in names})

    def drop_modules(self, names: Iterable[str]) -> Adapter:
        return self.select_modules(set(self.modules) - set(names))

    def drop_layers(self, layers: Iterable[int]) -> Adapter:
        """Zero the factors of ``layers``: those layers run at the base weights (the layer-removal probe)."""
        mask = self._layer_mask(layers)
        keep = (~mask).to(self.dtype)[:, None, None]
        return self._map(lambda t: t * keep)

    def keep_layers(self, layers: Iterable[int]) -> Adapter:
        """Zero every layer except ``layers``."""
        keep = self._layer_mask(layers)
        return self.drop_layers([i for i in range(self.num_layers) if not keep[i]])

    def _layer_mask(self, layers: Iterable[int]) -> Tensor:
        mask = torch.zeros(self.num_layers, dtype=torch.bool, device=self.device)
        for layer in layers:
            if not -self.num_layers <= layer < self.num_layers:
                raise IndexError(f"Layer {layer} out of range for {self.num_layers} layers.")
            mask[layer] = True
        return mask

    # --------------------------------------------------------------------------------- rank space
    @property
    def static_slots(self) -> range | None:
        """The rank slots written independently of the video (``STATIC_SLOTS`` in a single adapter's
        provenance, checked against the rank), or ``None``."""
        marked = self.provenance.get(STATIC_SLOTS) if isinstance(self.provenance, Mapping) else None
        if marked is None:
            return None
        start, stop = (int(i) for i in marked)
        if not 0 <= start < stop <= self.rank:
            raise ValueError(f"{STATIC_SLOTS} {list(marked)} do not lie in the adapter's rank 0..{self.rank}")
        return range(start, stop)

    def keep_rank_slots(self, slots: Iterable[int]) -> Adapter:
        """Only the rank slots ``slots`` (rows of every ``A`` and ``B``); the slot marks no longer hold."""
        index = torch.as_tensor(list(slots), dtype=torch.long, device=self.device)
        factors = {
            m: (a.index_select(-2, index), b.index_select(-2, index)) for m, (a, b) in self.factors.items()
        }
        return self._replace(factors=factors, provenance=_without_slot_marks(self.provenance))

    def svd(self) -> dict[str, FactoredSVD]:
        """Per module, the SVD of every layer's ``delta_W``, computed through the ``r x r`` core.

        With ``A^T = Q_A R_A`` and ``B^T = Q_B R_B`` (thin QR), ``delta = s Q_B (R_B R_A^T) Q_A^T``; the SVD
        ``U_c S V_c^T`` of the small core gives ``U = Q_B U_c`` and ``V = Q_A V_c``. Cost: ``O(r^2 d)``.
        """
        s = self.scaling_tensor()
        out = {}
        for m, (a, b) in self.factors.items():
            q_a, r_a = torch.linalg.qr(a.transpose(-1, -2))
            q_b, r_b = torch.linalg.qr(b.transpose(-1, -2))
            u_c, sv, vh_c = torch.linalg.svd(s * (r_b @ r_a.transpose(-1, -2)), full_matrices=False)
            out[m] = FactoredSVD(U=q_b @ u_c, S=sv, V=q_a @ vh_c.transpose(-1, -2))
        return out

    def truncate_rank(self, k: int) -> Adapter:
        """The best rank-``k`` approximation of every layer's ``delta_W`` (Eckart-Young), as an adapter.

        The result is in SVD form: row ``i`` of ``A`` is ``v_i``, of ``B`` ``S_i u_i``, and its scaling is
        1.0. ``truncate_rank(rank)`` is the same weight change; ``truncate_rank(0)`` none.
        """
        if not 0 <= k <= self.rank:
            raise ValueError(f"Rank {k} is outside 0..{self.rank}.")
        return self._from_svd(self.svd(), k)

    def ablate_directions(
        self,
        indices: Iterable[int],
        *,
        layers: Iterable[int] | None = None,
        modules: Iterable[str] | None = None,
    ) -> Adapter:
        """Remove singular directions ``indices`` (0 = the largest) of ``delta_W`` in ``layers`` x
        ``modules`` (default: all), keeping every other direction exactly (the rank-ablation probe).

        The result is in SVD form with scaling 1.0 and the same rank; ablated directions are zero rows.
        """
        indices = sorted(set(indices))
        decomposed = self.svd()
        k = min(f.S.shape[-1] for f in decomposed.values())
        if any(not 0 <= i < k for i in indices):
            raise IndexError(f"Direction indices {indices} out of range 0..{k - 1}.")
        rows = torch.ones(self.num_layers, dtype=torch.bool, device=self.device)
        if layers is not None:
            rows = self._layer_mask(layers)
        chosen = set(self.modules if modules is None else modules)
        ablated = {}
        for m, (u, s, v) in decomposed.items():
            if m in chosen:
                cols = torch.zeros(s.shape[-1], dtype=torch.bool, device=s.device)
                cols[indices] = True
                s = s.masked_fill(rows[:, None] & cols[None, :], 0.0)
            ablated[m] = FactoredSVD(u, s, v)
        return self._from_svd(ablated, self.rank)

    def _from_svd(self, decomposed: dict[str, FactoredSVD], rank: int) -> Adapter:
        """Factors ``A = V_k^T`` (orthonormal rows) and ``B = diag(S_k) U_k^T`` for the top ``rank``
        directions, zero-padded to ``rank`` rows. (No square roots: their gradient at S = 0 is infinite.)"""
        factors = {}
        for m, (u, s, v) in decomposed.items():
            a = v[..., :rank].transpose(-1, -2)
            b = s[..., :rank, None] * u[..., :rank].transpose(-1, -2)
            factors[m] = (_pad_rank(a, rank), _pad_rank(b, rank))
        return self._replace(factors=factors, scaling=1.0, provenance=_without_slot_marks(self.provenance))

    # ------------------------------------------------------------------------------- dense access
    def delta_weight(self, module: str, layer: int) -> Tensor:
        """The dense ``delta_W`` of one module in one layer: ``[d_out, d_in]`` (``[N, d_out, d_in]`` batched).
        For tests and small models; rank-space methods never need it."""
        a, b = self.factors[module]
        a, b = a[..., layer, :, :], b[..., layer, :, :]
        s = self.scaling_tensor()
        s = s.reshape(-1, 1, 1) if s.dim() else s
        return s * (b.transpose(-1, -2) @ a)

    # ---------------------------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike) -> Path:
        """Write one safetensors file (atomically): tensors ``{module}.A``/``{module}.B`` (and ``scaling``
        when it is a tensor), the scaling and provenance as JSON in the file's metadata."""
        header: dict[str, Any] = {"format": FORMAT, "modules": list(self.modules)}
        tensors = {}
        for m, (a, b) in self.factors.items():
            tensors[f"{m}.A"], tensors[f"{m}.B"] = a, b
        if isinstance(self.scaling, Tensor):
            tensors["scaling"] = self.scaling
            header["scaling"] = None
        else:
            header["scaling"] = self.scaling
        header["provenance"] = (
            list(self.provenance) if isinstance(self.provenance, tuple) else dict(self.provenance)
        )
        try:
            meta = json.dumps(header, sort_keys=True)
        except TypeError as err:
            raise TypeError(f"Adapter provenance must be JSON-able: {err}") from err
        return atomic_save_safetensors(path, tensors, metadata={"f2l_adapter": meta})

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> Adapter:
        """Read a file written by ``save`` (through safetensors only: nothing is unpickled)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = (f.metadata() or {}).get("f2l_adapter")
            if meta is None:
                raise ValueError(f"{path} is not an f2l adapter file (no 'f2l_adapter' metadata).")
            header = json.loads(meta)
            if header.get("format") != FORMAT:
                raise ValueError(f"{path}: unsupported adapter format {header.get('format')!r}.")
            factors = {m: (f.get_tensor(f"{m}.A"), f.get_tensor(f"{m}.B")) for m in header["modules"]}
            scaling = f.get_tensor("scaling") if header["scaling"] is None else header["scaling"]
        return cls(factors=factors, scaling=scaling, provenance=header["provenance"])


def stack_adapters(adapters: Sequence[Adapter]) -> Adapter:
    """``Adapter.stack`` as a function."""
    return Adapter.stack(adapters)


def compose(*adapters: Adapter, weights: Sequence[float] | None = None) -> Adapter:
    """``Adapter.compose`` as a function."""
    return Adapter.compose(*adapters, weights=weights)


# --------------------------------------------------------------------------------------- helpers
def _normalise_provenance(prov, batch_size: int | None):
    """A dict for a single adapter; a tuple of ``N`` dicts for a batch (one shared dict is copied)."""
    if batch_size is None:
        if not isinstance(prov, Mapping):
            raise TypeError("A single adapter's provenance is a dict.")
        return dict(prov)
    if isinstance(prov, Mapping):
        return tuple(dict(prov) for _ in range(batch_size))
    prov = tuple(dict(p) for p in prov)
    if len(prov) != batch_size:
        raise ValueError(f"{len(prov)} provenance dicts for a batch of {batch_size}.")
    return prov


def _pad_rank(t: Tensor, r: int) -> Tensor:
    """Zero rows appended along the rank axis (``-2``) up to ``r``."""
    missing = r - t.shape[-2]
    if missing <= 0:
        return t
    return torch.cat([t, t.new_zeros(*t.shape[:-2], missing, t.shape[-1])], dim=-2)


def _aligned(adapters: Sequence[Adapter]) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """For every module in any adapter, each adapter's ``(A, B)``, zeros where an adapter lacks it."""
    layers = {a.num_layers for a in adapters}
    if len(layers) != 1:
        raise ValueError(f"Adapters over different layer counts: {sorted(layers)}.")
    modules = [m for m in TARGET_MODULES if any(m in a.factors for a in adapters)]
    out = {}
    for m in modules:
        dims = {a.dims(m) for a in adapters if m in a.factors}
        if len(dims) != 1:
            raise ValueError(f"{m}: adapters disagree on (d_in, d_out): {sorted(dims)}.")
        (d_in, d_out) = dims.pop()
        pairs = []
        for a in adapters:
            if m in a.factors:
                pairs.append(a.factors[m])
            else:
                ref = a._first
                lead = ref.shape[:-1]
                pairs.append((ref.new_zeros(*lead, d_in), ref.new_zeros(*lead, d_out)))
        out[m] = pairs
    return out


def _without_slot_marks(provenance):
    """A provenance dict (or a sequence of them) without ``STATIC_SLOTS``."""
    if isinstance(provenance, Mapping):
        return {k: v for k, v in provenance.items() if k != STATIC_SLOTS}
    return [_without_slot_marks(p) for p in provenance]


def _compose_provenance(adapters: Sequence[Adapter], weights: Sequence[float]):
    """``composed_from`` lists the parts; keys on which every part agrees (e.g. the base) are kept."""

    def merge(parts: list[dict]) -> dict:
        parts = _without_slot_marks(parts)
        shared = {k: v for k, v in parts[0].items() if all(k in p and p[k] == v for p in parts[1:])}
        return {**shared, "composed_from": parts, "weights": [float(w) for w in weights]}

    if adapters[0].batch_size is None:
        return merge([dict(a.provenance) for a in adapters])
    return [merge([dict(a.provenance[i]) for a in adapters]) for i in range(adapters[0].batch_size)]
