"""Result datasets: provenance, atomic netCDF, and studies that write as they go, resume and shard.

Every study and probe returns an ``xarray.Dataset`` with named dims. A long run is cut into *units*
(usually one clip each) and driven by ``Study``:

    study = Study(out_dir, "layer_removal", config=asdict(cfg), attrs=provenance(pipeline, seed=cfg.seed))
    study.run(clip_ids, lambda clip_id: probe_one(clip_id))   # one part file per finished unit
    ds = study.finish(clip_ids)                                # merged -> <out>/layer_removal.nc

- **Incremental and resumable.** Each finished unit is written at once to ``<out>/<name>.parts/`` (an
  atomic netCDF per unit). A rerun with the same config skips finished units; a different config is
  refused (``StudyConfigError``) unless ``fresh=True``, so results of two settings never mix.
- **Failures are recorded, never dropped.** A unit that raises is stored with its error, retried on the
  next run, and listed in the merged dataset on the ``failure`` dim (``failed_unit``, ``error``).
- **Sharded.** Under ``torchrun`` rank r takes units r, r + world, ...; rank 0 merges every rank's parts
  in the units' given order, so N ranks produce the same dataset as one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import xarray as xr
from tqdm.auto import tqdm

import f2l
from f2l.distributed import barrier, rank, world_size
from f2l.io import atomic_path, atomic_write_json, atomic_write_text


class StudyConfigError(RuntimeError):
    """Existing partial results were made with another config."""


def git_revision() -> str:
    """The commit of the working tree the package is imported from, ``+dirty`` when it has edits."""
    root = Path(f2l.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(pipeline=None, *, seed: int | None = None, **extra: Any) -> dict[str, str | int | float]:
    """The dataset attrs DESIGN.md asks for: package version, git revision, base model (name@digest),
    hypernetwork id (name@digest), seed, command line and UTC time; ``extra`` values are added as given
    (dicts and lists as JSON) so that netCDF can store them."""
    attrs: dict[str, Any] = {
        "f2l_version": f2l.__version__,
        "git_revision": git_revision(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if pipeline is not None:
        base = getattr(pipeline, "base", pipeline)
        attrs["base_model"] = f"{base.name}@{base.digest}"
        if hasattr(pipeline, "hypernet_id"):
            attrs["hypernet"] = pipeline.hypernet_id
    if seed is not None:
        attrs["seed"] = int(seed)
    for key, value in extra.items():
        attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict | list | tuple) else value
    return {k: v for k, v in attrs.items() if v is not None}


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically (netCDF4: strings stored as variable-length UTF-8)."""
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}  # an encoding read from one part (e.g. a fixed string width) must not truncate the rest
    encoding = {name: {"dtype": str} for name, var in ds.variables.items() if var.dtype.kind in "UO"}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    return Path(path)


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Load a dataset fully into memory and close the file (so it can be replaced while in use)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def markdown_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A GitHub Markdown table of ``rows`` (floats rounded to ``digits``)."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}" if abs(v) >= 10**-digits or v == 0 else f"{v:.2e}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _file_stem(unit: str) -> str:
    """A file name for a unit id: readable, and unique even when two ids differ only in odd characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", unit)[:80]
    return f"{safe}-{hashlib.sha256(unit.encode()).hexdigest()[:8]}"


class Study:
    """One study's per-unit results on disk, merged along ``dim`` when the run finishes."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        name: str,
        *,
        config: dict[str, Any],
        attrs: dict[str, Any] | None = None,
        dim: str = "example_id",
        fresh: bool = False,
    ):
        self.out_dir, self.name, self.dim = Path(out_dir), name, dim
        self.parts = self.out_dir / f"{name}.parts"
        self.path = self.out_dir / f"{name}.nc"
        self.attrs = dict(attrs or {})
        self.config = json.loads(json.dumps(config, sort_keys=True, default=str))
        config_file = self.parts / "config.json"
        if rank() == 0:
            if fresh and self.parts.exists():
                for p in self.parts.iterdir():
                    p.unlink()
            if config_file.exists():
                stored = json.loads(config_file.read_text())
                if stored != self.config:
                    changed = sorted(
                        k for k in set(stored) | set(self.config) if stored.get(k) != self.config.get(k)
                    )
                    raise StudyConfigError(
                        f"{self.parts} holds results made with another config (differs in {changed}); "
                        "rerun with --fresh to discard them, or choose another --out"
                    )
            else:
                atomic_write_json(config_file, self.config)
        barrier()

    def _part(self, unit: str) -> Path:
        return self.parts / f"{_file_stem(unit)}.nc"

    def _error(self, unit: str) -> Path:
        return self.parts / f"{_file_stem(unit)}.error.json"

    def done(self, unit: str) -> bool:
        return self._part(unit).exists()

    def shard(self, units: Sequence[str]) -> list[str]:
        """This rank's share of ``units`` that has no result yet (failed units are tried again)."""
        if len(set(units)) != len(units):
            raise ValueError(f"{self.name}: unit ids must be unique")
        return [u for u in list(units)[rank() :: world_size()] if not self.done(u)]

    def record(self, unit: str, ds: xr.Dataset) -> None:
        if self.dim not in ds.dims:
            raise ValueError(
                f"{self.name}: a unit's dataset must have the {self.dim!r} dim, got {dict(ds.sizes)}"
            )
        write_netcdf(ds, self._part(unit))
        self._error(unit).unlink(missing_ok=True)

    def fail(self, unit: str, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        detail = "" if isinstance(error, str) else "".join(traceback.format_exception(error))
        atomic_write_json(self._error(unit), {"unit": unit, "error": message, "traceback": detail})

    def run(self, units: Sequence[str], fn: Callable[[str], xr.Dataset], *, desc: str | None = None) -> None:
        """Compute ``fn(unit)`` for this rank's pending units, writing each result (or error) at once."""
        todo = self.shard(units)
        skipped = len(list(units)[rank() :: world_size()]) - len(todo)
        bar = tqdm(todo, desc=desc or self.name, unit="unit", disable=rank() != 0 or not todo)
        if skipped and rank() == 0:
            tqdm.write(f"{self.name}: resuming, {skipped} unit(s) already done in {self.parts}")
        for unit in bar:
            try:
                ds = fn(unit)
            except Exception as err:  # recorded and skipped, never dropped: see the merged ``failure`` dim
                self.fail(unit, err)
                tqdm.write(f"{self.name}: {unit} failed: {type(err).__name__}: {err}")
                continue
            self.record(unit, ds)

    def finish(
        self,
        units: Sequence[str],
        *,
        derive: Callable[[xr.Dataset], xr.Dataset] | None = None,
        summary: Callable[[xr.Dataset], str] | None = None,
    ) -> xr.Dataset:
        """Merge all ranks' parts (in ``units`` order) into ``<out>/<name>.nc``; with ``derive``, what spans
        clips (statistics, intervals) is added to the merged dataset first, recomputed on every run; with
        ``summary``, also write its Markdown to ``<out>/<name>.md``. Every rank returns the written dataset."""
        barrier()
        if rank() == 0:
            ds = self.merge(units)
            if derive is not None:
                ds = derive(ds)
            write_netcdf(ds, self.path)
            if summary is not None:
                atomic_write_text(self.out_dir / f"{self.name}.md", summary(ds))
        barrier()
        return read_netcdf(self.path)

    def merge(self, units: Sequence[str]) -> xr.Dataset:
        parts = [read_netcdf(self._part(u)) for u in units if self.done(u)]
        failed = [
            json.loads(self._error(u).read_text())
            for u in units
            if not self.done(u) and self._error(u).exists()
        ]
        missing = [u for u in units if not self.done(u) and not self._error(u).exists()]
        if missing:
            raise RuntimeError(f"{self.name}: {len(missing)} unit(s) were never run, e.g. {missing[:3]}")
        if parts:
            ds = xr.concat(
                parts, dim=self.dim, data_vars="minimal", coords="different", compat="equals", join="outer"
            )
        else:
            ds = xr.Dataset()
        ds = ds.assign(
            failed_unit=("failure", [f["unit"] for f in failed]),
            error=("failure", [f["error"] for f in failed]),
        )
        ds["failed_unit"].attrs["description"] = "units (clips) whose computation raised; retried on rerun"
        ds["error"].attrs["description"] = "the exception each failed unit raised"
        ds.attrs.update(self.attrs)
        ds.attrs.update(study=self.name, config=json.dumps(self.config, sort_keys=True))
        return ds
