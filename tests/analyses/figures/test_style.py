"""``analyses.figures.style``: the footnote's count of clips and examples."""

from __future__ import annotations

from figure_datasets import delta_norms_dataset, layer_removal_dataset

from analyses import figures


def test_the_footnote_counts_clips_on_either_dim():
    """``example_id`` is one prompt of one clip (labelled by ``clip``); a dataset of whole clips has a
    ``clip`` dim: the footnote counts clips either way."""
    per_prompt = figures.layer_removal_effects(layer_removal_dataset(n_clips=3))
    per_clip = figures.delta_norms_profile(delta_norms_dataset(n_clips=3))
    n = layer_removal_dataset(n_clips=3).sizes["example_id"]
    assert f"3 clips, {n} examples" in " ".join(t.get_text() for t in per_prompt.texts)
    assert "3 clips ·" in " ".join(t.get_text() for t in per_clip.texts)
