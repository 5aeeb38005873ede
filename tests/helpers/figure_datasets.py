"""Synthetic datasets for the figure tests (tests/analyses/figures/), one per schema in the studies'
docstrings, and readers of what a figure drew. Shared by the per-module figure tests (on pytest's path
through ``pythonpath`` in pyproject, as ``support`` is)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from analyses.scaling import add_intervals as scaling_intervals
from f2l.world import CAPTION_CATEGORIES, QA_TYPES
from probes.controls import ADAPTERS

BENCHMARK_METHODS = ("direct", "f2l", "f2l_chunked", "no_video", "kv_cache", "token_merge", "f2l_token_merge")
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ---- synthetic datasets, one per schema in the studies' docstrings -------------------------------------


def finish(ds: xr.Dataset, failed: int = 0) -> xr.Dataset:
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
    return finish(xr.merge([ds, stats]), failed)


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
    return finish(ds)


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
    return scaling_intervals(finish(ds))


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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
    return finish(ds)


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

# small datasets of each study (one clip; the efficiency dataset has no clips)
SMALL = {"efficiency": {}, "scaling": {"n_clips": 1, "frames": (8, 16), "resolutions": (64, 128)}}


# ---- what a figure drew --------------------------------------------------------------------------


def cartesian_axes(fig):
    """The figure's data panels: not polar, not switched off (a message), not a colorbar."""
    return [ax for ax in fig.axes if ax.name != "polar" and ax.axison and ax.get_label() != "<colorbar>"]


def drawn(ax) -> int:
    """How many artists hold data in ``ax``."""
    return len(ax.lines) + len(ax.collections) + len(ax.patches)


def line_ys(ax) -> list[np.ndarray]:
    """The y values of every line of ``ax``, in drawing order."""
    return [np.asarray(line.get_ydata(), float) for line in ax.lines]
