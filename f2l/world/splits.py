"""Fixed, disjoint seed ranges for train / val / test clips of the world."""

from __future__ import annotations

SPLITS: dict[str, range] = {
    "train": range(1_000_000),
    "val": range(1_000_000, 1_010_000),
    "test": range(1_010_000, 1_020_000),
}


def split_seeds(split: str, n: int, offset: int = 0) -> list[int]:
    """The ``n`` consecutive seeds of ``split`` starting ``offset`` seeds into it."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    seeds = SPLITS[split]
    if n < 0 or offset < 0 or offset + n > len(seeds):
        raise ValueError(f"split {split!r} has {len(seeds)} seeds; cannot take {n} from offset {offset}")
    return list(seeds[offset : offset + n])


def split_of(seed: int) -> str:
    """The split a seed belongs to; ValueError for seeds outside every split."""
    for name, seeds in SPLITS.items():
        if seed in seeds:
            return name
    raise ValueError(f"seed {seed} is in no split")
