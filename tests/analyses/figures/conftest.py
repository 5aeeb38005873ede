"""The figure tests draw headless (Agg) and close every figure a test opened. Their synthetic datasets
and the readers of what a figure drew are in tests/helpers/figure_datasets.py."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
