"""The token_merge baseline: FrameFusion-style merging of visual tokens before the language model, alone
(``f2l.answer.answer(transform=TokenMerge(k))``) and under f2l (``internalize(transform=TokenMerge(k))``)."""

from __future__ import annotations

import math

import pytest
import torch

from f2l.adapter import Adapter
from f2l.answer import answer, generate
from f2l.chat import model_inputs, prompt_text
from f2l.data import clip_prompts, load_frames, world_manifest
from f2l.eval.metrics import token_f1
from f2l.eval.token_merge import (
    TokenMerge,
    fuse_tokens,
    merge_visual_tokens,
    token_budget,
)
from f2l.pipeline import Frames2LoRA


@pytest.fixture(scope="module")
def pipeline():
    return Frames2LoRA.from_pretrained("tiny", device="cpu")


@pytest.fixture(scope="module")
def held_out(pipeline):
    """Four test clips (8 frames) with their background and attribute questions."""
    rows = []
    for example in world_manifest("test", 4):
        frames = load_frames(example, num_frames=8)
        for p in clip_prompts(example):
            if p.label in ("background", "attribute"):
                rows.append((frames, p))
    return rows


def _relative_delta(a: Adapter, b: Adapter) -> float:
    pairs = [(a.delta_weight(m, i), b.delta_weight(m, i)) for m in a.factors for i in range(a.num_layers)]
    return math.sqrt(sum(float((x - y).norm() ** 2) for x, y in pairs)) / math.sqrt(
        sum(float(x.norm() ** 2) for x, _ in pairs)
    )


def _per_question(adapters: list[Adapter]) -> Adapter:
    """One adapter sample per question of ``held_out``: each clip asks two."""
    return Adapter.stack([a for a in adapters for _ in range(2)])


def _unit(*components: float) -> list[float]:
    norm = math.sqrt(sum(c * c for c in components))
    return [c / norm for c in components]


# -- the merge itself, on hand-made features -----------------------------------------------------------


def test_the_most_similar_same_position_pairs_of_adjacent_frames_merge_into_their_mean():
    # 3 frames of 2 x 2 tokens; tokens 0..3 frame 0, 4..7 frame 1, 8..11 frame 2. Identical pairs (sim 1):
    # 0-4, 1-5, 6-10; then 3-7 (sim 0.99); every other temporal pair is far less similar.
    e = torch.eye(12)
    f = e.clone()
    f[4], f[5], f[10] = e[0], e[1], e[6]
    f[7] = torch.tensor(_unit(*[0.0] * 3, 1.0, *[0.0] * 3, 0.15, *[0.0] * 4))
    f[3] = torch.tensor(_unit(*[0.0] * 3, 1.0, *[0.0] * 8))
    f = f * torch.arange(1, 13).float()[:, None]  # norms differ: cosine similarity, weighted means
    fusion = fuse_tokens(f, [4, 4, 4], budget=8)
    assert fusion.keep.tolist() == [0, 1, 2, 3, 6, 8, 9, 11]  # each group sits at its earliest token
    groups = [sorted((fusion.group == g).nonzero().flatten().tolist()) for g in range(8)]
    assert groups == [[0, 4], [1, 5], [2], [3, 7], [6, 10], [8], [9], [11]]
    for g, members in enumerate(groups):
        torch.testing.assert_close(fusion.merged[g], f[members].mean(0))


def test_spatial_merging_reaches_the_budget_with_means_weighted_by_group_size():
    # Frames of 3 and 2 tokens (no square grid, unequal sizes: no temporal pairs): neighbours merge in
    # order of similarity: 0-1 (0.99), then 1-2 (0.64) joins token 2 to the group {0, 1}, then 3-4 (0.62).
    f = torch.tensor(
        [
            _unit(1.0, 0.0, 0.0, 0.0),
            _unit(1.0, 0.15, 0.0, 0.0),
            _unit(0.6, 1.0, 0.0, 0.0),
            _unit(0.0, 0.0, 1.0, 0.0),
            _unit(0.0, 0.0, 0.8, 1.0),
        ]
    ) * torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    assert fuse_tokens(f, [3, 2], budget=4).group.tolist() == [0, 0, 1, 2, 3]
    assert fuse_tokens(f, [3, 2], budget=3).group.tolist() == [0, 0, 0, 1, 2]
    fusion = fuse_tokens(f, [3, 2], budget=2)
    assert fusion.keep.tolist() == [0, 3] and fusion.group.tolist() == [0, 0, 0, 1, 1]
    torch.testing.assert_close(fusion.merged[0], f[:3].mean(0))  # not the mean of mean(f0, f1) and f2
    torch.testing.assert_close(fusion.merged[1], f[3:].mean(0))


def test_a_budget_at_or_above_the_token_count_keeps_every_token():
    f = torch.randn(8, 5)
    fusion = fuse_tokens(f, [4, 4], budget=token_budget(8, 1))
    assert fusion.keep.tolist() == list(range(8)) and torch.equal(fusion.merged, f)
    assert token_budget(128, 4) == 32 and token_budget(130, 4) == 33
    with pytest.raises(ValueError):
        token_budget(8, 0)


# -- on the shipped tiny base --------------------------------------------------------------------------


def test_factor_1_is_the_direct_prompt(pipeline, held_out):
    base = pipeline.base
    frames, prompt = held_out[0]
    text = prompt_text(base.processor, prompt.prompt, with_video=True)
    inputs = model_inputs(base.processor, [text], [frames])
    merged = merge_visual_tokens(base, inputs, factor=1)
    assert torch.equal(merged.inputs["input_ids"], inputs["input_ids"])
    with torch.inference_mode():
        direct = base.model(**inputs).logits
        same = base.model(**{k: v for k, v in merged.inputs.items() if k != "input_ids"}).logits
    torch.testing.assert_close(same, direct, atol=1e-5, rtol=1e-5)
    assert (
        answer(base, frames, prompt.prompt, transform=TokenMerge(1), max_new_tokens=16).text
        == answer(base, frames, prompt.prompt, max_new_tokens=16).text
    )


def test_factor_4_keeps_a_quarter_of_each_videos_visual_tokens_and_every_text_token(pipeline, held_out):
    base = pipeline.base
    long, short = held_out[0][0], held_out[2][0]
    short = type(short)(short.pixels[:6], short.timestamps[:6], short.source)
    text = prompt_text(base.processor, "Describe the video.", with_video=True)
    inputs = model_inputs(base.processor, [text, text], [long, short])
    merged = merge_visual_tokens(base, inputs, factor=4)
    assert merged.visual_before == [128, 96] and merged.visual_after == [32, 24]
    image_id = base.model.config.image_token_id
    for row in range(2):
        before = inputs["input_ids"][row][inputs["attention_mask"][row].bool()]
        keep = merged.inputs["attention_mask"][row].bool()
        after = merged.inputs["input_ids"][row][keep]
        assert int((after == image_id).sum()) == merged.visual_after[row]
        assert torch.equal(
            after[after != image_id], before[before != image_id]
        )  # timestamps, wrappers, question
        positions = merged.inputs["position_ids"][row][keep]
        assert bool((positions.diff() > 0).all()) and int(positions[-1]) == len(before) - 1
        embeds = merged.inputs["inputs_embeds"][row][keep]
        text_rows = after != image_id
        torch.testing.assert_close(embeds[text_rows], base.model.get_input_embeddings()(after[text_rows]))
    out = answer(base, long, "Describe the video.", transform=TokenMerge(4), max_new_tokens=8)
    assert out.input_tokens["visual"] == 32 and out.new_tokens >= 1 and out.text


def test_token_merged_answers_keep_most_of_what_the_video_gives(pipeline, held_out):
    # Measured on these 4 clips x (background, attribute): token_merge 0.75, no_video 0.40, direct 0.88
    # (8 test clips, every prompt: direct 0.62, token_merge 0.58, no_video 0.47).
    base = pipeline.base
    refs = [p.reference for _, p in held_out]
    merged = [answer(base, f, p.prompt, transform=TokenMerge(4), max_new_tokens=16).text for f, p in held_out]
    blind = [a.text for a in generate(base, [p.prompt for _, p in held_out], max_new_tokens=16)]
    merged_f1 = sum(map(token_f1, merged, refs)) / len(refs)
    blind_f1 = sum(map(token_f1, blind, refs)) / len(refs)
    assert merged_f1 >= blind_f1 + 0.2, (merged_f1, blind_f1, merged, blind)


def test_internalizing_merged_tokens_gives_a_close_but_different_adapter(pipeline, held_out):
    # Measured with the shipped hypernetwork: relative ||dW_merged - dW|| / ||dW|| of 0.62, 0.48, 0.26, 0.46
    # on these clips (0.30, 0.14, 0.12, 0.17 with the one trained on the base that could not count: the
    # adapter now leans on finer token detail).
    clips = [frames for frames, _ in held_out[::2]]
    plain = [pipeline.internalize(c) for c in clips]
    merged = [pipeline.internalize(c, transform=TokenMerge(4)) for c in clips]
    assert pipeline.internalize(clips[0], transform=TokenMerge(4)) is merged[0]  # cached under its own key
    assert merged[0].provenance["token_merge"] == 4 and "token_merge" not in plain[0].provenance
    assert _relative_delta(pipeline.internalize(clips[0], transform=TokenMerge(1)), plain[0]) < 1e-4
    deltas = [_relative_delta(m, p) for m, p in zip(merged, plain, strict=True)]
    assert all(0.03 < d < 0.8 for d in deltas), deltas
    questions = [p.prompt for _, p in held_out]
    refs = [p.reference for _, p in held_out]
    answers = [
        a.text for a in generate(pipeline.base, questions, adapter=_per_question(merged), max_new_tokens=16)
    ]
    unmerged = [
        a.text for a in generate(pipeline.base, questions, adapter=_per_question(plain), max_new_tokens=16)
    ]
    assert sum(map(token_f1, answers, unmerged)) / len(refs) >= 0.75, (answers, unmerged)
    assert sum(map(token_f1, answers, refs)) / len(refs) >= 0.6, (answers, refs)
