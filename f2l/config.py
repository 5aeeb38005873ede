"""One config dataclass per program, filled from a preset, then a YAML file, then command-line flags.

Every field of the dataclass becomes a ``--flag`` (underscores as dashes); ``bool`` fields get
``--flag/--no-flag``; tuple fields take several values. YAML is read with ``safe_load`` (no code runs)
and unknown keys are an error, not a silent no-op.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from f2l.cli import add_debug_flag

_SCALARS = {"int": int, "float": float, "str": str}


def _kind(annotation: str) -> tuple[type, bool]:
    """(element type, is a sequence) of a field annotation written as a string, e.g. ``tuple[int, ...]``."""
    text = str(annotation).replace("None", "").replace("|", " ").strip()
    if text.startswith(("tuple[", "list[")):
        inner = text[text.index("[") + 1 : -1].split(",")[0].strip()
        return _SCALARS.get(inner, str), True
    return _SCALARS.get(text.split()[0] if text else "str", str), False


def parse_config(
    cls: type,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str = "",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    default_preset: str | None = None,
    epilog: str | None = None,
) -> Any:
    """Build ``cls`` (a dataclass) from ``presets[--preset]``, ``--config x.yaml`` and flags: later wins."""
    import yaml

    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"YAML file of {cls.__name__} fields")
    hints = typing.get_type_hints(cls) if not isinstance(cls, str) else {}
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        flag = f"--{f.name.replace('_', '-')}"
        annotation = str(f.type)
        default = f.default if f.default is not dataclasses.MISSING else None
        helptext = f"(default: {default!r})" if f.default is not dataclasses.MISSING else None
        if annotation == "bool" or hints.get(f.name) is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
            continue
        kind, many = _kind(annotation)
        parser.add_argument(flag, type=kind, nargs="+" if many else None, default=None, help=helptext)
    add_debug_flag(parser)  # read by f2l.cli.entry_point, not a field
    args = vars(parser.parse_args(argv))
    del args["debug"]
    values: dict[str, Any] = {}
    if presets is not None:
        preset = args.get("preset") or default_preset
        if preset not in presets:
            parser.error(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
        values.update(presets[preset])
    config_path = args.pop("config")
    if config_path:
        with open(config_path) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            parser.error(f"{config_path}: expected a mapping of {cls.__name__} fields")
        unknown = set(loaded) - names
        if unknown:
            parser.error(f"{config_path}: unknown keys {sorted(unknown)}")
        values.update(loaded)
    values.update({k: v for k, v in args.items() if v is not None})
    for f in dataclasses.fields(cls):
        if f.name in values and isinstance(values[f.name], list) and _kind(str(f.type))[1]:
            values[f.name] = tuple(values[f.name])
    return cls(**values)
