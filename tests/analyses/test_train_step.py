"""The train-step timing command (analyses.train_step) runs both step variants on the real training code
and records what it measured consistently (times are not asserted)."""

from __future__ import annotations

import json

import pytest

from analyses import train_step


@pytest.mark.slow
def test_train_step_times_both_variants_and_records_the_cache_entries(tmp_path):
    states = tmp_path / "states"
    args = ["--out", str(tmp_path), "--state-cache", str(states), "--clips", "4", "--warmup", "0"]
    assert train_step.main([*args, "--repeats", "1"]) == 0
    result = json.loads((tmp_path / "train_step.json").read_text())
    assert {v: len(r) for v, r in result["rounds_s"].items()} == {"encoded": 1, "cached": 1, "student": 1}
    median = result["median_s"]
    assert result["encoded_vs_cached"] == pytest.approx(median["encoded"] / median["cached"])
    entries = list(states.glob("states-*/*.safetensors"))
    assert len(entries) == 4  # the pool's clips, each encoded once
    assert result["cache_bytes_per_clip"] == pytest.approx(sum(p.stat().st_size for p in entries) / 4)
