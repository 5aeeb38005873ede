"""Convert the authors' released Frames2LoRA checkpoints into f2l hypernetwork directories.

    python -m f2l.convert official frames2lora-smolvlm2-500m-best-ce.pt --out runs/official-500m

The released files are ``torch.save`` pickles: a hypernetwork ``state_dict`` plus the pickled config
objects of the authors' code and of PEFT. This module is the only place f2l reads a pickle, and it reads
it through ``torch.load(weights_only=True)`` with inert stand-ins allow-listed under exactly the six
class names those files hold; any other global, any config value the official kind does not implement,
and any tensor whose name or shape disagrees with the config is refused. What is written is safetensors
and JSON (``OfficialHypernet.save``), loaded like any hypernetwork by ``Frames2LoRA.from_pretrained``.
"""

from __future__ import annotations

import enum
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from f2l.cli import entry_point
from f2l.config import Subcommand, parse_subcommand, setting
from f2l.hypernet.official import OFFICIAL_CONTEXT, OfficialConfig, OfficialHypernet


class ConversionError(ValueError):
    """A checkpoint f2l will not convert, with the reason."""


class _Record:
    """An inert stand-in for a pickled config object: it only stores the fields it is given."""

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__dict__.update(state)

    def fields(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _PeftType(enum.StrEnum):  # only LoRA checkpoints exist; any other value fails to unpickle
    LORA = "LORA"


# The official class names a released checkpoint pickles, each mapped to an inert stand-in.
ALLOWED_GLOBALS = {
    "ctx_to_lora.modeling.hypernet.HypernetConfig": type("HypernetConfig", (_Record,), {}),
    "ctx_to_lora.modeling.aggregator.AggregatorConfig": type("AggregatorConfig", (_Record,), {}),
    "ctx_to_lora.configs.CtxEncoderArguments": type("CtxEncoderArguments", (_Record,), {}),
    "peft.tuners.lora.config.LoraConfig": type("LoraConfig", (_Record,), {}),
    "peft.tuners.lora.config.LoraRuntimeConfig": type("LoraRuntimeConfig", (_Record,), {}),
    "peft.utils.peft_types.PeftType": _PeftType,
}
_META_KEYS = {"base_model_name_or_path", "hypernet_config", "ctx_encoder_args"}
_COMPILED_PREFIX = "_orig_mod."  # what torch.compile prepends to saved parameter names


def read_official(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's tensors and its three metadata entries, unpickled with the allow-list only."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals([(cls, name) for name, cls in ALLOWED_GLOBALS.items()]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's message buries the refused global in advice about weights_only=False
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        reason = f"it names {found[1]}, which is not allow-listed" if found else _first_line(err)
        raise ConversionError(f"{path}: refused to unpickle: {reason}") from err
    if not isinstance(raw, Mapping):
        raise ConversionError(f"{path}: expected a state dict, found {type(raw).__name__}")
    missing = _META_KEYS - set(raw)
    if missing:
        raise ConversionError(f"{path}: not a Frames2LoRA checkpoint (missing {sorted(missing)})")
    tensors = {}
    for key, value in raw.items():
        if key in _META_KEYS:
            continue
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        tensors[key.removeprefix(_COMPILED_PREFIX)] = value
    return tensors, {k: raw[k] for k in _META_KEYS}


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ConversionError(f"unsupported checkpoint: {what}")


def config_from_official(meta: Mapping[str, Any], base_id: str | None = None) -> OfficialConfig:
    """An ``OfficialConfig`` from the pickled configs, refusing every setting the official kind lacks."""
    hn, encoder = meta["hypernet_config"], meta["ctx_encoder_args"]
    for name, obj in (("hypernet_config", hn), ("ctx_encoder_args", encoder)):
        _require(isinstance(obj, _Record), f"{name} is a {type(obj).__name__}")
    h = hn.fields()
    agg, lora = h.get("aggregator_config"), h.get("lora_config")
    _require(isinstance(agg, _Record) and isinstance(lora, _Record), "aggregator or LoRA config missing")
    a, lo, e = agg.fields(), lora.fields(), encoder.fields()
    _require(str(a.get("aggregator_type")) == "perceiver", f"aggregator {a.get('aggregator_type')!r}")
    _require(a.get("layer_to_layer_ctx_encoder") is True, "context encoder is not layer-to-layer")
    _require(a.get("num_self_attn_per_block") == 0, "self-attention blocks in the perceiver")
    _require(not a.get("shared_weights"), "shared perceiver weights")
    _require(a.get("per_rank_gen") is True and h.get("per_rank_gen") is True, "per-rank generation off")
    _require(not h.get("extra_modules") and a.get("num_extra_modules") == 0, "extra (non-LoRA) modules")
    for flag in ("per_layer_processing", "use_light_weight_lora", "use_token_mixing", "use_per_rank_bias"):
        _require(not h.get(flag), f"{flag}={h.get(flag)!r}")
    _require(h.get("use_bias", True) is True, "no static bias LoRA")
    _require(
        e.get("ctx_encoder_type") == "per_layer_activations", f"context encoder {e.get('ctx_encoder_type')!r}"
    )
    _require(
        e.get("layer_idx") is None and e.get("ctx_encoder_last_layer") is None, "a truncated context encoder"
    )
    _require(lo.get("peft_type") == _PeftType.LORA, f"PEFT type {lo.get('peft_type')!r}")
    for flag in ("use_dora", "use_qalora", "lora_bias"):
        _require(not lo.get(flag), f"LoRA {flag}")
    _require(lo.get("layers_to_transform") is None, "LoRA on a subset of layers")
    d_in, d_out = h["feature_sizes"]
    targets = sorted(lo["target_modules"])
    _require(set(d_in) >= set(targets) and set(d_out) >= set(targets), "feature sizes missing a module")
    num_layers = int(a["num_layers"])
    indices = torch.as_tensor(h["layer_indices"]).cpu().tolist()
    _require(indices == list(range(num_layers)), f"layer indices {indices}")
    _require(a["feature_size"] == h["base_hidden_size"], "context width differs from the base's")
    _require(a["output_size"] == h["latent_size"] and a["lora_r"] == lo["r"], "inconsistent sizes")
    return OfficialConfig(
        base_id=base_id or meta["base_model_name_or_path"],
        d_model=int(h["base_hidden_size"]),
        num_layers=num_layers,
        module_shapes={m: (int(d_in[m]), int(d_out[m])) for m in targets},
        rank=int(lo["r"]),
        lora_alpha=float(lo["lora_alpha"]),
        latent=int(h["latent_size"]),
        n_latent_queries=int(a["n_latent_queries"]),
        num_blocks=int(a["num_blocks"]),
        num_pre_head_layers=int(h["num_pre_head_layers"]),
        context=OFFICIAL_CONTEXT,
    )


def convert_official(checkpoint: str | Path, out: str | Path, *, base: str | None = None) -> Path:
    """Write ``checkpoint`` as an f2l ``official`` hypernetwork directory at ``out``.

    ``base``: the base to record (a shipped name, Hub id or directory valid where it will be used);
    default: the checkpoint's own ``base_model_name_or_path``."""
    checkpoint = Path(checkpoint)
    tensors, meta = read_official(checkpoint)
    config = config_from_official(meta, base_id=base)
    model = OfficialHypernet(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = [f"missing {k}" for k in expected.keys() - found.keys()]
    problems += [f"unexpected {k}" for k in found.keys() - expected.keys()]
    problems += [
        f"{k}: shape {found[k]} where the config gives {expected[k]}"
        for k in expected.keys() & found.keys()
        if found[k] != expected[k]
    ]
    if problems:
        shown = "; ".join(sorted(problems)[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise ConversionError(f"{checkpoint}: tensors disagree with its config: {shown}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16]
    source = {
        "file": checkpoint.name,
        "sha256_16": digest,
        "base_model_name_or_path": meta["base_model_name_or_path"],
    }
    return model.save(out, extra={"train_config": {"base": config.base_id}, "converted_from": source})


@dataclass
class OfficialConvertConfig:
    """``python -m f2l.convert official CHECKPOINT --out DIR [--base B]``."""

    checkpoint: str | None = None  # the .pt file (e.g. frames2lora-smolvlm2-500m-best-ce.pt)
    out: str | None = setting(required=True)  # the f2l hypernetwork directory to write
    base: str | None = (
        None  # record this base instead of the checkpoint's (a shipped name, Hub id or directory)
    )


COMMANDS = {
    "official": Subcommand(
        OfficialConvertConfig, "a released Frames2LoRA .pt hypernetwork", positional=("checkpoint",)
    )
}


@entry_point
def main(argv: list[str]) -> int:
    _, args = parse_subcommand(
        COMMANDS, argv, prog="python -m f2l.convert", description=__doc__.split("\n\n")[0]
    )
    out = convert_official(args.checkpoint, args.out, base=args.base)
    print(f"wrote {out} (official kind; load with Frames2LoRA.from_pretrained({str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
