"""Captions and question-answer pairs from a clip's ground truth.

Templates are short, lowercase and deterministic: the same fact is always said the same way,
so a tiny model trained from scratch can learn them. The only randomness (which yes/no
questions are asked with a true or a false premise, the order of two-way choices) comes from
the clip's seed, and yes/no questions are true with probability exactly 1/2 each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from f2l.world.scene import (
    BACKGROUNDS,
    CAMERAS,
    COLORS,
    DURATION_S,
    MOTIONS,
    SHAPES,
    SIZES,
    ClipTruth,
    Event,
    ObjectTruth,
    sample_truth,
)

CAPTION_CATEGORIES: tuple[str, ...] = ("short", "detailed", "background", "main_object", "camera", "temporal")
QA_TYPES: tuple[str, ...] = ("attribute", "count", "direction", "temporal_order", "yes_no")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
NO_EVENTS = "nothing appears or leaves"

_CAMERA_SENTENCE = {
    "still": "the camera is still",
    "pan_left": "the camera pans left",
    "pan_right": "the camera pans right",
    "zoom_in": "the camera zooms in",
    "zoom_out": "the camera zooms out",
}
_CAMERA_QUESTION = {
    "still": "does the camera stay still?",
    "pan_left": "does the camera pan left?",
    "pan_right": "does the camera pan right?",
    "zoom_in": "does the camera zoom in?",
    "zoom_out": "does the camera zoom out?",
}
CAMERA_DIRECTION = {
    "still": "still",
    "pan_left": "left",
    "pan_right": "right",
    "zoom_in": "in",
    "zoom_out": "out",
}


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    type: str
    choices: tuple[str, ...] | None = None


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _described(o: ObjectTruth) -> str:
    return _a(f"{o.size} {o.color} {o.shape}")


def _moves(motion: str) -> str:
    return "stays still" if motion == "still" else f"moves {motion}"


def _texture_phrase(truth: ClipTruth) -> str:
    if truth.texture == "plain":
        return f"plain {truth.background}"
    return f"{truth.background} with {truth.texture}"


def _background_phrase(truth: ClipTruth) -> str:
    if truth.texture == "plain":
        return f"a plain {truth.background} background"
    return f"{_a(truth.background)} background with {truth.texture}"


def _event_phrase(truth: ClipTruth, e: Event) -> str:
    return f"the {truth.objects[e.index].name} {e.kind}"


def _temporal(truth: ClipTruth) -> str:
    events = truth.events()
    if not events:
        return NO_EVENTS + "."
    parts = []
    for e in events:
        o = truth.objects[e.index]
        parts.append(f"{_a(o.color)} {o.shape} appears" if e.kind == "appears" else f"the {o.name} leaves")
    if len(parts) == 1:
        return parts[0] + "."
    return "first " + ", then ".join(parts) + "."


def _other_clause(o: ObjectTruth) -> str:
    if o.timing == "appears":
        return f"{_described(o)} appears and {_moves(o.motion)}"
    if o.timing == "leaves":
        return f"{_described(o)} {_moves(o.motion)} and leaves"
    return f"{_described(o)} {_moves(o.motion)}"


def captions(truth: ClipTruth) -> dict[str, str]:
    """One caption per category in CAPTION_CATEGORIES."""
    m = truth.main
    sentences = [f"{_described(m)} {_moves(m.motion)} over {_background_phrase(truth)}"]
    if len(truth.objects) > 1:
        sentences.append(", and ".join(_other_clause(o) for o in truth.objects[1:]))
    sentences.append(_CAMERA_SENTENCE[truth.camera])
    return {
        "short": f"{_described(m)} {_moves(m.motion)}.",
        "detailed": " ".join(s + "." for s in sentences),
        "background": f"the background is {_texture_phrase(truth)}.",
        "main_object": f"the main object is {_described(m)} that {_moves(m.motion)}.",
        "camera": _CAMERA_SENTENCE[truth.camera] + ".",
        "temporal": _temporal(truth),
    }


def _attribute(truth: ClipTruth) -> list[QA]:
    out = []
    for o in truth.objects:  # colours and shapes are unique within a clip
        out.append(QA(f"what color is the {o.shape}?", o.color, "attribute"))
        out.append(QA(f"what shape is the {o.color} object?", o.shape, "attribute"))
        out.append(QA(f"what size is the {o.name}?", o.size, "attribute"))
    out.append(QA("what color is the background?", truth.background, "attribute"))
    out.append(QA("what pattern is on the background?", truth.texture, "attribute"))
    return out


def _count(truth: ClipTruth) -> list[QA]:
    n_start = sum(o.appear == 0.0 for o in truth.objects)
    n_end = sum(o.leave >= 1.0 for o in truth.objects)
    return [
        QA("how many objects are there?", NUMBER_WORDS[len(truth.objects)], "count"),
        QA("how many objects are there at the start?", NUMBER_WORDS[n_start], "count"),
        QA("how many objects are there at the end?", NUMBER_WORDS[n_end], "count"),
    ]


def _direction(truth: ClipTruth) -> list[QA]:
    out = [QA(f"which way does the {o.name} move?", o.motion, "direction") for o in truth.objects]
    out.append(QA("which way does the camera move?", CAMERA_DIRECTION[truth.camera], "direction"))
    return out


def _two_way(rng: np.random.Generator, right: str, wrong: str) -> tuple[str, str]:
    return (right, wrong) if rng.random() < 0.5 else (wrong, right)


def _temporal_order(truth: ClipTruth, rng: np.random.Generator) -> list[QA]:
    events = truth.events()
    first = _event_phrase(truth, events[0]) if events else NO_EVENTS
    out = [QA("what happens first?", first, "temporal_order")]
    main = f"the {truth.main.name}"
    for e in events:  # the main object is there all along: before any entrant, after any leaver
        other = f"the {truth.objects[e.index].name}"
        a, b = _two_way(rng, main, other)
        q = (
            f"which is there first, {a} or {b}?"
            if e.kind == "appears"
            else f"which is there at the end, {a} or {b}?"
        )
        out.append(QA(q, main, "temporal_order", (a, b)))
    if len(events) >= 2:
        e1, e2 = events[0], events[1]
        n1, n2 = f"the {truth.objects[e1.index].name}", f"the {truth.objects[e2.index].name}"
        if e1.kind == e2.kind:
            a, b = _two_way(rng, n1, n2)
            out.append(QA(f"which {e1.kind} first, {a} or {b}?", n1, "temporal_order", (a, b)))
        else:
            p1, p2 = _event_phrase(truth, e1), _event_phrase(truth, e2)
            a, b = _two_way(rng, p1, p2)
            out.append(QA(f"what happens first, {a} or {b}?", p1, "temporal_order", (a, b)))
    return out


def _other(rng: np.random.Generator, options: Iterable[str], exclude: str) -> str:
    rest = [x for x in options if x != exclude]
    return rest[int(rng.integers(len(rest)))]


def _yes_no(truth: ClipTruth, rng: np.random.Generator) -> list[QA]:
    """Five questions, each asked with a true premise with probability 1/2."""
    objs = truth.objects
    out = []

    o = objs[int(rng.integers(len(objs)))]
    if rng.random() < 0.5:
        out.append(QA(f"is there {_a(o.color)} {o.shape}?", "yes", "yes_no"))
    elif rng.random() < 0.5:  # near miss: right shape, a colour it does not have (shapes are unique)
        out.append(QA(f"is there {_a(_other(rng, COLORS, o.color))} {o.shape}?", "no", "yes_no"))
    else:  # near miss: right colour, a shape it does not have (colours are unique)
        out.append(QA(f"is there {_a(o.color)} {_other(rng, SHAPES, o.shape)}?", "no", "yes_no"))

    o = objs[int(rng.integers(len(objs)))]
    yes = rng.random() < 0.5
    motion = o.motion if yes else _other(rng, MOTIONS, o.motion)
    q = f"does the {o.name} stay still?" if motion == "still" else f"does the {o.name} move {motion}?"
    out.append(QA(q, "yes" if yes else "no", "yes_no"))

    yes = rng.random() < 0.5
    cam = truth.camera if yes else _other(rng, CAMERAS, truth.camera)
    out.append(QA(_CAMERA_QUESTION[cam], "yes" if yes else "no", "yes_no"))

    yes = rng.random() < 0.5
    bg = truth.background if yes else _other(rng, BACKGROUNDS, truth.background)
    out.append(QA(f"is the background {bg}?", "yes" if yes else "no", "yes_no"))

    o = objs[int(rng.integers(len(objs)))]
    yes = rng.random() < 0.5
    size = o.size if yes else _other(rng, SIZES, o.size)
    out.append(QA(f"is the {o.name} {size}?", "yes" if yes else "no", "yes_no"))
    return [QA(x.question, x.answer, x.type, ("yes", "no")) for x in out]


def qa(truth: ClipTruth) -> list[QA]:
    """Every QA of the clip: at least one of each type in QA_TYPES, deterministic by seed."""
    rng = np.random.default_rng([truth.seed, 7])
    return (
        _attribute(truth)
        + _count(truth)
        + _direction(truth)
        + _temporal_order(truth, rng)
        + _yes_no(truth, rng)
    )


@dataclass(frozen=True)
class LongClipItem:
    """One question or caption about a long clip, its one right answer, and where the evidence is.

    ``kind`` "qa": ``question`` as the world asks it (a two-way choice lists ``choices``: ask it with
    ``f2l.data.qa_prompt``); "caption": ``question`` is empty and ``benchmark`` names the caption category
    (ask it with ``f2l.data.CAPTION_PROMPTS``). ``segments``: the segments showing the objects the answer is
    about; ``needs``: "one" when they are one object's run (any segment of it shows the answer), "several"
    when the answer joins what different objects' runs show.
    """

    id: str
    kind: str  # "qa" | "caption"
    benchmark: str  # color, shape, size, order, first_event, count | temporal, detailed
    question: str
    answer: str
    needs: str  # "one" | "several"
    segments: tuple[int, ...]
    choices: tuple[str, ...] | None = None


def long_clip_items(truth: ClipTruth, segments: int) -> list[LongClipItem]:
    """The questions and captions of a long clip (``sample_long_truth(seed, segments)``) in the world's own
    words, which the base knows: each object's colour, shape and size (needs its run); for each hand-over,
    which of the two objects is there first (a two-way choice, its order drawn from the seed); what happens
    first; how many objects there are; the temporal caption (the hand-overs in order) and the detailed one
    (these need every object's run, so one segment's worth only when the clip has one object)."""
    if truth.duration != DURATION_S * segments:
        raise ValueError(f"a clip of {truth.duration:g} s is not {segments} segments of {DURATION_S:g} s")
    runs = [range(round(o.appear * segments), round(o.leave * segments)) for o in truth.objects]
    everyone = range(len(truth.objects))
    rows = []  # (id, kind, benchmark, question, answer, the objects it is about, choices)
    for k, o in enumerate(truth.objects):
        rows += [
            (f"color-{k}", "qa", "color", f"what color is the {o.shape}?", o.color, [k], None),
            (f"shape-{k}", "qa", "shape", f"what shape is the {o.color} object?", o.shape, [k], None),
            (f"size-{k}", "qa", "size", f"what size is the {o.name}?", o.size, [k], None),
        ]
    rng = np.random.default_rng([truth.seed, segments, 7])
    for k, (earlier, later) in enumerate(itertools.pairwise(truth.objects)):
        a, b = _two_way(rng, f"the {earlier.name}", f"the {later.name}")
        question = f"which is there first, {a} or {b}?"
        rows.append((f"order-{k}", "qa", "order", question, f"the {earlier.name}", [k, k + 1], (a, b)))
    events = truth.events()
    if events:  # the first object leaves as the second appears
        first = _event_phrase(truth, events[0])
        rows.append(("first_event", "qa", "first_event", "what happens first?", first, [0, 1], None))
    count = NUMBER_WORDS[len(truth.objects)]
    rows.append(("count", "qa", "count", "how many objects are there?", count, everyone, None))
    text = captions(truth)
    rows += [(c, "caption", c, "", text[c], everyone, None) for c in ("temporal", "detailed")]
    return [
        LongClipItem(
            item_id,
            kind,
            benchmark,
            question,
            answer,
            "one" if len(about) == 1 else "several",
            tuple(s for k in about for s in runs[k]),
            choices,
        )
        for item_id, kind, benchmark, question, answer, about, choices in rows
    ]


def world_text_corpus(seeds: Iterable[int]) -> Iterator[str]:
    """All captions, questions and answers of ``seeds``: the text a world tokenizer is trained on."""
    for seed in seeds:
        truth = sample_truth(int(seed))
        yield from captions(truth).values()
        for x in qa(truth):
            yield x.question
            yield x.answer
