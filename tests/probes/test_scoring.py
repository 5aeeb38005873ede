"""probes.scoring: re-answering under many adapters at once gives each (variant, prompt) the answer it
gets alone under that variant, scored against that prompt's reference (float64 random tiny base, so that
batching changes no greedy choice)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from support import random_adapter

from f2l.adapter import Adapter
from f2l.answer import generate
from f2l.data import clip_prompts, world_manifest
from f2l.eval.metrics import score_answers
from probes.scoring import score_variants

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENS = 5


@pytest.fixture(scope="module")
def variants(base_f64):
    return [random_adapter(base_f64.model, seed=s).to(torch.float64) for s in range(3)]


@pytest.fixture(scope="module")
def alone(base_f64, variants):
    """Each variant's answers to the clip's first three prompts, asked with that adapter alone."""
    prompts = clip_prompts(world_manifest("test", 1)[0])[:3]
    answers = [
        [a.text for a in generate(base_f64, [p.prompt for p in prompts], adapter=v, max_new_tokens=TOKENS)]
        for v in variants
    ]
    assert len({tuple(a) for a in answers}) == len(variants)  # the variants really answer differently
    assert all(a.split() for row in answers for a in row)  # and say something
    return prompts, answers


@pytest.mark.parametrize("metric", ["token_f1", "exact_match"])
def test_every_variant_answers_as_alone_and_is_scored_against_each_prompts_reference(
    base_f64, variants, alone, metric
):
    prompts, answers = alone
    # references: variant 1's own answers to prompts 0 and 2 (the first with a word more, which token-F1
    # credits in part and exact match not at all), variant 2's to prompt 1
    references = [answers[1][0] + " moreover", answers[2][1], answers[1][2]]
    prompts = [p._replace(reference=r) for p, r in zip(prompts, references, strict=True)]
    pipeline = SimpleNamespace(base=base_f64)
    # batches of 4 rows straddle the variants: rows carry their own adapters across batch boundaries
    scores, got = score_variants(
        pipeline, variants, prompts, metric=metric, max_new_tokens=TOKENS, batch_size=4
    )
    assert got == answers
    assert scores.shape == (len(variants), len(prompts))
    expected = np.stack([score_answers(metric, a, references) for a in answers])
    np.testing.assert_array_equal(scores, expected)
    assert scores[1, 2] == scores[2, 1] == 1.0
    assert 0 < scores[1, 0] < 1 if metric == "token_f1" else scores[1, 0] == 0
    assert scores.min() < 1.0  # and not every answer matches every reference


def test_a_batched_adapter_is_refused(base_f64, variants, alone):
    prompts, _ = alone
    with pytest.raises(ValueError, match="single adapters"):
        score_variants(SimpleNamespace(base=base_f64), [Adapter.stack(variants[:2])], prompts)
