"""``f2l.world.splits``: disjoint, consistent train/val/test seed ranges."""

from __future__ import annotations

import itertools

import pytest

from f2l.world import SPLITS, split_of, split_seeds


def test_splits_disjoint_and_consistent():
    ranges = sorted(SPLITS.values(), key=lambda r: r.start)
    for a, b in itertools.pairwise(ranges):
        assert a.stop <= b.start
    for name in SPLITS:
        seeds = split_seeds(name, 5, offset=3)
        assert len(seeds) == 5 and all(split_of(s) == name for s in seeds)
        assert seeds[0] == SPLITS[name].start + 3
    assert set(split_seeds("val", 4)).isdisjoint(split_seeds("test", 4))
    with pytest.raises(ValueError):
        split_of(2_000_000)
    with pytest.raises(ValueError):
        split_of(-1)
    with pytest.raises(ValueError):
        split_seeds("val", 20_000)
    with pytest.raises(ValueError):
        split_seeds("holdout", 1)
