"""f2l.encode: the context a hypernetwork reads, streamed layer by layer out of the base (each decoder
layer's input, the last layer never run) and the vision tower run in frame chunks for long clips, on a
random tiny SmolVLM2."""

from __future__ import annotations

import pytest
import torch

from f2l.encode import collect_hidden_states, internalization_inputs, stream_hidden_states
from f2l.world import render_clip


@pytest.fixture(scope="module")
def clips():
    return [render_clip(1_010_000 + i, num_frames=n, size=64).frames for i, n in enumerate((4, 9))]


def test_streamed_states_are_the_decoder_layer_inputs(random_base, clips):
    inputs = internalization_inputs(random_base, clips)
    states = collect_hidden_states(random_base, inputs)
    with torch.no_grad():
        reference = random_base.model.model(**inputs, output_hidden_states=True).hidden_states
    assert [s.layer for s in states] == [0, 1, 2, 3]
    for s in states:
        assert s.hidden.shape == (2, inputs["input_ids"].shape[1], 128)
        torch.testing.assert_close(s.hidden, reference[s.layer])
        assert torch.equal(s.mask, inputs["attention_mask"].bool())


def test_streaming_stops_before_the_last_layer_runs(random_base, clips):
    calls = []
    handle = random_base.text_model.layers[-1].register_forward_hook(lambda *a: calls.append(1))
    try:
        seen = []
        stream_hidden_states(
            random_base, internalization_inputs(random_base, clips[:1]), lambda s: seen.append(s.layer)
        )
    finally:
        handle.remove()
    assert seen == [0, 1, 2, 3] and calls == []


def test_long_clips_are_encoded_in_frame_chunks_with_the_same_states(random_base, clips, monkeypatch):
    """Frames through the vision tower a chunk at a time (what bounds its memory at 1,024 frames) give
    the states of the model's own all-at-once path, also for a row padded with empty frames."""
    import f2l.encode as encode

    inputs = internalization_inputs(random_base, clips)  # 4 and 9 frames: row 0 has 5 padding frames
    whole = collect_hidden_states(random_base, inputs)
    chunked_inputs = encode.embed_video_in_chunks(random_base, inputs, chunk=4)
    assert "pixel_values" not in chunked_inputs and "inputs_embeds" in chunked_inputs
    monkeypatch.setattr(encode, "VISION_CHUNK_FRAMES", 4)
    chunked = collect_hidden_states(random_base, inputs)
    assert len(chunked) == len(whole)
    for a, b in zip(whole, chunked, strict=True):
        real = a.mask
        torch.testing.assert_close(b.hidden[real], a.hidden[real], rtol=1e-4, atol=1e-5)
