"""Which answer each method gives on a closed-set benchmark: counts of (truth, answer) per method.

    python -m analyses.benchmark --hypernet tiny-small --clips 200 --out runs/bench
    python -m analyses.confusion runs/bench/benchmark.nc --benchmark camera

A token-F1 gap says how much an adapter loses against the video; the confusion says where: which truths
it gets wrong, and whether it falls back to the answer the question alone gives. A benchmark is closed
when its references take few distinct values (a world caption category such as ``camera``, or a QA type):
those normalised references (``f2l.eval.metrics.normalize_answer``) are the labels, and an answer is the
label it equals or, failing that, the longest label it contains (``other`` when none). Per method it
prints the table (rows truth, columns answer; words every label shares are dropped from the names), the
answers that match the truth, and those that match ``direct``'s (what distillation asks the adapter for);
``--out`` writes ``confusion.nc``: ``count(method, truth, answer)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from f2l.cli import UsageError, entry_point
from f2l.config import parse_command
from f2l.eval.metrics import normalize_answer
from f2l.results import markdown_table, read_netcdf, write_netcdf

OTHER = "other"
MAX_LABELS = 12  # more distinct references than this and the benchmark is open-ended, not a label set


def label_of(answer: str, labels: list[str]) -> str:
    """The label ``answer`` equals once normalised, else the longest label it holds as whole words, else
    ``OTHER``."""
    text = normalize_answer(answer)
    if text in labels:
        return text
    held = [label for label in labels if re.search(rf"\b{re.escape(label)}\b", text)]
    return max(held, key=len) if held else OTHER


def labelled(ds: xr.Dataset, benchmark: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The labels of one benchmark of an ``analyses.benchmark`` dataset (ordered by how often they are the
    truth), each prompt's truth, and each method's answers as labels."""
    rows = ds["benchmark"].values == benchmark
    if not rows.any():
        present = sorted(set(map(str, ds["benchmark"].values)))
        raise UsageError(f"no prompt of benchmark {benchmark!r} in the run; it holds {', '.join(present)}")
    truths = [normalize_answer(str(r)) for r in ds["reference"].values[rows]]
    labels, counts = np.unique(truths, return_counts=True)
    if len(labels) > MAX_LABELS:
        raise UsageError(f"{benchmark!r} has {len(labels)} distinct references: not a closed set of answers")
    labels = [str(label) for label in labels[np.argsort(-counts, kind="stable")]]
    answers = {
        str(method): [label_of(str(p), labels) for p in ds["prediction"].values[rows, m]]
        for m, method in enumerate(ds["method"].values)
    }
    return labels, truths, answers


def confusion(ds: xr.Dataset, benchmark: str) -> xr.DataArray:
    """``count(method, truth, answer)`` on one benchmark of an ``analyses.benchmark`` dataset."""
    labels, truths, answers = labelled(ds, benchmark)
    columns = [*labels, OTHER]
    count = np.zeros((len(answers), len(labels), len(columns)), dtype=np.int64)
    for m, given in enumerate(answers.values()):
        for truth, answer in zip(truths, given, strict=True):
            count[m, labels.index(truth), columns.index(answer)] += 1
    return xr.DataArray(
        count,
        dims=("method", "truth", "answer"),
        coords={"method": list(answers), "truth": labels, "answer": columns},
        name="count",
        attrs={"benchmark": benchmark, "units": "prompts", "description": "prompts by truth and answer"},
    )


def agreement(ds: xr.Dataset, benchmark: str, method: str, reference: str = "direct") -> tuple[int, int]:
    """How many of ``method``'s answers on ``benchmark`` carry the label ``reference``'s answer to the same
    prompt carries, of how many prompts."""
    answers = labelled(ds, benchmark)[2]
    pairs = list(zip(answers[method], answers[reference], strict=True))
    return sum(a == b for a, b in pairs), len(pairs)


def short_names(labels: list[str]) -> dict[str, str]:
    """Each label without the leading words every label shares ("the camera pans left" -> "pans left")."""
    words = [label.split() for label in labels if label != OTHER]
    shared = 0
    while words and all(len(w) > shared + 1 and w[shared] == words[0][shared] for w in words):
        shared += 1
    return {label: label if label == OTHER else " ".join(label.split()[shared:]) for label in labels}


def report(count: xr.DataArray) -> str:
    """Per method: its table, how many answers match the truth and how many match ``direct``'s answers."""
    names = short_names([str(a) for a in count["answer"].values])
    lines = []
    for method in map(str, count["method"].values):
        table = count.sel({"method": method})
        right = int(sum(table.sel({"truth": t, "answer": t}) for t in table["truth"].values))
        total = int(table.sum())
        lines.append(f"{method}: {right} of {total} right")
        rows = [
            {
                "truth": names[str(t)],
                **{names[str(a)]: int(table.sel({"truth": t, "answer": a})) for a in table["answer"].values},
            }
            for t in table["truth"].values
        ]
        lines.append(markdown_table(rows))
    return "\n".join(lines)


@dataclass
class ConfusionConfig:
    """Settings of ``python -m analyses.confusion RUN`` (every field is a flag; ``run`` also the first
    argument)."""

    run: str | None = None  # an analyses.benchmark run's benchmark.nc (required; or the first argument)
    benchmark: str = "camera"  # a closed-set benchmark of the run
    out: str | None = None  # directory to write confusion.nc into


@entry_point
def main(argv: list[str]) -> int:
    args = parse_command(
        ConfusionConfig,
        argv,
        prog="python -m analyses.confusion",
        description=__doc__.split("\n\n")[0],
        positional=("run",),
    )
    ds = read_netcdf(args.run)
    count = confusion(ds, args.benchmark)
    print(f"{args.run}: {args.benchmark}, {ds.attrs.get('hypernet', '?')}\n")
    print(report(count))
    methods = [str(m) for m in count["method"].values]
    if "direct" in methods:
        for method in methods:
            if method != "direct":
                same, total = agreement(ds, args.benchmark, method)
                print(f"{method} gives direct's answer on {same} of {total}")
    if args.out is not None:
        out = count.to_dataset()
        out.attrs = {**ds.attrs, "study": "confusion", "source": str(args.run)}
        write_netcdf(out, Path(args.out) / "confusion.nc")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
