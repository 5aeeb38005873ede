"""One evaluation path: every method answers the same questions about the same clip, then is scored.

Methods (``METHODS``), all greedy, all on the frozen base:

- ``direct``: the video in context (the reference every comparison is against).
- ``f2l``: the adapter internalized from the whole clip, zero visual tokens.
- ``f2l_chunked``: one adapter per non-overlapping segment of ``chunk_frames`` frames, composed along
  the rank (``Frames2LoRA.internalize(frames, chunk_frames=...)``).
- ``no_video``: the question alone (the floor).
- ``kv_cache``: the video prefilled once per clip (``prefill_video``), each question answered from a
  copy of that cache: the ``direct`` answer, token for token, at lower cost.
- ``token_merge``: the video in context with its visual tokens merged ``merge_factor``-fold
  (``f2l.eval.token_merge``).
- ``f2l_token_merge``: the adapter internalized from those merged tokens.

``answer_clip`` asks every method through ``f2l.answer.generate``, batched and untimed by default
(evaluation loops need the text, not the clock: the times are NaN, so that every time in a dataset
comes from the same kind of run). With ``timed=True`` every question is one timed call and carries its
time to first token; the times exclude the reusable per-clip work (internalization, KV prefill), which
is what a query costs once a video has been seen.

``score_predictions`` scores answers under named metrics (``METRIC_NAMES``). Exact match is QA
accuracy and only means something where a question has one right short answer: see ``is_closed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from f2l.answer import DEFAULT_MAX_NEW_TOKENS, Answer, generate, prefill_video
from f2l.data import Prompt
from f2l.eval.metrics import normalize_answer, score_answers
from f2l.eval.token_merge import DEFAULT_FACTOR, TokenMerge
from f2l.video import Frames

METHODS: tuple[str, ...] = (
    "direct",
    "f2l",
    "f2l_chunked",
    "no_video",
    "kv_cache",
    "token_merge",
    "f2l_token_merge",
)
METRIC_NAMES: tuple[str, ...] = ("token_f1", "exact_match", "embedding")
#: The longest reference (in normalised words) that still counts as a closed, short answer.
MAX_CLOSED_WORDS = 4


def is_closed(prompt: Prompt) -> bool:
    """Whether exact match (QA accuracy) applies to ``prompt``.

    A QA item is closed when it lists its choices (multiple choice, yes/no) or when its reference is a
    short answer of at most ``MAX_CLOSED_WORDS`` words after SQuAD normalisation ("red", "two", "the red
    circle appears", "nothing appears or leaves": every question of the world, and the short answers of
    ActivityNet-QA-style benchmarks). Captions and longer free-form answers are open: many wordings are
    right, so exact match would measure phrasing, not content; they get NaN, never a misleading 0.
    """
    if prompt.kind != "qa":
        return False
    return bool(prompt.choices) or len(normalize_answer(prompt.reference).split()) <= MAX_CLOSED_WORDS


def score_predictions(
    predictions: Sequence[str],
    references: Sequence[str],
    metrics: Sequence[str] = ("token_f1", "exact_match"),
    *,
    closed: Sequence[bool] | None = None,
    judge=None,
) -> dict[str, np.ndarray]:
    """Per-answer scores under each named metric: ``token_f1`` and ``exact_match`` (NaN where
    ``closed`` is False; ``None`` = every item closed) from ``f2l.eval.metrics``, ``embedding`` the
    cosine similarity of ``judge`` (an ``f2l.eval.judge.EmbeddingJudge``, built once by the caller)."""
    unknown = sorted(set(metrics) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRIC_NAMES)}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric == "embedding":
            if judge is None:
                raise ValueError("the embedding metric needs a judge (f2l.eval.judge.EmbeddingJudge())")
            out[metric] = np.asarray(judge.score(list(predictions), list(references)), dtype=np.float64)
        elif metric == "exact_match":
            scores = score_answers(metric, predictions, references)
            if closed is not None:
                if len(closed) != len(predictions):
                    raise ValueError(f"{len(closed)} closed flags for {len(predictions)} predictions")
                scores[~np.asarray(closed, dtype=bool)] = np.nan
            out[metric] = scores
        else:
            out[metric] = score_answers(metric, predictions, references)
    return out


def answer_clip(
    pipeline,
    frames: Frames,
    questions: Sequence[str],
    methods: Sequence[str],
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    chunk_frames: int | None = None,
    merge_factor: int = DEFAULT_FACTOR,
    timed: bool = False,
    batch_size: int = 16,
) -> dict[str, list[Answer]]:
    """Every method's answers to ``questions`` about one clip (``frames``), in question order: batched
    (``batch_size`` rows a ``generate``) with NaN times, or with ``timed`` one timed question a call.

    ``pipeline`` is a ``Frames2LoRA``; ``chunk_frames`` sets the segment length of ``f2l_chunked``
    (required for it); ``merge_factor`` the reduction of ``token_merge`` and ``f2l_token_merge``.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    if "f2l_chunked" in methods and chunk_frames is None:
        raise ValueError("f2l_chunked needs chunk_frames (the segment length in frames)")
    base, questions, video = pipeline.base, list(questions), [frames] * len(questions)

    def ask(**options) -> list[Answer]:
        answers = generate(
            base, questions, max_new_tokens=max_new_tokens, batch_size=1 if timed else batch_size, **options
        )
        return answers if timed else [replace(a, ttft_s=math.nan, total_s=math.nan) for a in answers]

    out: dict[str, list[Answer]] = {}
    for method in methods:
        if method == "direct":
            out[method] = ask(videos=video)
        elif method == "no_video":
            out[method] = ask()
        elif method == "f2l":
            out[method] = ask(adapter=pipeline.internalize(frames))
        elif method == "f2l_chunked":
            out[method] = ask(adapter=pipeline.internalize(frames, chunk_frames=chunk_frames))
        elif method == "f2l_token_merge":
            out[method] = ask(adapter=pipeline.internalize(frames, transform=TokenMerge(merge_factor)))
        elif method == "kv_cache":
            out[method] = ask(prefix=prefill_video(base, frames))
        elif method == "token_merge":
            out[method] = ask(videos=video, transform=TokenMerge(merge_factor))
    return out
