"""One config dataclass per program, filled from a preset, then a YAML file, then command-line flags.

Every field of the dataclass becomes a ``--flag`` (underscores as dashes); ``bool`` fields get
``--flag/--no-flag``; tuple fields take several values. A field that is itself a dataclass is a section:
its fields are flags named with a dot (``--f2l.width 128``), keys of a nested mapping in YAML
(``f2l: {width: 128}``) and dotted keys in presets (``"f2l.width": 128``). Fields marked ``NOT_A_SETTING``
(facts read off something else, such as a base's layer count) are neither; a field made with ``setting``
may parse its flag with its own type (``f2l.cli.positive_int``), take only some ``choices`` or be
required. YAML is read with
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
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from f2l.cli import UsageError, add_debug_flag, entry_point

_SCALARS = {"int": int, "float": float, "str": str}
# metadata of a dataclass field that is no setting: no flag, no YAML key, left out of config_dict
NOT_A_SETTING = {"setting": False}


def setting(
    default: Any = None,
    *,
    type: Callable[[str], Any] | None = None,  # noqa: A002 (argparse's name)
    choices: Collection[Any] | None = None,
    required: bool = False,
) -> Any:
    """A dataclass field whose flag parses its value with ``type`` (an argparse type, such as
    ``f2l.cli.positive_int``: a bad value is refused at parse time), takes only ``choices`` (a container is
    read when the command runs, so a table extended later is honoured), or must be given (``required``: by
    flag or YAML; its ``default`` is then ``None``)."""
    metadata = {"type": type, "choices": choices, "required": required}
    return dataclasses.field(default=default, metadata={k: v for k, v in metadata.items() if v})


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


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


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        raise UsageError(message)


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
    one_of: Sequence[Sequence[str]] = (),
    one_line_errors: bool = False,
) -> Any:
    """Build ``cls`` (a dataclass) from ``presets[--preset]``, ``--config x.yaml`` and flags: later wins.
    ``upgrade`` rewrites a YAML mapping written in an older form of ``cls`` (renamed keys) first. Each
    group of ``one_of`` names fields of which exactly one must be given (as argparse's required mutually
    exclusive group); a ``setting(required=True)`` left unset is refused as argparse refuses a required
    flag. ``one_line_errors`` raises those refusals as ``f2l.cli.UsageError`` (one line, no usage block,
    through ``entry_point``) instead of argparse's exit."""
    import yaml

    parser = (_OneLineParser if one_line_errors else argparse.ArgumentParser)(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help=f"YAML file of {cls.__name__} fields")
    leaves, sections = _settings(cls)
    notes = _help_lines(cls)
    for name, (f, hint) in leaves.items():
        flag = _flag(name)
        default = f"(default: {f.default!r})" if f.default is not dataclasses.MISSING else ""
        helptext = " ".join(part for part in (notes[name], default) if part).replace("%", "%%") or None
        if hint is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
            continue
        kind, many = _kind(str(f.type))
        parser.add_argument(
            flag,
            dest=name,
            type=f.metadata.get("type", kind),
            choices=f.metadata.get("choices"),
            nargs="+" if many else None,
            default=None,
            help=helptext,
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
    for group in one_of:
        given = [name for name in group if values.get(name) is not None]
        if not given:
            parser.error(f"one of the arguments {' '.join(map(_flag, group))} is required")
        if len(given) > 1:
            parser.error(f"argument {_flag(given[1])}: not allowed with argument {_flag(given[0])}")
    missing = [
        name for name, (f, _) in leaves.items() if f.metadata.get("required") and values.get(name) is None
    ]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(map(_flag, missing))}")
    return cls(**_build(cls, values, sections))


def config_program(
    cls: type, run: Callable[[Any], Any], *, prog: str, doc: str
) -> tuple[Callable[..., Any], Callable[..., int]]:
    """(``parse_config``, ``main``) of ``prog``, a program that builds one ``cls`` from its command line
    (``parse_config(argv=None)``; its ``--help`` opens with the first paragraph of ``doc``) and runs
    ``run`` on it (``main(argv=None)``: an ``f2l.cli.entry_point``, 0 once ``run`` returns)."""

    def parse(argv: Sequence[str] | None = None) -> Any:
        return parse_config(cls, argv, prog=prog, description=doc.split("\n\n")[0])

    @entry_point
    def main(argv: list[str]) -> int:
        run(parse(argv))
        return 0

    return parse, main


def parse_command(
    cls: type,
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str = "",
    positional: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """``parse_config`` (``kwargs`` passed on) for a command that also takes ``positional`` fields by
    position (in that order; each may be given as its flag too, and each is required): ``cmd a.nc --x 1``
    reads as ``cmd --run a.nc --x 1``. A tuple field last among them takes every remaining value
    (``check a.jsonl b.jsonl``); a tuple flag takes the values up to the next flag."""
    import sys

    hints = typing.get_type_hints(cls)
    switches = {"-h", "--help", "--debug"}  # flags that take no value
    many = set()  # flags that take one value or more
    for f in dataclasses.fields(cls):
        if hints.get(f.name) is bool:
            switches |= {_flag(f.name), f"--no-{f.name.replace('_', '-')}"}
        elif _kind(str(f.type))[1]:
            many.add(_flag(f.name))
    flags, values, tokens = [], [], list(sys.argv[1:] if argv is None else argv)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-"):
            values.append(token)
            continue
        flags.append(token)
        if token in many:
            while tokens and not tokens[0].startswith("-"):
                flags.append(tokens.pop(0))
        elif token not in switches and "=" not in token and tokens:
            flags.append(tokens.pop(0))
    variadic = bool(positional) and _flag(positional[-1]) in many
    if len(values) > len(positional) and not variadic:
        raise UsageError(f"unrecognized arguments: {' '.join(values[len(positional) :])}")
    named = [part for name, v in zip(positional, values, strict=False) for part in (_flag(name), v)]
    if variadic and len(values) > len(positional):
        named += values[len(positional) :]
    cfg = parse_config(cls, [*named, *flags], prog=prog, description=description, **kwargs)
    missing = [name for name in positional if getattr(cfg, name) in (None, ())]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)}")
    return cfg


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """One subcommand of ``parse_subcommand``: its config dataclass, a line of help, and its positional
    fields (``parse_command``)."""

    cls: type
    help: str
    positional: tuple[str, ...] = ()
    description: str | None = None  # its own --help's text (default: ``help``)


def parse_subcommand(
    commands: Mapping[str, Subcommand], argv: Sequence[str] | None, *, prog: str, description: str
) -> tuple[str, Any]:
    """(name, config) of ``prog NAME ...``: the first argument picks one of ``commands``, whose own
    ``parse_command`` reads the rest (``prog NAME --help`` is its help). ``prog --help`` lists them; a
    missing or unknown name is argparse's error."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        sub.add_parser(name, help=command.help, add_help=False)
    add_debug_flag(parser)
    if not argv or argv[0] not in commands:
        parser.parse_args(argv)  # --help exits 0; a missing or unknown name exits 2 with argparse's error
        parser.error(f"expected a command before {argv[0]!r}: {', '.join(commands)}")
    name, command = argv[0], commands[argv[0]]
    cfg = parse_command(
        command.cls,
        argv[1:],
        prog=f"{prog} {name}",
        description=textwrap.fill(command.description or command.help, 100),
        positional=command.positional,
    )
    return name, cfg
