"""What a base's visual tokens hold: linear probes on the world's ground truth, layer by layer.

    python -m probes.linear_probes                        # the shipped tiny base
    python -m probes.linear_probes --base runs/recipe/tiny-stage1 --out probes.json

Before a base can say which way an object moves it has to know where each visual token sits in the
frame and compare that across frames. This measures both: a softmax-regression probe, fitted on half
of the train-split cells and scored on the other half, reads

- ``cell``: which of the frame's cells a connector token is (chance 1 / cells a frame), and
- ``motion``: how the object covering a cell moves (cells more than half covered, from the second
  frame on), from the text model's states at the visual tokens after each decoder layer (0: the
  embeddings, i.e. the connector's output), against always guessing the commonest class.

- ``object_motion``: how an object moves, from the mean of the states at the cells it covers more than
  half (from the second frame on), one example per object: the read a question would get if it found
  exactly the named object's tokens (binding done perfectly), so what is left is whether they hold it.

- ``direction_at_answer``: the answer to "which way does the <object> move?" from the states at the
  position that predicts the answer's first token (the end of the prompt), after each layer, beside
  the same probe on the same questions asked without the video (what the question alone gives away):
  where the question has (or has not) looked the named object's motion up.

A probe above its baseline says the information is there in linear form; at the baseline, that the
base has not computed it (or not linearly).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from f2l.basetrain.pretrain import PretrainConfig, training_batch
from f2l.cli import entry_point
from f2l.config import parse_config
from f2l.io import atomic_write_json
from f2l.models import load_base
from f2l.world import CAMERAS


@dataclass
class ProbeConfig:
    base: str = "tiny"
    batches: int = 12  # of batch_size train-split clips each
    batch_size: int = 16
    frames: int = 8
    seed: int = 1
    steps: int = 300  # full-batch optimisation steps per probe
    camera: str | None = None  # probe clips of this camera motion only ("still": motion on screen is own)
    out: str | None = None  # also write the accuracies here (JSON)


def fit_probe(x: torch.Tensor, y: torch.Tensor, steps: int = 300, seed: int = 0) -> dict[str, float]:
    """Held-out accuracy of a softmax regression from ``x`` (n, d) to labels ``y`` (n,): fitted on a
    random half (standardised by that half's statistics, light L2), scored on the other half, beside
    the accuracy of always answering the fitted half's commonest label."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    fit, held = order[: len(y) // 2], order[len(y) // 2 :]
    mean, std = x[fit].mean(0), x[fit].std(0) + 1e-6
    z = (x - mean) / std
    classes = int(y.max()) + 1
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(z[fit] @ w + b, y[fit]) + 1e-4 * w.square().sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = ((z[held] @ w + b).argmax(1) == y[held]).float().mean().item()
    commonest = torch.bincount(y[fit], minlength=classes).argmax()
    return {
        "accuracy": accuracy,
        "baseline": (y[held] == commonest).float().mean().item(),
        "n": len(y),
        "classes": classes,
    }


@torch.inference_mode()
def collect(base, cfg: ProbeConfig):
    """States at the visual tokens (per hidden layer) with each token's cell and per-cell motion target,
    and per object its tokens (cells it covers more than half, second frame on) and motion class."""
    batch_cfg = _batch_config(cfg, batch_size=cfg.batch_size, no_video_share=0.0)
    rng = np.random.default_rng(cfg.seed)
    states, cells, motion, objects, object_motion = [], [], [], [], []
    image_token = base.model.config.image_token_id
    offset = 0  # of the clip's first token among all collected ones
    for _ in tqdm(range(cfg.batches), desc="linear probes: states", unit="batch"):
        batch, targets = training_batch(base, rng, batch_cfg)
        batch.pop("labels")
        out = base.model(**batch, output_hidden_states=True)
        visual = batch["input_ids"] == image_token
        states.append(torch.stack([h[visual] for h in out.hidden_states]))  # (layers + 1, tokens, width)
        for t in targets:
            frames, per_frame, _ = t["motion"].shape
            cells.append(np.tile(np.arange(per_frame), frames))
            m = t["motion"].copy()
            m[0] = 0.0  # no motion is visible in a clip's first frame
            motion.append(m.reshape(frames * per_frame, -1))
            for color in range(1, t["color"].shape[-1]):  # colours are unique within a clip
                mine = t["color"][..., color] > 0.5
                mine[0] = False
                if mine.any():
                    objects.append(offset + np.flatnonzero(mine.reshape(-1)))
                    object_motion.append(int(t["motion"][mine].sum(0)[1:].argmax()))
            offset += frames * per_frame
    return (
        torch.cat(states, 1).float(),
        torch.from_numpy(np.concatenate(cells)),
        torch.from_numpy(np.concatenate(motion)),
        objects,
        torch.tensor(object_motion),
    )


def _batch_config(cfg: ProbeConfig, **fields) -> PretrainConfig:
    """Batches of ``cfg.frames``-frame train clips; of ``cfg.camera`` clips only when it is set."""
    focus = {"focus_qa": "direction", "focus_share": 1.0, "focus_camera": cfg.camera} if cfg.camera else {}
    return PretrainConfig(min_frames=cfg.frames, max_frames=cfg.frames, **{**focus, **fields})


@torch.inference_mode()
def collect_direction_answers(base, cfg: ProbeConfig, video: bool = True):
    """States (per hidden layer) at the last prompt token of direction questions asked with the video
    (or the same questions without it), and each question's answer as a class index (with the answers'
    names)."""
    batch_cfg = _batch_config(
        cfg,
        batch_size=cfg.batch_size,
        no_video_share=0.0 if video else 1.0,
        focus_qa="direction",
        focus_share=1.0,
        grounding_weight=0.0,
        temporal_weight=0.0,
    )
    rng = np.random.default_rng(cfg.seed + 1)
    states, answers = [], []
    for _ in tqdm(range(cfg.batches), desc="linear probes: questions", unit="batch"):
        batch, _ = training_batch(base, rng, batch_cfg)
        labels = batch.pop("labels")
        out = base.model(**batch, output_hidden_states=True)
        first = (labels != -100).int().argmax(1)  # the answer's first token; the state before predicts it
        rows = torch.arange(len(first))
        states.append(torch.stack([h[rows, first - 1] for h in out.hidden_states]))
        for row, label in zip(batch["input_ids"], labels, strict=True):
            text = base.tokenizer.decode(row[label != -100], skip_special_tokens=True)
            answers.append(text.strip().rstrip("."))
    names = sorted(set(answers))
    return torch.cat(states, 1).float(), torch.tensor([names.index(a) for a in answers]), names


def run(cfg: ProbeConfig) -> dict:
    if cfg.camera is not None and cfg.camera not in CAMERAS:
        raise ValueError(f"--camera must be one of {', '.join(CAMERAS)}")
    base = load_base(cfg.base, device="cpu")
    states, cells, motion, objects, object_motion = collect(base, cfg)
    asked, answer, names = collect_direction_answers(base, cfg)
    blind, blind_answer, _ = collect_direction_answers(base, cfg, video=False)
    if not torch.equal(answer, blind_answer):
        raise RuntimeError("the blind control must ask the same questions")
    covered = motion[:, 1:].sum(1) > 0.5  # column 0 is "no object"
    moving_class = motion[covered, 1:].argmax(1)
    results = {
        "config": asdict(cfg),
        "cell": fit_probe(states[0], cells, cfg.steps, cfg.seed),
        "motion_by_layer": [fit_probe(layer[covered], moving_class, cfg.steps, cfg.seed) for layer in states],
        "object_motion_by_layer": [
            fit_probe(torch.stack([layer[i].mean(0) for i in objects]), object_motion, cfg.steps, cfg.seed)
            for layer in states
        ],
        "direction_answers": names,
        "direction_at_answer_by_layer": [fit_probe(layer, answer, cfg.steps, cfg.seed) for layer in asked],
        "direction_at_answer_blind_by_layer": [fit_probe(x, answer, cfg.steps, cfg.seed) for x in blind],
    }
    cell = results["cell"]
    print(
        f"cell from connector tokens: {cell['accuracy']:.3f} (chance {1 / cell['classes']:.3f})",
        file=sys.stderr,
    )
    for i, r in enumerate(results["motion_by_layer"]):
        print(
            f"object motion after layer {i}: {r['accuracy']:.3f} (commonest {r['baseline']:.3f}, n {r['n']})",
            file=sys.stderr,
        )
    for i, r in enumerate(results["object_motion_by_layer"]):
        print(
            f"an object's motion from the mean of its cells after layer {i}: {r['accuracy']:.3f} "
            f"(commonest {r['baseline']:.3f}, n {r['n']} objects)",
            file=sys.stderr,
        )
    seen, blind_fit = results["direction_at_answer_by_layer"], results["direction_at_answer_blind_by_layer"]
    for i, (r, b) in enumerate(zip(seen, blind_fit, strict=True)):
        print(
            f"asked direction at the answer position after layer {i}: {r['accuracy']:.3f} with the video, "
            f"{b['accuracy']:.3f} without (commonest {r['baseline']:.3f}, n {r['n']})",
            file=sys.stderr,
        )
    if cfg.out:
        atomic_write_json(Path(cfg.out), results)
    return results


def parse_args(argv: list[str] | None = None) -> ProbeConfig:
    return parse_config(
        ProbeConfig, argv, prog="python -m probes.linear_probes", description=__doc__.split("\n\n")[0]
    )


@entry_point
def main(argv: list[str]) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
