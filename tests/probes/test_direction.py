"""``probes.direction``: a base's direction answers split by what the question needs."""

from __future__ import annotations

import json

from f2l.data import iter_prompts, world_example
from f2l.world import sample_truth, split_seeds
from probes.direction import GROUPS, main, question_group


def direction_prompts(clips: int):
    for seed in split_seeds("test", clips):
        yield from iter_prompts([world_example(seed, split="test")], kinds=("qa",), qa_types=("direction",))


def test_every_direction_question_falls_in_the_group_its_clip_says():
    seen = set()
    for prompt in direction_prompts(60):
        group = question_group(prompt)
        seen.add(group)
        truth = sample_truth(prompt.example.video.world_seed)
        objects = truth.objects
        if group == "camera":
            assert "camera" in prompt.prompt
            continue
        assert group.endswith("still camera" if truth.camera == "still" else "moving camera")
        if len(objects) == 1:
            assert group.startswith("object alone")
        else:  # an object alone in a clip of several only when none of the others overlaps it in time
            (asked,) = [o for o in objects if o.name in prompt.prompt]
            spans = [(o.appear, o.leave) for o in objects if o is not asked]
            overlaps = [a < asked.leave and asked.appear < b for a, b in spans]
            assert group.startswith("object with others") == any(overlaps)
    assert seen == set(GROUPS)


def test_scores_per_group_on_the_shipped_base(tmp_path):
    out = tmp_path / "direction.json"
    assert main(["--clips", "6", "--offset", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["clips"] == 6
    questions = sum(1 for _ in direction_prompts(6))
    assert sum(row["questions"] for row in result["groups"].values()) == questions
    camera = result["groups"]["camera"]
    assert camera["questions"] == 6  # one camera question a clip
    for method in ("direct", "no_video"):
        score = camera[method]
        assert 0.0 <= score["token_f1"] <= 1.0
        assert score["ci95"][0] <= score["token_f1"] <= score["ci95"][1]
    assert sum(result["commonest_direct_answers"].values()) <= questions
