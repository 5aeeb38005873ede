"""The tokenizer corpus of the world's bases: the text a from-scratch base's BPE tokenizer is trained on
(``f2l.models.tiny.train_tokenizer``), the strings the SmolVLM processor writes around video frames and
then the captions and questions of the world's training clips."""

from __future__ import annotations

from collections.abc import Iterator

from f2l.data import CAPTION_PROMPTS
from f2l.world import split_seeds, world_text_corpus


def processor_text() -> list[str]:
    """Strings the SmolVLM processor writes around video frames, so the tokenizer learns them too."""
    intro = "You are provided the following series of {n} frames from a 0:00:{s:02d} [H:MM:SS] video.\n"
    numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"]
    lines = [intro.format(n=n, s=s) for n in numbers for s in range(0, 60, 7)]
    lines += [f"\nFrame from {m:02d}:{s:02d}:" for m in range(3) for s in range(60)]
    lines += ["User:", "Assistant:", "Options:", "Answer with one of the options.", *CAPTION_PROMPTS.values()]
    return lines


def tokenizer_corpus(n_clips: int) -> Iterator[str]:
    """``processor_text``, then the world's text of the first ``n_clips`` training clips."""
    yield from processor_text()
    yield from world_text_corpus(split_seeds("train", n_clips))
