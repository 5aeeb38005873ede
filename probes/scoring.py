"""Re-answering under edited adapters: the measurement every intervention probe shares.

A probe edits an adapter many ways (a layer removed, a rank truncated, a direction ablated), then asks
how the answers change. ``score_variants`` answers every (variant, prompt) pair in batched forwards in
which each batch row carries its own adapter, and scores each answer against the prompt's reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from f2l.adapter import Adapter
from f2l.answer import DEFAULT_MAX_NEW_TOKENS, generate
from f2l.data import Prompt
from f2l.eval.metrics import score_answers


def score_variants(
    pipeline,
    variants: Sequence[Adapter],
    prompts: Sequence[Prompt],
    *,
    metric: str = "token_f1",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 32,
) -> tuple[np.ndarray, list[list[str]]]:
    """Scores ``[variant, prompt]`` and answers ``[variant][prompt]`` of each single adapter in
    ``variants`` on every prompt, answered with zero visual tokens."""
    if any(v.batch_size is not None for v in variants):
        raise ValueError("score_variants takes single adapters; unbind a batched one first")
    rows = Adapter.stack([v for v in variants for _ in prompts]).to(pipeline.base.device)
    questions = [p.prompt for _ in variants for p in prompts]
    answers = [
        a.text
        for a in generate(
            pipeline.base, questions, adapter=rows, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
    ]
    references = [p.reference for _ in variants for p in prompts]
    scores = score_answers(metric, answers, references).reshape(len(variants), len(prompts))
    n = len(prompts)
    return scores, [answers[i * n : (i + 1) * n] for i in range(len(variants))]
