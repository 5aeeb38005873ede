"""The evaluation harness on the shipped tiny checkpoints: every method on one held-out clip, the
identities that tie the methods together, and the scoring rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from f2l.answer import generate
from f2l.data import Prompt, clip_prompts, world_manifest
from f2l.eval.harness import (
    METHODS,
    answer_clip,
    is_closed,
    score_predictions,
)
from f2l.eval.token_merge import TokenMerge

MAX_NEW = 16
#: A cross-section of the clip's prompts (captions are the slow ones to generate).
LABELS = ("short", "background", "camera", "attribute", "temporal_order", "yes_no")


@pytest.fixture(scope="module")
def pipeline():
    from f2l.pipeline import Frames2LoRA

    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def clip(pipeline):

    example = world_manifest("test", 1)[0]
    prompts = [p for p in clip_prompts(example) if p.label in LABELS]
    return example, pipeline.example_frames(example, 8), prompts, [p.prompt for p in prompts]


@pytest.fixture(scope="module")
def answers(pipeline, clip):
    _, frames, _, questions = clip
    methods = ("direct", "f2l", "f2l_chunked", "no_video", "kv_cache")
    return answer_clip(pipeline, frames, questions, methods, max_new_tokens=MAX_NEW, chunk_frames=8)


def texts(preds) -> list[str]:
    return [p.text for p in preds]


def test_every_method_answers_every_question(answers, clip):
    questions = clip[3]
    assert set(answers) == {"direct", "f2l", "f2l_chunked", "no_video", "kv_cache"}
    for method, preds in answers.items():
        assert len(preds) == len(questions), method
        assert all(p.text for p in preds), method
        assert all(math.isnan(p.ttft_s) for p in preds), "untimed answers carry no time"
    # the video matters: with it, the answers differ from the question alone
    assert texts(answers["direct"]) != texts(answers["no_video"])


def test_kv_cache_gives_the_direct_answers_token_for_token(answers):
    assert texts(answers["kv_cache"]) == texts(answers["direct"])


def test_one_chunk_is_the_whole_clip_adapter(pipeline, answers, clip):
    assert texts(answers["f2l_chunked"]) == texts(answers["f2l"])
    frames = clip[1]
    whole, chunked = pipeline.internalize(frames), pipeline.internalize(frames, chunk_frames=8)
    for module in whole.modules:
        whole_dw = whole.delta_weight(module, 2).numpy()
        np.testing.assert_allclose(
            chunked.delta_weight(module, 2).numpy(), whole_dw, atol=1e-5 * np.abs(whole_dw).max()
        )


def test_two_chunks_differ_from_the_whole_clip(pipeline, clip):
    frames = clip[1]
    whole, halves = pipeline.internalize(frames), pipeline.internalize(frames, chunk_frames=4)
    assert halves.rank == 2 * whole.rank
    assert not np.allclose(halves.delta_weight("q_proj", 0).numpy(), whole.delta_weight("q_proj", 0).numpy())


def test_no_video_is_the_base_without_video(pipeline, answers, clip):
    plain = [a.text for a in generate(pipeline.base, clip[3], max_new_tokens=MAX_NEW)]
    assert texts(answers["no_video"]) == plain


def test_timed_answers_match_the_batched_ones_and_carry_ttft(pipeline, answers, clip):
    timed = answer_clip(pipeline, clip[1], clip[3], ("direct", "f2l"), max_new_tokens=MAX_NEW, timed=True)
    for method in ("direct", "f2l"):
        assert texts(timed[method]) == texts(answers[method])
        assert all(0 < p.ttft_s < 60 for p in timed[method])


def test_token_merging_by_one_changes_nothing_and_by_four_changes_answers(pipeline, answers, clip):
    _, frames, _, questions = clip
    both = ("token_merge", "f2l_token_merge")
    unmerged = answer_clip(pipeline, frames, questions[:3], both, max_new_tokens=MAX_NEW, merge_factor=1)
    assert texts(unmerged["token_merge"]) == texts(answers["direct"])[:3]
    assert texts(unmerged["f2l_token_merge"]) == texts(answers["f2l"])[:3]
    merged = answer_clip(
        pipeline, frames, questions, ("token_merge",), max_new_tokens=MAX_NEW, merge_factor=4
    )
    assert texts(merged["token_merge"]) != texts(answers["direct"])
    adapted = answer_clip(pipeline, frames, questions[:2], ("f2l_token_merge",), max_new_tokens=MAX_NEW)
    assert all(p.text for p in adapted["f2l_token_merge"])
    assert pipeline.internalize(frames, transform=TokenMerge(4)).provenance["token_merge"] == 4


def test_methods_and_arguments_are_checked(pipeline, clip):
    with pytest.raises(ValueError, match="unknown method"):
        answer_clip(pipeline, clip[1], ["q"], ("direct", "telepathy"))
    with pytest.raises(ValueError, match="chunk_frames"):
        answer_clip(pipeline, clip[1], ["q"], ("f2l_chunked",))
    assert set(METHODS) == {
        "direct",
        "f2l",
        "f2l_chunked",
        "no_video",
        "kv_cache",
        "token_merge",
        "f2l_token_merge",
    }


def test_train_evaluate_runs_through_the_harness(pipeline, clip):
    from f2l.eval.metrics import token_f1
    from f2l.train import TrainConfig, evaluate

    example, frames = clip[0], clip[1]
    prompts = clip_prompts(example, 1)
    pipeline.hypernet.train()
    cfg = TrainConfig(frames=8, qa_per_type=1, max_new_tokens=8)
    scores = evaluate(pipeline.base, pipeline.hypernet, [example], cfg, frame_size=64)
    assert pipeline.hypernet.training, "evaluate restores the hypernetwork's training mode"
    pipeline.hypernet.eval()
    methods = ("f2l", "direct", "no_video")
    answers = answer_clip(pipeline, frames, [p.prompt for p in prompts], methods, max_new_tokens=8)
    refs = [p.reference for p in prompts]
    for method in methods:
        expected = np.mean([token_f1(p, r) for p, r in zip(texts(answers[method]), refs, strict=True)])
        assert scores[method] == pytest.approx(expected)
    agreement = [token_f1(a, b) for a, b in zip(texts(answers["f2l"]), texts(answers["direct"]), strict=True)]
    assert scores["f2l_vs_direct"] == pytest.approx(np.mean(agreement))
    assert 0 < scores["no_video"] < scores["direct"]


def _prompt(kind: str, reference: str, choices=None) -> Prompt:
    example = world_manifest("test", 1)[0]
    return Prompt(example, kind, "x", "question?", reference, "q0", choices)


@pytest.mark.parametrize(
    ("kind", "reference", "choices", "closed"),
    [
        ("qa", "red", None, True),
        ("qa", "The red circle appears.", None, True),  # articles and punctuation do not count
        ("qa", "nothing appears or leaves", None, True),  # four words: the longest short answer
        ("qa", "a man rides a bike down the hill", None, False),  # six words: free form
        (
            "qa",
            "the man in the red shirt opens the door",
            ("the man in the red shirt opens the door", "no"),
            True,
        ),
        ("caption", "red", None, False),  # a caption is never closed, however short
        ("caption", "the background is plain grey.", None, False),
    ],
)
def test_exact_match_applies_to_closed_qa_only(kind, reference, choices, closed):
    assert is_closed(_prompt(kind, reference, choices)) is closed


def test_score_predictions_on_hand_made_answers():
    preds = ["The red circle.", "blue", "a big dog runs", ""]
    refs = ["red circle", "red", "a small dog runs", ""]
    scores = score_predictions(preds, refs, ("token_f1", "exact_match"), closed=[True, True, False, True])
    np.testing.assert_allclose(scores["token_f1"], [1.0, 0.0, 2 / 3, 1.0])
    np.testing.assert_array_equal(scores["exact_match"], [1.0, 0.0, np.nan, 1.0])
    assert set(scores) == {"token_f1", "exact_match"}
    everything = score_predictions(preds, refs, ("exact_match",))["exact_match"]
    np.testing.assert_array_equal(everything, [1.0, 0.0, 0.0, 1.0])


def test_embedding_metric_uses_the_judge():
    from f2l.eval.judge import EmbeddingJudge

    preds = ["the camera moves to the right", "the camera moves to the right"]
    refs = ["the camera pans right", "a purple triangle over a navy background"]
    scores = score_predictions(preds, refs, ("embedding",), judge=EmbeddingJudge())["embedding"]
    assert scores.dtype == np.float64 and scores.shape == (2,)
    assert scores[0] > 0.6 and scores[0] > scores[1] + 0.3
    with pytest.raises(ValueError, match="judge"):
        score_predictions(preds, refs, ("embedding",))
    with pytest.raises(ValueError, match="unknown metric"):
        score_predictions(preds, refs, ("bleu",))
    with pytest.raises(ValueError, match="closed flags"):
        score_predictions(preds, refs, ("exact_match",), closed=[True])
