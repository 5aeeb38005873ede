"""Why a base fails direction QA: its answers split by what the question needs.

    python -m probes.direction                      # the shipped tiny base, 200 test clips
    python -m probes.direction --base small --out direction.json

"which way does the red circle move?" can fail two ways: the base does not read motion off the frames
at the answer, or it reads motion but off the wrong object (binding). The world separates them. Each
direction question of a clip falls in one group:

- ``camera``: "which way does the camera move?" (the whole frame's motion, no object to find);
- ``object alone``: an object that shares no moment of the clip with another one: nothing to bind;
- ``object with others``: an object on screen together with at least one other;

and each object group splits by the camera: ``still camera`` or ``moving camera``. The answer is the
object's own motion, while a panning or zooming camera moves it on screen too (a still object under a
pan to the right slides left), so only under a still camera is the motion on screen the answer.

Greedy answers with the video in context and without it (the question alone: the prior) are scored by
token-F1 against the world's answer; per group the mean with a 95% bootstrap interval over questions.
A group at its prior with the video says the motion is not read there at all; ``object alone`` above
its prior and ``object with others`` not says binding is what fails; ``still camera`` above its prior
and ``moving camera`` not says the base reads motion on screen but cannot take the camera's out of it.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from f2l.answer import generate
from f2l.cli import entry_point
from f2l.config import parse_config as _parse_config
from f2l.data import Prompt, iter_prompts, load_frames, world_example
from f2l.eval.metrics import token_f1
from f2l.eval.stats import bootstrap_ci
from f2l.io import atomic_write_json
from f2l.models import load_base
from f2l.world import sample_truth, split_seeds

OBJECT_GROUPS = ("object alone", "object with others")
GROUPS = ("camera", *(f"{g}, {c} camera" for g in OBJECT_GROUPS for c in ("still", "moving")))
METHODS = ("direct", "no_video")


@dataclass
class DirectionConfig:
    base: str = "tiny"
    clips: int = 200  # test-split clips (about 3 direction questions each, 1 in 3 of a lone object)
    offset: int = 3000  # past the clips the pretraining scores itself on
    frames: int = 8
    batch_size: int = 32
    out: str | None = None  # also write the table here (JSON)


def question_group(prompt: Prompt) -> str:
    """The group of one direction question of a world clip (see the module docstring)."""
    if prompt.prompt == "which way does the camera move?":
        return "camera"
    truth = sample_truth(prompt.example.video.world_seed)
    (asked,) = [o for o in truth.objects if f"the {o.name} move?" in prompt.prompt]
    together = any(
        o is not asked and o.appear < asked.leave and asked.appear < o.leave for o in truth.objects
    )
    camera = "still" if truth.camera == "still" else "moving"
    return f"{OBJECT_GROUPS[together]}, {camera} camera"


def direction_scores(cfg: DirectionConfig) -> dict:
    """Per group and method: questions, mean token-F1 and its 95% bootstrap interval; plus the commonest
    answers with the video (a base at its prior answers a few directions to everything)."""
    base = load_base(cfg.base)
    size = base.model.config.vision_config.image_size
    rows = [
        row
        for seed in split_seeds("test", cfg.clips, offset=cfg.offset)
        for row in iter_prompts(
            [world_example(seed, split="test", frames=cfg.frames)], kinds=("qa",), qa_types=("direction",)
        )
    ]
    groups = np.array([question_group(r) for r in rows])
    questions = [r.prompt for r in rows]
    clips = {r.example.id: load_frames(r.example, size=size) for r in rows}  # each clip rendered once
    videos = [clips[r.example.id] for r in rows]
    answers = {
        method: [
            a.text
            for a in generate(base, questions, videos=vids, max_new_tokens=8, batch_size=cfg.batch_size)
        ]
        for method, vids in (("direct", videos), ("no_video", None))
    }
    f1 = {
        m: np.array([token_f1(a, r.reference) for a, r in zip(answers[m], rows, strict=True)])
        for m in METHODS
    }
    table = {}
    for group in GROUPS:
        mask = groups == group
        table[group] = {"questions": int(mask.sum())}
        for method in METHODS:
            scores = f1[method][mask]
            low, high = bootstrap_ci(scores, 0.95) if len(scores) > 1 else (float("nan"), float("nan"))
            table[group][method] = {
                "token_f1": float(scores.mean()) if len(scores) else float("nan"),
                "ci95": [low, high],
            }
    commonest = dict(Counter(answers["direct"]).most_common(5))
    return {"config": asdict(cfg), "groups": table, "commonest_direct_answers": commonest}


def markdown(result: dict) -> str:
    lines = [
        "| question needs | questions | with the video | question alone |",
        "| --- | ---: | ---: | ---: |",
    ]
    for group, row in result["groups"].items():
        cells = [
            f"{row[m]['token_f1']:.2f} [{row[m]['ci95'][0]:.2f}, {row[m]['ci95'][1]:.2f}]" for m in METHODS
        ]
        lines.append(f"| {group} | {row['questions']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def parse_config(argv: list[str] | None = None) -> DirectionConfig:
    return _parse_config(
        DirectionConfig, argv, prog="python -m probes.direction", description=__doc__.split("\n\n")[0]
    )


@entry_point
def main(argv: list[str]) -> int:
    cfg = parse_config(argv)
    result = direction_scores(cfg)
    print(markdown(result))
    print(f"commonest answers with the video: {result['commonest_direct_answers']}", file=sys.stderr)
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
