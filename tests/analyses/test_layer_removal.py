"""``python -m analyses.layer_removal`` on the shipped tiny checkpoints: a module group the adapter lacks
refused before any clip, and the study end to end (its two ends computed independently, the negative
controls, the Markdown summary, resume, and more clips computing only the new one), and the summary's
numbers on a synthetic dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from figure_datasets import layer_removal_dataset
from support import clip_mean_se_by_hand

from analyses.layer_removal import summary
from f2l.answer import generate
from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import score_answers
from f2l.pipeline import Frames2LoRA
from f2l.results import read_netcdf
from probes.layer_removal import layer_removal

pytestmark = pytest.mark.usefixtures("one_thread")


def test_study_refuses_a_group_the_adapter_lacks_before_any_clip(official_hypernet, tmp_path, capsys):
    import analyses.layer_removal as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--hypernet", str(official_hypernet), "--clips", "1", "--device", "cpu"]
    assert study.main([*argv, "--module-groups", "attention"]) == 2  # a user's mistake: one line
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "['attention'] hold none" in err and "\n" not in err
    assert not (out / "layer_removal.nc").exists() and not list(out.rglob("*.nc"))  # no clip was run


def test_study_command_end_to_end_and_resume(tmp_path, monkeypatch):
    import analyses.layer_removal as study

    out = tmp_path / "results"
    argv = ["--out", str(out), "--clips", "2", "--max-new-tokens", "8", "--device", "cpu"]
    assert study.main(argv) == 0
    ds = read_netcdf(out / "layer_removal.nc")
    examples = world_manifest("test", 2)
    prompts = [p for e in examples for p in clip_prompts(e)]
    sizes = {"example_id": len(prompts), "adapter": 3, "layer": 4, "module_group": 3, "failure": 0}
    assert dict(ds.sizes) == sizes
    assert list(ds["layer"].values) == [0, 1, 2, 3]
    assert sorted(set(ds["clip"].values)) == sorted(e.id for e in examples)
    assert ds.attrs["base_model"].startswith("tiny@") and ds.attrs["hypernet"].startswith("tiny-hypernet@")
    # the default groups are resolved from the hypernetwork's modules (all seven) and recorded
    assert json.loads(ds.attrs["config"])["module_groups"] == ["all", "attention", "mlp"]

    # the two ends, computed independently of the probe
    pipeline = Frames2LoRA.from_pretrained("tiny", device="cpu")
    refs = [p.reference for p in prompts]
    no_video = [a.text for a in generate(pipeline.base, [p.prompt for p in prompts], max_new_tokens=8)]
    np.testing.assert_array_equal(ds["none_score"].values, score_answers("token_f1", no_video, refs))
    size = pipeline.base.model.config.vision_config.image_size
    f2l_answers = [
        pipeline.generate(
            pipeline.internalize(load_frames(p.example, num_frames=8, size=size)), p.prompt, max_new_tokens=8
        ).text
        for p in prompts
    ]
    full = ds["full_score"]
    np.testing.assert_array_equal(
        full.sel(adapter="real").values, score_answers("token_f1", f2l_answers, refs)
    )
    assert float(full.sel(adapter="real").mean()) > float(
        ds["none_score"].mean()
    )  # the trained adapter helps
    xr.testing.assert_allclose(ds["effect"], ds["score"] - full)
    assert (ds["effect"].sel(adapter="real") != 0).any()
    # the swapped control: the next test clip's adapter answers otherwise, and worse, than the clip's own
    answers = ds["full_prediction"]
    assert (answers.sel(adapter="swapped") != answers.sel(adapter="real")).sum() >= len(prompts) // 2
    assert float(full.sel(adapter="swapped").mean()) < float(full.sel(adapter="real").mean()) - 0.1

    summary = (out / "layer_removal.md").read_text()
    assert "| layer | all | attention | mlp |" in summary
    effect = ds["effect"].sel(layer=0, module_group="all").groupby("clip").mean().mean("clip")
    assert f"| 0 | {float(effect.sel(adapter='real')):+.3f} ±" in summary
    controls = summary.split("## Negative controls")[1]
    assert "| layer | real | swapped | blank |" in controls
    row = "| 0 | " + " ± ".join(f"{float(v):+.3f}" for v in effect.values[:1]) + " ±"
    assert row in controls and f"{float(effect.sel(adapter='swapped')):+.3f} ±" in controls

    calls = []

    def must_not_run(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a finished clip was recomputed")

    monkeypatch.setattr(study, "layer_removal", must_not_run)
    monkeypatch.setattr("analyses.figures.save_study_figures", lambda *args: [])  # drawn once above is enough
    assert study.main(argv) == 0
    again = read_netcdf(out / "layer_removal.nc")
    assert calls == [] and again.sizes["failure"] == 0
    xr.testing.assert_equal(again.drop_dims("failure"), ds.drop_dims("failure"))

    # more clips extend the study: only the new clip is computed, the finished ones are reused
    def counted(pipeline, clips, **kwargs):
        calls.append([e.id for e in clips])
        return layer_removal(pipeline, clips, **kwargs)

    monkeypatch.setattr(study, "layer_removal", counted)
    assert study.main([*argv[:2], "--clips", "3", *argv[4:]]) == 0
    grown = read_netcdf(out / "layer_removal.nc")
    assert calls == [[world_manifest("test", 3)[2].id]]
    xr.testing.assert_equal(
        grown.drop_dims("failure").isel(example_id=slice(0, len(prompts))), ds.drop_dims("failure")
    )


def test_summary_reports_the_two_ends_the_mean_effects_and_the_controls():
    """On a synthetic dataset of the study's schema (swapped answers differ on 5 prompts): the scores with
    nothing and everything removed, each layer's mean effect per module group (mean ± standard error across
    clips), per benchmark, and per adapter."""
    ds = layer_removal_dataset(n_clips=3)
    n = ds.sizes["example_id"]
    answers = np.full((n, 3), "a red circle", dtype=object)
    answers[:5, 1] = "a blue square"
    ds["full_prediction"] = (("example_id", "adapter"), answers)
    text = summary(ds)
    assert text.startswith("# Layer removal (token_f1)\n")
    full, none = ds["full_score"], ds["none_score"]
    for variant, value in (
        ("nothing removed (f2l, real adapter)", full.sel(adapter="real").mean()),
        ("nothing removed (f2l, swapped adapter)", full.sel(adapter="swapped").mean()),
        ("everything removed (base, no video)", none.mean()),
        ("difference", (none - full.sel(adapter="real")).mean()),
    ):
        assert f"| {variant} | {float(value):.3f} |" in text, variant
    effect = ds["effect"].sel(adapter="real")
    assert "| layer | all | attention | mlp |" in text
    for layer in ds["layer"].values:
        cells = [
            clip_mean_se_by_hand(effect.sel(layer=layer, module_group=g)) for g in ("all", "attention", "mlp")
        ]
        assert f"| {layer} | {' | '.join(cells)} |" in text, layer
    count = effect.sel(module_group="all").where(ds["benchmark"] == "count", drop=True).mean("example_id")
    assert "| count | " + " | ".join(f"{float(v):.3f}" for v in count.values) + " |" in text
    controls = text.split("## Negative controls")[1]
    assert f"differs from the real adapter's: swapped 5 / {n}, blank 0 / {n}." in controls
    assert "| layer | real | swapped | blank |" in controls
    all_groups = ds["effect"].sel(module_group="all", layer=2)
    cells = [clip_mean_se_by_hand(all_groups.sel(adapter=a)) for a in ("real", "swapped", "blank")]
    assert f"| 2 | {' | '.join(cells)} |" in controls
