"""How every command ends on a user's mistake: ``error: <one line>`` on stderr and exit status 2.

A mistake is a ValueError raised by f2l's own code (its refusal of an input, e.g. ``VideoDecodeError``,
``ManifestError``), one of ``TYPED_ERRORS``, ``UsageError``, or a path that is missing or unusable
(``PATH_ERRORS``); anything else (a ValueError from inside a library, RuntimeError, TypeError,
AssertionError...) is a bug and keeps its traceback. Flag values are checked by argparse at parse time.
``--debug`` shows the traceback of a mistake too; Ctrl-C ends in one line and status 130.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

#: The packages whose own ValueErrors refuse an input (a module run with ``python -m`` is ``__main__``).
OWN_PACKAGES = ("f2l", "analyses", "probes", "__main__")
#: The mistakes that are not ValueErrors, by class name and the module defining it: matched by name so
#: that this module imports neither (a command need not load torch to report a mistake).
TYPED_ERRORS = {"StudyConfigError": "f2l.results", "YAMLError": "yaml.error"}
#: The OS errors that mean a path given to the command is wrong (a full disk, say, is not among them).
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)

Main = Callable[[list[str]], int]


class UsageError(Exception):
    """A mistake on the command line or in its files that argparse cannot see."""


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, (UsageError, *PATH_ERRORS)):
        return True
    if any(TYPED_ERRORS.get(c.__name__) == c.__module__ for c in type(err).__mro__):
        return True
    if not isinstance(err, ValueError):
        return False
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_globals.get("__name__", "").partition(".")[0] in OWN_PACKAGES


def one_line(err: BaseException) -> str:
    """The error's message on one line; an OS error about a file as ``<path>: <reason>``."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (a seed, an offset)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {value}")
    return value


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not one line")


def entry_point(main: Main | None = None, *, interrupted: str = "interrupted") -> Callable:
    """Decorate a command's ``main(argv) -> int`` (``argv`` defaults to ``sys.argv[1:]``): a user's mistake
    prints ``error: <one line>`` and returns 2, Ctrl-C prints ``interrupted`` and returns 130, both raised
    instead when ``--debug`` is on the command line; a bug propagates. Use as ``@entry_point`` or
    ``@entry_point(interrupted="...")``."""

    def decorate(main: Main) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            argv = list(sys.argv[1:] if argv is None else argv)
            try:
                return main(argv)
            except KeyboardInterrupt:
                if "--debug" in argv:
                    raise
                print(interrupted, file=sys.stderr)
                return 130
            except Exception as err:
                if "--debug" in argv or not is_user_error(err):
                    raise
                print(f"error: {one_line(err)}", file=sys.stderr)
                return 2

        return run

    return decorate if main is None else decorate(main)
