"""The distillation step (f2l.train.losses): the loss, a step that reads nothing back to the host, and the
chunk stage's composed adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from f2l.teacher import TeacherTarget
from f2l.train import TrainConfig, distillation_loss, step_plan

pytestmark = pytest.mark.slow


def test_distillation_loss_is_zero_when_the_student_matches_the_teacher():
    vocab, k = 10, 3
    teacher_logp = torch.tensor([[-0.1, -2.5, -4.0], [-0.3, -1.5, -3.0]])
    ids = torch.tensor([[2, 5, 7], [4, 1, 0]])
    logits = torch.full((1, 4, vocab), -30.0)
    for j in range(2):  # the student puts the teacher's (renormalised) top-k mass on the same tokens
        logits[0, 1 + j, ids[j]] = teacher_logp[j].log_softmax(-1)
    target = TeacherTarget(tokens=ids[:, 0], topk_ids=ids, topk_logprobs=teacher_logp)
    cfg = TrainConfig(kl_weight=1.0, ce_weight=0.0, top_k=k)
    loss, stats = distillation_loss(logits, [torch.tensor([2, 3])], [target], cfg)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and float(stats["kl"]) == pytest.approx(0.0, abs=1e-5)
    logits[0, 1, ids[0, 1]] += 2.0  # move mass away from the teacher: KL becomes positive
    assert distillation_loss(logits, [torch.tensor([2, 3])], [target], cfg)[0].item() > 0.01


@pytest.mark.parametrize("states", ["encoded", "cached", "chunk"])
def test_a_training_step_reads_nothing_back_to_the_host_in_f2l_code(states, tmp_path):
    """On a GPU a host sync stalls the step; CUDA's sync checker needs a GPU, so this catches the forms
    Python code can take (``item``, ``tolist``, ``bool``/``int``/``float`` of a tensor, ``cpu``, ``numpy``,
    ``nonzero``) and asserts none of them is called from f2l during a real step's forward, backward and
    clipping, with the base encoding the clips, with their states read from the state cache, and in the
    chunk stage (segments read from the cache and composed). The ones transformers makes itself (mask
    checks, SmolVLM's image split) are allowed."""
    import traceback
    from dataclasses import replace

    import f2l
    from f2l.data import world_manifest
    from f2l.pipeline import Frames2LoRA
    from f2l.train import StepBatches, load_examples, student_loss, video_prompts

    pipeline = Frames2LoRA.from_pretrained("tiny", device="cpu")
    base, hypernet = pipeline.base, pipeline.hypernet
    cfg = TrainConfig(batch_clips=2, frames=3, prompts_per_clip=2)
    pool = world_manifest("train", 4, frames=3)
    if states == "chunk":
        cfg = replace(cfg, stage="chunk", max_segments=3, train_clips=4)
        pool = load_examples(cfg)[0]
    g = torch.Generator().manual_seed(0)
    targets = {
        (e.id, row.prompt): TeacherTarget(
            tokens=torch.randint(5, 100, (3,), generator=g),
            topk_ids=torch.randint(5, 100, (3, 4), generator=g),
            topk_logprobs=torch.randn(3, 4, generator=g).log_softmax(-1),
        )
        for e in pool
        for row in video_prompts(e, cfg.qa_per_type)
    }
    size = base.model.config.vision_config.image_size
    files = None
    if states != "encoded":
        from f2l.train import fill_state_cache

        files = fill_state_cache(base, replace(cfg, state_cache=str(tmp_path), progress=False), pool, size)
    batch = StepBatches(cfg, base, pool, targets, 0, size, 0, 1, hypernet.context, files)[0]
    assert ("states" in batch) == (states != "encoded") and ("segments" in batch) == (states == "chunk")
    assert states != "chunk" or sum(batch["segments"]) > len(batch["segments"])  # some clip is composed
    package = str(Path(f2l.__file__).parent)
    torch_dir = str(Path(torch.__file__).parent)
    syncs: list[str] = []
    patched = ("item", "tolist", "__bool__", "__int__", "__float__", "cpu", "numpy", "nonzero")
    originals = {name: getattr(torch.Tensor, name) for name in patched}

    def spy(name):
        def call(*args, **kwargs):
            caller = next(f for f in reversed(traceback.extract_stack()[:-1]) if torch_dir not in f.filename)
            if caller.filename.startswith(package):
                syncs.append(f"{name} at {caller.filename}:{caller.lineno}: {caller.line}")
            return originals[name](*args, **kwargs)

        return call

    hypernet.train().requires_grad_(True)  # loaded for inference: frozen
    try:
        for name in patched:
            setattr(torch.Tensor, name, spy(name))
        loss, stats = student_loss(hypernet, base, batch, hypernet, cfg, "cpu")
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(hypernet.parameters(), 1.0)
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        hypernet.eval().requires_grad_(False)
        hypernet.zero_grad(set_to_none=True)
    assert syncs == []
    assert torch.isfinite(loss) and loss > 0 and set(stats) == {"ce", "kl"}
    assert grad_norm > 0  # the step reached the hypernetwork


@pytest.mark.parametrize("shipped", ["tiny", "paper-tiny"])
def test_a_chunk_steps_adapter_is_the_composition_of_its_segment_adapters(shipped, tmp_path, tiny_base):
    """The step reads each segment's states from the state cache and composes the segment adapters by the
    kind's rule; the result is what Frames2LoRA.internalize(chunk_frames=...) composes from the whole clip
    streamed through the base, weighted 1/n (scaled) or 1 (plain), to float16's precision (docs/training.md,
    "The chunk stage": a few 1e-5; segments on a clock restarting at 0 give 0.015-0.022)."""
    from f2l.pipeline import Frames2LoRA
    from f2l.state_cache import as_layers
    from f2l.train import StepBatches, composed_clips, fill_state_cache, load_examples

    pipeline = Frames2LoRA.from_pretrained(shipped, base=tiny_base)
    cfg = TrainConfig(
        stage="chunk", max_segments=3, frames=3, train_clips=3, batch_clips=3, state_cache=str(tmp_path),
        progress=False, kind=pipeline.hypernet.kind,
    )  # fmt: skip
    assert cfg.hypernet.context == pipeline.hypernet.context  # what the cache's states are encoded in
    pool, _ = load_examples(cfg)
    size = tiny_base.model.config.vision_config.image_size
    files = fill_state_cache(tiny_base, cfg, pool, size)
    batch = StepBatches(cfg, tiny_base, pool, _AnyTarget(), 0, size, 0, 1, pipeline.hypernet.context, files)[
        0
    ]
    clips = [pool[c] for c, _ in step_plan(cfg, 0, pool)]
    assert batch["segments"] == [c.segments for c in clips] and batch["states"].shape[0] == sum(
        batch["segments"]
    )
    assert batch["weights"].tolist() == pytest.approx([1 / c.segments for c in clips])
    with torch.no_grad():
        factors = pipeline.hypernet(None, states=as_layers(batch["states"], batch["state_mask"]))
        scaled = composed_clips(pipeline.hypernet, factors, batch["segments"], batch["weights"])
        plain = composed_clips(pipeline.hypernet, factors, batch["segments"], torch.ones(len(clips)))
    rank = pipeline.hypernet.config.rank  # the official kind adds its static block once
    assert scaled.batch_size == len(clips) and scaled.rank >= max(batch["segments"]) * rank
    for i, clip in enumerate(clips):
        want = pipeline.internalize(clip.frames(3, size), chunk_frames=3)  # plain: the sum along r
        for composed, weight in ((scaled, 1 / clip.segments), (plain, 1.0)):
            got, ref = delta_weights(composed[i]), delta_weights(want.scaled(weight))
            for m in ref:
                assert float((got[m] - ref[m]).norm() / ref[m].norm()) < 1e-3, (clip.id, m)


def delta_weights(adapter) -> dict[str, torch.Tensor]:
    """Every layer's weight change ``scaling * B^T A`` of a single adapter, by module."""
    s = adapter.scaling_tensor()
    return {m: s * torch.einsum("lri,lro->lio", a, b) for m, (a, b) in adapter.factors.items()}


class _AnyTarget(dict):
    """Targets for any (video, prompt): two tokens (the identity test looks at the adapters only)."""

    def __missing__(self, key):
        return TeacherTarget(torch.tensor([5, 6]))
