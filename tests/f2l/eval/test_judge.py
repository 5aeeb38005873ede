from __future__ import annotations

import pytest

from f2l.eval.judge import EmbeddingJudge


@pytest.fixture(scope="module")
def judge():
    return EmbeddingJudge()


def test_identical_answers_score_one_and_meaning_beats_unrelated_text(judge):
    refs = [
        "the camera pans right.",
        "a large red circle moves left.",
        "the background is grey with stripes.",
    ]
    same = judge.score(refs, refs)
    assert same == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    paraphrase = judge.score(["the camera moves to the right.", "a big red disc is moving to the left.",
                              "a striped grey backdrop."], refs)  # fmt: skip
    unrelated = judge.score(["i like soup.", "the stock market fell today.", "she sang a song."], refs)
    assert (paraphrase > unrelated + 0.3).all(), (paraphrase, unrelated)


def test_mismatched_lengths_are_an_error(judge):
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        judge.score(["a", "b"], ["a"])
