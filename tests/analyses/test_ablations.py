"""analyses.ablations: the registry changes one thing a row, the runner trains and benchmarks two micro rows
into a dataset that agrees with their benchmarks, reruns recompute nothing, and mistakes end in one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import analyses.ablations as ablations
import analyses.benchmark as benchmark
from f2l.cli import UsageError
from f2l.config import config_dict
from f2l.eval.stats import compare_family
from f2l.results import read_netcdf
from f2l.train import parse_config as parse_train_config

SUITES = ("short", "count", "temporal_order")


def micro(tmp) -> ablations.AblationsConfig:
    """Two rows (the baseline and rank-16) on the shipped tiny base: 3 steps on 4 clips of 3 frames (at a
    learning rate that moves the adapters in 3 steps), and a benchmark of 2 clips, 3 benchmarks, 4-token
    answers."""
    train_args = [
        "--base", "tiny", "--teacher-cache", str(tmp / "cache"), "--state-cache", str(tmp / "cache"),
        "--steps", "3", "--lr", "0.05", "--train-clips", "4", "--val-clips", "1", "--batch-clips", "2",
        "--frames", "3", "--max-new-tokens", "4", "--eval-every", "1000", "--save-every", "1000",
        "--no-progress", "--no-tensorboard",
    ]  # fmt: skip
    return ablations.AblationsConfig(
        rows=("rank-16",),
        work=str(tmp / "work"),
        out=str(tmp / "out"),
        clips=2,
        benchmarks=SUITES,
        max_new_tokens=4,
        train_args=tuple(train_args),
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory, one_thread):
    tmp = tmp_path_factory.mktemp("ablations")
    cfg = micro(tmp)
    return cfg, ablations.run(cfg)


def flat(cfg) -> dict:
    """A TrainConfig's settings under dotted names (sections flattened), but where the run is written."""
    out = {}
    for key, value in dataclasses.asdict(cfg).items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in value.items()}
        elif key not in ("out", "ship"):
            out[key] = value
    return out


def test_every_row_changes_one_thing_of_the_tiny_preset(tmp_path):
    """The baseline is the tiny preset at 1,500 steps (as it stood when the table was run); the steps-3000
    row, which met the criterion, is the preset as it ships now."""
    baseline = flat(ablations.row_config(ablations.BASELINE, tmp_path))
    assert baseline == flat(parse_train_config(["--preset", "tiny", "--steps", "1500"]))
    shipped = flat(ablations.row_config("steps-3000", tmp_path))
    assert shipped == flat(parse_train_config(["--preset", "tiny"]))
    changed = {}
    for name in ablations.ROWS:
        if name == ablations.BASELINE:
            continue
        row = flat(ablations.row_config(name, tmp_path))
        diff = {k for k in baseline if row[k] != baseline[k]}
        assert len(diff) == 1 or frozenset(diff) in ablations.COUPLED, (name, diff)
        changed[name] = {k: row[k] for k in diff}
    assert changed["steps-3000"] == {"steps": 3000}
    assert changed["rank-16"] == {"f2l.rank": 16, "f2l.alpha": 16.0}
    assert changed["ce-only"] == {"kl_weight": 0.0} and changed["kl-only"] == {"ce_weight": 0.0}
    assert changed["ground-truth"] == {"targets_from": "ground_truth"}
    assert len({json.dumps(c, sort_keys=True) for c in changed.values()}) == len(changed)  # no two alike
    where = ablations.row_config("rank-16", tmp_path, ["--steps", "7", "--f2l.rank", "2"])
    assert (where.steps, where.f2l.rank, where.out, where.ship) == (
        7,
        16,  # the row's change comes after the shared flags
        str(tmp_path / "rank-16"),
        str(tmp_path / "rank-16" / "hypernet"),
    )


@pytest.mark.slow
def test_the_dataset_agrees_with_each_rows_benchmark(ran):
    cfg, ds = ran
    assert list(ds["row"].values) == ["baseline", "rank-16"]
    assert list(ds["benchmark"].values) == list(SUITES)
    assert ds["mean_score"].dims == ("row", "benchmark", "method")
    assert json.loads(ds["train_config"].sel(row="rank-16").item())["f2l"]["rank"] == 16
    clip_scores = {}
    baseline = read_netcdf(f"{cfg.work}/baseline/bench-2/benchmark.nc")
    for row in ds["row"].values:
        # the baseline's benchmark answers every method; another row's f2l alone, beside the baseline's
        bench = read_netcdf(f"{cfg.work}/{row}/bench-2/benchmark.nc")
        own = list(ablations.METHODS) if row == "baseline" else ["f2l"]
        assert list(bench["method"].values) == own
        assert list(bench["example_id"].values) == list(baseline["example_id"].values)
        for s in SUITES:
            by_clip = {}
            for clip in sorted(set(bench["clip"].values)):
                keep = (bench["benchmark"].values == s) & (bench["clip"].values == clip)
                by_clip[clip] = {
                    m: (bench if m in own else baseline)["score"]
                    .sel({"metric": "token_f1", "method": m})
                    .values[keep]
                    .mean()
                    for m in ablations.METHODS
                }
            clip_scores[row, s] = by_clip
            for m in ablations.METHODS:
                by_hand = np.mean([c[m] for c in by_clip.values()])
                assert float(
                    ds["mean_score"].sel({"row": row, "benchmark": s, "method": m})
                ) == pytest.approx(by_hand)
            diff = np.mean([c["f2l"] - c["direct"] for c in by_clip.values()])
            assert float(ds["diff_mean"].sel(row=row, benchmark=s)) == pytest.approx(diff)
        family = compare_family(
            {
                s: tuple(np.array([c[m] for c in clip_scores[row, s].values()]) for m in ("f2l", "direct"))
                for s in SUITES
            }
        )
        for s in SUITES:
            assert ds["verdict"].sel(row=row, benchmark=s).item() == family[s].verdict
        log = [json.loads(line) for line in Path(cfg.work, row, "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == [1, 2, 3] and int(ds["steps"].sel(row=row)) == 3
        assert float(ds["train_seconds"].sel(row=row)) == pytest.approx(sum(r["sec_per_step"] for r in log))
    for s in SUITES:
        pairs = zip(clip_scores["rank-16", s].values(), clip_scores["baseline", s].values(), strict=True)
        versus = np.mean([row["f2l"] - base["f2l"] for row, base in pairs])
        assert float(ds["vs_baseline_diff"].sel(row="rank-16", benchmark=s)) == pytest.approx(versus)
        assert float(ds["vs_baseline_diff"].sel(row="baseline", benchmark=s)) == 0.0
    assert np.abs(ds["vs_baseline_diff"].sel(row="rank-16").values).max() > 0.1  # the rows answer differently
    matters = ds["video_verdict"].values == "inferior"
    np.testing.assert_array_equal(ds["video_matters"].values, matters)
    meets = matters & np.isin(ds["verdict"].values, ["equivalent", "non-inferior"])
    np.testing.assert_array_equal(ds["n_meeting"].values, meets.sum(1))
    written = read_netcdf(f"{cfg.out}/ablations.nc")
    np.testing.assert_allclose(written["diff_mean"].values, ds["diff_mean"].values)
    table = Path(cfg.out, "ablations.md").read_text()
    assert (
        "| rank-16 | `--f2l.rank 16 --f2l.alpha 16` |" in table
        and "| baseline | `(the tiny preset, --steps 1500)` |" in table
    )


def synthetic_benchmark(f2l: dict[str, float], blind: dict[str, float], clips: int = 30) -> xr.Dataset:
    """A benchmark with its statistics whose f2l and no_video scores are direct's plus the suite's shift
    (and noise), one prompt a clip and suite."""
    rng = np.random.default_rng(0)
    ids, clip, suite, scores = [], [], [], []
    for c in range(clips):
        for s in f2l:
            direct = rng.uniform(0.4, 0.6)
            ids.append(f"clip{c}/{s}")
            clip.append(f"clip{c}")
            suite.append(s)
            scores.append(
                [direct, direct + f2l[s] + rng.normal(0, 0.02), direct + blind[s] + rng.normal(0, 0.02)]
            )
    ds = xr.Dataset(
        {"score": (("example_id", "method", "metric"), np.array(scores)[:, :, None])},
        coords={
            "example_id": ids,
            "method": list(ablations.METHODS),
            "metric": ["token_f1"],
            "clip": ("example_id", clip),
            "benchmark": ("example_id", suite),
        },
    )
    return benchmark.add_statistics(ds)


def test_the_criterion_counts_the_benchmarks_where_the_video_matters(tmp_path):
    """``seen`` and ``missed`` need the video (blind is 0.3 under it), ``blind`` does not; the baseline's
    f2l is 0.3 under direct on ``missed``, the rank-16 row's is not."""
    blind = {"seen": -0.3, "missed": -0.3, "blind": 0.0}
    benches = {
        "baseline": synthetic_benchmark({"seen": 0.0, "missed": -0.3, "blind": 0.0}, blind),
        "rank-16": synthetic_benchmark({"seen": 0.0, "missed": 0.0, "blind": 0.0}, blind),
    }
    configs = {name: ablations.row_config(name, tmp_path) for name in benches}
    for run in configs.values():
        run.out_dir.mkdir(parents=True)
        (run.out_dir / "summary.json").write_text(json.dumps({"steps": 1500}))
        (run.out_dir / "log.jsonl").write_text(json.dumps({"step": 1500, "sec_per_step": 0.5}) + "\n")
    ds = ablations.collect(configs, benches, ablations.AblationsConfig())
    np.testing.assert_array_equal(ds["video_matters"].values, [[True, True, False]] * 2)
    assert ds["verdict"].sel(row="baseline").values.tolist() == ["equivalent", "inferior", "equivalent"]
    np.testing.assert_array_equal(ds["meets"].values, [[True, False, False], [True, True, False]])
    assert ds["n_meeting"].values.tolist() == [1, 2] and ds["n_video_matters"].values.tolist() == [2, 2]
    assert float(ds["vs_baseline_diff"].sel(row="rank-16", benchmark="missed")) == pytest.approx(
        0.3, abs=0.02
    )
    assert ds["vs_baseline_verdict"].sel(row="rank-16").values.tolist() == [
        "equivalent",
        "non-inferior",
        "equivalent",
    ]
    assert ds["train_seconds"].values.tolist() == [750.0, 750.0]
    table = ablations.summary(ds)
    assert (
        "the video matters (`no_video - direct` inferior: in the baseline's benchmark, on seen, missed)"
        in table
    )
    baseline = next(line for line in table.splitlines() if line.startswith("| baseline |"))
    cells = [c.strip() for c in baseline.strip("|").split("|")]
    assert cells[2:4] == ["12.5", "1500"] and cells[-1] == "1/2"
    assert cells[5].startswith("-0.3") and cells[5].endswith(" <") and cells[6].endswith(" =)")


@pytest.mark.slow
def test_a_rerun_trains_and_answers_nothing(ran, monkeypatch):
    cfg, first = ran

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(ablations, "train", refuse)
    monkeypatch.setattr(benchmark, "clip_dataset", refuse)
    again = ablations.run(cfg)
    for name in (
        "mean_score",
        "diff_mean",
        "ci_low",
        "vs_baseline_diff",
        "train_seconds",
        "verdict",
        "meets",
    ):
        np.testing.assert_array_equal(again[name].values, first[name].values)


def test_a_row_of_another_config_is_refused_up_front_and_fresh_discards_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ablations, "train", lambda cfg: pytest.fail("trained"))
    cfg = ablations.AblationsConfig(rows=("rank-16",), work=str(tmp_path))
    stored = ablations.row_config("rank-16", tmp_path)
    stored.out_dir.mkdir(parents=True)
    other = config_dict(dataclasses.replace(stored, lr=0.5, progress=False))
    (stored.out_dir / "config.json").write_text(json.dumps(other))
    with pytest.raises(UsageError, match=r"another config \(differs in \['lr'\]\)"):
        ablations.run(cfg)
    ablations.check_rows(dataclasses.replace(cfg, fresh=True))
    assert not stored.out_dir.exists()
    # a run recorded before a setting existed trained with its default: the same config, not another
    older = config_dict(stored)
    del older["reference_labels"]
    stored.out_dir.mkdir(parents=True)
    (stored.out_dir / "config.json").write_text(json.dumps(older))
    ablations.check_rows(cfg)
    assert stored.out_dir.exists()
    with pytest.raises(UsageError, match="steps-3000 .* changes nothing"):
        ablations.check_rows(dataclasses.replace(cfg, rows=("steps-3000",), train_args=("--steps", "3000")))


def test_training_seconds_count_a_resumed_runs_steps_once(tmp_path):
    records = [(2, 1.0), (4, 2.0), (5, 3.0), (4, 10.0), (5, 20.0), (6, 30.0)]  # killed after 5, resumed at 2
    (tmp_path / "log.jsonl").write_text(
        "".join(json.dumps({"step": s, "sec_per_step": t}) + "\n" for s, t in records)
    )
    assert ablations.training_seconds(tmp_path) == 2 * 1.0 + 2 * 10.0 + 20.0 + 30.0


def test_the_command_lists_its_rows_and_refuses_unknown_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        ablations.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--debug" in out and "--f2l.rank 16 --f2l.alpha 16" in out
    assert all(name in out for name in ablations.ROWS)
    assert ablations.main(["--rows", "rank-16", "rank-61"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown row(s) rank-61; the rows are: baseline,")
    assert ablations.main(["--", "--ship", "x"]) == 2
    assert "the runner sets --preset, --out, --ship" in capsys.readouterr().err
