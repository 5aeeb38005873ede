"""The authors' hypernetwork (Frames2LoRA's released design, a Doc-to-LoRA perceiver), as a second kind.

Parameter names are those of the released checkpoints, so converting one (``python -m f2l.convert``)
is a copy. For every decoder layer ``l`` (weights shared by all layers, no layer embedding)::

    tokens  = down(silu(gate(h_l)) * up(h_l))                      SwiGLU d -> 4d -> latent
    enc     = latents_q --[cross-attend(tokens, mask)] x blocks--> rmsnorm     (n_latent_queries, latent)
    z       = queries_q --[cross-attend(enc)]--> rmsnorm                      (|modules| * r, latent)
    z       = z + MLP(z);  z = z / ||z||                                       one residual LayerNorm MLP
    [A | B] = z @ head_l;  A *= scaler_A[l, j],  B *= scaler_B[l, j]           one row of A and B a slot

A cross-attention layer is a sandwich-normed (RMSNorm before and after attention and MLP) grouped-query
attention without positions or biases whose keys and values are the context tokens followed by the
latents themselves, padding masked. The applied adapter is the generated rank ``r`` followed along the
rank by a learned video-independent ``bias_A`` / ``bias_B`` block (rank 2r; ``n`` composed segments give
rank (n+1) r, the bias once), with ``delta-W = lora_alpha * B^T A`` and lora_alpha used as is.

Compared with the official code this runs the same arithmetic through ``scaled_dot_product_attention``
with grouped heads (no repeated keys), reads layers in batches while the base streams (the shared
``Hypernet.forward``), and takes any float dtype.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from f2l.adapter import Adapter
from f2l.adapter.adapter import STATIC_SLOTS
from f2l.encode import ContextFormat, LayerStates
from f2l.hypernet.interface import BaseFacts, Factors, Hypernet

# How the authors' checkpoints read a video: this prompt, the chat template without the assistant cue,
# at most 12 frames sampled at 1 fps.
OFFICIAL_CONTEXT = ContextFormat(
    prompt="Internalize this video for later captioning.", generation_prompt=False, max_frames=12, fps=1.0
)


@dataclass
class OfficialConfig(BaseFacts):
    """The official hypernetwork's shape (the settings of a training run's ``official`` section; the
    converter reads them from a checkpoint's pickled config), and the base it was built for. Its
    defaults are the released design."""

    rank: int = 16
    lora_alpha: float = 128.0  # delta-W = lora_alpha * B^T A (not divided by r)
    latent: int = 512
    n_latent_queries: int = 8
    num_blocks: int = 9
    num_pre_head_layers: int = 1
    num_heads: int = 16
    head_dim: int = 128
    num_kv_heads: int = 4
    rms_eps: float = 1e-6
    target_modules: tuple[str, ...] = ("down_proj",)
    context: ContextFormat = field(default_factory=lambda: OFFICIAL_CONTEXT)

    def __post_init__(self):
        if self.module_shapes:  # once read off the base (or a checkpoint), they name the modules
            self.target_modules = tuple(sorted(self.module_shapes))  # the official head's module order

    @property
    def scaling(self) -> float:
        return self.lora_alpha

    def to_dict(self) -> dict:
        d = asdict(self)
        d["module_shapes"] = {k: list(v) for k, v in self.module_shapes.items()}
        del d["target_modules"]  # the module shapes name them
        return d

    @classmethod
    def from_dict(cls, d: dict) -> OfficialConfig:
        d = dict(d)
        d["module_shapes"] = {k: tuple(v) for k, v in d["module_shapes"].items()}
        d.pop("target_modules", None)  # the module shapes name them
        d["context"] = ContextFormat(**d.get("context", {}))
        return cls(**d)


class SwiGLU(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_in, hidden, bias=False)
        self.up_proj = nn.Linear(d_in, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class RMSNorm(nn.Module):
    """Normalised in float32, scaled in the input's dtype (as the checkpoints were trained)."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


class CrossAttention(nn.Module):
    """Grouped-query attention of the latents over [context tokens, latents], no positions, no biases."""

    def __init__(self, c: OfficialConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        self.q_proj = nn.Linear(c.latent, c.num_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.latent, c.num_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.latent, c.num_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.latent, bias=False)

    def forward(self, latents: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        n, m, _ = latents.shape
        kv = torch.cat([context, latents], 1)
        q = self.q_proj(latents).view(n, m, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(kv).view(n, -1, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(kv).view(n, -1, self.kv_heads, self.head_dim).transpose(1, 2)
        if mask is not None:  # the latents always see themselves, so no row is fully masked
            mask = torch.cat([mask, mask.new_ones(n, m)], 1)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(n, m, -1))


class PerceiverLayer(nn.Module):
    def __init__(self, c: OfficialConfig):
        super().__init__()
        norm = lambda: RMSNorm(c.latent, c.rms_eps)  # noqa: E731
        self.input_latents_layernorm, self.input_context_layernorm = norm(), norm()
        self.self_attn = CrossAttention(c)
        self.post_attention_layernorm, self.pre_ff_layernorm, self.post_ff_layernorm = norm(), norm(), norm()
        self.mlp = SwiGLU(c.latent, 4 * c.latent, c.latent)

    def forward(self, latents: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        attended = self.self_attn(
            self.input_latents_layernorm(latents), self.input_context_layernorm(context), mask
        )
        latents = latents + self.post_attention_layernorm(attended)
        return latents + self.post_ff_layernorm(self.mlp(self.pre_ff_layernorm(latents)))


class Resampler(nn.Module):
    """``len(latents_q)`` learned queries cross-attend the context through ``depth`` layers, then RMSNorm."""

    def __init__(self, c: OfficialConfig, queries: int, depth: int):
        super().__init__()
        self.latents_q = nn.Parameter(torch.randn(queries, c.latent))
        self.layers = nn.ModuleList(PerceiverLayer(c) for _ in range(depth))
        self.layernorm = RMSNorm(c.latent, c.rms_eps)

    def forward(self, context: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.latents_q.to(context.dtype).expand(context.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, context, mask)
        return self.layernorm(x)


class Perceiver(nn.Module):
    def __init__(self, c: OfficialConfig):
        super().__init__()
        self.modality_projection = SwiGLU(c.d_model, 4 * c.d_model, c.latent)
        self.encoder = Resampler(c, c.n_latent_queries, c.num_blocks)
        self.decoder = Resampler(c, len(c.module_shapes) * c.rank, 1)


class Aggregator(nn.Module):  # the checkpoints' ``aggregator.perceiver.*`` names
    def __init__(self, c: OfficialConfig):
        super().__init__()
        self.perceiver = Perceiver(c)


class ResidualMLP(nn.Module):
    """``x + LayerNorm(W2 silu(W1 LayerNorm(x)))``; dropout slots kept as identities so the parameter
    names (``mlp.0``, ``mlp.2``, ``mlp.5``, ``mlp.6``) are the checkpoints'."""

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(width),
            nn.Identity(),
            nn.Linear(width, 4 * width),
            nn.SiLU(),
            nn.Identity(),
            nn.Linear(4 * width, width),
            nn.LayerNorm(width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(x)


class _Head(nn.Module):
    """Per-layer linear read-out without bias: ``weight`` is (L, latent, d_lora) for one target module,
    (L, |modules|, latent, d_lora) for several (the checkpoints' two layouts)."""

    def __init__(self, c: OfficialConfig, d_lora: int):
        super().__init__()
        shape = (c.num_layers, c.latent, d_lora)
        if len(c.module_shapes) > 1:
            shape = (c.num_layers, len(c.module_shapes), c.latent, d_lora)
        self.weight = nn.Parameter(torch.randn(shape) * (c.latent + d_lora * c.rank) ** -0.5 * 0.5)

    def forward(self, z: Tensor, layers: Tensor) -> Tensor:  # z (N, L', |m|, r, latent)
        w = self.weight[layers]
        if w.dim() == 3:
            return torch.einsum("nlmrd,ldo->nlmro", z, w)
        return torch.einsum("nlmrd,lmdo->nlmro", z, w)


class OfficialHypernet(Hypernet):
    """The authors' perceiver hypernetwork: every layer's states -> that layer's factors, plus the static
    bias block in the applied adapter (see the module docstring)."""

    kind = "official"
    config_class = OfficialConfig

    def __init__(self, config: OfficialConfig):
        super().__init__()
        c = self.config = config
        t = c.target_modules
        shapes = c.module_shapes
        self.aggregator = Aggregator(c)
        self.layers = nn.Sequential(*(ResidualMLP(c.latent) for _ in range(c.num_pre_head_layers)))
        self.head = _Head(c, max(shapes[m][0] + shapes[m][1] for m in t))
        self.bias_A = nn.ParameterDict(
            {
                m: nn.Parameter(
                    torch.randn(c.num_layers, c.rank, shapes[m][0]) * 0.2 / (shapes[m][0] * c.rank) ** 0.5
                )
                for m in t
            }
        )
        self.bias_B = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(c.num_layers, c.rank, shapes[m][1])) for m in t}
        )
        self.scaler_A = nn.ParameterDict({m: nn.Parameter(torch.ones(1, c.num_layers, c.rank, 1)) for m in t})
        self.scaler_B = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, c.num_layers, c.rank, 1)) for m in t}
        )

    def read_layers(self, group: list[LayerStates]) -> Tensor:
        """Each layer's encoder latents ``(N, len(group), n_latent_queries, latent)``; the layers of a
        group are one batch of ``len(group) x N`` rows."""
        self.check_group(group)
        perceiver = self.aggregator.perceiver
        dtype = self.head.weight.dtype
        n = group[0].hidden.shape[0]
        hidden = torch.cat([s.hidden for s in group]) if len(group) > 1 else group[0].hidden
        mask = group[0].mask.repeat(len(group), 1)  # one forward pass: every layer has the same mask
        latents = perceiver.encoder(perceiver.modality_projection(hidden.to(dtype)), mask)
        return latents.view(len(group), n, *latents.shape[1:]).transpose(0, 1)

    @property
    def read_width(self) -> int:
        return self.config.latent

    def write_factors(self, read: Tensor, layers: Tensor) -> Factors:
        """Generated factors ``{module: (A (N, L, r, d_in), B (N, L, r, d_out))}``, batched over layers."""
        c = self.config
        n, num_layers = read.shape[:2]
        z = self.aggregator.perceiver.decoder(read.flatten(0, 1))
        z = self.layers(z.view(n, num_layers, len(c.target_modules), c.rank, c.latent))
        flat = self.head(z / z.norm(dim=-1, keepdim=True), layers)
        factors = {}
        for i, m in enumerate(c.target_modules):
            d_in, d_out = c.module_shapes[m]
            scale_a = self.scaler_A[m][0, layers]  # (L', r, 1)
            scale_b = self.scaler_B[m][0, layers]
            factors[m] = (flat[:, :, i, :, :d_in] * scale_a, flat[:, :, i, :, d_in : d_in + d_out] * scale_b)
        return factors

    def to_adapter(self, factors: Factors, provenance: Any = None) -> Adapter:
        """The generated rank followed by the static bias block (rank 2r), delta-W = lora_alpha B^T A."""
        n = next(iter(factors.values()))[0].shape[0]
        combined = {
            m: (
                torch.cat([a, self.bias_A[m].to(a.dtype).expand(n, -1, -1, -1)], -2),
                torch.cat([b, self.bias_B[m].to(b.dtype).expand(n, -1, -1, -1)], -2),
            )
            for m, (a, b) in factors.items()
        }
        return Adapter(combined, scaling=self.config.scaling, provenance=self._static(provenance or {}, 1))

    def compose_segments(self, factors: Factors, provenance) -> Adapter:
        """The segments' generated ranks in order, then the static bias once (rank (n+1) r)."""
        composed = {}
        for m, (a, b) in factors.items():  # a (n_segments, L, r, d_in)
            a = torch.cat([a.transpose(0, 1).flatten(1, 2), self.bias_A[m].to(a.dtype)], 1)
            b = torch.cat([b.transpose(0, 1).flatten(1, 2), self.bias_B[m].to(b.dtype)], 1)
            composed[m] = (a, b)
        segments = next(iter(factors.values()))[0].shape[0]
        return Adapter(composed, scaling=self.config.scaling, provenance=self._static(provenance, segments))

    def _static(self, provenance, segments: int):
        """Provenance saying which rank slots are the video-independent bias (the last ``rank``)."""
        mark = {STATIC_SLOTS: [segments * self.config.rank, (segments + 1) * self.config.rank]}
        if isinstance(provenance, dict):
            return {**provenance, **mark}
        return [{**p, **mark} for p in provenance]
