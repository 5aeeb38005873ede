"""The recipes of ``python -m f2l.train --preset NAME``: one YAML file each in this folder.

A recipe is a mapping of ``TrainConfig`` settings (a hypernetwork section's as a nested mapping,
``f2l: {width: 128}``, or dotted, ``f2l.width: 128``) read with ``yaml.safe_load``; a key that is no
setting of ``TrainConfig`` is an error naming the file. ``extends: NAME`` starts a recipe from the settings
of recipe ``NAME`` (resolved in turn), the file's own keys winning.

Names: ``NAME.yaml`` is the recipe ``NAME``. A staged recipe, each run of which continues the last
checkpoint of the run before it (its ``init_from``), is a folder of numbered stages: ``FOLDER/I-STAGE.yaml``
is the recipe ``FOLDER-STAGE``, run after a stage ``I - 1`` of the folder; so ``small/1-head.yaml``
is ``small-head`` and ``small/2-head-continued.yaml`` continues it. ``f2l.pipeline.
SHIPPED_RECIPES`` lists, in order, the stages that build each shipped hypernetwork, and each shipped
hypernetwork records the recipe of its last run (``train_config.preset``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from f2l.config import config_dict, dotted_settings
from f2l.train.config import TrainConfig

RECIPES_DIR = Path(__file__).parent
EXTENDS = "extends"
_STAGE = re.compile(r"(\d+)-(.+)")


class RecipeError(ValueError):
    """A recipe that is unknown, malformed, or sets what ``TrainConfig`` has no setting for."""


def recipe_files(root: Path | None = None) -> dict[str, Path]:
    """{recipe name: its file}: the recipes of the folder, then each staged recipe's stages in order."""
    root = root or RECIPES_DIR
    files = {p.stem: p for p in sorted(root.glob("*.yaml"), key=lambda p: p.stem)}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        stages = []
        for path in folder.glob("*.yaml"):
            match = _STAGE.fullmatch(path.stem)
            if not match:
                raise RecipeError(f"{path}: a stage of a staged recipe is named <number>-<stage>.yaml")
            stages.append((int(match[1]), match[2], path))
        for _, stage, path in sorted(stages):
            name = f"{folder.name}-{stage}"
            if name in files:
                raise RecipeError(f"{path} and {files[name]} are both the recipe {name!r}")
            files[name] = path
    return files


def read_recipe(name: str, root: Path | None = None, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Recipe ``name``'s settings under dotted names (``f2l.width``), its ``extends`` resolved."""
    files = recipe_files(root)
    if name not in files:
        raise RecipeError(f"unknown recipe {name!r}; the recipes are: {', '.join(files)}")
    if name in _seen:
        raise RecipeError(f"recipe {name!r} extends itself ({' -> '.join((*_seen, name))})")
    path = files[name]
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise RecipeError(f"{path}: expected a mapping of TrainConfig settings")
    parent = loaded.pop(EXTENDS, None)
    values = dotted_settings(TrainConfig, loaded)
    unknown = sorted(set(values) - set(dotted_settings(TrainConfig, config_dict(TrainConfig()))))
    if unknown or "preset" in values:
        raise RecipeError(f"{path}: unknown keys {unknown or ['preset']} (a recipe's name is its file's)")
    if parent is None:
        return values
    return {**read_recipe(str(parent), root, (*_seen, name)), **values}


class Recipes(Mapping):
    """Every recipe by name, each read from its file when asked for (a broken file fails its own recipe
    only): what ``f2l.config.parse_config`` takes as ``presets``."""

    def __init__(self, root: Path | None = None):
        self.root = root

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in self:
            raise KeyError(name)
        return read_recipe(name, self.root)

    def __contains__(self, name: object) -> bool:
        return name in recipe_files(self.root)

    def __iter__(self) -> Iterator[str]:
        return iter(recipe_files(self.root))

    def __len__(self) -> int:
        return len(recipe_files(self.root))

    def listing(self) -> str:
        """The recipes and their files, one a line (``--help``'s epilog)."""
        files = recipe_files(self.root)
        root = self.root or RECIPES_DIR
        width = max(map(len, files), default=0)
        return "\n".join(f"  {name:<{width}}  {path.relative_to(root)}" for name, path in files.items())


PRESETS = Recipes()
