"""Untrained checkpoints with the real SmolVLM2 architectures, for checking the GPU path at full size.

The real weights cannot be fetched on a machine without network access, but memory and speed depend on
the architecture, not on the weights. ``build_shape`` writes a checkpoint directory with the exact
layer counts, widths, heads, patch sizes, pixel-shuffle factors and embedding rows of SmolVLM2 500M or
2.2B, randomly initialised, with the world's tokenizer and the SmolVLM processor at the real frame size.
Every f2l command takes it as ``--base DIR``: training steps, internalization at 1,024 frames and the
efficiency study then run at the real scale (answers are meaningless; costs are not).

    python -m f2l.models.shapes smolvlm2-500m --out /tmp/smolvlm2-500m-shape [--dtype bfloat16]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from f2l.cli import entry_point, non_negative_int
from f2l.config import parse_command, setting
from f2l.models.tiny import TinyPreset, build_config, build_untrained, save_checkpoint, train_tokenizer

REAL_VOCAB = 49_280  # SmolVLM2's tokenizer (SmolLM2's 49,152 + the image/video special tokens)
MAX_POSITIONS = 131_072  # 1,024 frames in context: 85k tokens at 500M (64 a frame), 103k at 2.2B (81)

SHAPES = {
    # SigLIP base-patch16-512 + SmolLM2-360M; 4x pixel shuffle: 64 visual tokens a frame
    "smolvlm2-500m": TinyPreset(
        "smolvlm2-500m-shape",
        frame_size=512,
        patch_size=16,
        scale_factor=4,
        vision_hidden=768,
        vision_intermediate=3072,
        vision_layers=12,
        vision_heads=12,
        text_hidden=960,
        text_layers=32,
        text_heads=15,
        text_kv_heads=5,
        text_intermediate=2560,
        embedding_rows=REAL_VOCAB,
        max_positions=MAX_POSITIONS,
    ),
    # SigLIP so400m-patch14-384 + SmolLM2-1.7B; 3x pixel shuffle: 81 visual tokens a frame
    "smolvlm2-2.2b": TinyPreset(
        "smolvlm2-2.2b-shape",
        frame_size=384,
        patch_size=14,
        scale_factor=3,
        vision_hidden=1152,
        vision_intermediate=4304,
        vision_layers=27,
        vision_heads=16,
        text_hidden=2048,
        text_layers=24,
        text_heads=32,
        text_kv_heads=32,
        text_intermediate=8192,
        embedding_rows=REAL_VOCAB,
        max_positions=MAX_POSITIONS,
        rope_theta=273_768.0,
    ),
}


def shape_config(name: str, corpus: Iterable[str]):
    """The model config of a real-size shape, without building weights (cheap; used by the tests), its
    tokenizer trained on ``corpus``."""
    preset = SHAPES[name]
    return build_config(preset, train_tokenizer(corpus, preset.vocab_size, preset.max_positions))


def build_shape(
    name: str, out: str | Path, corpus: Iterable[str], dtype: str = "bfloat16", seed: int = 0
) -> Path:
    """Write an untrained checkpoint of the real ``name`` architecture to ``out`` (safetensors + JSON), its
    tokenizer trained on ``corpus`` (the command passes the world's training text, as the tiny's)."""
    import torch

    model, processor = build_untrained(SHAPES[name], corpus, seed=seed, dtype=getattr(torch, dtype))
    return save_checkpoint(model, processor, out)


@dataclass
class ShapeConfig:
    """The settings of ``python -m f2l.models.shapes`` (each a flag; the shape also by position)."""

    shape: str | None = setting(choices=SHAPES)  # the real architecture to build (also by position)
    out: str | None = setting(required=True)  # checkpoint directory to write
    dtype: str = setting("bfloat16", choices=("bfloat16", "float16", "float32"))  # of the stored weights
    seed: int = setting(0, type=non_negative_int)  # of the random initialisation


@entry_point
def main(argv: list[str]) -> int:
    from f2l.world import split_seeds, world_text_corpus  # the tokenizer's text: the world's, as the tiny's

    args = parse_command(
        ShapeConfig,
        argv,
        prog="python -m f2l.models.shapes",
        description=__doc__.split("\n\n")[0],
        positional=("shape",),
    )
    corpus = world_text_corpus(split_seeds("train", 200))
    path = build_shape(args.shape, args.out, corpus, args.dtype, args.seed)
    print(f"wrote the untrained {args.shape} shape to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
