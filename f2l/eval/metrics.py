"""Answer metrics: SQuAD-style token-F1 and exact match.

Normalisation follows SQuAD v1.1: lowercase, strip punctuation and the articles a/an/the, collapse
whitespace. Token-F1 is the harmonic mean of token precision and recall over the bag of tokens.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token-F1 in [0, 1]. Two empty answers agree (1.0); one empty answer scores 0.0."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised answers are identical (closed-answer QA accuracy)."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


METRICS: dict[str, Callable[[str, str], float]] = {"token_f1": token_f1, "exact_match": exact_match}


def score_answers(metric: str, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-answer scores under a named string metric (``METRICS``), as a float array."""
    try:
        fn = METRICS[metric]
    except KeyError:
        raise KeyError(f"unknown metric {metric!r}; known: {sorted(METRICS)}") from None
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return np.array([fn(p, r) for p, r in zip(predictions, references, strict=True)], dtype=np.float64)
