"""The shipped base's recipe: stages chained, finished stages picked up rather than rerun, and the
shipped directory carrying every stage's record."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForImageTextToText

import f2l.basetrain.recipe as recipe
from f2l.basetrain.pretrain import PretrainConfig
from f2l.basetrain.recipe import RECIPES, RecipeConfig, build, command, stage_configs

SMALL = {
    "batch_size": 2,
    "eval_every": 100,
    "val_clips": 1,
    "test_clips": 1,
    "tokenizer_clips": 100,
    "max_new_tokens": 2,
    "max_frames": 4,
}


def test_stages_chain_and_their_commands_rebuild_them(tmp_path):
    cfg = RecipeConfig(work=str(tmp_path / "work"), out=str(tmp_path / "tiny"))
    stages = stage_configs(cfg, RECIPES["tiny"])
    assert stages[0].init_from is None and stages[0].steps == PretrainConfig().steps
    for before, after in zip(stages[:-1], stages[1:], strict=True):
        assert after.init_from == before.out and after.lr < stages[0].lr
    assert len({s.out for s in stages}) == len(stages)
    line = command(stages[1])
    assert f"--init-from {stages[0].out}" in line and "--lr 0.0005" in line and "--threads" not in line
    assert command(PretrainConfig()) == "python -m f2l.basetrain.pretrain"


@pytest.mark.slow
def test_recipe_ships_the_last_stage_and_resumes_by_stage(tmp_path, monkeypatch):
    cfg = RecipeConfig(work=str(tmp_path / "work"), out=str(tmp_path / "tiny"), threads=1)
    two = ({**SMALL, "steps": 2}, {**SMALL, "steps": 1, "lr": 1e-4, "head_warmup": 1})
    summary = build(cfg, two)

    shipped = tmp_path / "tiny"
    assert AutoModelForImageTextToText.from_pretrained(shipped).config.model_type == "smolvlm"
    logs = {i: (shipped / f"pretrain_log_stage{i}.jsonl").read_text().splitlines() for i in (1, 2)}
    assert [len(lines) for lines in logs.values()] == [2, 1]
    recorded = json.loads((shipped / "pretrain_scores.json").read_text())
    assert [s["stage"] for s in recorded["stages"]] == [1, 2]
    assert recorded["stages"][1]["config"]["init_from"] == str(tmp_path / "work" / "tiny-stage1")
    assert recorded["train_seconds"] == pytest.approx(sum(s["train_seconds"] for s in recorded["stages"]))
    assert recorded["test"] == summary["test"]
    assert not list(tmp_path.glob(".tiny.*")), "no temp directory left behind"

    ran = []
    real = recipe.pretrain
    monkeypatch.setattr(recipe, "pretrain", lambda stage: ran.append(stage.out) or real(stage))
    build(cfg, two)
    assert ran == []  # both stages finished with these settings: nothing is trained again
    build(cfg, (two[0], {**two[1], "lr": 2e-4}))
    assert ran == [str(tmp_path / "work" / "tiny-stage2")]  # a changed stage reruns, the one before does not
    ran.clear()
    build(cfg, ({**two[0], "lr": 1e-3}, {**two[1], "lr": 2e-4}))
    assert len(ran) == 2  # a retrained first stage makes the second start from new weights


def test_every_shipped_base_records_the_recipe_that_rebuilds_it():
    """A shipped base's ``pretrain_scores.json`` names its recipe, and each stage's recorded command and
    settings are the ones that recipe gives today."""
    from f2l.models import CHECKPOINTS_DIR

    for name, stages in RECIPES.items():
        recorded = json.loads((CHECKPOINTS_DIR / name / "pretrain_scores.json").read_text())
        made_by = recorded["recipe"]
        assert (made_by["command"], made_by["preset"]) == (
            f"python -m f2l.basetrain.recipe --preset {name}",
            name,
        )
        configs = stage_configs(RecipeConfig(**{k: v for k, v in made_by.items() if k != "command"}), stages)
        assert [r["command"] for r in recorded["stages"]] == [command(c) for c in configs], name
        assert all(recipe._same_settings(c, r) for c, r in zip(configs, recorded["stages"], strict=True)), (
            name
        )


def test_a_stage_recorded_before_a_field_existed_still_counts_as_finished():
    """A field added to PretrainConfig later (at its default) must not make the recipe retrain a stage."""
    stage = stage_configs(RecipeConfig(), RECIPES["tiny"])[1]
    recorded = {k: v for k, v in stage.identity().items() if k not in ("focus_qa", "focus_share")}
    assert recipe._same_settings(stage, {"config": recorded})
    assert not recipe._same_settings(stage, {"config": {**recorded, "lr": stage.lr * 2}})
