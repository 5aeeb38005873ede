"""Context encoding: the frozen VLM reads [video + internalization prompt], and the text model's
per-layer hidden states are handed to a consumer layer by layer, while the forward pass runs.

The states of layer ``l`` are the input of decoder layer ``l`` (layer 0's input is the embedding
output, visual tokens merged in), at every token. They are delivered by a forward pre-hook on each
decoder layer, so a consumer can read layer ``l`` before the VLM computes layer ``l + 1``, and nothing
keeps all layers' states alive at once: peak memory holds one layer's states (what lets 1,024 frames
fit). The hypernetwork holds a few layers of a short clip to read them in one batch, up to
``f2l.hypernet.READ_GROUP_BYTES``. After the last layer's input is consumed the forward stops: the last
decoder layer, the final norm and the LM head are never run. A clip longer than
``VISION_CHUNK_FRAMES`` goes through the vision tower that many frames at a time before the text
model runs, so the tower's activations do not grow with the clip either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from f2l.chat import model_inputs, prompt_text
from f2l.models import Base
from f2l.video import Frames

# The fixed prompt the VLM reads together with the video while it is being internalized.
INTERNALIZE_PROMPT = "Watch the video and remember everything in it."
# Frames per vision-tower call while encoding a long clip. The tower sees each frame alone, so
# encoding frames in chunks changes no number; it bounds the tower's activations, which over a long clip in
# one call set the peak memory at the SmolVLM2 500M shape (docs/performance.md), to a chunk's.
VISION_CHUNK_FRAMES = 64


@dataclass(frozen=True)
class ContextFormat:
    """How a hypernetwork's context is laid out and sampled: the prompt read with the video, whether the
    chat text ends with the assistant cue, and the frame sampling used when a video file is read for it
    (``fps`` frames a second, at most ``max_frames`` spread uniformly; ``None``: the caller's choice).
    A hypernetwork carries its own in its config, so a checkpoint reads videos the way it was trained."""

    prompt: str = INTERNALIZE_PROMPT
    generation_prompt: bool = True
    max_frames: int | None = None
    fps: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LayerStates:
    """Hidden states entering decoder layer ``layer``: ``hidden`` (N, T, d_model), ``mask`` (N, T) bool
    marking real (non-padding) tokens."""

    layer: int
    hidden: torch.Tensor
    mask: torch.Tensor


class _StopForward(Exception):
    """Raised from the last layer's hook: everything after it is not needed."""


def internalization_inputs(
    base: Base,
    videos: Sequence[Frames],
    context: ContextFormat = ContextFormat(),
):
    """Model inputs for [video + internalization prompt], one row per video, left-padded, laid out as
    ``context`` says."""
    text = prompt_text(
        base.processor, context.prompt, with_video=True, generation_prompt=context.generation_prompt
    )
    return model_inputs(base.processor, [text] * len(videos), list(videos), device=base.device)


@torch.no_grad()
def stream_hidden_states(base: Base, inputs, consume: Callable[[LayerStates], None]) -> None:
    """Run the frozen VLM over ``inputs`` and call ``consume(LayerStates)`` for layers 0..L-1 in order.

    ``consume`` runs inside the forward pass; it may enable gradients for its own parameters (the
    states themselves are detached: the base is frozen).
    """
    layers = base.text_model.layers
    mask = inputs["attention_mask"].bool()
    inputs = embed_video_in_chunks(base, inputs)
    last = len(layers) - 1

    def hook_for(index: int):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            consume(LayerStates(index, hidden.detach(), mask))
            if index == last:
                raise _StopForward

        return hook

    handles = [
        layer.register_forward_pre_hook(hook_for(i), with_kwargs=True) for i, layer in enumerate(layers)
    ]
    # SmolVLM takes input_ids or inputs_embeds, not both; merged inputs keep their ids for bookkeeping
    if "inputs_embeds" in inputs:
        inputs = {k: v for k, v in inputs.items() if k != "input_ids"}
    try:
        base.model.model(**inputs, use_cache=False)
    except _StopForward:
        pass
    else:  # the hooks never fired to the end: a model whose text layers we did not find
        raise RuntimeError("the forward pass finished without reaching the last text layer's hook")
    finally:
        for h in handles:
            h.remove()


def embed_video_in_chunks(base: Base, inputs, chunk: int | None = None):
    """``inputs`` with the video's frames already encoded ``chunk`` at a time and merged into
    ``inputs_embeds`` in place of the ``<image>`` tokens, as the model's own forward would merge them;
    inputs of at most ``chunk`` frames a row, or with no video, are returned as they are."""
    chunk = chunk or VISION_CHUNK_FRAMES
    pixels = inputs.get("pixel_values")
    if pixels is None or pixels.shape[1] <= chunk:
        return inputs
    model = base.model.model
    masks = inputs.get("pixel_attention_mask")
    features = []
    for row in range(pixels.shape[0]):
        real = pixels[row].flatten(1).ne(0).any(1)  # the processor pads short rows with all-zero frames
        frames = pixels[row][real]
        frame_masks = None if masks is None else masks[row][real]
        for start in range(0, len(frames), chunk):
            out = model.get_image_features(
                frames[None, start : start + chunk],
                None if frame_masks is None else frame_masks[None, start : start + chunk],
            )
            features.append(out.pooler_output[0])
    ids = inputs["input_ids"]
    is_image = (ids == base.model.config.image_token_id).unsqueeze(-1)
    embeds = model.get_input_embeddings()(ids)
    features = torch.cat(features).to(embeds.dtype)
    if features.shape[0] != int(is_image.sum()):
        raise ValueError(f"{int(is_image.sum())} <image> tokens but {features.shape[0]} visual features")
    merged = {k: v for k, v in inputs.items() if k not in ("pixel_values", "pixel_attention_mask")}
    merged["inputs_embeds"] = embeds.masked_scatter(is_image, features)
    return merged


def collect_hidden_states(base: Base, inputs) -> list[LayerStates]:
    """All layers' states at once (memory grows with the layer count): for tests and probes."""
    states: list[LayerStates] = []
    stream_hidden_states(base, inputs, states.append)
    return states
