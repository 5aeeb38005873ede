"""f2l.basetrain.corpus: the text a from-scratch base's tokenizer is trained on."""

from __future__ import annotations

from datetime import timedelta
from itertools import islice

from transformers.models.smolvlm.processing_smolvlm import DEFAULT_VIDEO_INTRO, FRAME_TIMESTAMP_MESSAGE

from f2l.basetrain.corpus import processor_text, tokenizer_corpus
from f2l.data import CAPTION_PROMPTS
from f2l.world import split_seeds, world_text_corpus


def test_processor_text_holds_what_the_smolvlm_processor_writes_around_frames():
    text = processor_text()
    for frames, word in ((4, "four"), (8, "eight"), (12, "twelve")):
        for seconds in (0, 7, 56):
            intro = DEFAULT_VIDEO_INTRO.format(
                frame_count=word, video_duration=str(timedelta(seconds=seconds))
            )
            assert intro in text, (frames, seconds)
    for minute, second in ((0, 0), (1, 30), (2, 59)):
        assert FRAME_TIMESTAMP_MESSAGE.format(timestamp=f"{minute:02d}:{second:02d}") in text
    assert {"User:", "Assistant:", "Options:", *CAPTION_PROMPTS.values()} <= set(text)
    # 11 frame counts x 9 durations, 3 minutes of timestamps, the turn labels and the caption prompts
    assert len(text) == 11 * 9 + 3 * 60 + 4 + len(CAPTION_PROMPTS)
    assert len(set(text)) == len(text)


def test_tokenizer_corpus_is_the_processor_text_then_the_training_clips_text():
    corpus = list(tokenizer_corpus(3))
    head = processor_text()
    assert corpus[: len(head)] == head
    assert corpus[len(head) :] == list(world_text_corpus(split_seeds("train", 3)))
    assert corpus == list(tokenizer_corpus(3))  # the same every time: a tokenizer is rebuilt from it
    longer = list(tokenizer_corpus(5))
    assert longer[: len(corpus)] == corpus and len(longer) > len(corpus)  # more clips: more of the world's
    assert list(islice(tokenizer_corpus(0), len(head) + 1)) == head  # no clips: the processor's text alone
