"""The state cache (f2l.state_cache): what the hypernetwork reads from it is what it reads from the base
streaming the same clips, to float16's precision; an entry is a function of its key alone."""

from __future__ import annotations

import pytest
import torch

import f2l.state_cache as state_cache
from f2l.data import load_frames, world_manifest
from f2l.encode import ContextFormat, internalization_inputs
from f2l.state_cache import StateCache, as_layers, encode_clip, layer_states


def delta_w_error(got, ref) -> float:
    """The largest relative error, over modules, of the applied update B^T A of every row and layer."""
    errors = []
    for m, (a, b) in ref.items():
        want = torch.einsum("nlri,nlro->nlio", a, b)
        have = torch.einsum("nlri,nlro->nlio", *got[m])
        errors.append(float((have - want).norm() / want.norm()))
    return max(errors)


@pytest.mark.parametrize("shipped", ["tiny", "paper-tiny"])
def test_cached_clips_give_the_adapters_of_the_streamed_base(shipped, tiny_base):
    """Clips of 6 and 8 frames batched from the cache (left-padded) against the base streaming each clip:
    float16 states move delta-W by well under 1e-3 (docs/training.md, "The state cache": a few 1e-5)."""
    from f2l.pipeline import Frames2LoRA

    hypernet = Frames2LoRA.from_pretrained(shipped, base=tiny_base).hypernet
    size = tiny_base.model.config.vision_config.image_size
    clips = [
        load_frames(e, num_frames=n, size=size)
        for e, n in zip(world_manifest("train", 3), (8, 6, 8), strict=True)
    ]
    cached = [encode_clip(tiny_base, f, hypernet.context) for f in clips]
    assert cached[0].dtype == torch.float16 and cached[1].shape[1] < cached[0].shape[1]  # padding is read
    with torch.no_grad():
        batch = hypernet(None, states=as_layers(*layer_states(cached)))
        for i, frames in enumerate(clips):
            streamed = hypernet(tiny_base, internalization_inputs(tiny_base, [frames], hypernet.context))
            row = {m: (a[i : i + 1], b[i : i + 1]) for m, (a, b) in batch.items()}
            assert delta_w_error(row, streamed) < 1e-3


def test_an_entry_is_a_function_of_its_key(random_base, tmp_path, monkeypatch):
    size = random_base.model.config.vision_config.image_size
    example = world_manifest("train", 1)[0]
    frames = load_frames(example, num_frames=3, size=size)
    context = ContextFormat()
    cache = StateCache(tmp_path, random_base.digest)
    key = cache.key(example.id, 3, size, context)
    assert key not in cache
    cache.put(key, encode_clip(random_base, frames, context))
    assert key in cache and torch.equal(cache.get(key), encode_clip(random_base, frames, context))
    others = {
        cache.key("another", 3, size, context),
        cache.key(example.id, 4, size, context),
        cache.key(example.id, 3, 2 * size, context),
        cache.key(example.id, 3, size, ContextFormat(prompt="Internalize this video for later captioning.")),
    }
    assert key not in others and len(others) == 4
    assert list(tmp_path.iterdir()) == [tmp_path / f"states-{random_base.digest}"]

    inputs = internalization_inputs(random_base, [frames], context)
    layers = state_cache.collect_hidden_states(random_base, inputs)
    layers[1] = layers[1].__class__(1, layers[1].hidden * 1e6, layers[1].mask)  # beyond float16's range
    monkeypatch.setattr(state_cache, "collect_hidden_states", lambda *a: layers)
    with pytest.raises(ValueError, match="beyond float16"):
        encode_clip(random_base, frames, context)
