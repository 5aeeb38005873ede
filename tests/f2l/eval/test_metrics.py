from __future__ import annotations

import pytest

from f2l.eval.metrics import exact_match, normalize_answer, token_f1


def test_normalize_answer_follows_squad():
    assert normalize_answer("The  Red, circle!") == "red circle"
    assert normalize_answer("An apple a day") == "apple day"


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        ("a large red circle moves left.", "a large red circle moves left.", 1.0),
        ("red circle", "a large red circle moves left.", 2 * (1.0 * 0.4) / 1.4),  # P=2/2, R=2/5
        ("blue square", "red circle", 0.0),
        ("", "", 1.0),
        ("", "red", 0.0),
        ("left left", "left", 2 * 0.5 * 1.0 / 1.5),  # repeated tokens count once each
    ],
)
def test_token_f1_hand_cases(pred, ref, expected):
    assert token_f1(pred, ref) == pytest.approx(expected)


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match("The Red.", "red") == 1.0
    assert exact_match("dark red", "red") == 0.0
