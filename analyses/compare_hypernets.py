"""Two hypernetworks on the same benchmark: per suite, the paired difference of their adapter-only scores.

    python -m analyses.benchmark --clips 100 --out runs/bench-a --hypernet A
    python -m analyses.benchmark --clips 100 --out runs/bench-b --hypernet B
    python -m analyses.compare_hypernets runs/bench-a/benchmark.nc runs/bench-b/benchmark.nc

Both runs must hold the same clips and prompts (the same base, split and settings): clips are the unit of
replication, so each clip's scores on a suite are averaged before the paired test, as in
``analyses.benchmark``. Per suite: both means, ``B - A`` with its bootstrap interval, and the verdict of
``f2l.eval.stats.compare_family`` (Holm across suites) at ``--margin``; ``direct`` of each run is shown
beside them (equal when the base is). ``--reference-method direct`` compares B's adapter with A's video in
context instead: the benchmark's own ``f2l - direct`` for a run that answered with the adapter alone
(``--methods f2l``), read against a run of the same clips that answered with the video.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analyses.benchmark import per_clip_scores
from f2l.cli import UsageError, entry_point
from f2l.config import parse_command
from f2l.eval.stats import DEFAULT_ALPHA, DEFAULT_MARGIN, compare_family
from f2l.results import markdown_table, read_netcdf


def compare_runs(
    a,
    b,
    *,
    method: str = "f2l",
    reference_method: str | None = None,
    metric: str = "token_f1",
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
) -> pd.DataFrame:
    """One row per suite: B's mean ``method`` score, A's ``reference_method`` (default: ``method``) score,
    direct's, and ``B - A`` paired by clip."""
    reference = reference_method or method
    if sorted(map(str, a["example_id"].values)) != sorted(map(str, b["example_id"].values)):
        raise UsageError("the two runs hold different prompts: compare runs of the same clips and settings")
    clips_a, clips_b = per_clip_scores(a, metric), per_clip_scores(b, metric)
    suites = list(dict.fromkeys(clips_a.index.get_level_values("benchmark")))
    pairs = {}
    for suite in suites:
        joined = pd.concat(
            [clips_b.loc[suite, method], clips_a.loc[suite, reference]], axis=1, keys=["b", "a"]
        ).dropna()
        if len(joined) >= 2:
            pairs[suite] = (joined["b"].values, joined["a"].values)
    family = compare_family(pairs, margin=margin, alpha=alpha)
    rows = []
    for suite in suites:
        row = {
            "suite": suite,
            "direct": clips_a.loc[suite, "direct"].mean() if "direct" in clips_a else float("nan"),
            "A": clips_a.loc[suite, reference].mean(),
            "B": clips_b.loc[suite, method].mean(),
        }
        if suite in family:
            c = family[suite]
            row |= {"B - A": c.mean_diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "verdict": c.verdict}
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class CompareConfig:
    """Settings of ``python -m analyses.compare_hypernets A B`` (every field is a flag; ``a`` and ``b``
    also the first two arguments)."""

    a: str | None = None  # benchmark.nc of hypernetwork A, the reference (required; or the first argument)
    b: str | None = None  # benchmark.nc of hypernetwork B (required; or the second argument)
    method: str = "f2l"  # the method compared
    reference_method: str | None = None  # A's method B is compared with (default: --method)
    metric: str = "token_f1"
    margin: float = DEFAULT_MARGIN
    alpha: float = DEFAULT_ALPHA


@entry_point
def main(argv: list[str]) -> int:
    args = parse_command(
        CompareConfig,
        argv,
        prog="python -m analyses.compare_hypernets",
        description=__doc__.split("\n\n")[0],
        positional=("a", "b"),
    )
    a, b = read_netcdf(args.a), read_netcdf(args.b)
    reference = args.reference_method or args.method
    table = compare_runs(
        a,
        b,
        method=args.method,
        reference_method=reference,
        metric=args.metric,
        margin=args.margin,
        alpha=args.alpha,
    )
    level = f"{1 - 2 * args.alpha:.0%}"
    print(
        f"A = {a.attrs.get('hypernet')} ({reference}), B = {b.attrs.get('hypernet')} ({args.method}); "
        f"{args.metric}, B - A paired by clip, {level} interval, margin {args.margin}, Holm across suites\n"
    )
    rows = [
        {
            k: (
                f"{v:+.3f}"
                if k in ("B - A", "ci_low", "ci_high")
                else f"{v:.3f}"
                if isinstance(v, float)
                else v
            )
            for k, v in r.items()
        }
        for r in table.to_dict("records")
    ]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
