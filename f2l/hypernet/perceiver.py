"""The perceiver hypernetwork: per-layer hidden states of the frozen VLM -> LoRA factors of that layer.

One network, shared across the text model's layers (a learned layer embedding tells them apart), pools a
layer's token states into latents by length-scaled cross-attention (padding masked, no positions over input
tokens), reads one summary per (module, rank slot) and writes the rows of ``A`` and ``B`` with per-module
heads; the B heads start at zero, so the first adapter is a no-op. The map, why it holds from 12 to 1,024
frames, and its output scales: docs/perceiver.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from f2l.adapter import TARGET_MODULES, Adapter
from f2l.encode import ContextFormat, LayerStates
from f2l.hypernet.interface import BaseFacts, Factors, Hypernet


@dataclass
class HypernetConfig(BaseFacts):
    """Everything that fixes the perceiver's shape (the settings of a training run's ``f2l`` section),
    and the base it was built for."""

    rank: int = 8
    alpha: float = 8.0  # delta-W = (alpha / rank) B^T A
    width: int = 256
    num_latents: int = 32
    num_heads: int = 4
    self_blocks: int = 2
    ref_tokens: int = 256  # the token count at which length-scaled attention is plain softmax
    target_modules: tuple[str, ...] = TARGET_MODULES
    context: ContextFormat = field(default_factory=ContextFormat)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict:
        d = asdict(self)
        d["module_shapes"] = {k: list(v) for k, v in self.module_shapes.items()}
        d["target_modules"] = list(self.target_modules)
        d["context"] = self.context.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HypernetConfig:
        d = dict(d)
        d["module_shapes"] = {k: tuple(v) for k, v in d["module_shapes"].items()}
        # "targets": the name before PEFT's (directories written before it)
        d["target_modules"] = tuple(d.pop("target_modules", d.pop("targets", TARGET_MODULES)))
        d["context"] = ContextFormat(**d.get("context", {}))
        return cls(**d)


class LengthScaledAttention(nn.Module):
    """Multi-head cross-attention whose logits scale with log(number of real keys) / log(T_ref)."""

    def __init__(self, width: int, num_heads: int, ref_tokens: int, length_scaled: bool = True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))
        self.length_scaled = length_scaled
        self.log_ref = math.log(ref_tokens)
        # learned per-head sharpness of length-scaled attention (absent where it would go unused)
        self.head_scale = nn.Parameter(torch.ones(num_heads)) if length_scaled else None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q, k, v = self._split(self.q(queries)), self._split(self.k(keys)), self._split(self.v(keys))
        attn_mask = None
        if self.length_scaled:
            n_keys = (
                mask.sum(-1)
                if mask is not None
                else torch.full((keys.shape[0],), keys.shape[1], device=keys.device)
            )
            factor = torch.log(n_keys.clamp(min=1).to(q.dtype)) / self.log_ref  # (N,)
            q = q * (factor[:, None, None, None] * self.head_scale[None, :, None, None])
        if mask is not None:
            attn_mask = mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        n, _, m, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(n, m, -1))


class Block(nn.Module):
    """Pre-norm attention (cross or self) + MLP, residual around both."""

    def __init__(self, width: int, num_heads: int, ref_tokens: int, length_scaled: bool):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = (
            nn.LayerNorm(width),
            nn.LayerNorm(width),
            nn.LayerNorm(width),
        )
        self.attn = LengthScaledAttention(width, num_heads, ref_tokens, length_scaled)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        kv = self.norm_kv(x if context is None else context)
        x = x + self.attn(self.norm_q(x), kv, mask)
        return x + self.mlp(self.norm_mlp(x))


class PerceiverHypernet(Hypernet):
    """Reads one layer's hidden states and writes that layer's LoRA factors for every target module."""

    kind = "f2l"
    config_class = HypernetConfig

    def __init__(self, config: HypernetConfig):
        super().__init__()
        c = self.config = config
        self.in_proj = nn.Linear(c.d_model, c.width)
        self.latents = nn.Parameter(torch.randn(c.num_latents, c.width) * 0.02)
        self.layer_embed = nn.Embedding(c.num_layers, c.width)
        self.module_embed = nn.Embedding(len(c.target_modules), c.width)
        self.slot_embed = nn.Embedding(c.rank, c.width)
        self.read = Block(c.width, c.num_heads, c.ref_tokens, length_scaled=True)
        self.think = nn.ModuleList(
            Block(c.width, c.num_heads, c.ref_tokens, False) for _ in range(c.self_blocks)
        )
        self.write = Block(c.width, c.num_heads, c.ref_tokens, length_scaled=False)
        self.out_norm = nn.LayerNorm(c.width)
        # Each (module, rank slot) reads the summary through its own random diagonal gain: without it the
        # slots' summaries agree almost exactly (they all attend over near-identical latents at first), so
        # every row of A and of B comes out the same and delta-W has rank 1 whatever r is, for good:
        # identical A rows give identical gradients to the B rows.
        self.slot_gain = nn.Parameter(torch.randn(len(c.target_modules), c.rank, c.width))
        self.head_a = nn.ModuleDict({m: nn.Linear(c.width, c.module_shapes[m][0]) for m in c.target_modules})
        self.head_b = nn.ModuleDict({m: nn.Linear(c.width, c.module_shapes[m][1]) for m in c.target_modules})
        for head in self.head_b.values():  # B = 0: the first adapter is a no-op
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        for emb in (self.layer_embed, self.module_embed, self.slot_embed):
            nn.init.normal_(emb.weight, std=0.02)

    def read_layers(self, group: list[LayerStates]) -> torch.Tensor:
        """The latents after cross-attending each given layer's tokens: ``(N, len(group), num_latents,
        width)``.

        This is the only step that sees the states, so it is the only one that runs while the base
        streams; everything after it works on the small latents of all layers at once. The layers of a
        group are read as one batch of ``len(group) x N`` rows (one kernel per step instead of one per
        layer): the same arithmetic, which is what a short clip on a GPU is bound by."""
        c = self.config
        dtype = self.in_proj.weight.dtype
        n = group[0].hidden.shape[0]
        hidden = torch.cat([s.hidden for s in group]) if len(group) > 1 else group[0].hidden
        hidden = F.rms_norm(hidden.to(dtype), (c.d_model,))  # layers differ wildly in scale
        tokens = self.in_proj(hidden)
        first = self.check_group(group)
        embed = self.layer_embed.weight[first : first + len(group)]  # a slice: no host-to-device copy
        latents = (self.latents[None] + embed[:, None]).repeat_interleave(n, 0)  # (len(group) * N, M, w)
        mask = group[0].mask.repeat(len(group), 1)  # one forward pass: every layer has the same mask
        read = self.read(latents, context=tokens, mask=mask)
        return read.view(len(group), n, *read.shape[1:]).transpose(0, 1)

    def write_factors(self, latents: torch.Tensor, layers: torch.Tensor) -> Factors:
        """Factors from the read latents of layers ``layers`` (``(N, L, num_latents, width)``):
        ``{module: (A (N, L, r, d_in), B (N, L, r, d_out))}``.

        Batched over layers (a batch of N x L for the self-attention and write blocks, one call of each
        head for all layers): the same arithmetic as layer by layer in far fewer, larger kernels, which
        is what a short clip on a GPU is bound by."""
        c = self.config
        n, num_layers = latents.shape[:2]
        x = latents.flatten(0, 1)
        for block in self.think:
            x = block(x)
        slots = (
            self.module_embed.weight[None, :, None, :]
            + self.slot_embed.weight[None, None, :, :]
            + self.layer_embed.weight[layers][:, None, None, :]
        )  # (L, |m|, r, w)
        slots = slots.reshape(1, num_layers, -1, c.width).expand(n, -1, -1, -1).flatten(0, 1)
        z = self.write(slots, context=x)
        z = self.out_norm(z).view(n, num_layers, len(c.target_modules), c.rank, c.width) * self.slot_gain
        return {
            m: (
                self.head_a[m](z[:, :, i]) * c.module_shapes[m][0] ** -0.5,
                self.head_b[m](z[:, :, i]) * c.width**-0.5,
            )
            for i, m in enumerate(c.target_modules)
        }

    @property
    def read_width(self) -> int:
        return self.config.width

    def to_adapter(self, factors: Factors, provenance: Any = None) -> Adapter:
        return Adapter(factors=factors, scaling=self.config.scaling, provenance=provenance or {})

    def compose_segments(self, factors: Factors, provenance) -> Adapter:
        """The segments' adapters summed in rank space (``Adapter.compose``: concatenation along r)."""
        return Adapter.compose(*self.to_adapter(factors).unbind())._replace(provenance=provenance)
