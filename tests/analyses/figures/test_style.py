"""``analyses.figures.style``: the footnote (clips and examples, failures, models, date), the byte and
metric axes, and the fixed order and colours of names."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from figure_datasets import delta_norms_dataset, finish, layer_removal_dataset

from analyses import figures
from analyses.figures.style import (
    METHOD_COLORS,
    METHOD_ORDER,
    PALETTE,
    binary_size,
    failures,
    footnote,
    label,
    log_axis,
    metric_label,
    metric_name,
    metric_of,
    ordered,
    palette,
)


def test_the_footnote_counts_clips_on_either_dim():
    """``example_id`` is one prompt of one clip (labelled by ``clip``); a dataset of whole clips has a
    ``clip`` dim: the footnote counts clips either way."""
    per_prompt = figures.layer_removal_effects(layer_removal_dataset(n_clips=3))
    per_clip = figures.delta_norms_profile(delta_norms_dataset(n_clips=3))
    n = layer_removal_dataset(n_clips=3).sizes["example_id"]
    assert f"3 clips, {n} examples" in " ".join(t.get_text() for t in per_prompt.texts)
    assert "3 clips ·" in " ".join(t.get_text() for t in per_clip.texts)


def test_the_footnote_says_examples_failures_models_and_date_in_the_singular_too():
    one = finish(layer_removal_dataset(n_clips=1).isel(example_id=[0]).drop_dims("failure"), failed=1)
    assert footnote(one) == (
        "1 example · 1 failed unit left out · base model tiny@0000 · hypernet tiny-hypernet@0000 · 2026-01-01"
    )
    assert failures(one) == ["world-990: RuntimeError: synthetic failure"]
    assert footnote(xr.Dataset()) == "" and failures(xr.Dataset()) == []


def test_binary_sizes_read_in_binary_units():
    assert [binary_size(v) for v in (512, 1536, 311_296, 5 * 2**30)] == [
        "512 B",
        "1.5 KiB",
        "304 KiB",
        "5 GiB",
    ]


def test_byte_axes_tick_powers_of_two_inside_the_data_labelled_in_binary_units():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [300 * 2**10, 40 * 2**20])
    log_axis(ax, unit="bytes")
    low, high = ax.get_ylim()
    ticks = ax.get_yticks()
    assert ax.get_yscale() == "log" and 3 <= len(ticks) <= 7
    assert all(low <= t <= high for t in ticks)
    exponents = np.log2(ticks)
    np.testing.assert_allclose(exponents, np.round(exponents))  # powers of two
    labels = [ax.yaxis.get_major_formatter()(t) for t in ticks]
    assert labels == [binary_size(t) for t in ticks] and "1 MiB" in labels


def test_metric_names_and_labels():
    assert metric_label("token_f1") == "token-F1 (0 to 1)"
    assert metric_label("embedding") == "embedding cosine similarity (-1 to 1)"
    assert metric_label("bleu_score") == metric_name("bleu_score") == "bleu score"  # unknown: no range
    ds = xr.Dataset(coords={"metric": "exact_match"})
    assert metric_of(ds) == "exact_match" and metric_of(ds, "token_f1") == "token_f1"
    assert metric_of(xr.Dataset(attrs={"metric": "embedding"})) == "embedding"
    assert metric_of(xr.Dataset()) == "score"


def test_names_keep_their_order_and_colour_and_unknown_ones_get_unused_colours():
    assert ordered(["x", "f2l", "direct", "f2l", "y"], METHOD_ORDER) == ["direct", "f2l", "x", "y"]
    colors = palette(["f2l", "mystery", "direct"], METHOD_COLORS)
    assert colors["f2l"] == METHOD_COLORS["f2l"] and colors["direct"] == METHOD_COLORS["direct"]
    assert colors["mystery"] not in METHOD_COLORS.values()
    # unknown names take the palette's unused colours first, then its colours in order
    assert palette(["a", "b", "c"], {"b": PALETTE[0]}) == {"a": PALETTE[1], "b": PALETTE[0], "c": PALETTE[2]}
    assert label("f2l") == "f2l (adapter only)" and label("new_method") == "new method"
