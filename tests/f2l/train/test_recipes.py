"""The recipes of f2l.train (f2l/train/recipes): files named by their path, what each holds, a mistake in
one in one line, and every shipped hypernetwork's record naming the recipe that rebuilds it."""

from __future__ import annotations

import json

import pytest

from f2l.adapter import TARGET_MODULES
from f2l.config import config_dict, dotted_settings
from f2l.hypernet import KINDS
from f2l.train import PRESETS, TrainConfig, main, parse_config
from f2l.train import recipes as recipes_module
from f2l.train.recipes import RECIPES_DIR, RecipeError, read_recipe, recipe_files

#: Settings of a run that do not change what it trains: where it writes, how often it reports, its caches.
BOOKKEEPING = (
    "preset", "out", "ship", "progress", "tensorboard", "device", "workers", "log_every", "eval_every",
    "save_every", "keep_last", "teacher_cache", "state_cache",
)  # fmt: skip


def test_a_recipe_is_named_by_its_file_and_a_stage_by_its_folder(capsys):
    """``NAME.yaml`` is ``NAME``; ``FOLDER/I-STAGE.yaml`` is ``FOLDER-STAGE``, in stage order; ``--help``
    lists every recipe with its file."""
    files = recipe_files()
    assert files["tiny"] == RECIPES_DIR / "tiny.yaml"
    small = [name for name, path in files.items() if path.parent.name == "small"]
    assert small == [
        "small-head",
        "small-head-chunk",
        "small-head-continued",
        "small-head-third-truth",
    ]
    assert files["small-head-third-truth"] == RECIPES_DIR / "small" / "3-head-third-truth.yaml"
    assert set(PRESETS) == set(files) and len(PRESETS) == 11
    with pytest.raises(SystemExit):
        parse_config(["--help"])
    out = capsys.readouterr().out
    for name, path in files.items():
        assert f"{name}  " in out and str(path.relative_to(RECIPES_DIR)) in out


def test_extends_starts_from_another_recipe_and_the_files_own_keys_win():
    tiny, chunk = read_recipe("tiny"), read_recipe("tiny-chunk")
    assert tiny == {"f2l.width": 128, "f2l.num_latents": 16, "f2l.self_blocks": 1, "steps": 3000}
    assert {k: chunk[k] for k in tiny if k != "steps"} == {k: v for k, v in tiny.items() if k != "steps"}
    assert chunk["steps"] == 1200 and chunk["stage"] == "chunk"
    big = read_recipe("smolvlm2-2.2b")  # a section's keys merge with the recipe it extends
    assert (big["f2l.width"], big["f2l.num_heads"], big["f2l.num_latents"]) == (768, 12, 64)


def test_a_mistake_in_a_recipe_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recipes_module, "RECIPES_DIR", tmp_path)
    (tmp_path / "typo.yaml").write_text("lrr: 0.1\n")
    (tmp_path / "nested.yaml").write_text("f2l: {widht: 3}\n")
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    (tmp_path / "orphan.yaml").write_text("extends: absent\n")
    (tmp_path / "list.yaml").write_text("- steps\n")
    for name, message in (
        ("typo", "typo.yaml: unknown keys ['lrr']"),
        ("nested", "nested.yaml: unknown keys ['f2l.widht']"),
        ("loop", "recipe 'loop' extends itself (loop -> loop)"),
        ("orphan", "unknown recipe 'absent'"),
        ("list", "list.yaml: expected a mapping"),
    ):
        assert main(["--preset", name]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    for argv in (["--preset", "absent"], ["--steps", "3", "--preset=absent"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: unknown preset 'absent'; the presets are: ")
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "head.yaml").write_text("steps: 1\n")
    with pytest.raises(RecipeError, match="<number>-<stage>.yaml"):
        recipe_files()


def recorded_config(train_config: dict, tmp_path) -> TrainConfig:
    """A run's recorded ``train_config`` read back as ``--config`` reads it (older, flat ones upgraded)."""
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(train_config))
    return parse_config(["--config", str(path)])


def training_settings(cfg: TrainConfig) -> dict:
    """The settings that decide what a run trains: no bookkeeping, and of the hypernetwork sections only its
    kind's (the other is never read)."""
    other = tuple(f"{kind}." for kind in KINDS if kind != cfg.kind)
    settings = dotted_settings(TrainConfig, config_dict(cfg))
    return {k: v for k, v in settings.items() if k not in BOOKKEEPING and not k.startswith(other)}


def test_every_shipped_hypernetwork_records_the_recipe_that_rebuilds_it(tmp_path):
    """The recipe a shipped hypernetwork records (``train_config.preset``) is a recipe file, the last of
    its shipped name's stages (``SHIPPED_RECIPES``), and reading it gives the settings it trained with."""
    from f2l.models import CHECKPOINTS_DIR
    from f2l.pipeline import SHIPPED_HYPERNETS, SHIPPED_RECIPES

    for name, directory in SHIPPED_HYPERNETS.items():
        recorded = json.loads((CHECKPOINTS_DIR / directory / "hypernet_config.json").read_text())
        train_config = recorded["train_config"]
        preset = train_config["preset"]
        assert preset in PRESETS and preset == SHIPPED_RECIPES.get(name, (name,))[-1], (name, preset)
        recipe = parse_config(["--preset", preset])
        assert training_settings(recorded_config(train_config, tmp_path)) == training_settings(recipe), name
        assert (recorded["step"], train_config["out"]) == (recipe.steps, recipe.out), name


def test_paper_presets_hold_the_released_recipe():
    for size in ("500m", "2.2b"):
        cfg = parse_config(["--preset", f"paper-{size}"])
        official = cfg.official
        assert (cfg.kind, official.target_modules, official.rank, official.lora_alpha) == (
            "official",
            ("down_proj",),
            16,
            128.0,
        )
        assert (cfg.base, cfg.teacher_base) == (f"smolvlm2-{size}", "smolvlm2-2.2b")
        assert (cfg.kl_weight, cfg.ce_weight, cfg.max_new_tokens, cfg.lr, cfg.betas) == (
            0,
            1,
            64,
            1e-4,
            (0.9, 0.999),
        )
        assert (cfg.warmup, cfg.min_lr_ratio, cfg.weight_decay, cfg.grad_clip) == (0.03, 0.0, 0.01, 1.0)
        assert (cfg.batch_clips * cfg.prompts_per_clip, cfg.steps, cfg.frames, cfg.bf16) == (
            64,
            1000,
            12,
            True,
        )
        assert (official.latent, official.n_latent_queries, official.num_blocks) == (512, 8, 9)
    tiny = parse_config(["--preset", "paper-tiny"])
    assert (tiny.kind, tiny.base, tiny.teacher_base, tiny.official.latent, tiny.official.num_blocks) == (
        "official",
        "tiny",
        None,
        64,
        2,
    )


def test_every_preset_keeps_its_hypernetwork_settings():
    """The architecture each preset trained before the sections (flat fields then, each kind's names now)."""
    tiny = ("f2l", {"width": 128, "num_latents": 16, "num_heads": 4, "self_blocks": 1, "alpha": 8.0})
    small = ("f2l", {"width": 256, "num_latents": 32, "num_heads": 4, "self_blocks": 2, "alpha": 8.0})
    expected = {
        "tiny": tiny,
        "tiny-chunk": tiny,
        **dict.fromkeys(
            (
                "small-head",
                "small-head-continued",
                "small-head-chunk",
                "small-head-third-truth",
            ),
            small,
        ),
        "smolvlm2-500m": (
            "f2l",
            {"width": 512, "num_latents": 64, "num_heads": 8, "self_blocks": 2, "alpha": 16.0},
        ),
        "smolvlm2-2.2b": (
            "f2l",
            {"width": 768, "num_latents": 64, "num_heads": 12, "self_blocks": 2, "alpha": 16.0},
        ),
        "paper-500m": (
            "official",
            {"latent": 512, "n_latent_queries": 8, "num_blocks": 9, "lora_alpha": 128.0},
        ),
        "paper-2.2b": (
            "official",
            {"latent": 512, "n_latent_queries": 8, "num_blocks": 9, "lora_alpha": 128.0},
        ),
        "paper-tiny": (
            "official",
            {"latent": 64, "n_latent_queries": 8, "num_blocks": 2, "lora_alpha": 128.0},
        ),
    }
    assert expected.keys() == set(PRESETS)
    for name, (kind, settings) in expected.items():
        cfg = parse_config(["--preset", name])
        assert cfg.kind == kind and cfg.hypernet is getattr(cfg, kind)
        assert {k: getattr(cfg.hypernet, k) for k in settings} == settings, name
        modules = ("down_proj",) if kind == "official" else TARGET_MODULES
        assert (cfg.hypernet.rank, cfg.hypernet.target_modules) == (16 if kind == "official" else 8, modules)


def test_the_chunk_preset_continues_the_tiny_hypernetwork_and_bad_settings_are_refused():
    cfg = parse_config(["--preset", "tiny-chunk"])
    tiny = parse_config(["--preset", "tiny"])
    assert (cfg.stage, cfg.init_from, cfg.compose, cfg.max_segments, cfg.frames) == (
        "chunk",
        "tiny",
        "scaled",
        8,
        8,
    )
    assert cfg.f2l == tiny.f2l and cfg.targets_from == "ground_truth"
    small, small_stage1 = (
        parse_config(["--preset", "small-head-chunk"]),
        parse_config(["--preset", "small-head"]),
    )
    continued = parse_config(["--preset", "small-head-continued"])
    assert (small.stage, small.init_from, small.base, small.f2l) == (
        "chunk",
        "runs/small-head/checkpoints/step-0003000",  # the first stage's end, the continued run's start
        "small",
        small_stage1.f2l,
    )
    assert (continued.stage, continued.init_from, continued.f2l) == ("single", small.init_from, small.f2l)
    assert parse_config(["--preset", "tiny-chunk", "--compose", "plain"]).compose == "plain"
    for bad in (
        ["--stage", "chunks"],
        ["--compose", "learned"],
        ["--stage", "chunk", "--manifest", "m.jsonl"],
    ):
        with pytest.raises(ValueError, match="stage|compose|manifest"):
            parse_config(bad)
