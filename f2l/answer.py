"""Answering with the frozen base VLM: one batched greedy generator, and ``prompt + answer`` rows for
teacher forcing.

``generate`` answers questions greedily in left-padded batches: each with its video in context or none,
under no adapter, one adapter, or one adapter per row (a batched ``Adapter``), from a video's KV cache
prefilled once (``prefill_video``: only the question is computed) or not, and with the model inputs
changed by a ``transform`` (a baseline's, such as merged visual tokens) inside the clock. Every row
comes back as an ``Answer``: text, token ids, input tokens by kind, and times measured around the
model alone (the processor excluded): the batch's time to first token and the row's time to its last
token, so a batch of one times one query. ``decode`` is its step over one batch of ready model inputs,
for callers who lay out a prompt themselves.

Front ends that call it: ``answer`` (one question), ``greedy_answer_ids`` (token ids, for the probes
that replay them), ``Frames2LoRA.generate`` (adapter only, optionally merged into the weights) and
``f2l.eval.harness.answer_clip`` (every method on one clip). ``teacher_forced`` builds the right-padded
``prompt + answer`` rows (a video in context or none) that distillation and the probes run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers.generation.streamers import BaseStreamer
from transformers.models.smolvlm.processing_smolvlm import DEFAULT_MEDIA_OUTTRO

from f2l.adapter import Adapter, use_adapter
from f2l.chat import count_tokens, model_inputs, prompt_text
from f2l.models import Base
from f2l.video import Frames

DEFAULT_MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class Answer:
    """One greedy answer: ``ids`` are its tokens before the stop token (``stop``, None when
    ``max_new_tokens`` ended it); ``ttft_s`` is its batch's time to the first token, ``total_s`` the
    time to its own last token; ``input_tokens`` counts what it attends by kind (``visual``, ``text``,
    and ``cached`` when answered from a prefix)."""

    text: str
    ids: tuple[int, ...]
    stop: int | None
    input_tokens: dict[str, int]
    ttft_s: float
    total_s: float

    @property
    def new_tokens(self) -> int:
        """Tokens generated for this row, its stop token included."""
        return len(self.ids) + (self.stop is not None)


class _StepClock(BaseStreamer):
    """``generate`` hands a streamer the prompt first, then each step's new tokens: the arrival times of
    the steps after the prompt are the times of the generated tokens."""

    def __init__(self):
        self.prompt_seen, self.steps = False, []

    def put(self, value):
        if self.prompt_seen:
            self.steps.append(time.perf_counter())
        self.prompt_seen = True

    def end(self):
        pass


def synchronize(device: torch.device | str) -> None:
    """Wait for ``device``'s queued work (CUDA runs asynchronously: a wall clock read before this would
    stop while the GPU still computes); nothing to wait for on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stop_ids(base: Base) -> set[int]:
    eos = base.model.generation_config.eos_token_id
    return {*([eos] if isinstance(eos, int) else list(eos or []))}


def answer_text(tokenizer, ids: Sequence[int]) -> str:
    """An answer's text from its token ids: special tokens left out, surrounding whitespace stripped."""
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


@torch.inference_mode()
def decode(
    base: Base,
    inputs,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    transform: Callable[[Base, dict], dict] | None = None,
    cache=None,
    input_tokens: Sequence[dict[str, int]] | None = None,
) -> list[Answer]:
    """Greedy answers to one left-padded batch of ready model inputs, under whatever adapter is on the
    model. The clock starts before ``transform`` (its work is the query's) and stops at each row's last
    token. ``cache`` holds keys and values of the first tokens of every row (it is extended in place);
    ``input_tokens`` overrides the count by kind made from the (transformed) inputs."""
    synchronize(base.device)
    start = time.perf_counter()
    if transform is not None:
        inputs = transform(base, inputs)
    clock = _StepClock()
    extra = {} if cache is None else {"cache": cache}
    out = base.model.generate(
        **inputs, **extra, max_new_tokens=max_new_tokens, do_sample=False, streamer=clock
    )
    synchronize(base.device)
    steps = [t - start for t in clock.steps] or [time.perf_counter() - start]
    if input_tokens is None:
        input_tokens = [
            count_tokens(base.processor, ids, mask)
            for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True)
        ]
    stops = _stop_ids(base)
    answers = []
    for row, tokens in zip(out[:, inputs["input_ids"].shape[1] :].tolist(), input_tokens, strict=True):
        n = next((j for j, token in enumerate(row) if token in stops), len(row))
        ids, stop = tuple(row[:n]), row[n] if n < len(row) else None
        answers.append(
            Answer(
                text=answer_text(base.tokenizer, ids),
                ids=ids,
                stop=stop,
                input_tokens=dict(tokens),
                ttft_s=steps[0],
                total_s=steps[min(len(ids) + (stop is not None), len(steps)) - 1],
            )
        )
    return answers


@dataclass
class VideoPrefix:
    """The video prefilled once (the ``kv_cache`` baseline): the prompt's tokens up to and including the
    last frame's closing image token, and the KV cache the base computed over them. Every question
    about the video then prefills only its own text."""

    input_ids: Tensor  # (1, P)
    cache: object  # transformers Cache over those P tokens
    visual_tokens: int

    @property
    def nbytes(self) -> int:
        layers = getattr(self.cache, "layers", [])
        return sum(t.numel() * t.element_size() for layer in layers for t in (layer.keys, layer.values))


@torch.inference_mode()
def prefill_video(base: Base, video: Frames, *, inputs=None) -> VideoPrefix:
    """Run the base over the video part of a prompt once and keep its KV cache. ``inputs``: the model
    inputs of a one-row ``[video + question]`` prompt laid out otherwise (e.g. frames tiled by the image
    processor), read up to the last frame; default: ``video`` through the processor's video path."""
    if inputs is None:
        text = prompt_text(base.processor, "", with_video=True)
        inputs = model_inputs(base.processor, [text], [video], device=base.device)
    ids = inputs["input_ids"][0]
    fake = base.tokenizer.convert_tokens_to_ids(base.processor.fake_image_token)
    # special tokens split the text: what follows the last frame's closing token tokenizes alone
    end = int((ids == fake).nonzero().max()) + 1
    prefix = {k: v[:, :end] for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    out = base.model(
        **prefix,
        pixel_values=inputs["pixel_values"],
        pixel_attention_mask=inputs["pixel_attention_mask"],
        use_cache=True,
    )
    return VideoPrefix(prefix["input_ids"], out.cache, int((ids == base.processor.image_token_id).sum()))


def _prefix_inputs(base: Base, prefix: VideoPrefix, questions: Sequence[str]):
    """Inputs for ``questions`` after ``prefix``: per row the cached tokens, padding (masked; positions
    count only real tokens), then what the processor writes after the last frame (its outro, the
    question, the assistant cue); a copy of the cache for every row; the token counts by kind."""
    tails = [
        base.tokenizer(
            DEFAULT_MEDIA_OUTTRO + prompt_text(base.processor, q, with_video=True).split("<video>", 1)[1],
            add_special_tokens=False,
        )["input_ids"]
        for q in questions
    ]
    width, cached = max(len(t) for t in tails), prefix.input_ids.shape[1]
    pad = base.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=base.device)
    mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails], device=base.device)
    rows = len(tails)
    inputs = {
        "input_ids": torch.cat([prefix.input_ids.expand(rows, -1), ids], dim=1),
        "attention_mask": torch.cat([torch.ones_like(prefix.input_ids).expand(rows, -1), mask], dim=1),
    }
    cache = copy.deepcopy(prefix.cache)  # generation extends it; the prefix serves the next questions
    if rows > 1:
        cache.batch_repeat_interleave(rows)
    tokens = [{"visual": 0, "text": len(t), "cached": cached} for t in tails]
    return inputs, cache, tokens


@torch.inference_mode()
def generate(
    base: Base,
    questions: Sequence[str],
    *,
    videos: Sequence[Frames] | None = None,
    adapter: Adapter | None = None,
    prefix: VideoPrefix | None = None,
    transform: Callable[[Base, dict], dict] | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 16,
) -> list[Answer]:
    """Greedy answers to ``questions``, ``batch_size`` rows a ``generate``, in question order.

    ``videos``: one per question, in context (``None``: the question alone). ``adapter``: a single adapter
    for every row, or a batched one whose sample ``i`` answers question ``i``. ``prefix``: the video's
    prefilled cache, shared by every row (instead of ``videos``). ``transform``: applied to each batch's
    model inputs inside the clock (see ``decode``).
    """
    questions = list(questions)
    if videos is not None and len(videos) != len(questions):
        raise ValueError(f"{len(questions)} questions but {len(videos)} videos: give one video per question")
    if videos is not None and prefix is not None:
        raise ValueError("answer with the videos in context or from a prefix, not both")
    per_row = adapter is not None and adapter.batch_size is not None
    if per_row and adapter.batch_size != len(questions):
        raise ValueError(
            f"{len(questions)} questions need a batched adapter of {len(questions)}, not {adapter!r}"
        )
    answers: list[Answer] = []
    with use_adapter(base.model, adapter) if adapter is not None and not per_row else nullcontext():
        for i in range(0, len(questions), batch_size):
            chunk = questions[i : i + batch_size]
            cache = tokens = None
            if prefix is not None:
                inputs, cache, tokens = _prefix_inputs(base, prefix, chunk)
            else:
                with_video = videos is not None
                texts = [prompt_text(base.processor, q, with_video=with_video) for q in chunk]
                vs = list(videos[i : i + batch_size]) if with_video else None
                inputs = model_inputs(base.processor, texts, vs, device=base.device)
            with use_adapter(base.model, adapter[i : i + batch_size]) if per_row else nullcontext():
                answers += decode(
                    base,
                    inputs,
                    max_new_tokens=max_new_tokens,
                    transform=transform,
                    cache=cache,
                    input_tokens=tokens,
                )
    return answers


def answer(
    base: Base,
    video: Frames | None,
    question: str,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    **options,
) -> Answer:
    """One question, one timed ``generate``: with ``video`` in context (``direct``) or without (``None``);
    ``options`` as for ``generate`` (``adapter``, ``prefix``, ``transform``)."""
    videos = None if video is None else [video]
    return generate(base, [question], videos=videos, max_new_tokens=max_new_tokens, **options)[0]


def greedy_answer_ids(
    base: Base,
    questions: Sequence[str],
    *,
    video: Frames | None = None,
    keep_stop: bool = False,
    **options,
) -> list[list[int]]:
    """The greedy answers' token ids, every question asked with ``video`` in context (or none); with
    ``keep_stop`` the stop token stays on (so that an empty answer still has a token to score). What
    teacher-forcing probes replay; ``options`` as for ``generate``."""
    videos = None if video is None else [video] * len(questions)
    return [
        [*a.ids, *([a.stop] if keep_stop and a.stop is not None else [])]
        for a in generate(base, questions, videos=videos, **options)
    ]


# --------------------------------------------------------------------------- teacher forcing


@dataclass(frozen=True)
class TeacherForced:
    """Right-padded ``prompt + answer`` rows and where each answer token is predicted: answer token
    ``answer_ids[i]`` of row ``rows[i]`` is predicted at ``positions[i]``, the position before it. Row
    ``j``'s prompt is its first ``prompt_lengths[j]`` tokens; ``video_inputs`` holds the processor's
    pixels of the rows' videos (none for text-only rows)."""

    input_ids: Tensor
    attention_mask: Tensor
    rows: Tensor
    positions: Tensor
    answer_ids: Tensor
    prompt_lengths: Tensor
    video_inputs: Mapping[str, Tensor] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Tensor]:
        """The model's keyword inputs: token ids, attention mask and the videos' pixels."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, **self.video_inputs}

    def answer_positions(self) -> list[Tensor]:
        """Per row, the positions its answer tokens sit at (each predicted at the one before)."""
        return [self.positions[self.rows == i] + 1 for i in range(self.input_ids.shape[0])]


def teacher_forced(
    processor,
    questions: Sequence[str],
    answers: Sequence[Sequence[int] | Tensor],
    *,
    videos: Sequence[Frames] | None = None,
    device: torch.device | str | None = None,
) -> TeacherForced:
    """``prompt + answer`` for every question (an answer may be empty), the prompt as ``generate``
    tokenizes it: with ``videos`` (one per question) in context, or none. Padded on the right so that
    every row keeps positions 0, 1, ... as at inference."""
    texts = [prompt_text(processor, q, with_video=videos is not None) for q in questions]
    prompts = model_inputs(processor, texts, videos, padding_side="right")
    lengths = prompts["attention_mask"].sum(1).tolist()
    answers = [torch.as_tensor(a, dtype=torch.long).tolist() for a in answers]
    seqs = [
        prompts["input_ids"][i, :n].tolist() + a
        for i, (n, a) in enumerate(zip(lengths, answers, strict=True))
    ]
    width = max(len(s) for s in seqs)
    pad = processor.tokenizer.pad_token_id
    rows = [i for i, a in enumerate(answers) for _ in a]
    positions = [n - 1 + p for n, a in zip(lengths, answers, strict=True) for p in range(len(a))]

    def tensor(values) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    return TeacherForced(
        input_ids=tensor([s + [pad] * (width - len(s)) for s in seqs]),
        attention_mask=tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]),
        rows=tensor(rows),
        positions=tensor(positions),
        answer_ids=tensor([t for a in answers for t in a]),
        prompt_lengths=tensor(lengths),
        video_inputs={
            k: v.to(device) for k, v in prompts.items() if k not in ("input_ids", "attention_mask")
        },
    )
