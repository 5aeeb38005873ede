"""The one batched greedy generator (``f2l.answer.generate``): batches answer as single rows do, with
videos, per-row adapters or a prefix; and its teacher-forced rows (``f2l.answer.teacher_forced``) with the
videos in context. The prompts and inputs it builds are tested in tests/f2l/test_chat.py."""

from __future__ import annotations

import pytest
import torch
from support import random_adapter

from f2l.adapter import Adapter
from f2l.answer import answer, generate, prefill_video, teacher_forced
from f2l.models import load_base
from f2l.world import render_clip

pytestmark = pytest.mark.usefixtures("one_thread")


def test_answer_counts_tokens_and_times_the_first_token(random_base):
    clip = render_clip(1_010_002, num_frames=4, size=64)
    direct = answer(random_base, clip.frames, "what color is the circle?", max_new_tokens=5)
    blind = answer(random_base, None, "what color is the circle?", max_new_tokens=5)
    assert direct.input_tokens["visual"] == 64 and blind.input_tokens["visual"] == 0
    assert direct.input_tokens["text"] > blind.input_tokens["text"]  # frame timestamps and intro
    assert 0 < direct.ttft_s <= direct.total_s
    assert 1 <= direct.new_tokens <= 5


def test_batched_answers_equal_one_at_a_time(random_base):
    clips = [render_clip(s, num_frames=n, size=64).frames for s, n in ((1_010_003, 3), (1_010_004, 6))]
    questions = ["what color is the circle?", "Describe the video in detail."]
    batched = generate(random_base, questions, videos=clips, max_new_tokens=6)
    single = [answer(random_base, c, q, max_new_tokens=6) for q, c in zip(questions, clips, strict=True)]
    assert [(a.text, a.ids, a.input_tokens) for a in batched] == [
        (a.text, a.ids, a.input_tokens) for a in single
    ]
    assert batched[0].ttft_s == batched[1].ttft_s  # one batch, one first token
    assert all(
        0 < a.ttft_s <= a.total_s and a.new_tokens == len(a.ids) + (a.stop is not None) for a in batched
    )


@pytest.fixture(scope="module")
def adapted_base(random_tiny_dir):
    """A private copy of the random tiny base that these tests may wrap with adapters."""
    return load_base(random_tiny_dir, device="cpu")


def test_per_row_adapters_answer_as_each_row_alone(adapted_base):
    """Row i under sample i of a batched adapter, in batches that split the adapter, answers as question i
    asked alone under adapter i: the adapters change the answers, and each row keeps its own."""
    questions = ["what color is the circle?", "Describe the video in detail.", "how many?"]
    adapters = [random_adapter(adapted_base.model, seed=s) for s in range(len(questions))]
    batched = generate(
        adapted_base, questions, adapter=Adapter.stack(adapters), max_new_tokens=6, batch_size=2
    )
    alone = [
        answer(adapted_base, None, q, adapter=a, max_new_tokens=6)
        for q, a in zip(questions, adapters, strict=True)
    ]
    assert [(a.text, a.ids) for a in batched] == [(a.text, a.ids) for a in alone]
    plain = generate(adapted_base, questions, max_new_tokens=6)
    assert [a.ids for a in batched] != [a.ids for a in plain]
    swapped = generate(adapted_base, questions, adapter=Adapter.stack(adapters[::-1]), max_new_tokens=6)
    assert [a.ids for a in swapped] != [a.ids for a in batched]
    with pytest.raises(ValueError, match="batched adapter of 3"):
        generate(adapted_base, questions, adapter=Adapter.stack(adapters[:2]))


def test_kv_cache_baseline_answers_exactly_like_direct_and_reuses_the_prefix(random_base):
    clip = render_clip(1_010_005, num_frames=5, size=64).frames
    prefix = prefill_video(random_base, clip)
    assert prefix.visual_tokens == 5 * 16 and prefix.nbytes > 0
    for question in (
        "what color is the circle?",
        "Describe the video in detail.",
        "what color is the circle?",
    ):
        cached = answer(random_base, None, question, prefix=prefix, max_new_tokens=6)
        direct = answer(random_base, clip, question, max_new_tokens=6)
        assert cached.text == direct.text
        assert cached.input_tokens["cached"] + cached.input_tokens["text"] == sum(
            direct.input_tokens.values()
        )


def test_a_batch_answered_from_one_prefix_answers_like_direct(tiny_base):
    """Questions of different lengths share the prefilled video in one batch (padding between the cached
    video and each question, masked) and answer token for token as the video in context does (on the trained
    base, whose answers depend on what it attends: unmasked padding turns the first answer's colour)."""
    clip = render_clip(1_010_006, num_frames=4, size=64).frames
    questions = [
        "what color is the circle?",
        "Describe the video in detail, every object.",
        "how many objects appear in the video?",
    ]
    cached = generate(tiny_base, questions, prefix=prefill_video(tiny_base, clip), max_new_tokens=8)
    direct = generate(tiny_base, questions, videos=[clip] * len(questions), max_new_tokens=8)
    assert [a.ids for a in cached] == [a.ids for a in direct]
    lengths = {a.input_tokens["text"] for a in cached}
    assert len(lengths) == 3 and all(a.input_tokens["cached"] > 64 for a in cached)
    with pytest.raises(ValueError, match="not both"):
        generate(tiny_base, questions, videos=[clip] * 3, prefix=prefill_video(tiny_base, clip))


def test_teacher_forced_rows_with_videos_in_context_replay_the_greedy_answers(tiny_base):
    """``prompt + answer`` rows with each question's video in context: the prompt is the one ``generate``
    read (same length), the model forced along the rows predicts the greedy answers token for token, and
    a row in a right-padded batch of clips of different lengths is the row alone (ids, mask and frames)."""
    clips = [render_clip(s, num_frames=n, size=64).frames for s, n in ((1_010_007, 3), (1_010_008, 6))]
    questions = ["what color is the circle?", "how many objects appear in the video?"]
    answers = generate(tiny_base, questions, videos=clips, max_new_tokens=8)
    ids = [list(a.ids) for a in answers]
    assert all(ids) and ids != [list(a.ids) for a in generate(tiny_base, questions, max_new_tokens=8)]
    batch = teacher_forced(tiny_base.processor, questions, ids, videos=clips)
    assert batch.prompt_lengths.tolist() == [sum(a.input_tokens.values()) for a in answers]
    assert batch.inputs["pixel_values"].shape[:2] == (2, 6)
    with torch.no_grad():
        logits = tiny_base.model(**batch.inputs).logits
    assert torch.equal(logits[batch.rows, batch.positions].argmax(-1), batch.answer_ids)
    for i, (question, clip) in enumerate(zip(questions, clips, strict=True)):
        alone = teacher_forced(tiny_base.processor, [question], [ids[i]], videos=[clip])
        n, frames = alone.input_ids.shape[1], len(clip.timestamps)
        assert torch.equal(batch.input_ids[i, :n], alone.input_ids[0])
        assert batch.attention_mask[i].sum() == n and not batch.attention_mask[i, n:].any()
        assert torch.equal(batch.inputs["pixel_values"][i, :frames], alone.inputs["pixel_values"][0])
        assert not batch.inputs["pixel_values"][i, frames:].any()  # padding frames, dropped by the model
    # an empty answer is the prompt alone; text-only rows carry no pixels
    prompt = teacher_forced(tiny_base.processor, questions[:1], [[]], videos=clips[:1])
    assert prompt.input_ids.shape[1] == batch.prompt_lengths[0] and prompt.answer_ids.numel() == 0
    assert set(teacher_forced(tiny_base.processor, questions, ids).inputs) == {"input_ids", "attention_mask"}
