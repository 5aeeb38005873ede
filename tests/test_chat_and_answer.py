"""Prompts and inputs through the checkpoint's own processor, and the direct / no-video answerers."""

from __future__ import annotations

import numpy as np
import pytest

from f2l.answer import answer, generate_answers
from f2l.chat import count_tokens, model_inputs, prompt_text, video_metadata
from f2l.video import Frames
from f2l.world import render_clip


def test_prompt_follows_the_smolvlm2_chat_template(random_base):
    text = prompt_text(random_base.processor, "what color is the circle?", with_video=True)
    assert text == "<|im_start|>User: <video>what color is the circle?<end_of_utterance>\nAssistant:"
    assert "<video>" not in prompt_text(random_base.processor, "hi", with_video=False)


def test_video_metadata_carries_exact_timestamps():
    frames = Frames(np.zeros((3, 8, 8, 3), np.uint8), np.array([0.25, 1.5, 7.125]))
    meta = video_metadata(frames)
    assert meta.timestamps == pytest.approx([0.25, 1.5, 7.125])


@pytest.mark.parametrize("n_frames", [1, 5, 12])
def test_video_path_expands_every_frame_into_visual_tokens(random_base, n_frames):
    clip = render_clip(1_010_000, num_frames=n_frames, size=64)
    text = prompt_text(random_base.processor, "Describe the video.", with_video=True)
    inputs = model_inputs(random_base.processor, [text], [clip.frames])
    assert inputs["pixel_values"].shape == (1, n_frames, 3, 64, 64)
    counts = count_tokens(random_base.processor, inputs["input_ids"][0], inputs["attention_mask"][0])
    assert counts["visual"] == 16 * n_frames
    decoded = random_base.tokenizer.decode(inputs["input_ids"][0])
    assert decoded.count("Frame from 00:0") == n_frames


def test_frames_of_any_size_are_resized_to_the_model_side(random_base):
    clip = render_clip(1_010_001, num_frames=3, size=(130, 257))
    text = prompt_text(random_base.processor, "q", with_video=True)
    inputs = model_inputs(random_base.processor, [text], [clip.frames])
    assert inputs["pixel_values"].shape[-2:] == (64, 64)


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
    batched = generate_answers(random_base, questions, clips, max_new_tokens=6)
    single = [answer(random_base, c, q, max_new_tokens=6).text for q, c in zip(questions, clips, strict=True)]
    assert batched == single


def test_kv_cache_baseline_answers_exactly_like_direct_and_reuses_the_prefix(random_base):
    from f2l.answer import answer_from_prefix, prefill_video

    clip = render_clip(1_010_005, num_frames=5, size=64).frames
    prefix = prefill_video(random_base, clip)
    assert prefix.visual_tokens == 5 * 16 and prefix.nbytes > 0
    for question in (
        "what color is the circle?",
        "Describe the video in detail.",
        "what color is the circle?",
    ):
        cached = answer_from_prefix(random_base, prefix, question, max_new_tokens=6)
        direct = answer(random_base, clip, question, max_new_tokens=6)
        assert cached.text == direct.text
        assert cached.input_tokens["cached"] + cached.input_tokens["text"] == sum(
            direct.input_tokens.values()
        )
