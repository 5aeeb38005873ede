"""analyses.efficiency: peak memory in fresh processes and the command end to end (the measures
themselves: tests/analyses/test_efficiency_measures.py)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analyses import efficiency
from analyses.common import study_examples
from analyses.efficiency import EfficiencyConfig
from analyses.efficiency_measures import peak_memories
from f2l import answer as answering
from f2l.chat import count_tokens, model_inputs, prompt_text
from f2l.data import world_manifest
from f2l.hypernet.interface import module_shapes_of
from f2l.results import read_netcdf

FRAMES = [4, 8]


def test_fresh_process_peaks_see_the_video(tiny_pipeline):
    """Each measurement in its own process: answering with 8 frames in context needs more memory than
    answering the question alone."""
    cfg = EfficiencyConfig()
    clip = tiny_pipeline.example_frames(study_examples(None, cfg.split, 1, 8)[0], 8)
    peaks = peak_memories(tiny_pipeline, cfg, clip, 8, ["direct", "no_video"])
    assert peaks["direct"] > peaks["no_video"] > 0


@pytest.fixture(scope="module")
def tiny_pipeline():
    from f2l.pipeline import Frames2LoRA

    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def efficiency_run(tmp_path_factory, official_hypernet):
    out = tmp_path_factory.mktemp("efficiency")
    args = ["--out", str(out), "--frames", *map(str, FRAMES), "--warmup", "0", "--repeats", "2"]
    args += ["--overhead-rounds", "4"]
    args += ["--compare-hypernets", str(official_hypernet)]
    assert efficiency.main([*args, "--no-memory", "--clips", "2", "--train-frames", "2"]) == 0
    return out, read_netcdf(out / "efficiency.nc")


def test_efficiency_end_to_end(efficiency_run, tiny_pipeline):
    out, ds = efficiency_run
    assert list(ds["frames"].values) == FRAMES
    assert list(ds["method"].values) == ["direct", "f2l", "f2l_merged", "kv_cache", "no_video"]
    assert ds["clip"].item() == "world-1010000"

    def at(name: str, method: str) -> np.ndarray:
        return ds[name].sel({"method": method}).values

    processor, question = tiny_pipeline.base.processor, ds.attrs["question"]
    per_frame = processor.image_seq_len
    assert at("visual_tokens", "direct").tolist() == [f * per_frame for f in FRAMES]
    alone = model_inputs(processor, [prompt_text(processor, question, with_video=False)])["input_ids"]
    for method in ("f2l", "f2l_merged", "no_video"):
        assert (at("visual_tokens", method) == 0).all()
        assert (at("input_tokens", method) == alone.shape[1]).all()  # the question alone
    # direct attends the prompt the processor builds for this clip: the question, each frame's visual
    # tokens and the text that frames them (an intro, a timestamp line per frame)
    example = study_examples(None, EfficiencyConfig().split, 2, 2)[0]  # --clips 2 --train-frames 2
    assert example.id == ds["clip"].item()
    direct = at("input_tokens", "direct")
    for i, frames in enumerate(FRAMES):
        clip = tiny_pipeline.example_frames(example, frames)
        prompt = model_inputs(processor, [prompt_text(processor, question, with_video=True)], [clip])
        counts = count_tokens(processor, prompt["input_ids"][0], prompt["attention_mask"][0])
        assert direct[i] == counts["visual"] + counts["text"] and counts["visual"] == frames * per_frame
        assert counts["text"] > alone.shape[1] + frames  # at least a token of framing text per frame
    np.testing.assert_array_equal(ds["token_reduction"].values, direct / at("input_tokens", "f2l"))
    # every method but kv_cache computes all it attends at query time
    for method in ("direct", "f2l", "f2l_merged", "no_video"):
        np.testing.assert_array_equal(at("prefilled_tokens", method), at("input_tokens", method))

    # kv_cache: the direct prompt exactly, with only the question computed at query time
    np.testing.assert_array_equal(at("input_tokens", "kv_cache"), direct)
    np.testing.assert_array_equal(at("visual_tokens", "kv_cache"), at("visual_tokens", "direct"))
    assert (at("prefilled_tokens", "kv_cache") < at("prefilled_tokens", "no_video")).all()
    # what it computes at query time is the question's tail, whatever the video's length
    assert len(set(at("prefilled_tokens", "kv_cache"))) == 1

    # stored per video: a fixed-size adapter (rank-r factors A and B of every target module in every
    # layer, float32) against a cache that grows with the frames
    text = tiny_pipeline.base.model.config.text_config
    hyper = tiny_pipeline.hypernet.config
    shapes = module_shapes_of(tiny_pipeline.base, hyper.target_modules)
    factors = text.num_hidden_layers * hyper.rank * sum(d_in + d_out for d_in, d_out in shapes.values())
    assert len(shapes) == 7
    for method in ("f2l", "f2l_merged"):
        assert (at("stored_bytes", method) == factors * 4).all()
    cached = at("input_tokens", "kv_cache") - at("prefilled_tokens", "kv_cache")
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    per_token = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim
    np.testing.assert_array_equal(at("stored_bytes", "kv_cache"), cached * per_token * 4)  # float32
    assert np.isnan(at("stored_bytes", "direct")).all() and np.isnan(at("stored_bytes", "no_video")).all()

    rounds = ds["ttft_rounds_s"]
    assert rounds.dims == ("frames", "method", "round") and list(ds["round"].values) == [0, 1, 2, 3]
    for method in ("direct", "kv_cache"):  # timed in the first --repeats rounds only
        timed_in = ~np.isnan(rounds.sel({"method": method}).values)
        assert timed_in[:, :2].all() and not timed_in[:, 2:].any()
    assert not np.isnan(rounds.sel({"method": list(efficiency.TEXT_ONLY)}).values).any()
    assert np.isfinite(ds["ttft_s"].values).all()  # every method timed at every frame count
    np.testing.assert_allclose(ds["ttft_s"].values, rounds.median("round").values)  # skips the NaN

    def timed_for(name: str) -> list[str]:
        """The methods with a duration under ``name`` (at every frame count); NaN elsewhere."""
        values = ds[name].transpose("method", "frames").values
        assert (np.isfinite(values) == np.isfinite(values[:, :1])).all()  # the same at every frame count
        assert (values[np.isfinite(values)] > 0).all()
        return [m for m, v in zip(ds["method"].values, values[:, 0], strict=True) if np.isfinite(v)]

    assert timed_for("preprocess_s") == ["f2l", "f2l_merged", "kv_cache"]  # internalizing; prefilling
    np.testing.assert_array_equal(at("preprocess_s", "f2l"), at("preprocess_s", "f2l_merged"))  # one timing
    assert timed_for("apply_s") == ["f2l", "f2l_merged"]  # applying an adapter, apart from the query
    assert at("apply_s", "f2l")[0] != at("apply_s", "f2l_merged")[0]  # two ways of applying, timed apart
    assert np.isnan(ds["peak_memory_bytes"].values).all()  # --no-memory

    a = ds.attrs
    assert a["batch_size"] == 2 and np.isfinite([a["batch_ttft_f2l_s"], a["batch_ttft_no_video_s"]]).all()
    assert a["batch_f2l_vs_no_video_min"] <= a["batch_f2l_vs_no_video"] <= a["batch_f2l_vs_no_video_max"]
    assert ds.attrs["train_step_vs_student"] == pytest.approx(
        ds.attrs["train_step_s"] / ds.attrs["student_fwd_bwd_s"]
    )
    md = (out / "efficiency.md").read_text()
    f2l = at("input_tokens", "f2l")
    for i, frames in enumerate(FRAMES):
        assert f"\n| {frames} | {direct[i]:,.0f} / {f2l[i]:,.0f} | {direct[i] / f2l[i]:,.0f}x |" in md
    assert "Training step" in md and "Batched unmerged: 2 questions in one batch" in md
    # the overhead row: f2l_merged over no_video paired within each round (test_overhead_per_round_... has
    # the arithmetic on fixed numbers), the apply times and the unmerged query with applying included
    methods = list(ds["method"].values)
    merged = rounds.values[0, methods.index("f2l_merged")] / rounds.values[0, methods.index("no_video")]
    assert merged.shape == (4,) and np.isfinite(merged).all()  # one ratio per --overhead-rounds round
    apply_ms = " / ".join(f"{at('apply_s', m)[0] * 1e3:,.2f}" for m in ("f2l", "f2l_merged"))
    with_apply = (at("apply_s", "f2l")[0] + at("ttft_s", "f2l")[0]) / at("ttft_s", "no_video")[0]
    assert f"({merged.min():.2f}x-{merged.max():.2f}x) | {apply_ms} | {with_apply:.2f}x |\n" in md


def test_overhead_per_round_pairs_each_ratio_within_its_round():
    """The overhead rows on fixed timings: each round's f2l (and f2l_merged) TTFT over the same round's
    no_video TTFT, summarized as median (min-max) of those paired ratios, not as a ratio of medians;
    the apply times in ms; and one unmerged query with applying over the base's median TTFT."""
    methods = list(efficiency.METHODS)
    rounds = np.full((2, len(methods), 3), np.nan)  # frames 4 and 8; direct and kv_cache not timed here
    no_video = np.array([1.0, 2.0, 4.0])
    rounds[:, methods.index("no_video")] = no_video
    rounds[:, methods.index("f2l")] = no_video * [1.1, 1.2, 1.0]  # median 1.10 paired, 1.20 of medians
    rounds[:, methods.index("f2l_merged")] = no_video * [2.0, 0.5, 1.1]  # median 1.10 paired, 1.00 of medians
    rounds[1, methods.index("f2l")] *= 10  # frames 8: the unmerged adapter 11x-12x the base, every round
    ttft = np.full((2, len(methods)), np.nan)
    ttft[:, methods.index("f2l")], ttft[:, methods.index("no_video")] = 0.02, 0.01
    apply = np.full((2, len(methods)), np.nan)
    apply[:, methods.index("f2l")], apply[:, methods.index("f2l_merged")] = 0.002, 0.0005
    ds = xr.Dataset(
        {
            "ttft_rounds_s": (("frames", "method", "round"), rounds),
            "ttft_s": (("frames", "method"), ttft),
            "apply_s": (("frames", "method"), apply),
        },
        coords={"frames": [4, 8], "method": methods, "round": [0, 1, 2]},
    )
    assert efficiency.overhead_per_round(ds) == [
        {
            "frames": 4,
            "f2l / no_video per round": "1.10x (1.00x-1.20x)",
            "f2l_merged / no_video per round": "1.10x (0.50x-2.00x)",
            "apply + remove ms (unmerged / merged)": "2.00 / 0.50",
            "unmerged query with apply / no_video": "2.20x",  # (0.002 + 0.02) / 0.01
        },
        {
            "frames": 8,
            "f2l / no_video per round": "11.0x (10.0x-12.0x)",
            "f2l_merged / no_video per round": "1.10x (0.50x-2.00x)",
            "apply + remove ms (unmerged / merged)": "2.00 / 0.50",
            "unmerged query with apply / no_video": "2.20x",
        },
    ]
    assert "apply + remove ms" not in efficiency.overhead_per_round(ds.drop_vars("apply_s"))[0]


def test_batched_overhead_answers_each_row_under_its_own_adapter(tiny_pipeline, monkeypatch):
    """The batched measure times the mode it names: during the f2l query every wrapper holds one adapter
    per row (not one shared one), during the base's query none; and both answer the same batch."""
    from f2l.adapter import lora_modules

    seen, decode = [], answering.decode

    def spy(base, inputs, **kwargs):
        w = next(iter(lora_modules(base.model).values()), None)
        f = None if w is None else w.factors
        seen.append((inputs["input_ids"].shape[0], None if f is None else (f.b_scaled.shape[0], f.shared)))
        return decode(base, inputs, **kwargs)

    monkeypatch.setattr(answering, "decode", spy)
    clips = [tiny_pipeline.example_frames(e, 2) for e in world_manifest("val", 3, frames=2)]
    out = efficiency.batched_overhead(tiny_pipeline, clips, "how many objects?", 1, warmup=0, repeats=2)
    assert sorted(seen, key=str) == sorted([(3, (3, False))] * 2 + [(3, None)] * 2, key=str)
    assert out["batch_size"] == 3 and out["batch_ttft_f2l_s"] > 0 and out["batch_ttft_no_video_s"] > 0


def test_internalization_is_timed_for_every_hypernetwork_side_by_side(
    efficiency_run, tiny_pipeline, official_hypernet
):
    """``--compare-hypernets``: each hypernetwork's internalization on the same clip, in the same rounds;
    the first is ``--hypernet`` itself, whose time is the f2l method's preprocessing."""
    from f2l.hypernet import load_hypernet

    out, ds = efficiency_run
    assert list(ds["hypernet_kind"].values) == ["f2l", "official"]
    counts = [
        sum(p.numel() for p in net.parameters())
        for net in (tiny_pipeline.hypernet, load_hypernet(official_hypernet))
    ]
    assert list(ds["hypernet_parameters"].values) == counts and counts[0] != counts[1]
    t = ds["internalize_s"]
    assert t.dims == ("frames", "hypernet") and bool((t > 0).all())
    np.testing.assert_array_equal(t.isel(hypernet=0).values, ds["preprocess_s"].sel({"method": "f2l"}).values)
    steps = __import__("json").loads(ds.attrs["train_step_by_hypernet_s"])
    assert len(steps) == 2 and steps[0] == ds.attrs["train_step_s"] and np.isfinite(steps[1])
    summary = (out / "efficiency.md").read_text()
    assert "Internalization by hypernetwork" in summary and f"(official, {counts[1]:,} parameters)" in summary
    assert "training step" in summary
