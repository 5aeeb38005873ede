"""f2l.chat: prompts in the checkpoint's own chat template, and the model inputs its processor builds
from them (every frame expanded into visual tokens with its timestamp, frames resized to the model's
side, the visual and text tokens counted)."""

from __future__ import annotations

import numpy as np
import pytest

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
