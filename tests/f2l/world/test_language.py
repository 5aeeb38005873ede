"""``f2l.world.language``: captions and QA grounded in the truth, balanced answers, the text corpus,
and the long clips' items."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from f2l.world import (
    CAPTION_CATEGORIES,
    COLORS,
    QA,
    QA_TYPES,
    captions,
    long_clip_items,
    object_mask,
    qa,
    sample_long_truth,
    sample_truth,
    world_text_corpus,
)

N_WORDS = {"one": 1, "two": 2, "three": 3}


def test_caption_categories_and_form(truths):
    for t in truths[:100]:
        caps = captions(t)
        assert tuple(caps) == CAPTION_CATEGORIES
        for text in caps.values():
            assert text == text.lower() and text.endswith(".")
        m = t.main
        assert f"{m.size} {m.color} {m.shape}" in caps["short"]
        assert caps["main_object"].startswith(f"the main object is a {m.size} {m.color} {m.shape}")
        assert t.background in caps["background"]
        if not t.events():
            assert caps["temporal"] == "nothing appears or leaves."


def test_temporal_caption_orders_events():
    for seed in range(300):
        t = sample_truth(seed)
        ev = t.events()
        if len(ev) >= 2:
            text = captions(t)["temporal"]
            assert text.startswith("first ")
            first, second = (t.objects[e.index].name for e in ev[:2])
            assert text.index(first) < text.index(second)
            return
    pytest.fail("no clip with two events in 300 seeds")


def test_qa_types_and_consistency(truths):
    for t in truths:
        items = qa(t)
        assert all(isinstance(x, QA) and x.type in QA_TYPES for x in items)
        assert {x.type for x in items} == set(QA_TYPES)
        by_q = {x.question: x.answer for x in items}
        assert sum(x.type == "attribute" for x in items) >= 3 and sum(x.type == "yes_no" for x in items) >= 3
        for o in t.objects:
            assert by_q[f"what color is the {o.shape}?"] == o.color
            assert by_q[f"what shape is the {o.color} object?"] == o.shape
            assert by_q[f"what size is the {o.name}?"] == o.size
            assert by_q[f"which way does the {o.name} move?"] == o.motion
        assert by_q["what color is the background?"] == t.background
        assert N_WORDS[by_q["how many objects are there?"]] == len(t.objects)
        assert N_WORDS[by_q["how many objects are there at the end?"]] == sum(
            o.leave >= 1.0 for o in t.objects
        )
        for x in items:
            if x.choices is not None:
                assert x.answer in x.choices
        ev = t.events()
        first = by_q["what happens first?"]
        if ev:
            assert first == f"the {t.objects[ev[0].index].name} {ev[0].kind}"
        else:
            assert first == "nothing appears or leaves"
    assert qa(truths[3]) == qa(sample_truth(3))


def test_yes_no_answers_are_true(truths):
    for t in truths[:200]:
        present = {o.name for o in t.objects}
        for x in qa(t):
            if x.question.startswith("is there "):
                name = x.question.removeprefix("is there ").removesuffix("?").split(" ", 1)[1]
                assert (x.answer == "yes") == (name in present)
            if x.question.startswith("is the background "):
                assert (x.answer == "yes") == x.question.endswith(f" {t.background}?")


def test_yes_no_balanced(truths):
    answers = [x.answer for t in truths for x in qa(t) if x.type == "yes_no"]
    assert set(answers) == {"yes", "no"}
    assert 0.4 < answers.count("yes") / len(answers) < 0.6


def test_colour_answer_prior_is_flat(truths):
    counts = Counter(
        x.answer
        for t in truths
        for x in qa(t)
        if x.question.startswith("what color is the ") and x.question != "what color is the background?"
    )
    assert set(counts) == set(COLORS)
    top = max(counts.values()) / sum(counts.values())
    assert top < 1.5 / len(COLORS)


def test_world_text_corpus_covers_captions_and_qa():
    texts = list(world_text_corpus([0, 1]))
    t0 = sample_truth(0)
    expected = len(CAPTION_CATEGORIES) * 2 + 2 * (len(qa(t0)) + len(qa(sample_truth(1))))
    assert len(texts) == expected
    assert captions(t0)["detailed"] in texts and qa(t0)[0].question in texts
    vocab = {w.strip(".,?") for s in world_text_corpus(range(300)) for w in s.split()}
    assert len(vocab) < 120  # a small closed vocabulary


@pytest.mark.parametrize("segments", [1, 2, 4, 8])
def test_long_clip_items_are_grounded_in_the_truth_and_name_the_segments_that_show_it(segments):
    truth = sample_long_truth(1_010_100 + segments, segments)
    items = long_clip_items(truth, segments)
    assert items == long_clip_items(truth, segments)
    assert len({it.id for it in items}) == len(items)
    k = len(truth.objects)
    assert len(items) == 3 * k + (k - 1) + (k > 1) + 3
    # Which segments show each object, read off the rendered frames (3 a segment).
    per = 3
    times = (np.arange(segments * per) + 0.5) / (segments * per) * truth.duration
    shown = [
        tuple(
            s
            for s in range(segments)
            if any(object_mask(truth, j, t).any() for t in times[s * per : (s + 1) * per])
        )
        for j in range(k)
    ]
    by_id = {it.id: it for it in items}
    for j, o in enumerate(truth.objects):
        for benchmark, answer in (("color", o.color), ("shape", o.shape), ("size", o.size)):
            it = by_id[f"{benchmark}-{j}"]
            assert (it.kind, it.benchmark, it.answer, it.needs, it.segments) == (
                "qa",
                benchmark,
                answer,
                "one",
                shown[j],
            )
        assert by_id[f"color-{j}"].question == f"what color is the {o.shape}?"
        assert by_id[f"shape-{j}"].question == f"what shape is the {o.color} object?"
    for j in range(k - 1):
        order = by_id[f"order-{j}"]
        earlier, later = f"the {truth.objects[j].name}", f"the {truth.objects[j + 1].name}"
        assert order.answer == earlier and set(order.choices) == {earlier, later}
        assert order.question == f"which is there first, {order.choices[0]} or {order.choices[1]}?"
        assert order.needs == "several" and order.segments == shown[j] + shown[j + 1]
        assert shown[j][-1] < shown[j + 1][0]  # the answer is the one seen earlier
    clip_wide = ("count", "temporal", "detailed")
    for item_id in clip_wide:
        assert by_id[item_id].segments == tuple(range(segments))
        assert by_id[item_id].needs == ("several" if k > 1 else "one")
    assert by_id["count"].answer == ["one", "two", "three", "four"][k - 1]
    assert by_id["temporal"].kind == "caption" and by_id["temporal"].question == ""
    temporal = by_id["temporal"].answer
    if k == 1:
        assert temporal == "nothing appears or leaves." and "first_event" not in by_id
    else:
        assert by_id["first_event"].answer == f"the {truth.objects[0].name} leaves"
        # the hand-overs in order: each object leaves before the next appears
        positions = [temporal.index(f"{o.color} {o.shape} appears") for o in truth.objects[1:]]
        assert positions == sorted(positions)
        assert temporal.index(f"the {truth.objects[0].name} leaves") < positions[0]
    assert all(f"{o.size} {o.color} {o.shape}" in by_id["detailed"].answer for o in truth.objects)


def test_long_clip_items_refuse_a_segment_count_the_clip_does_not_have():
    with pytest.raises(ValueError, match="not 4 segments"):
        long_clip_items(sample_long_truth(0, 2), 4)


def test_long_clip_order_questions_put_the_right_answer_first_half_the_time():
    firsts = [
        it.choices[0] == it.answer
        for seed in range(200)
        for it in long_clip_items(sample_long_truth(seed, 4), 4)
        if it.benchmark == "order"
    ]
    assert len(firsts) > 500 and 0.4 < np.mean(firsts) < 0.6
