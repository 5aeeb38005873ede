"""The equivalence statistics, tested on synthetic paired scores with known shifts, and the mean ±
standard error the studies report."""

from __future__ import annotations

import numpy as np
import pytest

from f2l.eval.stats import compare_family, compare_paired, holm, mean_se


def paired(shift: float, n: int, sd: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0.2, 0.8, n)
    return reference + shift + rng.normal(0, sd, n), reference


def verdict_rate(shift: float, verdicts: set[str], n: int = 60, sd: float = 0.1, sims: int = 1000) -> float:
    hits = sum(
        compare_paired(*paired(shift, n, sd, seed), margin=0.05, n_boot=50).verdict in verdicts
        for seed in range(sims)
    )
    return hits / sims


def test_holm_hand_case():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


@pytest.mark.parametrize(
    ("shift", "n", "expected"),
    [
        (0.0, 300, "equivalent"),
        (0.04, 300, "non-inferior"),
        (-0.15, 300, "inferior"),
        (-0.05, 20, "inconclusive"),
    ],
)
def test_verdicts_for_known_shifts(shift, n, expected):
    result = compare_paired(*paired(shift, n, 0.15, seed=1), margin=0.05)
    assert result.verdict == expected, result
    assert result.ci_low < result.mean_diff < result.ci_high
    assert abs(result.mean_diff - shift) < 0.05


def test_error_rates_hold_at_the_margins():
    alpha = 0.05
    # true difference exactly at -margin: claiming non-inferiority (or equivalence) is a type I error
    assert verdict_rate(-0.05, {"non-inferior", "equivalent"}) <= alpha + 0.022  # 3 standard errors
    # true difference exactly at +margin: claiming equivalence is a type I error
    assert verdict_rate(0.05, {"equivalent"}) <= alpha + 0.022
    # and the tests have power where they should: no true difference, 200 pairs
    assert verdict_rate(0.0, {"equivalent"}, n=200) >= 0.9


def test_holm_family_verdicts():
    pairs = {f"bench{i}": paired(0.0, 300, 0.1, seed=i) for i in range(4)}
    pairs["bad"] = paired(-0.2, 300, 0.1, seed=9)
    results = compare_family(pairs, margin=0.05)
    assert [results[f"bench{i}"].verdict for i in range(4)] == ["equivalent"] * 4
    assert results["bad"].verdict == "inferior"
    single = compare_paired(*pairs["bench0"], margin=0.05)
    assert results["bench0"].p_equivalent >= single.p_equivalent  # adjusted p-values only grow


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="paired scores"):
        compare_paired([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="margin"):
        compare_paired([0.1, 0.2], [0.1, 0.3], margin=0)


def test_mean_se_by_hand_skipping_what_is_not_finite():
    mean, se = mean_se([0.1, 0.4, np.nan, 0.7, np.inf])
    assert mean == pytest.approx(0.4)
    assert se == pytest.approx(0.3 / np.sqrt(3))  # sd of (0.1, 0.4, 0.7) with ddof 1 is 0.3
    one = mean_se(np.array([[2.5]]))
    assert one[0] == 2.5 and np.isnan(one[1])
    assert all(np.isnan(v) for v in mean_se([np.nan, np.nan])) and all(np.isnan(v) for v in mean_se([]))
