"""Paired statistics for "is adapter-only answering as good as video-in-context answering?".

The paper claims statistical equivalence and non-inferiority without naming a test; these are ours.
Every comparison is paired: the same examples scored under two methods, differences
``d_i = score(f2l)_i - score(direct)_i``, with an equivalence margin ``delta`` declared in advance
(default 0.05 on a [0, 1] metric such as token-F1: five points, the "within a few points" the paper's
figures show).

- Non-inferiority: one-sided paired t-test of H0: mean(d) <= -delta against H1: mean(d) > -delta.
- Equivalence (TOST): two one-sided paired t-tests, H0: mean(d) <= -delta and H0: mean(d) >= +delta;
  p = the larger of the two p-values.
- Inferiority: one-sided test of H0: mean(d) >= -delta (f2l is worse by more than the margin).
- Holm's step-down correction across the benchmarks (and scales) of one claim, per test family.
- Verdict per comparison at level alpha: "equivalent" (TOST rejects), else "non-inferior" (NI
  rejects), else "inferior" (inferiority rejects), else "inconclusive".
- A bootstrap percentile interval of mean(d) at level 1 - 2·alpha (the interval TOST corresponds to)
  is reported beside the tests; the decisions use the t-tests.

``mean_se`` is the mean ± standard error every study's summary reports of its replicates (clips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

DEFAULT_MARGIN = 0.05
DEFAULT_ALPHA = 0.05
VERDICTS = ("equivalent", "non-inferior", "inferior", "inconclusive")


@dataclass(frozen=True)
class PairedComparison:
    """One (benchmark, scale, metric) comparison of a method against a reference, on paired examples."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_noninferior: float
    p_equivalent: float
    p_inferior: float
    margin: float
    alpha: float
    verdict: str = "inconclusive"

    def to_dict(self) -> dict:
        return asdict(self)


def mean_se(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The mean of the finite ``values`` and its standard error ``sd / sqrt(n)`` (``sd`` with ``ddof=1``):
    both NaN without a finite value, the standard error NaN with one."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1)) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return float(v.mean()), float(se)


def _one_sided_p(diffs: np.ndarray, null: float, greater: bool) -> float:
    """p-value of the paired t-test of H0: mean <= null (``greater``) or H0: mean >= null."""
    n = len(diffs)
    sd = diffs.std(ddof=1) if n > 1 else 0.0
    mean = diffs.mean()
    if sd == 0.0:  # all differences equal: the sign decides, with certainty
        return 0.0 if (mean > null if greater else mean < null) else 1.0
    t = (mean - null) / (sd / np.sqrt(n))
    return float(stats.t.sf(t, n - 1) if greater else stats.t.cdf(t, n - 1))


def bootstrap_ci(diffs: np.ndarray, level: float, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference."""
    rng = np.random.default_rng(seed)
    means = rng.choice(diffs, size=(n_boot, len(diffs)), replace=True).mean(1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def compare_paired(
    method: Sequence[float],
    reference: Sequence[float],
    *,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    n_boot: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Tests of ``method`` against ``reference`` on the same examples (unadjusted p-values)."""
    a, b = np.asarray(method, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    diffs = a[keep] - b[keep]
    if len(diffs) < 2:
        raise ValueError(f"need at least 2 paired examples with finite scores, got {len(diffs)}")
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    p_lower = _one_sided_p(diffs, -margin, greater=True)  # H0: mean <= -margin
    p_upper = _one_sided_p(diffs, margin, greater=False)  # H0: mean >= +margin
    low, high = bootstrap_ci(diffs, 1 - 2 * alpha, n_boot, seed)
    result = PairedComparison(
        n=len(diffs),
        mean_diff=float(diffs.mean()),
        ci_low=low,
        ci_high=high,
        p_noninferior=p_lower,
        p_equivalent=max(p_lower, p_upper),
        p_inferior=_one_sided_p(diffs, -margin, greater=False),  # H0: mean >= -margin
        margin=margin,
        alpha=alpha,
    )
    return _with_verdict(result, result.p_equivalent, result.p_noninferior, result.p_inferior)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate control, any dependence)."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _with_verdict(c: PairedComparison, p_eq: float, p_ni: float, p_inf: float) -> PairedComparison:
    if p_eq <= c.alpha:
        verdict = "equivalent"
    elif p_ni <= c.alpha:
        verdict = "non-inferior"
    elif p_inf <= c.alpha:
        verdict = "inferior"
    else:
        verdict = "inconclusive"
    return PairedComparison(**{**c.to_dict(), "verdict": verdict})


def compare_family(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, PairedComparison]:
    """Compare every named (method, reference) pair, Holm-adjusting each test across the family, and
    give verdicts on the adjusted p-values (as the paper's "5 of 5 captioning benchmarks" needs)."""
    raw = {
        name: compare_paired(m, r, margin=margin, alpha=alpha, seed=seed) for name, (m, r) in pairs.items()
    }
    names = list(raw)
    adjusted = {
        field: dict(zip(names, holm([getattr(raw[n], field) for n in names]), strict=True))
        for field in ("p_equivalent", "p_noninferior", "p_inferior")
    }
    out = {}
    for n in names:
        c = PairedComparison(**{**raw[n].to_dict(), **{f: float(adjusted[f][n]) for f in adjusted}})
        out[n] = _with_verdict(c, c.p_equivalent, c.p_noninferior, c.p_inferior)
    return out
