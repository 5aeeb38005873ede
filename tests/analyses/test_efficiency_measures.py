"""``analyses.efficiency_measures``: a transient allocation's peak memory, and interleaved timing rounds
(every measurement once a round, in rotating order, after untimed warm-up rounds) and their medians."""

from __future__ import annotations

import numpy as np

from analyses.efficiency_measures import interleaved_rounds, measure_peak, medians


def test_measure_peak_sees_a_transient_allocation():
    def allocate():
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed
        return float(block.sum())

    assert measure_peak(allocate, "cpu") > 48 * 2**20


def test_interleaved_rounds_run_every_method_each_round_in_rotating_order():
    calls: list[str] = []
    readings = {
        "a": iter([9.0, 1.0, 2.0, 3.0]),
        "b": iter([9.0, 5.0, 4.0, 6.0]),
        "c": iter([9.0, 7.0, 8.0, 0.5]),
    }

    def measure(name):
        def fn():
            calls.append(name)
            return next(readings[name])

        return fn

    rounds = interleaved_rounds({k: measure(k) for k in "abc"}, warmup=1, repeats=3)
    assert calls == list("abc" + "abc" + "bca" + "cab")  # warm-up round, then one shift per round
    assert rounds == {"a": [1.0, 2.0, 3.0], "b": [5.0, 4.0, 6.0], "c": [7.0, 8.0, 0.5]}  # no warm-up 9.0


def test_medians_leave_out_the_rounds_a_measurement_sat_out():
    rounds = {"a": [3.0, float("nan"), 1.0, 10.0], "b": [2.0, 4.0]}
    assert medians(rounds) == {"a": 3.0, "b": 3.0}  # a: the median of 1, 3 and 10
