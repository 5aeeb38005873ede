"""``python -m analyses.rank_ablation`` end to end on the shipped tiny checkpoints (the dataset, the
Markdown summary, resume), and the summary's numbers on a synthetic dataset."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from figure_datasets import rank_ablation_dataset
from support import clip_mean_se_by_hand

from analyses.rank_ablation import summary
from f2l.answer import generate
from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import score_answers
from f2l.pipeline import Frames2LoRA
from f2l.results import read_netcdf

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.rank_ablation as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "1", "--max-new-tokens", "16", "--device", "cpu"]
    assert study.main(argv) == 0
    ds = read_netcdf(out / "rank_ablation.nc")
    example = world_manifest("test", 1)[0]
    prompts = clip_prompts(example)
    assert dict(ds.sizes) == {
        "example_id": len(prompts),
        "k": 9,
        "singular_direction": 8,
        "control": 2,
        "layer": 4,
        "module": 7,
        "failure": 0,
    }
    assert ds.attrs["base_model"].startswith("tiny@") and ds.attrs["hypernet"].startswith("tiny-hypernet@")

    # the ends, computed independently of the probe
    pipeline = Frames2LoRA.from_pretrained("tiny", device="cpu")
    refs = [p.reference for p in prompts]
    no_video = [a.text for a in generate(pipeline.base, [p.prompt for p in prompts], max_new_tokens=16)]
    size = pipeline.base.model.config.vision_config.image_size
    adapter = pipeline.internalize(load_frames(example, num_frames=8, size=size))
    f2l_answers = [pipeline.generate(adapter, p.prompt, max_new_tokens=16).text for p in prompts]
    np.testing.assert_array_equal(ds["full_score"].values, score_answers("token_f1", f2l_answers, refs))
    np.testing.assert_array_equal(ds["topk_score"].sel(k=8).values, ds["full_score"].values)
    np.testing.assert_array_equal(ds["topk_score"].sel(k=0).values, score_answers("token_f1", no_video, refs))
    assert float(ds["full_score"].mean()) > float(ds["topk_score"].sel(k=0).mean())  # the adapter helps
    singular = np.stack([s.S.double().numpy() for s in adapter.svd().values()], axis=1)  # [layer, module, k]
    np.testing.assert_allclose(ds["singular_values"].values[0], singular, rtol=1e-4, atol=1e-4)

    summary = (out / "rank_ablation.md").read_text()
    assert "| k | token_f1 | - full |" in summary and "| direction | energy % | drop (svd) |" in summary
    assert "static" not in summary  # the f2l kind has no static rank slots
    assert f"| 0 | {float(ds['topk_score'].sel(k=0).mean()):.3f} ± nan |" in summary
    sv = ds["singular_values"].isel(example_id=0)
    energy = float((100 * sv**2 / (sv**2).sum("singular_direction")).sel(singular_direction=0).mean())
    drop = float((ds["full_score"] - ds["remove_score"].sel(singular_direction=0, control="svd")).mean())
    assert f"| 0 | {energy:.3f} | {drop:+.3f} ± nan |" in summary

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "rank_ablation", must_not_run)
    assert study.main(argv) == 0
    xr.testing.assert_equal(
        read_netcdf(out / "rank_ablation.nc").drop_dims("failure"), ds.drop_dims("failure")
    )


def test_summary_reports_the_scores_per_k_and_each_directions_drop_and_energy():
    """On a synthetic dataset of the study's schema: per k the mean score and its change from the full
    adapter (mean ± standard error across clips); per singular direction its share of ||dW||_F^2 (of each
    clip's first prompt, averaged over clips, layers and modules) and the drop its removal causes, for the
    direction and for the random control."""
    ds = rank_ablation_dataset(n_clips=3, rank=4, layers=2)
    ds.attrs["metric"] = "token_f1"
    text = summary(ds)
    assert text.startswith("# Rank-direction ablation (token_f1)\n")
    assert f"full adapter (f2l) {float(ds['full_score'].mean()):.3f}." in text
    assert "| k | token_f1 | - full |" in text
    full = ds["full_score"]
    for k in ds["k"].values:
        topk = ds["topk_score"].sel(k=k)
        cells = [clip_mean_se_by_hand(topk, ".3f"), clip_mean_se_by_hand(topk - full)]
        assert f"| {k} | {' | '.join(cells)} |" in text, k
    first = [list(ds["clip"].values).index(c) for c in np.unique(ds["clip"].values)]
    sv2 = ds["singular_values"].isel(example_id=first).values ** 2  # (clip, layer, module, direction)
    energy = 100 * (sv2 / sv2.sum(-1, keepdims=True)).mean((0, 1, 2))
    np.testing.assert_allclose(energy.sum(), 100.0)
    drop = full - ds["remove_score"]
    for d in ds["singular_direction"].values:
        svd, rand = (drop.sel(singular_direction=d, control=c) for c in ("svd", "random"))
        cells = [f"{energy[d]:.3f}", clip_mean_se_by_hand(svd), clip_mean_se_by_hand(rand)]
        cells.append(clip_mean_se_by_hand(svd - rand))
        assert f"| {d} | {' | '.join(cells)} |" in text, d
