"""A step's plan (f2l.train.batches): a pure function of (seed, step), prompts drawn by their weights."""

from __future__ import annotations

import pytest

from f2l.train import TrainConfig, step_plan

pytestmark = pytest.mark.slow


def test_step_plan_is_a_pure_function_of_seed_and_step():
    from f2l.data import world_manifest

    pool = world_manifest("train", 10)
    cfg = TrainConfig(batch_clips=4, prompts_per_clip=2)
    assert step_plan(cfg, 7, pool) == step_plan(cfg, 7, pool)
    assert step_plan(cfg, 7, pool) != step_plan(cfg, 8, pool)


def test_prompt_weights_draw_a_label_as_often_as_its_weight_says():
    """Two prompts of a clip's 11 drawn without replacement, the camera caption at weight 3: it is in a
    clip's pair with probability 3/13 + (10/13)(3/12) = 0.423 (0.182 unweighted). All weights 1 is the
    unweighted plan itself, so runs before the weights draw what they drew."""
    from f2l.data import world_manifest
    from f2l.train import check_labels, video_prompts

    pool = world_manifest("train", 10)
    camera = [r.label for r in video_prompts(pool[0], 1)].index("camera")
    assert len(video_prompts(pool[0], 1)) == 11

    def share(cfg: TrainConfig) -> float:
        picks = [p for step in range(300) for _, p in step_plan(cfg, step, pool)]
        return sum(camera in p for p in picks) / len(picks)

    plain = TrainConfig(batch_clips=4)
    weighted = TrainConfig(batch_clips=4, prompt_weights=("camera=3",))
    sigma = (0.423 * 0.577 / 1200) ** 0.5
    assert share(weighted) == pytest.approx(3 / 13 + 10 / 13 * 3 / 12, abs=4 * sigma)
    assert share(plain) == pytest.approx(2 / 11, abs=4 * sigma)
    ones = TrainConfig(batch_clips=4, prompt_weights=("camera=1", "count=1"))
    assert all(step_plan(ones, s, pool) == step_plan(plain, s, pool) for s in range(20))

    check_labels(weighted, pool)
    with pytest.raises(ValueError, match="prompt_weights names .*camrea"):
        check_labels(TrainConfig(prompt_weights=("camrea=3",)), pool)
    with pytest.raises(ValueError, match="reference_labels names .*camrea"):
        check_labels(TrainConfig(reference_labels=("camrea",)), pool)
    for bad in ("camera", "camera=0", "camera=x", "=2"):
        with pytest.raises(ValueError, match="label=weight"):
            TrainConfig(prompt_weights=(bad,))
