"""One config dataclass per program, filled from a preset, then a YAML file, then command-line flags.

Every field of the dataclass becomes a ``--flag`` (underscores as dashes); ``bool`` fields get
``--flag/--no-flag``; tuple fields take several values. A field that is itself a dataclass is a section:
its fields are flags named with a dot (``--f2l.width 128``), keys of a nested mapping in YAML
(``f2l: {width: 128}``) and dotted keys in presets (``"f2l.width": 128``). Fields marked ``NOT_A_SETTING``
(facts read off something else, such as a base's layer count) are neither. YAML is read with
``safe_load`` (no code runs) and unknown keys are an error, not a silent no-op; ``config_dict`` writes a
config back in the form ``--config`` reads. A flag's ``--help`` line is the comment on its field's
line(s) in the dataclass's source, so the help says what the code says (a comment above a field often
heads a group of them, so it is not taken).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from f2l.cli import add_debug_flag

_SCALARS = {"int": int, "float": float, "str": str}
# metadata of a dataclass field that is no setting: no flag, no YAML key, left out of config_dict
NOT_A_SETTING = {"setting": False}


def _kind(annotation: str) -> tuple[type, bool]:
    """(element type, is a sequence) of a field annotation written as a string, e.g. ``tuple[int, ...]``."""
    text = str(annotation).replace("None", "").replace("|", " ").strip()
    if text.startswith(("tuple[", "list[")):
        inner = text[text.index("[") + 1 : -1].split(",")[0].strip()
        return _SCALARS.get(inner, str), True
    return _SCALARS.get(text.split()[0] if text else "str", str), False


def _settings(cls: type, prefix: str = "") -> tuple[dict[str, tuple[dataclasses.Field, Any]], set[str]]:
    """({dotted name: (field, resolved type)} of every leaf setting, {dotted names of the sections})."""
    hints = typing.get_type_hints(cls)
    leaves, sections = {}, set()
    for f in dataclasses.fields(cls):
        if not f.metadata.get("setting", True):
            continue
        name, hint = prefix + f.name, hints.get(f.name)
        if dataclasses.is_dataclass(hint):
            sections.add(name)
            inner_leaves, inner_sections = _settings(hint, name + ".")
            leaves.update(inner_leaves)
            sections |= inner_sections
        else:
            leaves[name] = (f, hint)
    return leaves, sections


def _field_comments(cls: type) -> dict[str, str]:
    """{field name: the comment on its line(s)} from the source of ``cls`` and of the dataclasses it
    derives from ("" for none, or when the source cannot be read)."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment wins over its base's
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        comments = {  # line number -> comment text (1-based, as ast)
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                lines = range(node.lineno, node.end_lineno + 1)
                notes[node.target.id] = " ".join(comments[n] for n in lines if n in comments)
    return notes


def _help_lines(cls: type, prefix: str = "") -> dict[str, str]:
    """{dotted setting name: its field's comment} for ``cls`` and its sections (as ``_settings``)."""
    hints, notes, out = typing.get_type_hints(cls), _field_comments(cls), {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if dataclasses.is_dataclass(hint):
            out.update(_help_lines(hint, prefix + f.name + "."))
        else:
            out[prefix + f.name] = notes.get(f.name, "")
    return out


def _flatten(mapping: Mapping[str, Any], sections: set[str], prefix: str = "") -> dict[str, Any]:
    """Nested section mappings as dotted keys (``{"f2l": {"width": 1}}`` -> ``{"f2l.width": 1}``)."""
    flat = {}
    for key, value in mapping.items():
        name = prefix + str(key)
        if name in sections and isinstance(value, Mapping):
            flat.update(_flatten(value, sections, name + "."))
        else:
            flat[name] = value
    return flat


def _build(cls: type, values: Mapping[str, Any], sections: set[str], prefix: str = "") -> dict[str, Any]:
    """The keyword arguments of ``cls`` from dotted ``values``; a section starts from its field's default."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if name in sections:
            if any(k.startswith(name + ".") for k in values):
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                inner = _build(type(default), values, sections, name + ".")
                kwargs[f.name] = dataclasses.replace(default, **inner)
        elif name in values:
            kwargs[f.name] = _typed(name, values[name], *_kind(str(f.type)))
    return kwargs


def _typed(name: str, value: Any, kind: type, many: bool) -> Any:
    """A YAML value as the field's type: lists as tuples, and numbers YAML reads as text (``1e-3``: YAML
    1.1 wants a dot, ``1.0e-3``) as numbers."""
    if many and isinstance(value, list):
        return tuple(_typed(name, v, kind, False) for v in value)
    if isinstance(value, str) and kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None
    return value


def dotted_settings(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``values`` of a ``cls`` config (its ``config_dict`` or a stored ``config.json``) under dotted
    names (``{"f2l": {"rank": 8}}`` -> ``{"f2l.rank": 8}``), the names its flags and presets use."""
    return _flatten(values, _settings(cls)[1])


def config_dict(cfg: Any) -> dict[str, Any]:
    """``cfg`` as JSON-able data (sections as mappings, tuples as lists, no ``NOT_A_SETTING`` field): the
    form a run records (``config.json``) and ``--config`` reads back."""
    out = {}
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("setting", True):
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = config_dict(value)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_config(
    cls: type,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    description: str = "",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    default_preset: str | None = None,
    epilog: str | None = None,
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Any:
    """Build ``cls`` (a dataclass) from ``presets[--preset]``, ``--config x.yaml`` and flags: later wins.
    ``upgrade`` rewrites a YAML mapping written in an older form of ``cls`` (renamed keys) first."""
    import yaml

    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"YAML file of {cls.__name__} fields")
    leaves, sections = _settings(cls)
    notes = _help_lines(cls)
    for name, (f, hint) in leaves.items():
        flag = f"--{name.replace('_', '-')}"
        default = f"(default: {f.default!r})" if f.default is not dataclasses.MISSING else ""
        helptext = " ".join(part for part in (notes[name], default) if part).replace("%", "%%") or None
        if hint is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
            continue
        kind, many = _kind(str(f.type))
        parser.add_argument(
            flag, dest=name, type=kind, nargs="+" if many else None, default=None, help=helptext
        )
    add_debug_flag(parser)  # read by f2l.cli.entry_point, not a field
    args = vars(parser.parse_args(argv))
    del args["debug"]
    values: dict[str, Any] = {}
    if presets is not None:
        preset = args.get("preset") or default_preset
        if preset not in presets:
            parser.error(f"unknown preset {preset!r}; choose from {', '.join(presets)}")
        chosen = _flatten(presets[preset], sections)
        if set(chosen) - set(leaves):  # a mistake in the program's own table, not the user's
            raise ValueError(f"preset {preset!r} sets unknown fields {sorted(set(chosen) - set(leaves))}")
        values.update(chosen)
    config_path = args.pop("config")
    if config_path:
        with open(config_path) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            parser.error(f"{config_path}: expected a mapping of {cls.__name__} fields")
        loaded = _flatten(upgrade(loaded) if upgrade else loaded, sections)
        unknown = set(loaded) - set(leaves)
        if unknown:
            parser.error(f"{config_path}: unknown keys {sorted(unknown)}")
        values.update(loaded)
    values.update({k: v for k, v in args.items() if v is not None})
    return cls(**_build(cls, values, sections))
