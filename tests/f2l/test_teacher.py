"""Teacher targets (f2l.teacher): the cache keeps apart what must not be mixed up (base weights, top-k,
answer length, clip, frame count, frame size, prompt), reads targets back as written, survives a fill
cut short between its two writes, and asks the teacher only for what it lacks; the targets are the
greedy answer with the video in context and its top-k log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import f2l.teacher as teacher
from f2l.answer import greedy_answer_ids
from f2l.teacher import TeacherCache, TeacherRequest, TeacherTarget, generate_targets, teacher_targets
from f2l.video import Frames

pytestmark = pytest.mark.usefixtures("one_thread")


def frames(n: int = 2, size: int = 16, seed: int = 0, width: int | None = None) -> Frames:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, size, width or size, 3), dtype=np.uint8)
    return Frames(pixels, np.arange(n, dtype=float))


def target(length: int, k: int = 3, seed: int = 0) -> TeacherTarget:
    g = torch.Generator().manual_seed(seed)
    logprobs = torch.randn(length, k, generator=g).log_softmax(-1).sort(-1, descending=True).values
    return TeacherTarget(
        torch.randint(0, 1000, (length,), generator=g),
        torch.randint(0, 1000, (length, k), generator=g),
        logprobs,
    )


def test_the_key_separates_base_clip_frame_count_frame_size_and_prompt():
    request = TeacherRequest("clip-0", "what colour is the circle?", frames(2, 16))
    keys = {
        "as given": request.key("digest-a"),
        "other base weights": request.key("digest-b"),
        "other clip": TeacherRequest("clip-1", request.prompt, request.frames).key("digest-a"),
        "more frames": TeacherRequest("clip-0", request.prompt, frames(3, 16)).key("digest-a"),
        "taller frames": TeacherRequest("clip-0", request.prompt, frames(2, 32, width=16)).key("digest-a"),
        "wider frames": TeacherRequest("clip-0", request.prompt, frames(2, 16, width=32)).key("digest-a"),
        "other prompt": TeacherRequest("clip-0", "how many squares?", request.frames).key("digest-a"),
    }
    assert len(set(keys.values())) == len(keys), keys
    # the clip id names the pixels: the same clip sampled again (another Frames object) is the same entry
    again = TeacherRequest("clip-0", "what colour is the circle?", frames(2, 16, seed=1))
    assert again.key("digest-a") == keys["as given"]


def test_top_k_answer_length_and_base_each_get_their_own_cache(tmp_path):
    TeacherCache(tmp_path, "digest-a", top_k=3, max_new_tokens=8).put_many({"key": target(4)})
    assert "key" in TeacherCache(tmp_path, "digest-a", top_k=3, max_new_tokens=8)
    for other in (("digest-b", 3, 8), ("digest-a", 5, 8), ("digest-a", 3, 16)):
        cache = TeacherCache(tmp_path, *other)
        assert "key" not in cache and len(cache) == 0, other


def test_cached_targets_read_back_as_written(tmp_path):
    written = {"a": target(1, seed=0), "b": target(4, seed=1), "c": target(7, seed=2)}
    cache = TeacherCache(tmp_path, "digest", top_k=3)
    cache.put_many({k: written[k] for k in ("a", "b")})
    cache.put_many({"c": written["c"]})  # a second shard beside the first
    for reader in (cache, TeacherCache(tmp_path, "digest", top_k=3)):  # in memory and reopened from disk
        assert len(reader) == 3
        for key, t in written.items():
            got = reader.get(key)
            assert torch.equal(got.tokens, t.tokens) and torch.equal(got.topk_ids, t.topk_ids), key
            # log-probs are handed back in float32, to the float16 they are stored in
            assert got.topk_logprobs.dtype == torch.float32
            err = (got.topk_logprobs - t.topk_logprobs).abs()
            assert (err <= 2**-11 * t.topk_logprobs.abs()).all(), key


def test_a_fill_cut_short_between_its_two_writes_shows_nothing_of_that_shard(tmp_path):
    cache = TeacherCache(tmp_path, "digest", top_k=3)
    cache.put_many({"kept": target(2)})
    cache.put_many({"lost": target(3)})
    shards = sorted(cache.root.glob("shard-*.json"))
    assert len(shards) == 2
    # a shard whose tensors are gone is not served: its index alone names nothing readable
    shards[1].with_suffix(".safetensors").unlink()
    # a shard whose index never came (killed between the two writes) names nothing either
    tensors_only = cache.root / "shard-00009-deadbeef.safetensors"
    tensors_only.write_bytes((cache.root / f"{shards[0].stem}.safetensors").read_bytes())
    reopened = TeacherCache(tmp_path, "digest", top_k=3)
    assert len(reopened) == 1 and "kept" in reopened and "lost" not in reopened
    assert torch.equal(reopened.get("kept").tokens, target(2).tokens)
    # the next fill writes the missing entry again, visible beside the kept one
    reopened.put_many({"lost": target(3)})
    assert len(TeacherCache(tmp_path, "digest", top_k=3)) == 2


def test_teacher_targets_are_the_greedy_answer_with_the_video_and_its_top_k(tiny_base):
    """On the shipped base, which ends its answers: the target stops at the end of utterance, kept."""
    video, question = frames(2, 64), "how many objects appear?"
    (made,) = generate_targets(
        tiny_base, [TeacherRequest("clip-0", question, video)], top_k=4, max_new_tokens=12
    )
    n = len(made.tokens)
    assert made.topk_ids.shape == made.topk_logprobs.shape == (n, 4)
    eos = tiny_base.model.generation_config.eos_token_id
    assert 1 < n < 12 and made.tokens[-1] == eos and eos not in made.tokens[:-1].tolist()
    # greedy: the token taken is the top-1 of the distribution recorded at that step
    assert torch.equal(made.topk_ids[:, 0], made.tokens)
    lp = made.topk_logprobs
    assert (lp <= 0).all() and (lp[:, :-1] >= lp[:, 1:]).all()
    assert (lp.exp().sum(-1) <= 1 + 1e-5).all()  # normalised over the vocabulary, not over the k
    # the answer f2l gives with the video in context (stop token kept), not the question alone
    with_video = greedy_answer_ids(tiny_base, [question], video=video, keep_stop=True, max_new_tokens=12)
    blind = greedy_answer_ids(tiny_base, [question], keep_stop=True, max_new_tokens=12)
    assert made.tokens.tolist() == with_video[0] != blind[0]


def test_only_missing_targets_are_generated_and_cached_ones_come_back_unchanged(
    random_base, tmp_path, monkeypatch
):
    asked: list[str] = []

    def counting(base, requests, **kw):
        asked.extend(r.prompt for r in requests)
        return generate_targets(base, requests, **kw)

    monkeypatch.setattr(teacher, "generate_targets", counting)
    cache = TeacherCache(tmp_path, random_base.digest, top_k=2, max_new_tokens=3)
    clip0, clip1 = frames(2, 64, seed=0), frames(2, 64, seed=1)
    first = [
        TeacherRequest("clip-0", "what colour is the circle?", clip0),
        TeacherRequest("clip-1", "what colour is the circle?", clip1),
        TeacherRequest("clip-0", "what colour is the circle?", clip0),  # the same entry twice
    ]
    got = teacher_targets(random_base, first, cache, batch_size=2, progress=False)
    assert len(asked) == 2 and len(cache) == 2
    assert torch.equal(got[0].tokens, got[2].tokens)  # the duplicate is served from the one entry

    asked.clear()
    second = [*first, TeacherRequest("clip-1", "how many squares?", clip1)]
    again = teacher_targets(
        random_base, second, TeacherCache(tmp_path, random_base.digest, 2, 3), progress=False
    )
    assert asked == ["how many squares?"]
    for old, new in zip(got, again, strict=False):
        assert torch.equal(old.tokens, new.tokens) and torch.equal(old.topk_logprobs, new.topk_logprobs)
    assert len(TeacherCache(tmp_path, random_base.digest, 2, 3)) == 3
