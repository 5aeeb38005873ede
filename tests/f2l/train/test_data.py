"""What a run trains on (f2l.train.data): targets from the teacher or the references, long clips."""

from __future__ import annotations

import pytest
import torch

from f2l.train import TrainConfig, step_plan

pytestmark = pytest.mark.slow


def test_reference_labels_take_their_rows_targets_from_the_references(random_base, tmp_path):
    """``--reference-labels camera``: the camera caption's target is its reference (its tokens, no teacher
    distribution); every other row keeps the teacher's target, token for token."""
    from f2l.data import world_manifest
    from f2l.train import build_targets, video_prompts

    pool = world_manifest("train", 2, frames=3)
    common = dict(frames=3, max_new_tokens=3, teacher_cache=str(tmp_path), progress=False)
    teacher = build_targets(random_base, TrainConfig(**common), pool, 64)
    mixed = build_targets(random_base, TrainConfig(**common, reference_labels=("camera",)), pool, 64)
    assert mixed.keys() == teacher.keys() and len(mixed) == 2 * 11
    eou = random_base.tokenizer.end_of_utterance_token
    for video in pool:
        for row in video_prompts(video, 1):
            got, taught = mixed[(video.id, row.prompt)], teacher[(video.id, row.prompt)]
            if row.label == "camera":
                assert got.topk_ids is None and taught.topk_ids is not None
                text = random_base.tokenizer.decode(got.tokens)
                assert text == f" {row.reference}{eou}" and "camera" in text
            else:
                assert torch.equal(got.tokens, taught.tokens) and torch.equal(got.topk_ids, taught.topk_ids)


def test_long_clips_cycle_their_segment_counts_and_ground_truth_targets_score_one(random_base):
    from f2l.data import long_pool
    from f2l.train import build_targets, load_examples, target_scores, video_prompts

    pool = long_pool("train", 7, 3)
    assert [c.segments for c in pool] == [1, 2, 3, 1, 2, 3, 1] and len({c.id for c in pool}) == 7
    assert [len(c.segment_ids) for c in pool] == [c.segments for c in pool]
    cfg = TrainConfig(stage="chunk", max_segments=3, targets_from="ground_truth", frames=3)
    targets = build_targets(random_base, cfg, pool, 64)
    assert len(targets) == sum(len(c.items) for c in pool)
    assert target_scores(random_base, cfg, pool, targets) == {1: 1.0, 2: 1.0, 3: 1.0}

    kept = TrainConfig(stage="chunk", max_segments=3, train_clips=5, batch_clips=3, single_clips=2)
    pool = load_examples(kept)[0]
    assert [type(v).__name__ for v in pool] == ["LongClip"] * 5 + ["Example"] * 5
    for step in range(4):  # long clips first, then single ones, each with its own prompts
        plan = step_plan(kept, step, pool)
        assert [c < 5 for c, _ in plan] == [True] * 3 + [False] * 2
        assert all(len(set(p)) == 2 and max(p) < len(video_prompts(pool[c], 1)) for c, p in plan)
