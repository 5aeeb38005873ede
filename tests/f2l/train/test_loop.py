"""Distillation training (f2l.train.loop): a short run, bit-exact resume after SIGKILL, 2-rank DDP, workers,
the chunk stage, the camera head, and starting from another hypernetwork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from f2l.teacher import TeacherTarget
from f2l.train import TrainConfig, parse_config, train

pytestmark = pytest.mark.slow


def small_args(base_dir: Path, out: Path, cache: Path, steps: int, states: Path | None = None) -> list[str]:
    """A 6-clip, 3-frame run; teacher targets under ``cache``, base states there too unless ``states``."""
    return [
        "--base", str(base_dir), "--out", str(out), "--teacher-cache", str(cache), "--steps", str(steps),
        "--state-cache", str(states or cache),
        "--train-clips", "6", "--val-clips", "1", "--batch-clips", "4", "--frames", "3", "--qa-per-type", "1",
        "--max-new-tokens", "4", "--f2l.width", "32", "--f2l.num-latents", "4", "--f2l.num-heads", "2",
        "--f2l.self-blocks", "1", "--f2l.rank", "2", "--eval-every", "1000", "--save-every", "2",
        "--keep-last", "2", "--lr", "3e-3", "--no-progress", "--no-tensorboard",
    ]  # fmt: skip


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
    return load_file(ckpt / "hypernet.safetensors")


def chunk_args(base_dir: Path, out: Path, cache: Path, steps: int) -> list[str]:
    """``small_args`` as a chunk stage: 3 long clips of 1-3 segments of 3 frames and 3 single clips, 2 long
    clips and 1 single clip x 2 prompts a step."""
    return [
        *small_args(base_dir, out, cache, steps),
        "--train-clips", "3", "--stage", "chunk", "--max-segments", "3", "--batch-clips", "2",
        "--single-clips", "1", "--prompts-per-clip", "2", "--targets-from", "ground_truth",
    ]  # fmt: skip


def _run(args: list[str], env_extra: dict | None = None, module: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen(
        [*(module or [sys.executable, "-m", "f2l.train"]), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_short_run_lowers_the_loss_and_writes_its_artifacts(tmp_path, random_tiny_dir):
    out = tmp_path / "run"
    ship = tmp_path / "shipped"
    args = [*small_args(random_tiny_dir, out, tmp_path / "cache", 12), "--ship", str(ship)]
    summary = train(parse_config(args))
    log = [line for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 12 and {"f2l", "direct", "no_video", "f2l_vs_direct"} <= set(summary["val"])
    losses = [float(__import__("json").loads(line)["loss"]) for line in log]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000010", "step-0000012"]
    assert {p.name for p in (out / "checkpoints" / "step-0000012").iterdir()} == {
        "hypernet.safetensors",
        "hypernet_config.json",
        "optimizer.safetensors",
        "optimizer.json",
        "trainer_state.json",
    }
    from f2l.pipeline import Frames2LoRA

    shipped = Frames2LoRA.from_pretrained(ship)  # loads with its base, checked against the digest
    trained = final_weights(out)
    assert all(torch.equal(v, shipped.hypernet.state_dict()[k]) for k, v in trained.items())
    meta = __import__("json").loads((ship / "hypernet_config.json").read_text())
    assert meta["summary"]["val_token_f1"] == summary["val"] and meta["step"] == 12
    assert (ship / "train_log.jsonl").read_text() == (out / "log.jsonl").read_text()


def test_official_kind_trains_reads_its_own_context_and_resumes_as_its_kind(tmp_path, random_tiny_dir):
    """The official design through the same loop: CE only, its internalization prompt (no assistant
    cue) in every step's encoder inputs, and checkpoints that load back as the official kind."""
    from f2l.data import clip_prompts
    from f2l.hypernet import OfficialHypernet, load_hypernet
    from f2l.models import load_base
    from f2l.train import StepBatches, build_hypernet, load_examples

    out = tmp_path / "official"
    args = [*small_args(random_tiny_dir, out, tmp_path / "cache", 4), "--preset", "paper-tiny"]
    args += ["--official.latent", "16", "--official.n-latent-queries", "2", "--official.num-blocks", "1"]
    args += ["--official.rank", "2", "--official.lora-alpha", "5.6568"]
    cfg = parse_config(args)
    train(cfg)
    hypernet = load_hypernet(sorted((out / "checkpoints").glob("step-*"))[-1])
    assert isinstance(hypernet, OfficialHypernet) and hypernet.config.rank == 2
    assert hypernet.config.module_shapes.keys() == {"down_proj"}
    log = [__import__("json").loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all("kl" not in r and r["ce"] == pytest.approx(r["loss"]) for r in log)  # CE only

    base = load_base(random_tiny_dir)
    pool, _ = load_examples(cfg)
    fresh = build_hypernet(cfg, base)
    targets = {
        (e.id, p.prompt): TeacherTarget(torch.tensor([5, 6])) for e in pool for p in clip_prompts(e, 1)
    }
    batches = StepBatches(cfg, base, pool, targets, 0, 64, 0, 1, fresh.context)
    text = base.tokenizer.decode(batches[0]["encode"]["input_ids"][0])
    assert "Internalize this video for later captioning." in text and "Assistant:" not in text


def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path, random_tiny_dir):
    cache = tmp_path / "cache"
    steps = 8
    # each run fills its own state cache: the one cut and resumed reads entries it encoded itself
    full = _run(small_args(random_tiny_dir, tmp_path / "full", cache, steps, tmp_path / "states-full"))
    assert full.wait(timeout=600) == 0, full.stdout.read()

    killed = _run(small_args(random_tiny_dir, tmp_path / "killed", cache, steps, tmp_path / "states"))
    deadline = time.time() + 600
    while not (tmp_path / "killed" / "checkpoints" / "step-0000004").exists():
        assert killed.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "checkpoints" / f"step-{steps:07d}").exists()

    resumed = _run(small_args(random_tiny_dir, tmp_path / "killed", cache, steps, tmp_path / "states"))
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "resuming" in output
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_ddp_ranks_train_the_same_weights_as_one_process(tmp_path, random_tiny_dir):
    cache = tmp_path / "cache"
    one = _run(small_args(random_tiny_dir, tmp_path / "one", cache, 4))
    assert one.wait(timeout=600) == 0, one.stdout.read()
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "f2l.train",
    ]
    # the two ranks fill a state cache of their own, a share each
    two = _run(
        small_args(random_tiny_dir, tmp_path / "two", cache, 4, tmp_path / "states-two"), module=torchrun
    )
    output = two.communicate(timeout=600)[0]
    assert two.returncode == 0, output
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    # Adam's normalised updates turn reduction-order rounding (~1e-7) into ~1e-5 weight differences;
    # ranks that did not share gradients would differ by the size of the updates themselves (~1e-2)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-4, rtol=1e-3)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(
    tmp_path, random_tiny_dir, monkeypatch
):
    import f2l.train.losses as losses_module

    out = tmp_path / "run"

    def args(steps: int) -> list[str]:  # with the base encoding in every step (no state cache)
        return [*small_args(random_tiny_dir, out, tmp_path / "cache", steps), "--state-cache", ""]

    train(parse_config(args(2)))
    before = final_weights(out)
    real = losses_module.distillation_loss
    monkeypatch.setattr(
        losses_module, "distillation_loss", lambda *a, **k: (real(*a, **k)[0] * float("nan"), {})
    )
    with pytest.raises(FloatingPointError, match=r"non-finite loss .* at step 3: .*step-0000002"):
        train(parse_config(args(4)))
    after = final_weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_dataloader_workers_prepare_the_same_steps(tmp_path, random_tiny_dir):
    """Steps prepared ahead by two DataLoader worker processes train exactly the same weights."""
    for workers in (0, 2):
        args = small_args(random_tiny_dir, tmp_path / f"w{workers}", tmp_path / "cache", 4)
        train(parse_config([*args, "--workers", str(workers)]))
    a, b = final_weights(tmp_path / "w0"), final_weights(tmp_path / "w2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_start_from_loads_a_hypernetwork_of_the_same_architecture_only(tmp_path, random_base):
    from f2l.train import build_hypernet, start_from

    cfg = parse_config(["--base", "tiny", "--f2l.width", "32", "--f2l.num-latents", "4", "--f2l.rank", "2"])
    torch.manual_seed(1)
    trained = build_hypernet(cfg, random_base)
    trained.save(tmp_path / "h")
    torch.manual_seed(2)
    fresh = build_hypernet(cfg, random_base)
    assert not torch.equal(fresh.state_dict()["latents"], trained.state_dict()["latents"])
    start_from(fresh, str(tmp_path / "h"), random_base)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in fresh.state_dict().items())
    wider = build_hypernet(
        parse_config(["--f2l.width", "64", "--f2l.num-latents", "4", "--f2l.rank", "2"]), random_base
    )
    with pytest.raises(ValueError, match="is not the"):
        start_from(wider, str(tmp_path / "h"), random_base)


def test_start_from_continues_the_camera_head_a_checkpoint_holds(tmp_path, random_base):
    """A staged recipe with ``--camera-weight`` continues the previous stage's head; from a directory
    without one (a packaged hypernetwork) the head stays as it was built."""
    from safetensors.torch import save_file

    from f2l.camera_head import WEIGHTS_FILE, CameraHead
    from f2l.train import build_hypernet, start_from

    cfg = parse_config(["--base", "tiny", "--f2l.width", "32", "--f2l.num-latents", "4", "--f2l.rank", "2"])
    torch.manual_seed(1)
    trained = CameraHead(build_hypernet(cfg, random_base))
    trained.hypernet.save(tmp_path / "packaged")
    trained.hypernet.save(tmp_path / "checkpoint")
    save_file(trained.linear.state_dict(), str(tmp_path / "checkpoint" / WEIGHTS_FILE))
    for source, head_follows in (("checkpoint", True), ("packaged", False)):
        torch.manual_seed(2)
        fresh = CameraHead(build_hypernet(cfg, random_base))
        built = {k: v.clone() for k, v in fresh.linear.state_dict().items()}
        start_from(fresh, str(tmp_path / source), random_base)
        assert all(
            torch.equal(v, trained.hypernet.state_dict()[k]) for k, v in fresh.hypernet.state_dict().items()
        )
        expected = trained.linear.state_dict() if head_follows else built
        assert all(torch.equal(v, expected[k]) for k, v in fresh.linear.state_dict().items()), source
        assert not torch.equal(
            fresh.linear.weight, (built if head_follows else trained.linear.state_dict())["weight"]
        )


def test_chunk_stage_trains_and_resumes_to_the_same_weights(tmp_path, random_tiny_dir, monkeypatch):
    """Four chunk steps straight, and the same run cut after step 2 and rerun: the same weights; the
    evaluation reports the composed adapter on held-out long clips (the rerun skips it: it reads no
    weights' gradient and draws no random number)."""
    import json
    import shutil

    import f2l.train.loop as loop_module

    out = tmp_path / "run"
    summary = train(parse_config(chunk_args(random_tiny_dir, out, tmp_path / "cache", 4)))
    assert {"f2l", "composed"} <= set(summary["val"]) and 0 <= summary["val"]["composed"] <= 1
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # the long clips' targets are their references (CE only), the single clips' the teacher's (KL too)
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all("kl" in r for r in log)

    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    shutil.rmtree(cut / "checkpoints" / "step-0000004")
    monkeypatch.setattr(loop_module, "evaluate", lambda *a, **k: {})
    train(parse_config(chunk_args(random_tiny_dir, cut, tmp_path / "cache", 4)))
    a, b = final_weights(out), final_weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_camera_head_trains_beside_the_hypernetwork_resumes_exactly_and_is_not_shipped(
    tmp_path, random_tiny_dir, monkeypatch
):
    """``--camera-weight``: the head's cross-entropy (f2l.camera_head) joins the loss and is logged; a run
    cut after step 2 and rerun ends with the same hypernetwork and head; the packaged hypernetwork holds
    no head; the chunk stage refuses it."""
    import json
    import shutil

    import f2l.train.loop as loop_module
    from f2l.camera_head import WEIGHTS_FILE
    from f2l.world import CAMERAS

    out, ship = tmp_path / "run", tmp_path / "shipped"
    args = [*small_args(random_tiny_dir, out, tmp_path / "cache", 4), "--camera-weight", "0.5"]
    train(parse_config([*args, "--ship", str(ship)]))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(abs(r["camera_ce"] - 1.609) < 0.5 for r in log)  # ln 5 at the start, 4 steps at 3e-3
    ckpt = sorted((out / "checkpoints").glob("step-*"))[-1]
    head = load_file(ckpt / WEIGHTS_FILE)
    assert head["weight"].shape == (len(CAMERAS), 32)
    assert not (ship / WEIGHTS_FILE).exists() and (ship / "hypernet.safetensors").exists()

    cut = tmp_path / "cut"
    shutil.copytree(out, cut)
    shutil.rmtree(cut / "checkpoints" / "step-0000004")
    monkeypatch.setattr(loop_module, "evaluate", lambda *a, **k: {})
    train(parse_config(
        [*small_args(random_tiny_dir, cut, tmp_path / "cache", 4), "--camera-weight", "0.5"]
    ))  # fmt: skip
    a, b = final_weights(out), final_weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = load_file(sorted((cut / "checkpoints").glob("step-*"))[-1] / WEIGHTS_FILE)
    assert all(torch.equal(head[k], again[k]) for k in head)

    with pytest.raises(ValueError, match="camera_weight"):
        TrainConfig(camera_weight=0.5, stage="chunk")
