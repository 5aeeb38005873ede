"""analyses.common: what every study command shares: the clips it runs on, how a summary reports a
per-prompt value (mean ± standard error across clips of each clip's mean)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from analyses.common import clip_mean_se, study_examples
from f2l.data import world_manifest, write_manifest


def per_prompt(values: list[float], clips: list[str]) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims="example_id",
        coords={"example_id": [f"p{i}" for i in range(len(values))], "clip": ("example_id", clips)},
    )


def test_clip_mean_se_weighs_every_clip_alike_whatever_its_prompt_count():
    """Clip a: prompts 0.1, 0.3 (mean 0.2); clip b: 0.6 alone; clip c: 0.4 and a NaN (mean 0.4). The mean
    of the clip means is 0.4, not the prompts' 0.35; its standard error sd(0.2, 0.6, 0.4) / sqrt(3)."""
    da = per_prompt([0.1, 0.3, 0.6, 0.4, np.nan], ["a", "a", "b", "c", "c"])
    se = np.std([0.2, 0.6, 0.4], ddof=1) / np.sqrt(3)
    assert clip_mean_se(da) == f"+0.400 ± {se:.3f}" == "+0.400 ± 0.115"
    assert clip_mean_se(-da, fmt=".2f") == "-0.40 ± 0.115"
    assert clip_mean_se(per_prompt([0.25], ["a"])) == "+0.250 ± nan"  # one clip: no spread to estimate
    assert clip_mean_se(per_prompt([np.nan, np.nan], ["a", "b"])) == "n/a"


def test_study_examples_are_the_first_clips_of_the_manifest_or_of_the_split(tmp_path):
    world = study_examples(None, "test", 3, frames=8)
    assert [e.id for e in world] == [e.id for e in world_manifest("test", 3, frames=8)]
    manifest = tmp_path / "clips.jsonl"
    write_manifest(manifest, world_manifest("val", 4, frames=8))
    from_file = study_examples(str(manifest), "test", 2, frames=8)  # the manifest wins over the split
    assert [e.id for e in from_file] == [e.id for e in world_manifest("val", 2, frames=8)]
    assert {e.id for e in from_file}.isdisjoint(e.id for e in world)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no examples"):
        study_examples(str(empty), "test", 2, 8)
