"""Answering with the frozen base VLM: ``direct`` (the video in context, the baseline every
comparison is against) and ``no_video`` (the question alone: the floor).

Greedy decoding through ``model.generate`` with the checkpoint's own processor and chat template.
``answer`` times one query (time to first token and total) and counts its input tokens by kind;
``generate_answers`` is the batched, untimed path that evaluation loops use, and
``generate_with_adapters`` its adapter-only twin with one adapter per batch row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers.generation.streamers import BaseStreamer

from f2l.adapter import Adapter, use_adapter
from f2l.chat import count_tokens, model_inputs, prompt_text
from f2l.models import Base
from f2l.video import Frames

DEFAULT_MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class Answer:
    """One generated answer with its cost: seconds to the first token and in total, input tokens by kind."""

    text: str
    ttft_s: float
    total_s: float
    input_tokens: dict[str, int]
    new_tokens: int


class _FirstTokenClock(BaseStreamer):
    """``generate`` hands the streamer the prompt first, then each new token: the second call is the
    first generated token, so its arrival time is the time to first token."""

    def __init__(self, start: float):
        self.start, self.calls, self.first_token_at = start, 0, None

    def put(self, value):
        self.calls += 1
        if self.calls == 2 and self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def end(self):
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()


def synchronize(device: torch.device | str) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously: a wall clock read before this would
    stop while the GPU still computes); nothing to wait for on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _decode_new(base: Base, sequences: torch.Tensor, prompt_len: int) -> list[str]:
    return [
        t.strip() for t in base.tokenizer.batch_decode(sequences[:, prompt_len:], skip_special_tokens=True)
    ]


@torch.inference_mode()
def answer(
    base: Base, video: Frames | None, question: str, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
) -> Answer:
    """Answer one question greedily, with ``video`` in context (``direct``) or without (``None``)."""
    text = prompt_text(base.processor, question, with_video=video is not None)
    inputs = model_inputs(base.processor, [text], None if video is None else [video], device=base.device)
    tokens = count_tokens(base.processor, inputs["input_ids"][0], inputs["attention_mask"][0])
    return timed_generate(base, tokens, max_new_tokens, **inputs)


def timed_generate(base: Base, input_tokens: dict[str, int], max_new_tokens: int, **inputs) -> Answer:
    """One greedy ``generate`` with its time to first token and total time."""
    synchronize(base.device)
    start = time.perf_counter()
    clock = _FirstTokenClock(start)
    out = base.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=clock)
    synchronize(base.device)
    total = time.perf_counter() - start
    prompt_len = inputs["input_ids"].shape[1]
    return Answer(
        text=_decode_new(base, out, prompt_len)[0],
        ttft_s=clock.first_token_at - start,
        total_s=total,
        input_tokens=input_tokens,
        new_tokens=int(out.shape[1] - prompt_len),
    )


@torch.inference_mode()
def generate_answers(
    base: Base,
    questions: Sequence[str],
    videos: Sequence[Frames] | None = None,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
) -> list[str]:
    """Greedy answers for many (question, video) pairs, batched with left padding."""
    answers: list[str] = []
    for i in range(0, len(questions), batch_size):
        qs = questions[i : i + batch_size]
        vs = None if videos is None else list(videos[i : i + batch_size])
        texts = [prompt_text(base.processor, q, with_video=vs is not None) for q in qs]
        inputs = model_inputs(base.processor, texts, vs, device=base.device)
        out = base.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answers += _decode_new(base, out, inputs["input_ids"].shape[1])
    return answers


@torch.inference_mode()
def generate_with_adapters(
    base: Base,
    adapter: Adapter,
    questions: Sequence[str],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
) -> list[str]:
    """Greedy adapter-only answers where row ``i`` is answered under sample ``i`` of a batched ``adapter``
    (one sample per question): many variants of one adapter (layers removed, ranks truncated, segments
    composed) are answered together, each batch row with its own LoRA factors."""
    if adapter.batch_size != len(questions):
        raise ValueError(
            f"{len(questions)} questions need a batched adapter of {len(questions)}, not {adapter!r}"
        )
    answers: list[str] = []
    for i in range(0, len(questions), batch_size):
        with use_adapter(base.model, adapter[i : i + batch_size]):
            answers += generate_answers(
                base,
                questions[i : i + batch_size],
                None,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
            )
    return answers


@torch.inference_mode()
def greedy_answer_ids(
    base: Base,
    questions: Sequence[str],
    *,
    video: Frames | None = None,
    adapter: Adapter | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
    keep_stop: bool = False,
) -> list[list[int]]:
    """Greedy answer token ids to each question, with ``video`` in context and/or under ``adapter`` (or
    neither), cut at the first stop token (kept with ``keep_stop``, so that an empty answer still has a
    token to score); what teacher-forcing probes replay."""
    config = base.model.generation_config
    eos = config.eos_token_id
    stop = {*([eos] if isinstance(eos, int) else list(eos or [])), config.pad_token_id}
    answers: list[list[int]] = []
    with use_adapter(base.model, adapter) if adapter is not None else nullcontext():
        for i in range(0, len(questions), batch_size):
            chunk = questions[i : i + batch_size]
            texts = [prompt_text(base.processor, q, with_video=video is not None) for q in chunk]
            inputs = model_inputs(
                base.processor, texts, None if video is None else [video] * len(chunk), device=base.device
            )
            out = base.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            for row in out[:, inputs["input_ids"].shape[1] :].tolist():
                ends = [j for j, token in enumerate(row) if token in stop]
                answers.append(row[: ends[0] + keep_stop] if ends else row)
    return answers


@dataclass
class VideoPrefix:
    """The video prefilled once (the ``kv_cache`` baseline): the prompt's tokens up to and including the
    last frame's closing image token, and the KV cache the base computed over them. Every question
    about the video then prefills only its own text."""

    input_ids: torch.Tensor  # (1, P)
    cache: object  # transformers Cache over those P tokens
    visual_tokens: int

    @property
    def nbytes(self) -> int:
        layers = getattr(self.cache, "layers", [])
        return sum(t.numel() * t.element_size() for layer in layers for t in (layer.keys, layer.values))


@torch.inference_mode()
def prefill_video(base: Base, video: Frames) -> VideoPrefix:
    """Run the base over the video part of a prompt once and keep its KV cache."""
    text = prompt_text(base.processor, "", with_video=True)
    inputs = model_inputs(base.processor, [text], [video], device=base.device)
    ids = inputs["input_ids"][0]
    fake = base.tokenizer.convert_tokens_to_ids(base.processor.fake_image_token)
    end = (
        int((ids == fake).nonzero().max()) + 1
    )  # special tokens split the text: what follows tokenizes alone
    prefix = {k: v[:, :end] for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    out = base.model(
        **prefix,
        pixel_values=inputs["pixel_values"],
        pixel_attention_mask=inputs["pixel_attention_mask"],
        use_cache=True,
    )
    return VideoPrefix(prefix["input_ids"], out.cache, int((ids == base.processor.image_token_id).sum()))


@torch.inference_mode()
def answer_from_prefix(
    base: Base, prefix: VideoPrefix, question: str, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
) -> Answer:
    """Answer with the video's cached keys and values: only the question's tokens are prefilled."""
    import copy

    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_MEDIA_OUTTRO

    # what the processor writes after the last frame: its outro, then the question and the assistant cue
    tail = (
        DEFAULT_MEDIA_OUTTRO + prompt_text(base.processor, question, with_video=True).split("<video>", 1)[1]
    )
    tail_ids = base.tokenizer(tail, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
        base.device
    )
    ids = torch.cat([prefix.input_ids, tail_ids], dim=1)
    tokens = {"visual": 0, "text": int(tail_ids.shape[1]), "cached": int(prefix.input_ids.shape[1])}
    cache = copy.deepcopy(prefix.cache)  # generation appends to it; the prefix is reused by the next question
    return timed_generate(
        base,
        tokens,
        max_new_tokens,
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        cache=cache,
    )
