"""Chat-formatted prompts and model inputs, with or without the video in context.

Everything goes through the checkpoint's own processor and chat template, so the tiny base and
the real SmolVLM2 see their inputs laid out identically: ``User: <video>question<end_of_utterance>
Assistant: answer<end_of_utterance>`` (ChatML turns for the smol base), the ``<video>`` placeholder
expanded by the processor into a timestamp line and the visual tokens of every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from f2l.video import Frames

# Frame timestamps reach the processor as indices on a millisecond clock: SmolVLM's processor
# computes ``timestamp = frame_index / fps``, and a 1 kHz "fps" carries our exact timestamps.
_CLOCK_HZ = 1000.0


def user_messages(question: str, with_video: bool) -> list[dict]:
    content = [{"type": "video"}] if with_video else []
    content.append({"type": "text", "text": question})
    return [{"role": "user", "content": content}]


def prompt_text(processor, question: str, *, with_video: bool, generation_prompt: bool = True) -> str:
    """The chat text up to and including ``Assistant:``, where generation starts (up to the end of the
    user's turn with ``generation_prompt=False``, as the authors' hypernetworks read their context)."""
    # the template is passed explicitly: for a video SmolVLM's processor otherwise swaps in its own default
    return processor.apply_chat_template(
        user_messages(question, with_video),
        add_generation_prompt=generation_prompt,
        chat_template=processor.chat_template,
    )


def answer_suffix(processor, answer: str) -> str:
    """What follows the generation prompt in a finished turn: the answer and the end of utterance, after
    a space where the prompt ends on a word (SmolVLM2's ``Assistant:``), not after a line break
    (ChatML's ``<|im_start|>assistant\n``, the smol base's)."""
    prompt = prompt_text(processor, "", with_video=False)
    space = "" if prompt[-1:].isspace() else " "
    return f"{space}{answer}{processor.tokenizer.end_of_utterance_token}"


def video_metadata(frames: Frames):
    from transformers.video_utils import VideoMetadata

    ts = [float(t) for t in frames.timestamps]
    duration = getattr(frames, "duration", None) or (ts[-1] if ts else 0.0)
    return VideoMetadata(
        total_num_frames=max(int(round(duration * _CLOCK_HZ)), 1),
        fps=_CLOCK_HZ,
        duration=float(duration),
        width=int(frames.pixels.shape[2]),
        height=int(frames.pixels.shape[1]),
        frames_indices=[int(round(t * _CLOCK_HZ)) for t in ts],
    )


def model_inputs(
    processor,
    texts: Sequence[str],
    videos: Sequence[Frames] | None = None,
    *,
    padding_side: str = "left",
    device: torch.device | str | None = None,
):
    """Tokenize chat ``texts`` (each holding one ``<video>`` iff ``videos`` is given) into tensors.

    Left padding is for generation; training uses right padding so that every row's answer tokens
    sit at the same relative positions as at inference.
    """
    if videos is None:
        batch = processor(text=list(texts), return_tensors="pt", padding=True, padding_side=padding_side)
    else:
        if len(videos) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(videos)} videos: give one video per text.")
        # One processor call per row, then collate: a batched call writes the *padded* frame count
        # into every video's "series of N frames" intro, so a short clip would read differently in a
        # batch than alone.
        rows = [
            processor(text=[t], videos=[v.pixels], video_metadata=[video_metadata(v)], return_tensors="pt")
            for t, v in zip(texts, videos, strict=True)
        ]
        batch = _collate(rows, processor.tokenizer.pad_token_id, padding_side)
    return batch.to(device) if device is not None else batch


def _collate(rows: list, pad_id: int, padding_side: str):
    """Stack single-row processor outputs: pad tokens on ``padding_side``, frames with all-zero frames
    at the end (the model drops all-zero frames before the vision tower)."""
    from transformers import BatchFeature

    width = max(r["input_ids"].shape[1] for r in rows)
    n_frames = max(r["pixel_values"].shape[1] for r in rows)

    def pad_tokens(t: torch.Tensor, value: int) -> torch.Tensor:
        gap = width - t.shape[1]
        return torch.nn.functional.pad(t, (gap, 0) if padding_side == "left" else (0, gap), value=value)

    def pad_frames(t: torch.Tensor) -> torch.Tensor:
        extra = torch.zeros((1, n_frames - t.shape[1], *t.shape[2:]), dtype=t.dtype)
        return torch.cat([t, extra], dim=1)

    return BatchFeature(
        {
            "input_ids": torch.cat([pad_tokens(r["input_ids"], pad_id) for r in rows]),
            "attention_mask": torch.cat([pad_tokens(r["attention_mask"], 0) for r in rows]),
            "pixel_values": torch.cat([pad_frames(r["pixel_values"]) for r in rows]),
            "pixel_attention_mask": torch.cat([pad_frames(r["pixel_attention_mask"]) for r in rows]),
        }
    )


def count_tokens(processor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, int]:
    """Input tokens of one row by kind: ``visual`` (image placeholders) and ``text`` (all the rest)."""
    ids = input_ids[attention_mask.bool()]
    visual = int((ids == processor.image_token_id).sum())
    return {"visual": visual, "text": int(ids.numel()) - visual}
