"""The tiny SmolVLM2: a real SmolVLM-architecture checkpoint small enough to train on a 2-core CPU.

It is built here from nothing (a byte-level BPE tokenizer trained on the world's text, a SmolVLM
config, the SmolVLM image/video processor configs and the SmolVLM2 chat template) and saved as an
ordinary Hugging Face checkpoint directory, so ``AutoModelForImageTextToText`` and ``AutoProcessor``
load it exactly like ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``, and video goes through the
same processor path. ``f2l.basetrain.pretrain`` trains it; the trained result ships in
``f2l/checkpoints/<preset>/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

# Special tokens of the SmolVLM2 tokenizer that the processor and chat template rely on.
BOS, EOS, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
END_OF_UTTERANCE = "<end_of_utterance>"
IMAGE, FAKE_IMAGE, GLOBAL_IMAGE = "<image>", "<fake_token_around_image>", "<global-img>"
MAX_SPLIT = 4  # row/col tokens for image splitting up to 4x4 tiles (resolution scaling)
ROW_COL = [f"<row_{r}_col_{c}>" for r in range(1, MAX_SPLIT + 1) for c in range(1, MAX_SPLIT + 1)]
SPECIAL_TOKENS = [PAD, BOS, EOS, END_OF_UTTERANCE, IMAGE, FAKE_IMAGE, GLOBAL_IMAGE, *ROW_COL]

# The SmolVLM2 chat template (video-aware), as the real checkpoints ship it.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyPreset:
    """Sizes of a SmolVLM2 built from nothing. ``tiny`` fits CPU training in minutes; ``small`` is the
    second scale; ``f2l.models.shapes`` holds the real 500M / 2.2B sizes (untrained, for GPU checks)."""

    name: str
    frame_size: int = 64  # frames are resized to frame_size x frame_size, like SmolVLM2's 384 px
    patch_size: int = 8
    scale_factor: int = 2  # pixel shuffle: (64/8)^2 / 2^2 = 16 visual tokens a frame
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 384
    vocab_size: int = 1024  # the BPE tokenizer's target size (the world's text fills about 700)
    max_positions: int = 65536  # RoPE: long enough for 1,024 frames in context
    vision_intermediate: int | None = None  # default 4 x vision_hidden
    embedding_rows: int | None = None  # text embedding / LM-head rows when more than the tokenizer's
    rope_theta: float = 100_000.0

    @property
    def image_seq_len(self) -> int:
        return (self.frame_size // self.patch_size) ** 2 // self.scale_factor**2


PRESETS = {
    "tiny": TinyPreset("tiny"),
    # The second scale grows the text model (4.9M parameters against 0.87M; 5.6M in all against 1.5M)
    # and keeps the tiny's vision tower: a 192 x 3 tower cost 1.4x the step time for a frame the tiny
    # tower already reads (colour, shape, cell), which the 100-minute budget cannot spare.
    "small": TinyPreset(
        "small",
        text_hidden=256,
        text_layers=6,
        text_heads=8,
        text_kv_heads=4,
        text_intermediate=768,
    ),
}


def train_tokenizer(corpus: Iterable[str], vocab_size: int, max_length: int):
    """A byte-level BPE tokenizer trained on the world's text: every string a user types still
    tokenizes (bytes are the fallback), and the world's words are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END_OF_UTTERANCE,
        pad_token=PAD,
        unk_token=None,
        image_token=IMAGE,
        fake_image_token=FAKE_IMAGE,
        global_image_token=GLOBAL_IMAGE,
        end_of_utterance_token=END_OF_UTTERANCE,
        extra_special_tokens=SPECIAL_TOKENS[3:],
        model_max_length=max_length,
        padding_side="left",
    )


def build_processor(preset: TinyPreset, tokenizer):
    """SmolVLM image and video processors at the preset's frame size.

    Video frames are resized to ``frame_size`` square (as SmolVLM2 does at 384 px); still images may
    be split into up to 4x4 tiles of ``frame_size`` plus a global view (more visual tokens at
    higher resolution), as SmolVLM2's image path does.
    """
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    side = preset.frame_size
    image_processor = SmolVLMImageProcessor(
        do_image_splitting=True,
        max_image_size={"longest_edge": side},
        size={"longest_edge": side * MAX_SPLIT},
        resample=1,  # LANCZOS, as SmolVLM2
    )
    video_processor = SmolVLMVideoProcessor(
        max_image_size={"longest_edge": side},
        size={"longest_edge": side},
        do_sample_frames=False,
        video_sampling={"fps": 1, "max_frames": 64, "video_size": {"longest_edge": side}},
    )
    return SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=preset.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(preset: TinyPreset, tokenizer):
    from transformers import LlamaConfig, SmolVLMVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    text = LlamaConfig(
        vocab_size=max(len(tokenizer), preset.embedding_rows or 0),
        hidden_size=preset.text_hidden,
        intermediate_size=preset.text_intermediate,
        num_hidden_layers=preset.text_layers,
        num_attention_heads=preset.text_heads,
        num_key_value_heads=preset.text_kv_heads,
        max_position_embeddings=preset.max_positions,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": preset.rope_theta},
        tie_word_embeddings=False,
        bos_token_id=ids(BOS),
        eos_token_id=ids(END_OF_UTTERANCE),
        pad_token_id=ids(PAD),
    )
    vision = SmolVLMVisionConfig(
        hidden_size=preset.vision_hidden,
        intermediate_size=preset.vision_intermediate or 4 * preset.vision_hidden,
        num_hidden_layers=preset.vision_layers,
        num_attention_heads=preset.vision_heads,
        image_size=preset.frame_size,
        patch_size=preset.patch_size,
    )
    config = smolvlm_config(text, vision, tokenizer, preset.scale_factor, tie_word_embeddings=False)
    config.f2l_preset = asdict(preset)
    return config


def smolvlm_config(text, vision, tokenizer, scale_factor: int, *, tie_word_embeddings: bool):
    """A SmolVLM config joining a ``text`` and a ``vision`` config (transformers config objects) at
    ``scale_factor``, its image and pad tokens ``tokenizer``'s: every base f2l builds (``build_config``,
    ``f2l.models.smol``)."""
    from transformers import SmolVLMConfig

    ids = tokenizer.convert_tokens_to_ids
    return SmolVLMConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        scale_factor=scale_factor,
        image_token_id=ids(IMAGE),
        pad_token_id=ids(PAD),
        tie_word_embeddings=tie_word_embeddings,
    )


def copy_generation_ids(model, config) -> None:
    """Give ``model``'s generation config the text config's end, pad and start token ids."""
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(config.text_config, key))


def build_untrained(preset: TinyPreset, corpus: Iterable[str], seed: int = 0, dtype=None):
    """A randomly initialised SmolVLM2 of ``preset``'s sizes with its tokenizer and processor."""
    import torch
    from transformers import AutoModelForImageTextToText

    tokenizer = train_tokenizer(corpus, preset.vocab_size, preset.max_positions)
    processor = build_processor(preset, tokenizer)
    config = build_config(preset, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, **({"dtype": dtype} if dtype else {}))
    copy_generation_ids(model, config)
    return model, processor


def save_checkpoint(model, processor, out_dir: str | Path) -> Path:
    """Save as a standard checkpoint directory (safetensors + JSON; nothing pickled)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
