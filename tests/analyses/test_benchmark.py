"""``python -m analyses.benchmark`` end to end on the shipped tiny checkpoints (2 test clips), its
statistics on synthetic scores with known shifts, resume after an interruption, and 2 torchrun ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from support import REPO

import analyses.benchmark as benchmark
from f2l.config import parse_config
from f2l.results import read_netcdf

ROOT = REPO
TINY = ["--clips", "2", "--max-new-tokens", "8"]
#: 2 clips, 2 methods, 3 prompts a clip: the runs that only check bookkeeping (resume, ranks).
SMALL = [
    *TINY,
    "--methods",
    "direct",
    "f2l",
    "--metrics",
    "token_f1",
    "--benchmarks",
    "background",
    "camera",
    "attribute",
]


#: Two caption categories and three QA types: open and closed items, the video visible and not.
FIVE = ["short", "detailed", "camera", "attribute", "yes_no"]


def config(out: Path, args: list[str]) -> benchmark.BenchmarkConfig:
    return parse_config(benchmark.BenchmarkConfig, ["--out", str(out), *args], prog="test")


@pytest.fixture(scope="module")
def pipeline():
    from f2l.pipeline import Frames2LoRA

    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture
def reuse_pipeline(pipeline, monkeypatch):
    """Every run in this process answers with the one loaded pipeline (loading costs seconds)."""
    monkeypatch.setattr(benchmark.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)


@pytest.fixture(scope="module")
def reference(pipeline, tmp_path_factory):
    """An uninterrupted ``main`` run of the default methods (direct f2l no_video kv_cache) and every
    metric on 2 clips."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(benchmark.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
        assert benchmark.main(["--out", str(out), *TINY, "--benchmarks", *FIVE]) == 0
    return out, read_netcdf(out / "benchmark.nc")


@pytest.fixture(scope="module")
def small(pipeline, tmp_path_factory):
    """An uninterrupted single-process run of the SMALL settings."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(benchmark.Frames2LoRA, "from_pretrained", lambda *a, **k: pipeline)
        return benchmark.run(config(tmp_path_factory.mktemp("small"), SMALL))


def test_end_to_end_dataset(reference):
    out, ds = reference
    assert list(ds["method"].values) == ["direct", "f2l", "no_video", "kv_cache"]
    assert list(ds["metric"].values) == ["token_f1", "exact_match", "embedding"]
    assert ds.sizes["example_id"] == 10 and ds.sizes["failure"] == 0  # 2 clips x 5 prompts
    assert list(ds["benchmark"].values[:5]) == FIVE
    assert sorted(set(ds["clip"].values)) == ["world-1010000", "world-1010001"]
    assert ds["score"].dims == ("example_id", "method", "metric")
    f1 = ds["score"].sel(metric="token_f1")
    assert float(f1.min()) >= 0 and float(f1.max()) <= 1
    # kv_cache is direct, token for token
    np.testing.assert_array_equal(
        ds["prediction"].sel({"method": "kv_cache"}), ds["prediction"].sel({"method": "direct"})
    )
    # exact match only on closed QA: every world question, no caption
    em = ds["score"].sel(metric="exact_match")
    captions = ds["kind"] == "caption"
    assert bool(em.where(captions, drop=True).isnull().all())
    assert bool(em.where(~captions, drop=True).notnull().all())
    assert bool(ds["closed"].values.astype(bool).tolist() == (~captions).values.tolist())
    emb = ds["score"].sel(metric="embedding")
    assert float(emb.min()) > -1 and float(emb.max()) <= 1.0 + 1e-6
    # exact agreement with the reference gives exact match 1 and embedding ~1
    same = ds["prediction"].sel({"method": "direct"}).values == ds["reference"].values
    assert same.any()
    np.testing.assert_allclose(emb.sel({"method": "direct"}).values[same], 1.0, atol=1e-5)
    np.testing.assert_array_equal(em.sel({"method": "direct"}).values[same & ~captions.values], 1.0)
    assert bool(ds["ttft_s"].isnull().all()), "untimed run"
    assert ds.attrs["study"] == "benchmark" and ds.attrs["base_model"].startswith("tiny@")


def test_end_to_end_statistics_and_summary(reference):
    out, ds = reference
    assert list(ds["contrast"].values) == ["f2l - direct", "no_video - direct", "kv_cache - direct"]
    assert list(ds["suite"].values) == list(dict.fromkeys(ds["benchmark"].values))
    for name in ("diff_mean", "ci_low", "ci_high", "p_equivalence", "p_noninferiority", "verdict"):
        assert ds[name].dims == ("contrast", "suite", "metric")
    kv = ds.sel(contrast="kv_cache - direct", metric="token_f1")
    assert set(kv["verdict"].values) == {"equivalent"}
    np.testing.assert_array_equal(kv["diff_mean"], 0.0)
    assert set(ds["verdict"].sel(metric="exact_match", suite="detailed").values) == {"not tested"}
    # the mean difference is the mean over clips of the per-clip difference
    f1 = ds["score"].sel(metric="token_f1")
    diff = (f1.sel({"method": "f2l"}) - f1.sel({"method": "direct"})).where(
        ds["benchmark"] == "camera", drop=True
    )
    got = float(ds["diff_mean"].sel(contrast="f2l - direct", suite="camera", metric="token_f1"))
    assert got == pytest.approx(float(diff.mean()))
    assert int(ds["n_clips"].sel(contrast="f2l - direct", suite="camera", metric="token_f1")) == 2
    mean_direct = float(ds["mean_score"].sel({"suite": "camera", "method": "direct", "metric": "token_f1"}))
    assert mean_direct == pytest.approx(
        float(f1.sel({"method": "direct"}).where(ds["benchmark"] == "camera").mean())
    )
    md = (out / "benchmark.md").read_text()
    assert "| benchmark | clips | direct | f2l | no_video | kv_cache | f2l - direct |" in md
    assert "- `kv_cache - direct`: 5 equivalent of 5 benchmarks" in md


def _synthetic(shift_same: float, shift_worse: float, clips: int = 30, no_video: bool = False) -> xr.Dataset:
    """Two suites, two prompts per clip on each: f2l = direct + a known shift + small noise; with
    ``no_video``, a third method equal to direct on "same" and 0.4 below it on "worse"."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(clips):
        for suite, shift in (("same", shift_same), ("worse", shift_worse)):
            for _ in range(2):
                direct = rng.uniform(0.3, 0.7)
                blind = direct - (0.4 if suite == "worse" else 0.0)
                rows.append((f"clip{c}", suite, direct, direct + shift + rng.normal(0, 0.02), blind))
    clip, suite, *scores = zip(*rows, strict=True)
    methods = ["direct", "f2l", "no_video"][: 3 if no_video else 2]
    score = np.stack(scores[: len(methods)], 1)[:, :, None]
    return xr.Dataset(
        {"score": (("example_id", "method", "metric"), score)},
        coords={
            "example_id": [f"{c}/{s}{i}" for i, (c, s) in enumerate(zip(clip, suite, strict=True))],
            "method": methods,
            "metric": ["token_f1"],
            "clip": ("example_id", list(clip)),
            "benchmark": ("example_id", list(suite)),
        },
    )


def test_statistics_give_the_verdict_of_a_known_shift():
    ds = benchmark.add_statistics(_synthetic(0.0, -0.3), margin=0.05)
    at = ds.sel(contrast="f2l - direct", metric="token_f1")
    assert str(at["verdict"].sel(suite="same").values) == "equivalent"
    assert str(at["verdict"].sel(suite="worse").values) == "inferior"
    assert float(at["diff_mean"].sel(suite="worse")) == pytest.approx(-0.3, abs=0.01)
    worse = at.sel(suite="worse")
    assert float(worse["ci_low"]) < float(worse["diff_mean"]) < float(worse["ci_high"])
    assert float(worse["ci_high"]) - float(worse["ci_low"]) < 0.02
    assert int(at["n_clips"].sel(suite="same")) == 30  # clips are the unit, not prompts
    # a shift just inside the margin is non-inferior but not equivalent
    inside = benchmark.add_statistics(_synthetic(+0.08, -0.3), margin=0.05)
    assert str(inside["verdict"].sel(contrast="f2l - direct", metric="token_f1", suite="same").values) == (
        "non-inferior"
    )
    assert inside.attrs["margin"] == 0.05


def test_summary_names_the_benchmarks_the_video_does_not_matter_on():
    md = benchmark.summary(benchmark.add_statistics(_synthetic(0.0, -0.3, no_video=True)))
    assert "| benchmark | clips | direct | f2l | no_video | f2l - direct | no_video - direct |" in md
    assert "- the question alone is equivalent to the video on same: " in md
    assert "- `no_video - direct`: 1 equivalent, 1 inferior of 2 benchmarks" in md


def test_statistics_are_holm_adjusted_across_suites():
    from f2l.eval.stats import compare_paired, holm

    ds = _synthetic(-0.03, -0.04)
    stats = benchmark.add_statistics(ds, margin=0.05).sel(contrast="f2l - direct", metric="token_f1")
    clips = benchmark.per_clip_scores(ds, "token_f1")
    raw = [
        compare_paired(clips.loc[s, "f2l"].values, clips.loc[s, "direct"].values, margin=0.05).p_equivalent
        for s in ("same", "worse")
    ]
    adjusted = stats["p_equivalence"].sel(suite=["same", "worse"]).values
    np.testing.assert_allclose(adjusted, holm(raw))
    assert all(adjusted >= raw) and adjusted.min() > min(raw)


def test_resume_after_an_interruption_recomputes_nothing(small, reuse_pipeline, tmp_path, monkeypatch):
    answer_clip, calls = benchmark.answer_clip, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return answer_clip(*args, **kwargs)

    monkeypatch.setattr(benchmark, "answer_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        benchmark.run(config(tmp_path, SMALL))
    assert len(list((tmp_path / "benchmark.parts").glob("*.nc"))) == 1
    assert not (tmp_path / "benchmark.nc").exists()

    calls.clear()
    monkeypatch.setattr(benchmark, "answer_clip", lambda *a, **k: calls.append(1) or answer_clip(*a, **k))
    ds = benchmark.run(config(tmp_path, SMALL))
    assert len(calls) == 1, "only the unfinished clip is answered again"
    assert ds.sizes["example_id"] == 6
    for name in ("score", "prediction", "reference", "diff_mean", "verdict"):
        xr.testing.assert_identical(ds[name], small[name])


def test_two_torchrun_ranks_give_the_same_dataset_as_one(small, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "analyses.benchmark"]
        + ["--out", str(tmp_path), "--device", "cpu", *SMALL],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two = read_netcdf(tmp_path / "benchmark.nc")
    for name in (
        "score",
        "prediction",
        "reference",
        "clip",
        "benchmark",
        "diff_mean",
        "p_equivalence",
        "verdict",
    ):
        xr.testing.assert_identical(two[name], small[name])
    assert (
        len(list((tmp_path / "benchmark.parts").glob("*.nc"))) == 2 and (tmp_path / "benchmark.md").exists()
    )


def test_a_local_manifest_of_real_video_files_is_a_benchmark(reuse_pipeline, tmp_path):
    """A manifest of decoded video files (here: mp4s encoded from world clips, with a corrupt one) runs
    through the same study; its prompts' labels are the benchmarks and the bad file is a recorded failure."""
    from f2l.data import Example, QAItem, VideoRef, write_manifest
    from f2l.video import write_video
    from f2l.world import captions, render_clip

    examples = []
    for seed in (1_010_000, 1_010_001):
        clip = render_clip(seed, num_frames=16, size=64)
        path = write_video(tmp_path / f"clip{seed}.mp4", clip.frames, fps=8.0)
        examples.append(
            Example(
                id=f"real-{seed}",
                source="fixture",
                video=VideoRef.file(path),
                frames=8,
                captions={"background": captions(clip.truth)["background"]},
                qa=(
                    QAItem(
                        id="q0",
                        question="what color is the background?",
                        answer=clip.truth.background,
                        type="attribute",
                    ),
                ),
            )
        )
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    examples.append(
        Example(
            id="broken",
            source="fixture",
            video=VideoRef.file(tmp_path / "broken.mp4"),
            frames=8,
            qa=(QAItem(id="q0", question="what color is the background?", answer="navy", type="attribute"),),
        )
    )
    manifest = write_manifest(tmp_path / "m.jsonl", examples)
    ds = benchmark.run(
        config(
            tmp_path / "out",
            [
                "--manifest",
                str(manifest),
                "--methods",
                "direct",
                "f2l",
                "--metrics",
                "token_f1",
                "--max-new-tokens",
                "8",
            ],
        )
    )
    assert sorted(set(ds["benchmark"].values)) == ["attribute", "background"]
    assert list(ds["clip"].values) == ["real-1010000", "real-1010000", "real-1010001", "real-1010001"]
    assert list(ds["failed_unit"].values) == ["broken"] and "broken.mp4" in str(ds["error"].values[0])
    scores = ds["score"].sel(metric="token_f1")
    assert float(scores.sel({"method": "direct"}).mean()) > 0.5  # the base reads the decoded mp4 frames


def test_a_base_alone_is_judged_by_the_methods_without_an_adapter(pipeline, tmp_path):
    """``--base``: direct against no_video on the base's own answers (the direct scores are the full
    pipeline's, which answers direct without its hypernetwork); a method that internalizes is refused."""
    args = ["--base", "tiny", *TINY, "--methods", "direct", "no_video", "--metrics", "token_f1"]
    ds = benchmark.run(config(tmp_path / "base", [*args, "--benchmarks", "attribute", "count"]))
    assert list(ds["method"].values) == ["direct", "no_video"]
    assert ds.attrs["hypernet"] == "none"
    assert "no_video - direct" in [str(c) for c in ds["contrast"].values]
    with_hypernet = benchmark.run(
        config(
            tmp_path / "pipeline",
            [*TINY, "--methods", "direct", "--metrics", "token_f1", "--benchmarks", "attribute", "count"],
        )
    )
    np.testing.assert_array_equal(
        ds["score"].sel({"method": "direct"}).values, with_hypernet["score"].sel({"method": "direct"}).values
    )
    with pytest.raises(ValueError, match="drop \\['f2l'\\]"):
        benchmark.run(config(tmp_path / "refused", ["--base", "tiny", *TINY, "--methods", "direct", "f2l"]))
