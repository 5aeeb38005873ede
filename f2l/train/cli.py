"""The command line of ``python -m f2l.train``: ``parse_config`` builds the run's ``TrainConfig`` from a
recipe (``--preset NAME``, ``f2l.train.recipes``; ``--help`` lists them), then a YAML file (a run's
``config.json`` too, older ones upgraded), then flags, later winning; ``main`` trains it, ending a user's
mistake in one line (``f2l.cli.entry_point``).
"""

from __future__ import annotations

import argparse
import importlib

from f2l.cli import entry_point
from f2l.config import parse_config as _parse_config
from f2l.train.config import TrainConfig, upgrade_config
from f2l.train.loop import train
from f2l.train.recipes import PRESETS, RECIPES_DIR, RecipeError


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Preset, then YAML file (a run's ``config.json`` too, older ones upgraded), then command-line flags:
    later wins. An unknown ``--preset`` is a one-line error naming the recipes."""
    named = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    named.add_argument("--preset")
    preset = named.parse_known_args(argv)[0].preset
    if preset is not None and preset not in PRESETS:
        raise RecipeError(f"unknown preset {preset!r}; the presets are: {', '.join(PRESETS)}")
    return _parse_config(
        TrainConfig,
        argv,
        prog="python -m f2l.train",
        description=importlib.import_module("f2l.train").__doc__.split("\n\n")[0],
        presets=PRESETS,
        default_preset="tiny",
        epilog=f"presets (--preset NAME; files in {RECIPES_DIR}):\n{PRESETS.listing()}",
        upgrade=upgrade_config,
    )


@entry_point
def main(argv: list[str]) -> int:
    train(parse_config(argv))
    return 0
