"""Does each shipped base (the tiny, and the small grown from it) really see? Held-out world clips it
never trained on, answered with the video in context and without it: the video must carry most of the
score."""

from __future__ import annotations

import pytest

from f2l.basetrain.pretrain import eval_rows, evaluate

pytestmark = pytest.mark.slow

# How much the video must add, by QA type and scale. The small's blind answers to "which came first?"
# name an object in the right template (0.70 token-F1 on these clips against the tiny's 0.3-0.4), so
# the video's margin there is smaller at that scale although it answers as well (0.85).
MARGINS = {
    "tiny": {"attribute": 0.3, "background": 0.1, "count": 0.3, "temporal_order": 0.3, "all": 0.15},
    "small": {"attribute": 0.5, "background": 0.1, "count": 0.4, "temporal_order": 0.08, "all": 0.15},
}


@pytest.fixture(scope="module", params=sorted(MARGINS))
def held_out_scores(request, tiny_base, small_base):
    """Token-F1 by caption category and QA type on test-split clips beyond the 200 the pretrain script
    scores itself on, with the video in context and without it, for one shipped scale."""
    base = {"tiny": tiny_base, "small": small_base}[request.param]
    rows = eval_rows("test", 24, frames=8, offset=5000)
    scores = evaluate(base, rows, frame_size=64, max_new_tokens=40, batch_size=48)
    return request.param, {m: {"all": s["token_f1"], **s["by_category"]} for m, s in scores.items()}


def test_each_shipped_base_sees_the_video(held_out_scores):
    """What one frame shows (colours, the background) and what only the sequence shows (how many objects
    came and went, which event came first), at both scales. The camera caption is not asserted: the
    shipped bases tell pans from zooms only a little better than their prior (docs/bases.md, "Known gap:
    texture and camera")."""
    scale, scores = held_out_scores
    direct, blind = scores["direct"], scores["no_video"]
    for key, margin in MARGINS[scale].items():  # attribute: "what color is the <shape>?"
        assert direct[key] > blind[key] + margin, (scale, key, direct, blind)
