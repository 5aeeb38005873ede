"""Figure of ``rank_ablation.nc``: the top-k and remove-one curves, the random control, the energy
per direction and the generated and static slots, read back off the axes."""

from __future__ import annotations

import numpy as np
from figure_datasets import rank_ablation_dataset

from analyses import figures


def test_rank_ablation_curves_draw_the_mean_scores_and_each_directions_energy_share():
    """Top-k: the mean score over examples at each k; remove-one: a mean line per control (singular,
    then random); the full adapter's mean score as a dashed line in both; energy: each direction's share
    of ||dW||_F^2, averaged over examples, layers and modules (so the bars add up to 100%)."""
    ds = rank_ablation_dataset(n_clips=2, rank=6, layers=2)
    rng = np.random.default_rng(3)
    ds["singular_values"] = ds["singular_values"].copy(
        data=rng.uniform(0.1, 1.0, ds["singular_values"].shape)
    )
    ds.attrs["metric"] = "token_f1"
    fig = figures.rank_ablation_curves(ds)
    topk_ax, remove_ax, energy_ax = fig.axes
    assert [ax.get_title() for ax in fig.axes] == [
        "keep only the top-k singular directions",
        "remove one direction",
        "energy per singular direction",
    ]
    assert topk_ax.get_xlabel() == "directions kept, k (0 = no adapter)"
    assert remove_ax.get_xlabel() == "direction removed (0 = largest singular value)"
    assert topk_ax.get_ylabel() == remove_ax.get_ylabel() == "token-F1 (0 to 1)"

    def curves(ax):
        return [line for line in ax.lines if line.get_marker() not in (None, "None", "")]

    (topk,) = curves(topk_ax)
    np.testing.assert_array_equal(topk.get_xdata(), np.arange(7))
    np.testing.assert_allclose(topk.get_ydata(), ds["topk_score"].mean("example_id").values)
    removed = curves(remove_ax)
    assert len(removed) == 2
    for line, control in zip(removed, ("svd", "random"), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(6))
        expected = ds["remove_score"].sel(control=control).mean("example_id").values
        np.testing.assert_allclose(line.get_ydata(), expected, err_msg=control)
    for ax in (topk_ax, remove_ax):
        (full,) = [line for line in ax.lines if line.get_linestyle() == "--"]
        np.testing.assert_allclose(full.get_ydata(), [ds["full_score"].mean()] * 2)
    heights = [p.get_height() for p in energy_ax.patches]
    sv2 = ds["singular_values"] ** 2
    share = 100 * sv2 / sv2.sum("singular_direction")
    np.testing.assert_allclose(heights, share.mean(["example_id", "layer", "module"]).values)
    np.testing.assert_allclose(sum(heights), 100.0)


def test_rank_ablation_shows_the_random_control():
    fig = figures.rank_ablation_curves(rank_ablation_dataset())
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any("random" in t for t in legend) and any("singular" in t for t in legend)
    assert not any("slots" in t.get_text() for t in fig.axes[0].get_legend().get_texts())  # no static block


def test_rank_ablation_marks_generated_and_static_slots_when_the_adapter_has_them():
    ds = rank_ablation_dataset(rank=32)
    n = ds.sizes["example_id"]
    ds = ds.assign_coords(slots=["generated", "static"], rank_slots=("slots", ["0-15", "16-31"]))
    ds["slot_score"] = (("example_id", "slots"), np.stack([np.full(n, 0.55), np.full(n, 0.125)], axis=1))
    fig = figures.rank_ablation_curves(ds)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "generated slots only (static block removed)" in legend
    assert "static slots only (video-independent)" in legend
    flat = [line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1]
    assert any(np.isclose(y, 0.55) for y in flat) and any(np.isclose(y, 0.125) for y in flat)
    assert len(ax.get_xticks()) <= 17  # 33 values of k, thinned to readable ticks
