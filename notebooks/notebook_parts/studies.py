"""The notebooks of the evaluation studies: benchmark, efficiency, scaling and composition."""

from __future__ import annotations

from notebook_parts.template import StudyNotebook

STUDIES = [
    StudyNotebook(
        study="benchmark",
        title="Benchmark: answering from the adapter alone vs with the video in context",
        about=(
            "Every method answers the same prompts of the same held-out clips (each caption category and "
            "one question of each QA type): `direct` (the video in context), `f2l` (the generated adapter, "
            "zero visual tokens), `no_video` (the question alone: the floor) and the other baselines the "
            "run included. Each answer is scored (token-F1, exact match on closed questions, embedding "
            "similarity). The study then tests, per benchmark, whether `f2l` is *equivalent* to `direct` "
            "(paired TOST at a stated margin, Holm-adjusted across benchmarks), with clips as the unit of "
            "replication."
        ),
        config="BenchmarkConfig",
        small="clips=2",
        duration="a few minutes",
        figures=[
            (
                "**Score per example.** Each dot is one prompt of one clip, the violin its distribution. "
                "Where the orange (`f2l`) and blue (`direct`) shapes match, the adapter carries what the "
                "video gives the model.",
                "fig = figures.score_distributions(ds)",
            ),
            (
                "**Paired differences.** `f2l` minus `direct` on the same prompt. The black diamond is the "
                "study's mean per-clip difference with its bootstrap interval; the verdict under each "
                "benchmark is the equivalence test's (`equivalent`, `non-inferior`, `inferior`, "
                "`inconclusive`, or `not tested` with fewer than two clips).",
                "fig = figures.score_differences(ds)",
            ),
            (
                "**Spider plots.** Mean score per caption category and QA type. `no_video` marks what the "
                "question alone already gives: a benchmark where it reaches `direct` does not measure "
                "video understanding.",
                "fig = figures.spider(ds)",
            ),
            (
                "The same distributions under the embedding judge (cosine similarity of sentence "
                "embeddings), which credits paraphrases that token-F1 misses.",
                'fig = figures.score_distributions(ds, metric="embedding")',
            ),
        ],
        explore=[
            (
                "Mean score per benchmark and method (token-F1; each clip's mean first, then across clips):",
                'ds["mean_score"].sel(metric="token_f1").to_pandas().round(3)',
            ),
            (
                "The equivalence statistics of `f2l - direct` (the margin is in `ds.attrs['margin']`):",
                'stats = ["diff_mean", "ci_low", "ci_high", "p_equivalence", "p_noninferiority", "verdict"]\n'
                'ds[stats].sel(contrast="f2l - direct", metric="token_f1").to_dataframe().drop(\n'
                '    columns=["contrast", "metric"]\n'
                ").round(3)",
            ),
            (
                "What the methods answered on the first clip's prompts, next to the reference "
                '(note `sel({"method": ...})`: `method` is also a keyword of `sel` itself):',
                'methods = [m for m in ("direct", "f2l", "no_video") if m in ds["method"].values]\n'
                'answers = ds["prediction"].sel({"method": methods}).to_pandas()\n'
                'answers["reference"] = ds["reference"].to_pandas()\n'
                'answers[ds["clip"].values == ds["clip"].values[0]]',
            ),
        ],
    ),
    StudyNotebook(
        study="efficiency",
        title="Efficiency: what answering costs at each video-token budget",
        about=(
            "One clip, sampled at each frame count, answers the same question under every method: query "
            "time to first token, the reusable preprocessing per video (making the adapter; prefilling "
            "the KV cache), answer-time input tokens, bytes stored per video and peak memory. Every time "
            "is a median over rounds in the same process, each round timing every method once, so ratios "
            "between methods hold whatever the machine."
        ),
        config="EfficiencyConfig",
        small="frames=(8, 16), repeats=1, warmup=0",
        duration="about a minute",
        figures=[
            (
                "**Costs across frame counts** (log axes). `f2l` answers from a handful of text tokens at "
                "any frame count, so its query time stays flat while `direct` grows with the video; the "
                "adapter's bytes are constant while the KV cache grows with the frames.",
                "fig = figures.efficiency_budgets(ds)",
            ),
            (
                "**The adapter's query overhead**, one point per timing round: TTFT over the base's with no "
                "adapter in the same round. Merged serving does the base's work exactly, so its spread is "
                "the noise; the dashed line is the 1.2x bound for unmerged serving.",
                "fig = figures.efficiency_overhead(ds)",
            ),
        ],
        explore=[
            (
                "Query time to first token (s), per frame count and method:",
                'ds["ttft_s"].to_pandas()',
            ),
            (
                "The adapter's query overhead paired within each round: `f2l_merged` does the base's work "
                "exactly, so its spread around 1 is the measurement's noise, against which `f2l` is read:",
                'rounds = ds["ttft_rounds_s"]\n'
                'ratios = rounds.sel({"method": ["f2l", "f2l_merged"]}) / rounds.sel({"method": "no_video"})\n'
                'ratios.to_series().unstack("method")',
            ),
            (
                "Answer-time input tokens, and how many times fewer `f2l` needs than `direct`:",
                'tokens = ds["input_tokens"].to_pandas()\n'
                'tokens["reduction direct / f2l"] = ds["token_reduction"].to_pandas()\n'
                "tokens",
            ),
            (
                "The batched unmerged mode, measured once per run: one `generate` over `batch_size` "
                "questions, row i under clip i's own adapter, against the base on the same batch (TTFT s; "
                "the ratio is the median of the per-round ratios, with its range):",
                'keys = [k for k in ds.attrs if k.startswith("batch_")]\n{k: ds.attrs[k] for k in keys}',
            ),
            (
                "The training-step measure of the same run (s), if it was taken:",
                'keys = ("train_step_s", "student_fwd_bwd_s", "train_step_vs_student")\n'
                "{k: ds.attrs[k] for k in keys if k in ds.attrs}",
            ),
        ],
    ),
    StudyNotebook(
        study="scaling",
        title="Scaling: frames and resolution, direct vs adapter only",
        about=(
            "Every prompt of each clip is answered by `direct` (the video in context) and by `f2l` (an "
            "adapter made from the same frames) along two sweeps: more frames at the training resolution, "
            "and larger frames at a fixed frame count. The paper claims the adapter stays stable where "
            "direct inference degrades; this measures it: score, query time, input tokens, and the share "
            "of degenerate (empty or repetitive) answers. A clip's prompts share its video and adapter, so "
            "clips are the replicates: means are across clips of each clip's mean over its prompts, with "
            "95% bootstrap intervals over clips, and `f2l - direct` is paired by clip."
        ),
        config="ScalingConfig",
        small="clips=2, frames=(8, 16), resolutions=(64, 96)",
        duration="a few minutes",
        figures=[
            (
                "**Top row: the frame sweep; bottom row: the resolution sweep.** Each panel's title says "
                "where the other axis was held. Token-F1, the paired difference `f2l - direct` and the shares "
                "of degenerate and shared answers are means across clips, each bar its 95% bootstrap "
                "interval over clips (none from a single clip); time and tokens are medians across prompts, "
                "with bands.",
                "fig = figures.scaling_curves(ds)",
            ),
        ],
        explore=[
            (
                "Mean token-F1 across clips at each grid point that was run, with its 95% interval over "
                "clips:",
                'low, high = (ds["score_ci"].sel(bound=b, drop=True) for b in ("low", "high"))\n'
                'table = ds["mean_score"].to_dataset(name="mean").assign(low=low, high=high).to_dataframe()\n'
                'table.dropna(subset=["mean"]).unstack("method").round(3)',
            ),
            (
                "The paired per-clip difference `f2l - direct`, with its 95% interval over clips: where the "
                "interval lies above zero, the adapter beats the video in context there:",
                'low, high = (ds["score_diff_ci"].sel(bound=b, drop=True) for b in ("low", "high"))\n'
                'table = ds["score_diff"].to_dataset(name="f2l - direct").assign(low=low, high=high)\n'
                'table.to_dataframe().dropna(subset=["f2l - direct"]).round(3)',
            ),
            (
                "Each clip's mean token-F1 (the replicates the intervals resample):",
                'ds["clip_score"].to_series().dropna().unstack("method").round(3)',
            ),
            (
                "Answers flagged as degenerate, if any:",
                'flagged = ds["degenerate"].to_series()\n'
                "flagged = flagged[flagged == 1.0]\n"
                'ds["prediction"].to_series().loc[flagged.index].head(10)',
            ),
        ],
    ),
    StudyNotebook(
        study="composition",
        title="Composition: adapters of a long clip's segments, composed in rank space",
        about=(
            "A long world clip of n segments (8 frames each) shows one scene under a still camera while "
            "objects take turns over runs of segments, so each segment alone is an ordinary one-object clip. "
            "Each segment is internalized alone and the segment adapters are concatenated along the rank "
            "(plainly, and scaled by 1/n), then compared with the whole clip's adapter, the whole clip in "
            "context and the question alone, on questions one object's segments answer (`needs = one`: its "
            "colour, shape, size) and questions that join several (`needs = several`: which object is there "
            "first, what happens first, how many objects, the temporal and detailed captions)."
        ),
        config="CompositionConfig",
        small="clips=1",
        duration="about a minute",
        figures=[
            (
                "**Mean score per method against the number of segments**, one panel per kind of question; "
                "each clip's mean is one observation, the bands are 95% bootstrap intervals across clips. "
                "Composition works where the composed curves stay on the whole-clip adapter's as n grows.",
                "fig = figures.composition_curves(ds)",
            ),
        ],
        explore=[
            (
                "Mean token-F1 per segment count, kind of question and method:",
                'ds["score"].groupby("needs").mean("example_id").to_series().dropna()'
                '.unstack("method").round(3)',
            ),
            (
                "Per benchmark at the largest segment count:",
                'n = int(ds["n_chunks"].max())\n'
                'ds["score"].sel(n_chunks=n).groupby("benchmark").mean("example_id").to_pandas().round(3)',
            ),
            (
                "The first clip's questions and every method's answers:",
                'clip = ds["clip"].values[0]\n'
                'first = ds.isel(example_id=ds["clip"].values == clip)\n'
                'n = int(clip.rsplit("-", 1)[1])\n'
                'answers = first["prediction"].sel(n_chunks=n).to_pandas()\n'
                'answers["reference"] = first["reference"].to_pandas()\n'
                "answers",
            ),
        ],
    ),
]
