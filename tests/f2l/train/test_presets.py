"""The presets of f2l.train: the recipes they hold."""

from __future__ import annotations

import pytest

from f2l.adapter import TARGET_MODULES
from f2l.train import PRESETS, parse_config

pytestmark = pytest.mark.slow


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
                "tiny-small",
                "tiny-small-chunk",
                "tiny-small-continued",
                "tiny-small-third",
                "tiny-small-third-kl",
                "tiny-small-fourth",
                "tiny-small-camera",
                "tiny-small-camera-truth",
                "tiny-small-camera-head",
                "tiny-small-camera-head-0.1",
                "tiny-small-head",
                "tiny-small-head-continued",
                "tiny-small-head-third",
                "tiny-small-head-chunk",
                "tiny-small-head-third-truth",
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
        parse_config(["--preset", "tiny-small-chunk"]),
        parse_config(["--preset", "tiny-small"]),
    )
    continued = parse_config(["--preset", "tiny-small-continued"])
    assert (small.stage, small.init_from, small.base, small.f2l) == (
        "chunk",
        "runs/tiny-small/checkpoints/step-0003000",  # the first stage's end, as the continued run's start
        "tiny-small",
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
