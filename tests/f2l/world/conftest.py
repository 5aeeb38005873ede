"""Shared by the world's tests: the ground truth of 500 seeds."""

from __future__ import annotations

import pytest

from f2l.world import ClipTruth, sample_truth


@pytest.fixture(scope="module")
def truths() -> list[ClipTruth]:
    return [sample_truth(s) for s in range(500)]
