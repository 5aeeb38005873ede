"""Reading the text model's residual stream, layer by layer, through two independent hook libraries.

A capture runs the whole VLM on token ids (text only: no visual tokens), optionally under an ``Adapter``,
and returns, at chosen ``(row, position)`` pairs, each decoder layer's ``resid_pre``, ``resid_mid`` and
``resid_post``, ``resid_final`` (before the final norm) and the logits. ``NNsightCapture`` (nnsight) and
``BridgeCapture`` (TransformerLens' ``TransformerBridge``, on a private copy of the model) compute the same
thing and are checked against each other in the tests. The stream's terms, and how each backend reads them
and applies the adapter: docs/probes/README.md#reading-the-residual-stream.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from f2l.adapter import Adapter, LoRALinear, attached, install_lora, text_model_of, use_adapter

BACKENDS = ("nnsight", "transformer_lens")

# TransformerLens architecture adapters for HF classes it does not list under their own name.
BRIDGE_ARCHITECTURE = {"SmolVLMForConditionalGeneration": "Idefics3ForConditionalGeneration"}


@dataclass(frozen=True)
class Residuals:
    """The residual stream at ``N`` selected (row, position) pairs of one forward pass.

    ``resid_pre``, ``attn_out``, ``mlp_out``: ``[L, N, d]``; ``resid_final``: ``[N, d]`` (before the final
    norm); ``logits``: ``[N, V]``.
    """

    resid_pre: Tensor
    attn_out: Tensor
    mlp_out: Tensor
    resid_final: Tensor
    logits: Tensor

    def resid_post(self) -> Tensor:
        """``[L, N, d]``: what each layer hands on (the next layer's input; the last one's output)."""
        return torch.cat([self.resid_pre[1:], self.resid_final[None]])


class Capture(Protocol):
    """Runs ``model`` on right-padded ``input_ids`` (under ``adapter`` unless ``None``) and returns the
    residual stream at ``(rows[i], positions[i])``; ``backend`` names the hook library."""

    backend: str

    def __call__(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        rows: Tensor,
        positions: Tensor,
        adapter: Adapter | None = None,
    ) -> Residuals: ...


class NNsightCapture:
    """The residual stream of ``model`` (a SmolVLM ``...ForConditionalGeneration``) traced with nnsight."""

    backend = "nnsight"

    def __init__(self, model):
        from nnsight import NNsight

        self.model = model
        install_lora(model)  # the wrappers use_adapter would add, in place before nnsight builds its tree
        self.traced = NNsight(model)
        self.path = _text_model_path(model)

    @property
    def text_model(self):
        """The traced text model (the envoy whose ``layers`` and ``norm`` probes read and patch)."""
        text = self.traced
        for name in self.path:
            text = getattr(text, name)
        return text

    @torch.no_grad()
    def __call__(self, input_ids, attention_mask, rows, positions, adapter=None) -> Residuals:
        text = self.text_model
        pre: list[Tensor] = []
        attn: list[Tensor] = []
        mlp: list[Tensor] = []
        saved: dict[str, Tensor] = {}
        applied = use_adapter(self.model, adapter) if adapter is not None else nullcontext()
        with applied, self.traced.trace(input_ids=input_ids, attention_mask=attention_mask):
            for layer in text.layers:  # in execution order, as nnsight requires
                pre.append(layer.input[rows, positions].save())
                attn.append(layer.self_attn.output[0][rows, positions].save())
                mlp.append(layer.mlp.output[rows, positions].save())
            saved["final"] = text.norm.input[rows, positions].save()
            saved["logits"] = self.traced.output.logits[rows, positions].save()
        return Residuals(
            torch.stack(pre), torch.stack(attn), torch.stack(mlp), saved["final"], saved["logits"]
        )


class BridgeCapture:
    """The residual stream of a private copy of ``model`` through TransformerLens' ``TransformerBridge``
    hooks (docs/probes/README.md#reading-the-residual-stream: why a copy, and how the adapter reaches it)."""

    backend = "transformer_lens"

    def __init__(self, model):
        from transformer_lens.model_bridge.sources import build_bridge_from_module

        self.model = copy.deepcopy(model)
        self.wrappers = install_lora(self.model)  # before bridging, so the bridge wraps the wrappers
        self.layers = len(text_model_of(self.model).layers)
        name = type(model).__name__
        self.bridge = build_bridge_from_module(
            self.model, BRIDGE_ARCHITECTURE.get(name, name), hf_config=self.model.config
        )

    @torch.no_grad()
    def __call__(self, input_ids, attention_mask, rows, positions, adapter=None) -> Residuals:
        names = {
            f"blocks.{layer}.{hook}"
            for layer in range(self.layers)
            for hook in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")
        } | {"ln_final.hook_in"}
        with _factors_on(self.wrappers, adapter) if adapter is not None else nullcontext():
            logits, cache = self.bridge.run_with_cache(
                input_ids, attention_mask=attention_mask, names_filter=lambda n: n in names
            )

        def stacked(hook: str) -> Tensor:
            return torch.stack(
                [cache[f"blocks.{layer}.{hook}"][rows, positions] for layer in range(self.layers)]
            )

        return Residuals(
            stacked("hook_resid_pre"),
            stacked("hook_attn_out"),
            stacked("hook_mlp_out"),
            cache["ln_final.hook_in"][rows, positions],
            logits[rows, positions],
        )


def make_capture(backend: str, model) -> Capture:
    """The capture of ``backend`` (one of ``BACKENDS``) over ``model``."""
    if backend == "nnsight":
        return NNsightCapture(model)
    if backend == "transformer_lens":
        return BridgeCapture(model)
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def _text_model_path(model) -> list[str]:
    """Attribute names leading from ``model`` to its Llama decoder (``["model", "text_model"]`` for SmolVLM)."""
    target = text_model_of(model)
    for name, module in model.named_modules():
        if module is target:
            return name.split(".") if name else []
    raise TypeError(f"the text model is not a submodule of {type(model).__name__}")


@contextmanager
def _factors_on(wrappers: dict[tuple[int, str], LoRALinear], adapter: Adapter) -> Iterator[None]:
    """``use_adapter`` for wrappers held directly: set every layer's factors, clear them on exit."""
    if adapter.batch_size is not None:
        raise ValueError("the bridge applies one adapter to every row; index a batched adapter first")
    with attached(wrappers, adapter):
        yield
