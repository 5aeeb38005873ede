from __future__ import annotations

import json

import numpy as np

from f2l.bench import _peak_rss_growth, main


def test_peak_rss_growth_sees_a_transient_allocation():
    def allocate():
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, then freed
        return float(block.sum())

    assert _peak_rss_growth(allocate) > 48 * 2**20


def test_bench_runs_end_to_end_and_writes_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--frames", "4", "--warmup", "0", "--repeats", "1", "--no-memory", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["frames"][0]
    assert row["frames"] == 4 and row["adapter_input_tokens"]["visual"] == 0
    assert row["direct_input_tokens"] > 4 * 16
    for key in ("ttft_speedup", "adapter_vs_base_ttft", "merged_vs_base_ttft", "internalize_vs_prefill"):
        assert row[key] > 0
    assert result["training"]["train_step_vs_student"] > 1.0
    assert "4 frames" in capsys.readouterr().out
