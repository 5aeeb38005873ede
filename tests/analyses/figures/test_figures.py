"""Figures: each figure function on a synthetic dataset of its study's schema (labels, titles, what is
drawn), the awkward cases (NaN, one example, failed units, missing methods), and the CLI."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection, PathCollection

from analyses import figures
from analyses.figures import FIGURES, save_study_figures
from analyses.figures.__main__ import main as figures_main
from analyses.figures.efficiency import PANELS
from analyses.figures.scaling import CLIP_PANELS as SCALING_CLIP_PANELS
from analyses.figures.scaling import sweep_point as scaling_sweep_point
from analyses.figures.style import label as method_label
from analyses.scaling import add_intervals as scaling_intervals
from f2l.results import write_netcdf
from f2l.world import CAPTION_CATEGORIES, QA_TYPES
from probes.controls import ADAPTERS

BENCHMARK_METHODS = ("direct", "f2l", "f2l_chunked", "no_video", "kv_cache", "token_merge", "f2l_token_merge")
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ---- synthetic datasets, one per schema in the studies' docstrings -------------------------------------


def _finish(ds: xr.Dataset, failed: int = 0) -> xr.Dataset:
    """Add the ``failure`` dim the way ``Study.merge`` does, and provenance-like attrs."""
    ds = ds.assign(
        failed_unit=("failure", [f"world-99{i}" for i in range(failed)]),
        error=("failure", ["RuntimeError: synthetic failure"] * failed),
    )
    ds.attrs.update(base_model="tiny@0000", hypernet="tiny-hypernet@0000", created_utc="2026-01-01T00:00:00")
    return ds


def _prompt_coords(n_clips: int) -> dict[str, tuple[str, list[str]]]:
    clips, benchmarks, kinds = [], [], []
    for c in range(n_clips):
        for label in CAPTION_CATEGORIES + QA_TYPES:
            clips.append(f"world-{1010000 + c}")
            benchmarks.append(label)
            kinds.append("caption" if label in CAPTION_CATEGORIES else "qa")
    ids = [f"{c}/{b}" for c, b in zip(clips, benchmarks, strict=True)]
    return {
        "example_id": ids,
        "clip": ("example_id", clips),
        "benchmark": ("example_id", benchmarks),
        "kind": ("example_id", kinds),
    }


def benchmark_dataset(
    n_clips: int = 4, methods=BENCHMARK_METHODS, failed: int = 0, seed: int = 0
) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips) | {
        "method": list(methods),
        "metric": ["token_f1", "exact_match", "embedding"],
    }
    n = len(coords["example_id"])
    quality = {"direct": 0.6, "f2l": 0.58, "no_video": 0.4, "kv_cache": 0.6, "token_merge": 0.5}
    score = np.stack(
        [np.clip(quality.get(m, 0.55) + rng.normal(0, 0.2, (n, 3)), 0, 1) for m in methods], axis=1
    )
    score[:, :, 1] = score[:, :, 1] > 0.5
    ds = xr.Dataset(
        {
            "score": (("example_id", "method", "metric"), score),
            "prediction": (("example_id", "method"), np.full((n, len(methods)), "a red circle")),
            "reference": ("example_id", np.full(n, "a red square")),
            "ttft_s": (("example_id", "method"), rng.uniform(0.005, 0.05, (n, len(methods)))),
        },
        coords=coords,
    )
    suites = list(CAPTION_CATEGORIES + QA_TYPES)
    contrasts = ["f2l - direct", "f2l_chunked - direct"]
    stat_coords = {"contrast": contrasts, "suite": suites, "metric": coords["metric"]}
    shape = (len(contrasts), len(suites), 3)
    diff = rng.normal(-0.02, 0.03, shape)
    verdicts = rng.choice(["equivalent", "non-inferior", "inconclusive", "inferior"], shape)
    stats = xr.Dataset(
        {
            "diff_mean": (tuple(stat_coords), diff),
            "ci_low": (tuple(stat_coords), diff - 0.05),
            "ci_high": (tuple(stat_coords), diff + 0.05),
            "p_equivalence": (tuple(stat_coords), rng.uniform(0, 1, shape)),
            "p_noninferiority": (tuple(stat_coords), rng.uniform(0, 1, shape)),
            "verdict": (tuple(stat_coords), verdicts),
        },
        coords=stat_coords,
    )
    return _finish(xr.merge([ds, stats]), failed)


def efficiency_dataset(frames=(12, 64, 256, 1024), n_clips: int | None = None) -> xr.Dataset:
    """A median per (frames, method): there is no example dim (``n_clips`` is accepted and ignored)."""
    methods = ["direct", "f2l", "f2l_merged", "kv_cache", "no_video"]
    f = np.asarray(frames, float)[:, None]
    visual = np.where(np.isin(methods, ["direct", "kv_cache"]), 26 * f, 0.0)
    input_tokens = visual + 13
    ttft = np.where(np.isin(methods, ["direct"]), 1e-4 * input_tokens, 0.004 + 0 * f)
    preprocess = np.full((len(frames), len(methods)), np.nan)
    preprocess[:, 1] = preprocess[:, 2] = 2e-4 * f[:, 0] * 26
    preprocess[:, 3] = 1e-4 * f[:, 0] * 26
    stored = np.zeros((len(frames), len(methods)))
    stored[:, 1] = stored[:, 2] = 311_296
    stored[:, 3] = 2048 * input_tokens[:, 3]
    ds = xr.Dataset(
        {
            "ttft_s": (("frames", "method"), ttft),
            "preprocess_s": (("frames", "method"), preprocess),
            "input_tokens": (("frames", "method"), input_tokens),
            "visual_tokens": (("frames", "method"), visual),
            "stored_bytes": (("frames", "method"), stored),
            "peak_memory_bytes": (("frames", "method"), 5e8 + 1e4 * input_tokens),
            "token_reduction": (("frames",), input_tokens[:, 0] / input_tokens[:, 1]),
            # rounds: the unmerged adapter 15-25% over the base, merged within 3% of it
            "ttft_rounds_s": (
                ("frames", "method", "round"),
                ttft[:, :, None] * (1 + np.array([0.0, 0.2, 0.0, 0.0, 0.0])[:, None] + ROUND_JITTER),
            ),
        },
        coords={"frames": list(frames), "method": methods, "round": [0, 1, 2]},
    )
    return _finish(ds)


ROUND_JITTER = np.array(
    [[0.0, 0.03, -0.02], [0.05, -0.05, 0.0], [0.0, 0.03, -0.03], [0.0, 0.0, 0.0], [0.0, 0.0, 0.01]]
)


def scaling_dataset(n_clips: int = 3, frames=(8, 16, 64, 256), resolutions=(64, 128, 256), seed: int = 0):
    """The frames sweep runs at the first resolution, the resolution sweep at the first frame count:
    every other grid point is NaN, as in the study, which adds the means and intervals across clips."""
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips) | {
        "method": ["direct", "f2l"],
        "frames": list(frames),
        "resolution": list(resolutions),
    }
    n = len(coords["example_id"])
    shape = (n, 2, len(frames), len(resolutions))
    run = np.zeros(shape[2:], bool)
    run[:, 0] = run[0, :] = True
    decay = np.array([[1.0 - 0.15 * i for i in range(len(frames))], [1.0] * len(frames)])
    score = np.clip(0.55 * decay[None, :, :, None] + rng.normal(0, 0.15, shape), 0, 1)
    score[..., ~run] = np.nan
    tokens = (
        np.array([26.0, 0.0])[None, :, None, None]
        * np.asarray(frames)[None, None, :, None]
        * (np.asarray(resolutions)[None, None, None, :] / 64) ** 2
        + 13
    )
    tokens = np.broadcast_to(tokens, shape).copy()
    tokens[..., ~run] = np.nan
    ttft = 1e-4 * tokens + 0.003
    degenerate = (rng.uniform(0, 1, shape) < np.where(score < 0.3, 0.8, 0.05)).astype(float)
    degenerate[..., ~run] = np.nan
    same_answer = np.where(score < 0.3, 0.9, 0.1) * rng.uniform(0.5, 1, shape)
    same_answer[..., ~run] = np.nan
    dims = ("example_id", "method", "frames", "resolution")
    ds = xr.Dataset(
        {
            "score": (dims, score),
            "ttft_s": (dims, ttft),
            "input_tokens": (dims, tokens),
            "degenerate": (dims, degenerate),
            "same_answer": (dims, same_answer),
            "prediction": (dims, np.full(shape, "a red circle")),
        },
        coords=coords,
    )
    return scaling_intervals(_finish(ds))


def composition_dataset(n_clips: int = 4, n_chunks=(2, 4, 8), seed: int = 0) -> xr.Dataset:
    """``n_clips`` long clips at each segment count, 3 questions needing one segment and 2 several each;
    every clip scored at its own segment count only (NaN elsewhere), as the study writes it."""
    rng = np.random.default_rng(seed)
    clips = [f"long-{1010000 + c}-{n}" for c in range(n_clips) for n in n_chunks]
    ids = [f"{clip}/q{q}" for clip in clips for q in range(5)]
    methods = ["direct", "f2l_whole", "f2l_composed", "f2l_composed_scaled", "no_video"]
    base = np.array([0.6, 0.55, 0.45, 0.5, 0.35])
    score = np.full((len(ids), len(methods), len(n_chunks)), np.nan)
    for i, example in enumerate(ids):
        at = list(n_chunks).index(int(example.split("/")[0].rsplit("-", 1)[1]))
        score[i, :, at] = np.clip(base + rng.normal(0, 0.15, len(methods)), 0, 1)
    ds = xr.Dataset(
        {"score": (("example_id", "method", "n_chunks"), score)},
        coords={
            "example_id": ids,
            "clip": ("example_id", [i.split("/")[0] for i in ids]),
            "needs": ("example_id", ["one", "one", "one", "several", "several"] * len(clips)),
            "method": methods,
            "n_chunks": list(n_chunks),
        },
    )
    return _finish(ds)


def layer_removal_dataset(
    n_clips: int = 2, layers: int = 4, groups=("all", "attention", "mlp"), adapters=ADAPTERS, seed: int = 0
):
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips) | {
        "adapter": list(adapters),
        "layer": list(range(layers)),
        "module_group": list(groups),
    }
    n = len(coords["example_id"])
    full = rng.uniform(0.3, 0.9, (n, len(adapters)))
    effect = np.minimum(
        rng.normal(-0.1, 0.15, (n, len(adapters), layers, len(groups))), 1 - full[:, :, None, None]
    )
    cube = ("example_id", "adapter", "layer", "module_group")
    ds = xr.Dataset(
        {
            "score": (cube, full[:, :, None, None] + effect),
            "effect": (cube, effect),
            "full_score": (("example_id", "adapter"), full),
            "none_score": ("example_id", full[:, 0] - 0.2),
        },
        coords=coords | {"metric": "token_f1"},
    )
    return _finish(ds)


def delta_norms_dataset(n_clips: int = 3, layers: int = 4, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    ids = [f"world-{1010000 + c}" for c in range(n_clips)]
    shape = (n_clips, layers, len(MODULES))
    fro = rng.uniform(0.5, 2.0, shape) * (1 + np.arange(layers))[None, :, None]
    ds = xr.Dataset(
        {
            "fro_norm": (("clip", "layer", "module"), fro),
            "spectral_norm": (("clip", "layer", "module"), fro * 0.7),
            "stable_rank": (("clip", "layer", "module"), rng.uniform(1, 4, shape)),
            "relative_fro": (("clip", "layer", "module"), fro / 40),
            "weight_fro": (("layer", "module"), np.full((layers, len(MODULES)), 40.0)),
        },
        coords={
            "clip": ids,
            "layer": list(range(layers)),
            "module": list(MODULES),
        },
    )
    return _finish(ds)


def rank_ablation_dataset(n_clips: int = 3, rank: int = 8, layers: int = 4, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips)
    n = len(coords["example_id"])
    full = rng.uniform(0.4, 0.9, n)
    k = np.arange(rank + 1)
    topk = full[:, None] * (1 - np.exp(-k / 2))[None, :] + 0.3 * np.exp(-k / 2)[None, :]
    remove = np.stack(
        [
            full[:, None] - 0.3 * np.exp(-np.arange(rank) / 1.5)[None, :],
            full[:, None] - rng.uniform(0, 0.05, (n, rank)),
        ],
        axis=-1,
    )
    sv = np.exp(-np.arange(rank) / 2.0)[None, None, None, :] * rng.uniform(
        0.5, 1.5, (n, layers, len(MODULES), 1)
    )
    ds = xr.Dataset(
        {
            "topk_score": (("example_id", "k"), topk),
            "remove_score": (("example_id", "singular_direction", "control"), remove),
            "full_score": ("example_id", full),
            "singular_values": (("example_id", "layer", "module", "singular_direction"), sv),
        },
        coords=coords
        | {
            "k": k,
            "singular_direction": np.arange(rank),
            "control": ["svd", "random"],
            "layer": list(range(layers)),
            "module": list(MODULES),
        },
    )
    return _finish(ds)


def logit_attribution_dataset(
    n_clips: int = 3, layers: int = 4, positions: int = 5, seed: int = 0
) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips)
    n = len(coords["example_id"])
    attn = rng.normal(0.05, 0.3, (n, layers, positions)) * np.logspace(-1, 1, layers)[None, :, None]
    mlp = rng.normal(0.2, 0.5, (n, layers, positions)) * np.logspace(-1, 1, layers)[None, :, None]
    resid = np.cumsum(attn + mlp, axis=1)
    dla = np.stack([resid, attn, mlp], axis=2)
    lengths = rng.integers(1, positions + 1, n)
    pad = np.arange(positions)[None, :] >= lengths[:, None]
    dla[np.broadcast_to(pad[:, None, None, :], dla.shape)] = np.nan  # answers shorter than the longest
    tokens = np.where(pad, "", "red")
    ds = xr.Dataset(
        {
            "dla": (("example_id", "layer", "component", "position"), dla),
            "answer_token": (("example_id", "position"), tokens),
        },
        coords=coords
        | {
            "layer": list(range(layers)),
            "component": ["resid", "attn", "mlp"],
            "position": np.arange(positions),
        },
    )
    return _finish(ds)


def patching_dataset(n_clips: int = 3, layers: int = 4, seed: int = 0, min_effect: float = 0.5) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips)
    n, m = len(coords["example_id"]), len(ADAPTERS)
    directions = ["direct->base", "f2l->base", "direct->f2l"]
    target = rng.normal(-5, 1, (n, m, 3))
    effect = np.abs(rng.normal(2, 1.5, (n, m, 3))) * np.array([1, 1, -0.3])
    share = rng.uniform(-0.2, 1.0, (n, m, layers + 1, 3, 3))
    share[:, :, -1, 0] = 1.0  # the final residual restores everything
    share[:, :, -1, 1:] = np.nan  # no sublayers after the last layer
    share[:, :, 0, 0] = 0.0  # the embeddings nothing
    for array in (target, effect, share):  # direct -> base uses no adapter: the same under every label
        array[:, 1:, ..., 0] = array[:, :1, ..., 0]
    patched = target[:, :, None, None, :] + share * effect[:, :, None, None, :]
    restored = np.where(np.abs(effect)[:, :, None, None, :] < min_effect, np.nan, share)
    cube, pair = (
        ("example_id", "adapter", "layer", "site", "direction"),
        ("example_id", "adapter", "direction"),
    )
    ds = xr.Dataset(
        {
            "restored": (cube, restored),
            "logp_patched": (cube, patched),
            "logp_source": (pair, target + effect),
            "logp_target": (pair, target),
            "effect": (pair, effect),
        },
        coords=coords
        | {
            "adapter": list(ADAPTERS),
            "layer": list(range(layers + 1)),
            "site": ["resid_pre", "attn_out", "mlp_out"],
            "direction": directions,
            "source": ("direction", ["direct", "f2l", "direct"]),
            "target": ("direction", ["base", "base", "f2l"]),
        },
    )
    ds.attrs["min_effect"] = min_effect
    return _finish(ds)


def similarity_dataset(n_clips: int = 3, layers: int = 4, hidden: int = 8, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips)
    n, m = len(coords["example_id"]), len(ADAPTERS)
    cosine = rng.uniform(0.4, 0.9, (n, m, layers + 1))
    cosine[:, :, 0] = 1.0  # the same token embeddings in every run
    share = rng.uniform(-0.1, 0.6, (n, m, layers + 1))
    share[:, :, 0] = np.nan  # the video moves nothing at the embeddings
    ds = xr.Dataset(
        {
            "similarity": (("example_id", "adapter", "layer", "measure"), np.stack([cosine, share], -1)),
            "cosine_base": (("example_id", "layer"), cosine[:, 0] - rng.uniform(0, 0.2, (n, layers + 1))),
            "cka": (("adapter", "layer"), np.linspace(1.0, [0.6, 0.5, 0.4], layers + 1).T),
            "cka_base": ("layer", np.linspace(1.0, 0.3, layers + 1)),
            "mean_resid": (
                ("example_id", "adapter", "run", "layer", "hidden"),
                rng.normal(size=(n, m, 3, layers + 1, hidden)).astype(np.float32),
            ),
        },
        coords=coords
        | {
            "adapter": list(ADAPTERS),
            "layer": list(range(layers + 1)),
            "measure": ["cosine", "share"],
            "run": ["direct", "f2l", "base"],
        },
    )
    ds.attrs.update(min_gap=1e-6, cka_examples=n)
    return _finish(ds)


def logit_lens_dataset(n_clips: int = 3, layers: int = 4, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = _prompt_coords(n_clips)
    n, m = len(coords["example_id"]), len(ADAPTERS)
    shape = (n, m, 3, layers + 1)  # example, adapter, run (direct, f2l, base), layer
    prob = np.clip(np.linspace(0.05, 1.0, layers + 1) * rng.uniform(0.4, 1.0, shape), 0, 1)
    rank = np.round(rng.exponential(50, shape) * np.linspace(1, 0, layers + 1))
    kl = rng.uniform(0.5, 3.0, shape) * np.linspace(1, 0, layers + 1)  # 0 at the final residual
    for array in (prob, rank, kl):  # direct and base use no adapter: the same under every label
        array[:, 1:, [0, 2]] = array[:, :1, [0, 2]]
    cube = ("example_id", "adapter", "run", "layer")
    ds = xr.Dataset(
        {"prob": (cube, prob), "rank": (cube, rank), "logp": (cube, np.log(prob + 1e-9)), "kl": (cube, kl)},
        coords=coords
        | {
            "adapter": list(ADAPTERS),
            "run": ["direct", "f2l", "base"],
            "layer": list(range(layers + 1)),
            "hook": ("layer", [f"blocks.{i}.hook_resid_pre" for i in range(layers)] + ["ln_final.hook_in"]),
        },
    )
    return _finish(ds)


DATASETS = {
    "benchmark": benchmark_dataset,
    "efficiency": efficiency_dataset,
    "scaling": scaling_dataset,
    "composition": composition_dataset,
    "layer_removal": layer_removal_dataset,
    "delta_norms": delta_norms_dataset,
    "rank_ablation": rank_ablation_dataset,
    "logit_attribution": logit_attribution_dataset,
    "patching": patching_dataset,
    "similarity": similarity_dataset,
    "logit_lens": logit_lens_dataset,
}

MAIN_VARIABLE = {
    "benchmark": "score",
    "efficiency": "ttft_s",
    "scaling": "score",
    "composition": "score",
    "layer_removal": "effect",
    "delta_norms": "fro_norm",
    "rank_ablation": "topk_score",
    "logit_attribution": "dla",
    "patching": "restored",
    "similarity": "similarity",
    "logit_lens": "prob",
}
ALL_FIGURES = [(study, fn) for study, fns in FIGURES.items() for fn in fns]
IDS = [f"{study}-{fn.__name__}" for study, fn in ALL_FIGURES]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _cartesian_axes(fig):
    return [ax for ax in fig.axes if ax.name != "polar" and ax.axison and ax.get_label() != "<colorbar>"]


def _drawn(ax) -> int:
    return len(ax.lines) + len(ax.collections) + len(ax.patches)


def _line_ys(ax) -> list[np.ndarray]:
    return [np.asarray(line.get_ydata(), float) for line in ax.lines]


# ---- every figure on its schema ----------------------------------------------------------------------


def test_every_study_has_figures_and_a_dataset_factory():
    assert (
        set(FIGURES)
        == set(DATASETS)
        == {
            "benchmark",
            "efficiency",
            "scaling",
            "composition",
            "layer_removal",
            "delta_norms",
            "rank_ablation",
            "logit_attribution",
            "patching",
            "similarity",
            "logit_lens",
        }
    )


@pytest.mark.parametrize(("study", "fn"), ALL_FIGURES, ids=IDS)
def test_figure_on_its_schema_is_titled_labelled_and_drawn(study, fn):
    fig = fn(DATASETS[study]())
    assert fig._suptitle is not None and fig._suptitle.get_text() == fn.title
    axes = _cartesian_axes(fig)
    for ax in axes:
        assert ax.get_xlabel(), (study, ax.get_title())
        assert ax.get_ylabel(), (study, ax.get_title())
        assert ax.get_title(), study
    assert all(_drawn(ax) > 0 for ax in fig.axes if ax.axison), "an empty panel on complete data"
    footnote = " ".join(t.get_text() for t in fig.texts)
    assert "tiny@0000" in footnote
    fig.canvas.draw()


def test_the_footnote_counts_clips_on_either_dim():
    """``example_id`` is one prompt of one clip (labelled by ``clip``); a dataset of whole clips has a
    ``clip`` dim: the footnote counts clips either way."""
    per_prompt = figures.layer_removal_effects(layer_removal_dataset(n_clips=3))
    per_clip = figures.delta_norms_profile(delta_norms_dataset(n_clips=3))
    n = layer_removal_dataset(n_clips=3).sizes["example_id"]
    assert f"3 clips, {n} examples" in " ".join(t.get_text() for t in per_prompt.texts)
    assert "3 clips ·" in " ".join(t.get_text() for t in per_clip.texts)


def test_score_distributions_draw_each_examples_score_and_its_range_per_benchmark_and_method():
    """Per benchmark, each method's dots are its examples' scores at the metric asked for, on its side of
    the benchmark's tick, and its violin (cut at the data) spans exactly their range; methods not asked
    for (no_video) are left out."""
    ds = benchmark_dataset(n_clips=3, methods=("direct", "f2l", "no_video"))
    for metric, ylabel in (
        ("token_f1", "token-F1 (0 to 1)"),
        ("embedding", "embedding cosine similarity (-1 to 1)"),
    ):
        fig = figures.score_distributions(ds, metric=metric)
        axes = _cartesian_axes(fig)
        assert [ax.get_title() for ax in axes] == ["captioning", "question answering"]
        assert [ax.get_xlabel() for ax in axes] == ["caption category", "QA type"]
        assert axes[0].get_ylabel() == ylabel
        drawn = 0
        for ax, benchmarks in zip(axes, (CAPTION_CATEGORIES, QA_TYPES), strict=True):
            assert [t.get_text() for t in ax.get_xticklabels()] == list(benchmarks)
            dots = [c for c in ax.collections if isinstance(c, PathCollection)]
            violins = [c for c in ax.collections if not isinstance(c, PathCollection)]
            assert len(dots) == len(violins) == 2 * len(benchmarks)
            for i, benchmark in enumerate(benchmarks):
                for side, method in ((-1, "direct"), (1, "f2l")):

                    def on_its_side(xs, i=i, side=side):
                        return 0 < side * (np.mean(xs) - i) < 0.4

                    scores = ds["score"].sel({"method": method, "metric": metric})
                    scores = scores.where(ds["benchmark"] == benchmark, drop=True).values
                    (points,) = [c.get_offsets() for c in dots if on_its_side(c.get_offsets()[:, 0])]
                    np.testing.assert_allclose(np.sort(points[:, 1]), np.sort(scores), err_msg=benchmark)
                    drawn += len(points)
                    (violin,) = [c for c in violins if on_its_side(c.get_paths()[0].vertices[:, 0])]
                    ys = violin.get_paths()[0].vertices[:, 1]
                    np.testing.assert_allclose([ys.min(), ys.max()], [scores.min(), scores.max()])
        assert drawn == 2 * ds.sizes["example_id"]  # every example of direct and f2l, once
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert legend == ["direct (video in context)", "f2l (adapter only)"]
        plt.close(fig)


def test_score_differences_plots_each_paired_difference_and_the_study_verdicts():
    ds = benchmark_dataset(n_clips=3)
    fig = figures.score_differences(ds)
    captions = fig.axes[0]
    diff = (ds["score"].sel({"method": "f2l"}) - ds["score"].sel({"method": "direct"})).sel(metric="token_f1")
    expected = diff.where(ds["kind"] == "caption", drop=True).values
    strips = [c for c in captions.collections if isinstance(c, PathCollection)]
    points = np.concatenate([c.get_offsets()[:, 1] for c in strips])
    np.testing.assert_allclose(np.sort(points), np.sort(expected))
    labels = [t.get_text() for t in captions.get_xticklabels()]
    verdict = str(ds["verdict"].sel(contrast="f2l - direct", suite="short", metric="token_f1").values)
    assert labels[0] == f"short\n{verdict}"
    assert captions.get_ylabel() == "token-F1 difference, f2l minus direct"


def test_spider_draws_each_methods_mean_per_category():
    ds = benchmark_dataset(n_clips=3)
    fig = figures.spider(ds)
    qa_axis = fig.axes[1]
    assert qa_axis.name == "polar" and [t.get_text() for t in qa_axis.get_xticklabels()][0] == "attribute"
    assert len(qa_axis.lines) == 3  # the spider's methods: direct, f2l, no_video
    for method, line in zip(["direct", "f2l", "no_video"], qa_axis.lines, strict=True):
        scores = ds["score"].sel({"method": method, "metric": "token_f1"})
        expected = [float(scores.where(ds["benchmark"] == t).mean()) for t in QA_TYPES]
        np.testing.assert_allclose(line.get_ydata()[:-1], expected, err_msg=method)
        assert line.get_ydata()[-1] == line.get_ydata()[0]  # closed polygon


def test_efficiency_overhead_draws_every_round_paired_with_the_base():
    ds = efficiency_dataset()
    fig = figures.efficiency_overhead(ds)
    (ax,) = _cartesian_axes(fig)
    points = np.sort(np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())]))
    r = ds["ttft_rounds_s"]
    expected = r.sel({"method": ["f2l", "f2l_merged"]}) / r.sel({"method": "no_video"}).drop_vars("method")
    np.testing.assert_allclose(points, np.sort(expected.values.ravel()))
    assert (
        expected.sel({"method": "f2l"}).min() > 1.14 and expected.sel({"method": "f2l_merged"}).max() < 1.04
    )
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        method_label("f2l"),
        method_label("f2l_merged"),
    ]
    assert {line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1} >= {1.0, 1.2}
    no_base = figures.efficiency_overhead(ds.sel({"method": ["direct", "f2l"]}))
    assert "needs no_video" in " ".join(t.get_text() for a in no_base.axes for t in a.texts)


def test_efficiency_uses_log_axes_and_leaves_out_zero_bytes():
    ds = efficiency_dataset()
    fig = figures.efficiency_budgets(ds)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    stored = by_title["stored per video (adapter or KV cache)"]
    assert stored.get_yscale() == "log" and stored.get_xscale() == "log"
    ys = _line_ys(stored)
    assert len(ys) == 3  # f2l, f2l_merged, kv_cache: no_video and direct store nothing and are left out
    np.testing.assert_allclose(ys[-1], ds["stored_bytes"].sel({"method": "kv_cache"}).values)
    assert by_title["query time to first token"].get_ylabel() == "seconds"


def test_efficiency_budgets_draw_one_line_per_method_that_has_each_cost():
    ds = efficiency_dataset()
    fig = figures.efficiency_budgets(ds)
    by_title = {ax.get_title(): ax for ax in fig.axes}
    for name, title, unit in PANELS:
        ys = _line_ys(by_title[title])
        da = ds[name]
        if "method" not in da.dims:  # token_reduction: one line
            expected = [da.values]
        else:  # a line per method with a positive value, in the legend's order; the rest left out
            values = [
                da.sel({"method": m}).values for m in ["direct", "f2l", "f2l_merged", "kv_cache", "no_video"]
            ]
            expected = [v[np.isfinite(v) & (v > 0)] for v in values if (np.isfinite(v) & (v > 0)).any()]
        assert len(ys) == len(expected) > 0, title
        scale = 2**20 if unit == "MiB" else 1
        for y, e in zip(ys, expected, strict=True):
            np.testing.assert_allclose(y, np.asarray(e, float) / scale, err_msg=title)
    assert len(_line_ys(by_title["reusable preprocessing per video"])) == 3  # f2l, f2l_merged, kv_cache


def test_layer_removal_bars_are_mean_effects_and_norms_panel_is_optional():
    ds = layer_removal_dataset(n_clips=2)
    alone = figures.layer_removal_effects(ds)
    real, controls = _cartesian_axes(alone)
    heights = sorted(p.get_height() for p in real.patches if p.get_width() > 0)
    expected = sorted(ds["effect"].sel(adapter="real").mean("example_id").values.ravel())
    np.testing.assert_allclose(heights, expected)
    # the negative controls: removing each layer (all modules) from each adapter, beside the real one
    heights = sorted(p.get_height() for p in controls.patches if p.get_width() > 0)
    expected = sorted(ds["effect"].sel(module_group="all").mean("example_id").values.ravel())
    np.testing.assert_allclose(heights, expected)
    labels = [t.get_text() for t in controls.get_legend().get_texts()]
    assert labels[1].startswith("f2l, another clip's adapter (control): token-F1 ")
    assert controls.get_title() == "negative controls (all modules)"
    both = figures.layer_removal_effects(ds, norms=delta_norms_dataset())
    assert len(_cartesian_axes(both)) == 3
    assert "Frobenius" in both.axes[2].get_ylabel()
    # a dataset without controls (or written before them) has no controls panel
    only_real = figures.layer_removal_effects(ds.sel(adapter="real", drop=True), norms=delta_norms_dataset())
    assert len(_cartesian_axes(only_real)) == 2


def test_delta_norms_profile_draws_each_modules_mean_across_clips_per_layer():
    """Each panel: one line per module (in the projection order, whatever the dataset's), its value per
    layer averaged over the clips that have it."""
    ds = delta_norms_dataset(n_clips=3, layers=4).sel(module=list(reversed(MODULES)))
    ds["fro_norm"][0, 1, 0] = np.nan  # one clip's down_proj at layer 1 missing: the mean of the other two
    ds.attrs["rank"] = 8
    fig = figures.delta_norms_profile(ds)
    axes = _cartesian_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "Frobenius norm",
        "spectral norm",
        "size against the frozen weight",
        "stable rank (effective number of directions), 1 to 8",
    ]
    for ax, name in zip(axes, ("fro_norm", "spectral_norm", "relative_fro", "stable_rank"), strict=True):
        assert ax.get_xlabel() == "text-model layer"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
        assert len(ax.lines) == len(MODULES)
        for line, module in zip(ax.lines, MODULES, strict=True):
            np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
            expected = ds[name].sel(module=module).mean("clip").values
            np.testing.assert_allclose(line.get_ydata(), expected, err_msg=f"{name} {module}")
    mean = ds["fro_norm"].sel(module="down_proj", layer=1).values
    np.testing.assert_allclose(axes[0].lines[-1].get_ydata()[1], (mean[1] + mean[2]) / 2)
    assert axes[3].get_ylim() == (0.5, 8.5)  # 1 to the adapter's rank
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(MODULES)


def test_layer_removal_labels_a_group_by_the_modules_it_held():
    ds = layer_removal_dataset(n_clips=2, groups=("all", "mlp"))
    ds = ds.assign_coords(group_modules=("module_group", ["down_proj", "down_proj"]))
    fig = figures.layer_removal_effects(ds)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["all (down)", "mlp (down)"]  # not "MLP (gate, up, down)": only down_proj was there
    heat = figures.effects_by_benchmark(ds.sel(module_group=["mlp"]))  # no "all": the first group is drawn
    assert heat.axes[0].get_title() == "module group: mlp (down)"


def test_effects_by_benchmark_is_a_heatmap_of_mean_effects():
    ds = layer_removal_dataset(n_clips=2)
    fig = figures.effects_by_benchmark(ds, module_group="mlp")
    ax = fig.axes[0]
    expected = ds["effect"].sel(module_group="mlp", adapter="real").groupby("benchmark").mean("example_id")
    cells = {t.get_text() for t in ax.texts}
    assert f"{float(expected.sel(benchmark='count', layer=2)):.2f}" in cells
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["short", "detailed"]
    assert ax.get_title() == "module group: MLP (gate, up, down)"


def test_scaling_sweeps_are_drawn_where_the_study_ran_them():
    ds = scaling_dataset(n_clips=1)
    assert scaling_sweep_point(ds, "frames") == 64 and scaling_sweep_point(ds, "resolution") == 8
    ds.attrs.update(training_resolution=128)  # the study's word wins over the count of points
    assert scaling_sweep_point(ds, "frames") == 128
    ds.attrs.update(training_resolution=999)  # not on the grid: the count decides
    assert scaling_sweep_point(ds, "frames") == 64
    assert scaling_sweep_point(ds.where(ds["frames"] > 100), "frames") == 64  # only the 256-frame row
    assert scaling_sweep_point(ds.where(ds["frames"] < 0), "frames") is None


def test_scaling_draws_the_studys_means_and_intervals_across_clips():
    """The score, difference and share panels draw the study's stored means across clips, and each point's
    bootstrap interval as a bar from its low to its high end (one line and one set of bars a series)."""
    ds = scaling_dataset(n_clips=4)
    fig = figures.scaling_curves(ds)
    rows = np.asarray(fig.axes).reshape(2, -1)
    for row, along, at in ((rows[0], "frames", {"resolution": 64}), (rows[1], "resolution", {"frames": 8})):
        panels = {"score": row[0], "score_diff": row[1], "degenerate": row[4], "same_answer": row[5]}
        titles = [ax.get_title().split(",")[0] for ax in panels.values()]
        assert titles == [
            "score",
            "f2l minus direct",
            "degenerate answers",
            "shared answers",
        ]
        for panel, ax in panels.items():
            mean_name, ci_name = SCALING_CLIP_PANELS[panel]
            scale = 100 if panel in ("degenerate", "same_answer") else 1
            mean, ci = ds[mean_name].sel(at), ds[ci_name].sel(at)
            series = list(ds["method"].values) if "method" in mean.dims else [None]
            bars = [c for c in ax.collections if isinstance(c, LineCollection)]
            lines = [line for line in ax.lines if line.get_marker() not in (None, "None", "")]  # no zero line
            assert len(lines) == len(bars) == len(series), (along, panel)
            for line, collection, method in zip(lines, bars, series, strict=True):
                m = mean if method is None else mean.sel({"method": method})
                c = ci if method is None else ci.sel({"method": method})
                run = np.isfinite(m.values)
                assert run.sum() == len(ds[along]) > 1  # every point of the sweep, each with an interval
                np.testing.assert_allclose(line.get_ydata(), scale * m.values[run])
                ends = np.array([[seg[0, 1], seg[1, 1]] for seg in collection.get_segments()])
                np.testing.assert_allclose(ends, scale * c.values[run], err_msg=f"{along} {panel} {method}")
                if panel.startswith("score"):
                    assert (ends[:, 1] > ends[:, 0]).all()  # four clips' scores: intervals of some width
    # one clip: the means alone, no interval
    one = figures.scaling_curves(scaling_dataset(n_clips=1))
    assert not any(isinstance(c, LineCollection) for ax in one.axes[:2] for c in ax.collections)
    assert all(len(ax.lines) for ax in one.axes[:2])


def test_composition_curves_are_the_mean_of_clip_means_per_method_over_segments():
    ds = composition_dataset(n_clips=3)
    fig = figures.composition_curves(ds)
    axes = _cartesian_axes(fig)
    assert [ax.get_title() for ax in axes] == [
        "questions one object's segments answer",
        "questions that join several segments",
    ]
    for ax, need in zip(axes, ("one", "several"), strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]
        ys = _line_ys(ax)
        assert len(ys) == ds.sizes["method"]
        for method, y in zip(ds["method"].values, ys, strict=True):
            part = ds["score"].sel({"method": method}).where(ds["needs"] == need)
            clip_means = part.groupby("clip").mean("example_id")  # NaN at other segment counts
            np.testing.assert_allclose(y, clip_means.mean("clip").values)


def test_dla_is_on_a_symlog_axis_and_averages_answer_tokens_only():
    ds = logit_attribution_dataset()
    fig = figures.dla_per_layer(ds)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    ys = _line_ys(ax)
    for component in ds["component"].values:  # one line per component, each its mean over answer tokens
        mean = ds["dla"].sel(component=component).mean("position", skipna=True).mean("example_id").values
        assert sum(len(y) == len(mean) and np.allclose(y, mean) for y in ys) == 1, component


def test_patching_draws_each_sites_mean_restored_per_direction_and_the_threshold():
    ds = patching_dataset()
    fig = figures.patching_restored(ds)
    axes = _cartesian_axes(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["direct -> base", "f2l -> base", "direct -> f2l"]
    for ax, direction in zip(axes, ds["direction"].values, strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()][-1] == "final"
        mean = ds["restored"].sel(direction=direction, adapter="real").mean("example_id", skipna=True)
        ys = _line_ys(ax)
        assert sum(len(y) == 5 and np.allclose(y, mean.sel(site="resid_pre").values) for y in ys) == 1
        for site in ("attn_out", "mlp_out"):
            sub = mean.sel(site=site).values[:-1]  # no sublayer point at the final residual
            assert sum(len(y) == 4 and np.allclose(y, sub) for y in ys) == 1, site
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].startswith("resid_pre") and len(legend) == 3
    fig = figures.patching_effects(ds)
    (ax,) = _cartesian_axes(fig)
    assert "0.5 nats" in ax.get_title()
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if isinstance(c, PathCollection)])
    # direct -> base uses no adapter: drawn once; the others under each adapter
    effect = ds["effect"]
    expected = [effect.sel(direction="direct->base", adapter="real").values.ravel()]
    expected += [effect.sel(direction=["f2l->base", "direct->f2l"]).values.ravel()]
    np.testing.assert_allclose(np.sort(points), np.sort(np.concatenate(expected)))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "f2l, the clip's own adapter",
        "f2l, another clip's adapter (control)",
        "f2l, a blank video's adapter (control)",
    ]


def test_patching_controls_draw_the_residual_stream_under_each_adapter():
    ds = patching_dataset()
    fig = figures.patching_controls(ds)
    axes = _cartesian_axes(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["f2l -> base", "direct -> f2l"]
    for ax, direction in zip(axes, ["f2l->base", "direct->f2l"], strict=True):
        mean = ds["restored"].sel(direction=direction, site="resid_pre").mean("example_id", skipna=True)
        ys = _line_ys(ax)
        for adapter in ADAPTERS:
            assert any(len(y) == 5 and np.allclose(y, mean.sel(adapter=adapter).values) for y in ys), adapter


def test_rank_ablation_curves_draw_the_mean_scores_and_each_directions_energy_share():
    """Top-k: the mean score over examples at each k; remove-one: a mean line per control (singular,
    then random); the full adapter's mean score as a dashed line in both; energy: each direction's share
    of ||dW||_F^2, averaged over examples, layers and modules (so the bars add up to 100%)."""
    ds = rank_ablation_dataset(n_clips=2, rank=6, layers=2)
    rng = np.random.default_rng(3)
    ds["singular_values"] = ds["singular_values"].copy(
        data=rng.uniform(0.1, 1.0, ds["singular_values"].shape)
    )
    ds.attrs["metric"] = "token_f1"
    fig = figures.rank_ablation_curves(ds)
    topk_ax, remove_ax, energy_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == [
        "keep only the top-k singular directions",
        "remove one direction",
        "energy per singular direction",
    ]
    assert topk_ax.get_xlabel() == "directions kept, k (0 = no adapter)"
    assert remove_ax.get_xlabel() == "direction removed (0 = largest singular value)"
    assert topk_ax.get_ylabel() == remove_ax.get_ylabel() == "token-F1 (0 to 1)"

    def curves(ax):
        return [line for line in ax.lines if line.get_marker() not in (None, "None", "")]

    (topk,) = curves(topk_ax)
    np.testing.assert_array_equal(topk.get_xdata(), np.arange(7))
    np.testing.assert_allclose(topk.get_ydata(), ds["topk_score"].mean("example_id").values)
    removed = curves(remove_ax)
    assert len(removed) == 2
    for line, control in zip(removed, ("svd", "random"), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(6))
        expected = ds["remove_score"].sel(control=control).mean("example_id").values
        np.testing.assert_allclose(line.get_ydata(), expected, err_msg=control)
    for ax in (topk_ax, remove_ax):
        (full,) = [line for line in ax.lines if line.get_linestyle() == "--"]
        np.testing.assert_allclose(full.get_ydata(), [ds["full_score"].mean()] * 2)
    heights = [p.get_height() for p in energy_ax.patches]
    sv2 = ds["singular_values"] ** 2
    share = 100 * sv2 / sv2.sum("singular_direction")
    np.testing.assert_allclose(heights, share.mean(["example_id", "layer", "module"]).values)
    np.testing.assert_allclose(sum(heights), 100.0)


def test_rank_ablation_shows_the_random_control():
    fig = figures.rank_ablation_curves(rank_ablation_dataset())
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any("random" in t for t in legend) and any("singular" in t for t in legend)
    assert not any("slots" in t.get_text() for t in fig.axes[0].get_legend().get_texts())  # no static block


def test_rank_ablation_marks_generated_and_static_slots_when_the_adapter_has_them():
    ds = rank_ablation_dataset(rank=32)
    n = ds.sizes["example_id"]
    ds = ds.assign_coords(slots=["generated", "static"], rank_slots=("slots", ["0-15", "16-31"]))
    ds["slot_score"] = (("example_id", "slots"), np.stack([np.full(n, 0.55), np.full(n, 0.125)], axis=1))
    fig = figures.rank_ablation_curves(ds)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "generated slots only (static block removed)" in legend
    assert "static slots only (video-independent)" in legend
    flat = [line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1]
    assert any(np.isclose(y, 0.55) for y in flat) and any(np.isclose(y, 0.125) for y in flat)
    assert len(ax.get_xticks()) <= 17  # 33 values of k, thinned to readable ticks


# ---- awkward datasets ----------------------------------------------------------------------------------


SMALL = {"efficiency": {}, "scaling": {"n_clips": 1, "frames": (8, 16), "resolutions": (64, 128)}}


def _with_nans(ds: xr.Dataset, share: float = 0.4) -> xr.Dataset:
    rng = np.random.default_rng(1)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if var.dtype.kind == "f" and var.size:
            out[name] = var.where(rng.uniform(0, 1, var.shape) > share)
    return out


def _one(ds: xr.Dataset) -> xr.Dataset:
    dim = next(d for d in ("example_id", "clip", "frames") if d in ds.dims)  # the dataset's unit
    return ds.isel({dim: [0]})


@pytest.mark.parametrize(("study", "fn"), ALL_FIGURES, ids=IDS)
@pytest.mark.parametrize("case", ["nan", "one", "all_nan", "all_failed"])
def test_figure_copes_with_nan_one_example_and_failures(study, fn, case):
    small = DATASETS[study](**SMALL.get(study, {"n_clips": 1}))
    if case == "nan":
        ds = _with_nans(small)
    elif case == "one":
        ds = _one(small)
    elif case == "all_nan":
        ds = _with_nans(small, share=1.1)
    else:  # what Study.merge writes when every unit raised
        ds = _finish(xr.Dataset(), failed=2)
    fig = fn(ds)
    fig.canvas.draw()
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    if case == "all_failed":
        assert "every unit failed (2)" in text and "synthetic failure" in text
    if case == "all_nan":
        assert "no data" in text or "not measured (NaN)" in text
    if case in ("nan", "one"):  # every panel still has data to draw (none is NaN throughout)
        panels = [ax for ax in fig.axes if ax.axison]
        assert panels and all(_drawn(ax) > 0 for ax in panels), [_drawn(ax) for ax in panels]


def test_missing_methods_are_left_out_or_said():
    ds = benchmark_dataset(n_clips=2, methods=("direct", "no_video"))
    fig = figures.score_differences(ds)
    assert "no f2l scores in this dataset" in " ".join(t.get_text() for t in fig.axes[0].texts)
    spider_fig = figures.spider(ds)
    assert len(spider_fig.axes[0].lines) == 2
    eff = efficiency_dataset().sel({"method": ["direct", "f2l"]})
    labels = [t.get_text() for t in figures.efficiency_budgets(eff).legends[0].get_texts()]
    assert labels == ["direct (video in context)", "f2l (adapter only)"]


# ---- files and the command line ---------------------------------------------------------------------


def test_save_study_figures_writes_png_and_svg_and_finds_the_norms(tmp_path):
    write_netcdf(delta_norms_dataset(), tmp_path / "delta_norms.nc")
    paths = save_study_figures("layer_removal", layer_removal_dataset(), tmp_path, svg=True)
    assert sorted(p.name for p in paths) == [
        "layer_removal_effects.png",
        "layer_removal_effects.svg",
        "layer_removal_effects_by_benchmark.png",
        "layer_removal_effects_by_benchmark.svg",
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "size of the generated update" in (tmp_path / "layer_removal_effects.svg").read_text()
    with pytest.raises(ValueError, match="no figures for study"):
        save_study_figures("nonsense", layer_removal_dataset(), tmp_path)


def test_cli_renders_every_study_found(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for study in ("efficiency", "delta_norms"):
        write_netcdf(DATASETS[study](**SMALL.get(study, {"n_clips": 1})), results / f"{study}.nc")
    assert figures_main(["--results", str(results), "--out", str(tmp_path / "figs")]) == 0
    written = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert written == ["delta_norms_profile.png", "efficiency_budgets.png", "efficiency_overhead.png"]
    assert figures_main(["--results", str(tmp_path / "figs")]) == 1
    assert "no study datasets" in capsys.readouterr().err


def test_similarity_draws_each_clips_mean_per_layer_and_the_cka():
    ds = similarity_dataset()
    fig = figures.similarity_per_layer(ds)
    cos_ax, share_ax = _cartesian_axes(fig)
    clip_means = ds["similarity"].groupby("clip").mean("example_id").mean("clip")
    cosines = [y for y in _line_ys(cos_ax) if len(y) == ds.sizes["layer"]]
    shares = [y for y in _line_ys(share_ax) if len(y) == ds.sizes["layer"] - 1]
    for i, adapter in enumerate(ADAPTERS):  # one line per adapter, the real one first, then base's cosine
        np.testing.assert_allclose(cosines[i], clip_means.sel(measure="cosine", adapter=adapter))
        np.testing.assert_allclose(shares[i], clip_means.sel(measure="share", adapter=adapter).values[1:])
    base = ds["cosine_base"].groupby("clip").mean("example_id").mean("clip")
    np.testing.assert_allclose(cosines[3], base)
    assert share_ax.get_xticklabels()[-1].get_text() == "final"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[1] == "f2l, another clip's adapter (control)" and legend[3].startswith("base")
    fig = figures.similarity_cka(ds)
    (ax,) = _cartesian_axes(fig)
    ys = _line_ys(ax)
    for i, adapter in enumerate(ADAPTERS):
        np.testing.assert_allclose(ys[i], ds["cka"].sel(adapter=adapter).values)
    np.testing.assert_allclose(ys[3], ds["cka_base"].values)


def test_logit_lens_draws_each_routes_clip_mean_per_layer():
    ds = logit_lens_dataset()
    fig = figures.logit_lens_answer(ds)
    prob_ax, rank_ax = _cartesian_axes(fig)
    assert rank_ax.get_yscale() == "symlog" and prob_ax.get_xticklabels()[-1].get_text() == "final"

    def mean(name, run, adapter="real"):
        return ds[name].sel(run=run, adapter=adapter).groupby("clip").mean("example_id").mean("clip").values

    # routes in order: direct, base, then f2l under each adapter
    expected = [("direct", "real"), ("base", "real")] + [("f2l", a) for a in ADAPTERS]
    for ax, name in ((prob_ax, "prob"), (rank_ax, "rank")):
        ys = [y for y in _line_ys(ax) if len(y) == ds.sizes["layer"]]
        assert len(ys) == 5
        for y, (run, adapter) in zip(ys, expected, strict=True):
            np.testing.assert_allclose(y, mean(name, run, adapter))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "direct (video in context)",
        "base (no video, no adapter)",
        "f2l, the clip's own adapter",
        "f2l, another clip's adapter (control)",
        "f2l, a blank video's adapter (control)",
    ]
    fig = figures.logit_lens_kl(ds)
    (ax,) = _cartesian_axes(fig)
    ys = [y for y in _line_ys(ax) if len(y) == ds.sizes["layer"]]
    np.testing.assert_allclose(ys[2], mean("kl", "f2l"))
    np.testing.assert_allclose([y[-1] for y in ys], 0.0)  # the final read-out is the run's own


def test_logit_lens_kl_draws_every_routes_mean_and_standard_error_across_clips():
    """One line per route (direct, base, f2l under each adapter): the mean across clips of each clip's
    mean KL per layer, in a band of one standard error across clips."""
    ds = logit_lens_dataset(n_clips=3)
    fig = figures.logit_lens_kl(ds)
    (ax,) = _cartesian_axes(fig)
    assert ax.get_title() == "distance to the run's own final distribution"
    assert ax.get_xlabel() == "text-model layer read (resid_pre; last: final residual)"
    assert ax.get_ylabel().startswith("KL(final || layer read-out), nats")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "final"]
    routes = [("direct", "real"), ("base", "real")] + [("f2l", a) for a in ADAPTERS]
    lines = [line for line in ax.lines if len(line.get_ydata()) == ds.sizes["layer"]]
    assert len(lines) == len(ax.collections) == len(routes)
    layers = ds["layer"].values
    for line, band, (run, adapter) in zip(lines, ax.collections, routes, strict=True):
        clips = ds["kl"].sel(run=run, adapter=adapter).groupby("clip").mean("example_id")
        mean = clips.mean("clip").values
        se = clips.std("clip", ddof=1).values / np.sqrt(clips.sizes["clip"])
        np.testing.assert_array_equal(line.get_xdata(), layers)
        np.testing.assert_allclose(line.get_ydata(), mean, err_msg=f"{run} {adapter}")
        edge = band.get_paths()[0].vertices
        low = [edge[edge[:, 0] == x, 1].min() for x in layers]
        high = [edge[edge[:, 0] == x, 1].max() for x in layers]
        np.testing.assert_allclose(low, mean - se, atol=1e-12)
        np.testing.assert_allclose(high, mean + se, atol=1e-12)
        assert (se[:-1] > 0).all() and se[-1] == 0  # clips that differ; KL 0 at the final read-out
