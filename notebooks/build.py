"""Write the notebooks of ``notebooks/`` from one template, so that every study notebook opens, loads
and falls back the same way. The ``.ipynb`` files are committed (without outputs); rerun this after
editing it:

    python notebooks/build.py

Every study notebook: what it shows and which command made its data; a ``parameters`` cell naming
``results_dir`` (papermill style); loading ``<results_dir>/<study>.nc``, or running the study's small
default there when it is missing; the summary table the study wrote; its figures from
``analyses.figures``, each with a line on how to read it; and a look at the numbers behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}
# Relative to the notebook, i.e. the repository's ``results/``, where the study commands write by default.
RESULTS_DIR = "../results"


@dataclass
class StudyNotebook:
    study: str
    title: str
    about: str
    config: str  # the study's Config dataclass
    small: str  # keyword arguments of the small default run, as code
    duration: str  # how long that run takes on 2 CPU cores
    figures: list[tuple[str, str]]  # (how to read it, code drawing it)
    explore: list[tuple[str, str]] = field(default_factory=list)  # (markdown, code)
    command: str = ""

    @property
    def cmd(self) -> str:
        return self.command or f"python -m analyses.{self.study} --out results"


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
    StudyNotebook(
        study="layer_removal",
        title="Layer removal: which layers carry the internalized video?",
        about=(
            "For each clip the adapter is made once; then each text-model layer's generated LoRA is "
            "zeroed (all its modules, only attention, or only the MLP), every prompt is re-answered with "
            "zero visual tokens, and the signed effect `score - full_score` is recorded: below zero, the "
            "layer helps. Nothing removed is `f2l`; everything removed is the base without the video. "
            "Negative controls: the same removals of another clip's adapter (`swapped`: the next clip of "
            "the manifest) and of a blank video's (`blank`), labelled on the `adapter` dim, so that a reader "
            "sees what removing a layer does when the adapter carries nothing about the clip."
        ),
        config="LayerRemovalConfig",
        small="clips=1",
        duration="about a minute",
        figures=[
            (
                "**Signed removal effect per layer** of the clip's own adapter; beside it, the same removal "
                "from the control adapters (the legend gives each one's score with nothing removed), and "
                "the size of each layer's update (||dW||_F, from `delta_norms.nc` when the same results "
                "directory has it): do the layers that matter carry the largest updates, and does removing "
                "a layer of another clip's adapter cost as much?",
                'norms_path = results / "delta_norms.nc"\n'
                "norms = read_netcdf(norms_path) if norms_path.exists() else None\n"
                "fig = figures.layer_removal_effects(ds, norms=norms)",
            ),
            (
                "**The same effect per benchmark** (all modules of a layer removed): which layers matter "
                "for which kind of prompt.",
                "fig = figures.effects_by_benchmark(ds)",
            ),
        ],
        explore=[
            (
                "Mean effect per layer and module group, the clip's own adapter:",
                'ds["effect"].sel(adapter="real").mean("example_id").to_pandas().round(3)',
            ),
            (
                "The controls: mean score with nothing removed, and mean effect of removing each layer (its "
                "first module group), per adapter:",
                'group = ds["module_group"].values[0]\n'
                'display(ds["full_score"].mean("example_id").to_pandas().round(3))\n'
                'ds["effect"].sel(module_group=group).mean("example_id").to_pandas().round(3)',
            ),
            (
                "Answers of the first prompt with each layer removed (all modules), per adapter:",
                'first = ds["example_id"].values[0]\n'
                'print("reference:", ds["reference"].sel(example_id=first).item())\n'
                'display(ds["full_prediction"].sel(example_id=first).to_pandas())\n'
                'group = ds["module_group"].values[0]\n'
                'ds["prediction"].sel(example_id=first, module_group=group).to_pandas()',
            ),
        ],
    ),
    StudyNotebook(
        study="delta_norms",
        title="Delta-W norms: how large is the generated update, layer by layer?",
        about=(
            "Per clip, layer and module: the Frobenius and spectral norms of the generated update "
            "dW = scaling * B^T A, its size relative to the frozen weight, and its stable rank (how many "
            "directions it really uses). No generation is needed, so this runs over many clips fast."
        ),
        config="DeltaNormsConfig",
        small="clips=2",
        duration="under a minute",
        figures=[
            (
                "**Four views of dW across layers**, one line per module (mean across clips).",
                "fig = figures.delta_norms_profile(ds)",
            ),
        ],
        explore=[
            (
                "||dW||_F / ||W||_F per layer and module, mean across clips:",
                'ds["relative_fro"].mean("clip").to_pandas().round(4)',
            ),
        ],
    ),
    StudyNotebook(
        study="rank_ablation",
        title="Rank ablation: how many singular directions carry the video?",
        about=(
            "The SVD of each generated update (through its small r x r core). Keep only the top-k "
            "singular directions (k = 0 ... r) and re-score; separately, remove one direction at a time, "
            "against a control that removes a random direction of equal energy."
        ),
        config="RankAblationConfig",
        small="clips=1",
        duration="about a minute",
        figures=[
            (
                "**Left:** score keeping the top-k directions (k = 0 is the base without video). "
                "**Middle:** score removing one direction, singular vs random of equal energy: a gap means "
                "that particular direction carries content. **Right:** each direction's share of the energy.",
                "fig = figures.rank_ablation_curves(ds)",
            ),
        ],
        explore=[
            (
                "Mean score keeping the top-k directions:",
                'ds["topk_score"].mean("example_id").to_pandas().round(3)',
            ),
            (
                "Mean score removing one direction, per control:",
                'ds["remove_score"].mean("example_id").to_pandas().round(3)',
            ),
        ],
    ),
    StudyNotebook(
        study="logit_attribution",
        title="Direct logit attribution: where does the adapter push the answer?",
        about=(
            "For each answer token: the adapter's change to the residual stream after each layer, and "
            "the attention and MLP sublayers' output deltas of that layer, projected onto the answer "
            "direction (the answer token's unembedding through the final norm). The per-layer deltas add "
            "up to the final residual delta."
        ),
        config="LogitAttributionConfig",
        small="clips=1",
        duration="under a minute",
        figures=[
            (
                "**Per layer and component**, averaged over each answer's tokens, then across examples "
                "(symmetric-log axis: the values span orders of magnitude and both signs).",
                "fig = figures.dla_per_layer(ds)",
            ),
        ],
        explore=[
            (
                "The first example's answer and the residual-stream attribution of each of its tokens, per layer:",
                'first = ds["example_id"].values[0]\n'
                'tokens = [str(t) for t in ds["answer_token"].sel(example_id=first).values if str(t)]\n'
                'print("answer:", "".join(tokens))\n'
                'table = ds["dla"].sel(example_id=first, component="resid").to_pandas().iloc[:, : len(tokens)]\n'
                'table.columns = [f"{i}: {t!r}" for i, t in enumerate(tokens)]\n'
                "table.round(3)",
            ),
        ],
    ),
    StudyNotebook(
        study="patching",
        title="Activation patching: where the video's effect is carried, where the adapter's, and what it misses",
        about=(
            "Every prompt runs three ways on the same question tokens: `direct` (the video in context), "
            "`f2l` (the adapter, no visual tokens) and `base` (neither). One activation at a time (a "
            "layer's `resid_pre`, `attn_out` or `mlp_out`, at the question and answer positions aligned "
            "from the end of the prompt) is copied from a source run into a target run, and the study "
            "records the share of the gap in the log-probability of the source's greedy answer (summed over "
            "its tokens, teacher-forced) that the patch restores: `(logp_patched - logp_target) / "
            "(logp_source - logp_target)`, left NaN where the gap is under `min_effect` nats. Directions: "
            "direct -> base (where the video's effect is carried), f2l -> base (where the adapter's is) "
            "and direct -> f2l (what the adapter still misses). The last layer position is the final "
            "residual stream, which restores exactly 1. Negative controls: the f2l run also uses another "
            "clip's adapter (`swapped`: the next clip of the manifest) and a blank video's (`blank`), "
            "labelled on the `adapter` dim, so that a reader sees what patching shows when the adapter "
            "carries nothing about the clip."
        ),
        config="PatchingConfig",
        small="clips=2",
        duration="under a minute",
        figures=[
            (
                "**Restored fraction per layer and site**, one panel per direction (mean across the "
                "examples whose gap passes the threshold, 95% bootstrap interval). 0: the site carries "
                "none of the difference at these positions; 1: all of it. The direct run's visual tokens "
                "are never patched, so in direct -> base a site restores only what reached the question "
                "and answer positions by that point. The clip's own adapter.",
                "fig = figures.patching_restored(ds)",
            ),
            (
                "**The negative controls**: the residual stream's restored fraction in the directions with "
                "an f2l run, under each adapter. Where another clip's adapter is restored layer by layer as "
                "the clip's own is, the profile is the hypernetwork's route, not this clip's content.",
                "fig = figures.patching_controls(ds)",
            ),
            (
                "**The gap itself**, `logp_source - logp_target` per example and adapter (direct -> base "
                "uses none: drawn once): the grey band is where `restored` is left NaN. A direction whose "
                "gaps sit in the band measures little.",
                "fig = figures.patching_effects(ds)",
            ),
        ],
        explore=[
            (
                "Mean restored fraction per layer (rows) and site (columns), per direction, the clip's own "
                "adapter:",
                'restored = ds["restored"].sel(adapter="real").mean("example_id", skipna=True)\n'
                'for direction in restored["direction"].values:\n'
                '    display(Markdown(f"**{direction}**"), restored.sel(direction=direction).to_pandas().round(3))',
            ),
            (
                "The log-probabilities behind one direction, per example, largest gap first (filter on "
                "`effect` to choose another threshold than the study's):",
                'direction = "f2l->base"\n'
                'columns = ["benchmark", "logp_source", "logp_target", "effect", "answer_tokens"]\n'
                'table = ds[columns[1:]].sel(direction=direction, adapter="real").to_dataframe()[columns]\n'
                'table.sort_values("effect", ascending=False).round(3)',
            ),
            (
                "The answers every direction scores (the direct run's greedy answer, and the f2l run's "
                "under each adapter) next to the reference:",
                'answers = ds["prediction"].sel(run="f2l").to_pandas().add_prefix("f2l ")\n'
                'direct = ds["prediction"].sel(run="direct", adapter="real")\n'
                'answers.insert(0, "direct", direct.to_pandas())\n'
                'answers["reference"] = ds["reference"].to_pandas()\n'
                "answers",
            ),
        ],
    ),
    StudyNotebook(
        study="similarity",
        title="Residual-stream similarity: how close the adapter puts the question's states to the video's",
        about=(
            "Every prompt runs three ways on the same question tokens: `direct` (the video in context), "
            "`f2l` (the adapter, no visual tokens) and `base` (neither). At each decoder layer's "
            "`resid_pre` and the final residual stream, over the prompt's question span (aligned from the "
            "end, no answer tokens), the study compares the f2l run's residual stream with the direct "
            "run's: the cosine per position (mean over positions), the share of the video's effect "
            "reproduced, `1 - ||h_f2l - h_direct||_F / ||h_base - h_direct||_F` (0: no closer than no "
            "video, 1: where the video puts it), and linear CKA across examples of the position-averaged "
            "states. Base against direct is the reference. Layer 0 is the token embedding, the same in "
            "every run (share undefined). Negative controls: the f2l run also uses another clip's adapter "
            "(`swapped`: the next clip of the manifest) and a blank video's (`blank`), labelled on the "
            "`adapter` dim: what the measures show when the adapter carries nothing about the clip."
        ),
        config="SimilarityConfig",
        small="clips=2",
        duration="under a minute",
        figures=[
            (
                "**Cosine and share per layer**, one line per adapter (each clip's mean over its prompts, "
                "then mean ± standard error across clips). The cosine of f2l means something only against "
                "base's: residual streams share large common directions; the share, only against the "
                "controls': another clip's adapter may move the states as much.",
                "fig = figures.similarity_per_layer(ds)",
            ),
            (
                "**Linear CKA across examples per layer**, per adapter: does the adapter arrange the "
                "examples' states the way the video does (up to rotation and scale), better than another "
                "clip's adapter does?",
                "fig = figures.similarity_cka(ds)",
            ),
        ],
        explore=[
            (
                "Mean cosine and share per layer, by prompt kind, the clip's own adapter:",
                'ds["similarity"].sel(adapter="real").groupby("kind").mean("example_id", skipna=True)'
                '.to_dataframe("value")["value"].unstack(["kind", "measure"]).round(3)',
            ),
            (
                "Mean share per layer under each adapter, and the CKA per adapter:",
                'share = ds["similarity"].sel(measure="share").mean("example_id", skipna=True)\n'
                "display(share.to_pandas().round(3))\n"
                'ds["cka"].to_pandas().round(3)',
            ),
            (
                "CKA recomputed on one prompt kind only, from the stored position means:",
                "import pandas as pd\n\n"
                "from probes.similarity import linear_cka\n\n"
                'means = ds["mean_resid"].sel(adapter="real").where(ds["kind"] == "qa", drop=True)\n'
                'pd.Series(linear_cka(means.sel(run="f2l").transpose("layer", "example_id", "hidden").values, '
                'means.sel(run="direct").transpose("layer", "example_id", "hidden").values), '
                'index=ds["layer"].values, name="CKA, qa prompts").round(3)',
            ),
        ],
    ),
    StudyNotebook(
        study="logit_lens",
        title="Logit lens: at which layer each route already predicts the video's answer",
        about=(
            "Every prompt runs three ways on the same question tokens: `direct` (the video in context), "
            "`f2l` (the adapter, no visual tokens) and `base` (neither), each teacher-forced on the direct "
            "run's greedy answer (the video's answer). At the positions predicting that answer, each layer's "
            "residual stream (TransformerLens' `blocks.{l}.hook_resid_pre`, then `ln_final.hook_in`) is read "
            "through the final norm and the unembedding as if the model stopped there: the answer token's "
            "probability and rank, and the KL of the run's own final distribution from that read-out. Layer 0 "
            "is the token embedding; the last position is the final residual stream, whose read-out is the "
            "model's own logits. Negative controls: the f2l run also uses another clip's adapter (`swapped`: "
            "the next clip of the manifest) and a blank video's (`blank`), labelled on the `adapter` dim."
        ),
        config="LogitLensConfig",
        small="clips=2",
        duration="under a minute",
        figures=[
            (
                "**Probability and rank of the video's answer per layer**, one line per route (each clip's "
                "mean over its prompts, then mean ± standard error across clips). Where the f2l line leaves "
                "the base line is where the adapter's route starts to carry the answer; where it meets the "
                "direct line, where it joins the video's. The controls show what an adapter that knows "
                "nothing of the clip does.",
                "fig = figures.logit_lens_answer(ds)",
            ),
            (
                "**KL of each run's own final distribution from its read-out at the layer**: how settled the "
                "run is by that layer, whatever the answer (0 at the final residual by definition).",
                "fig = figures.logit_lens_kl(ds)",
            ),
        ],
        explore=[
            (
                "Mean probability of the video's answer per layer (rows) and run, the clip's own adapter, "
                "then the f2l run under each adapter:",
                'prob = ds["prob"].mean("example_id")\n'
                'display(prob.sel(adapter="real").to_pandas().T.round(3))\n'
                'prob.sel(run="f2l").to_pandas().T.round(3)',
            ),
            (
                "Per benchmark, the final read-out's log-probability of the video's answer in each route "
                "(nats; the f2l columns per adapter):",
                'by_benchmark = ds["logp"].isel(layer=-1).groupby("benchmark").mean("example_id")\n'
                'table = by_benchmark.sel(run="f2l").to_pandas().add_prefix("f2l ")\n'
                'for route in ("direct", "base"):\n'
                '    table.insert(0, route, by_benchmark.sel(run=route, adapter="real").to_pandas())\n'
                "table.round(2)",
            ),
        ],
    ),
]


def _cells_of(nb: StudyNotebook) -> list:
    module = f"analyses.{nb.study}"
    intro = (
        f"# {nb.title}\n\n{nb.about}\n\n"
        f"**Data**: `{nb.study}.nc` in `results_dir`, written by `{nb.cmd}` (run from the repository root; "
        f"`--full` for the complete sweep, `--help` for every setting). If the file is missing, the next "
        f"cells run the study's small default into `results_dir` ({nb.duration} on 2 CPU cores).\n\n"
        "Figures come from `analyses.figures`, the same functions `python -m analyses.figures` renders."
    )
    load = (
        "%matplotlib inline\n"
        "from pathlib import Path\n\n"
        "from IPython.display import Markdown, display\n\n"
        "from analyses import figures\n"
        f"from {module} import {nb.config}, run\n"
        "from f2l.results import read_netcdf\n\n"
        "results = Path(results_dir)\n"
        f'path = results / "{nb.study}.nc"\n'
        "if not path.exists():  # no results yet: run the study's small default here\n"
        f"    run({nb.config}(out=str(results), {nb.small}))\n"
        "ds = read_netcdf(path)\n"
        'if ds.sizes.get("failure", 0):  # units whose computation raised: left out of every figure below\n'
        '    display(ds[["failed_unit", "error"]].to_dataframe())\n'
        "ds"
    )
    summary = (
        f'summary = results / "{nb.study}.md"\n'
        'display(Markdown(summary.read_text()) if summary.exists() else "(no summary table)")'
    )
    cells = [
        new_markdown_cell(intro),
        new_code_cell(f'results_dir = "{RESULTS_DIR}"', metadata={"tags": ["parameters"]}),
        new_code_cell(load),
        new_markdown_cell("## The study's summary table"),
        new_code_cell(summary),
        new_markdown_cell("## Figures"),
    ]
    for text, code in nb.figures:
        cells += [new_markdown_cell(text), new_code_cell(code)]
    if nb.explore:
        cells.append(new_markdown_cell("## The numbers behind the figures"))
        for text, code in nb.explore:
            cells += [new_markdown_cell(text), new_code_cell(code)]
    return cells


OVERVIEW = [
    new_markdown_cell(
        "# Overview: from a video to its adapter, its answers, and a probe\n\n"
        "Frames2LoRA reads the hidden states a frozen SmolVLM2 produces while it encodes a video and "
        "writes a LoRA adapter in one forward pass; the same frozen model with that adapter answers "
        "questions about the video with **zero visual tokens** in its context. This notebook walks one "
        "held-out clip of the package's procedural world through it, on the shipped tiny checkpoints "
        "(no download; about a minute on a CPU):\n\n"
        "1. render the clip and look at its frames and ground truth;\n"
        "2. internalize it: the adapter, its size and shape;\n"
        "3. ask questions with the video in context (`direct`), from the adapter alone (`f2l`) and with "
        "neither (`no_video`);\n"
        "4. probe the adapter: how large its update is per layer, and what removing each layer does.\n\n"
        "The studies repeat steps 3 and 4 over many clips: see the other notebooks."
    ),
    new_code_cell(
        'hypernet = "tiny"  # a shipped name (tiny, paper-tiny) or a hypernetwork directory, of any kind\n'
        "world_seed = 1010000  # a held-out (test split) clip\n"
        "num_frames = 8\n"
        "n_prompts = 11  # how many of the clip's prompts to answer three ways (11: all of them)\n"
        "max_new_tokens = 64  # the longest answer, in tokens\n"
        "module_groups = None  # what the layer-removal probe zeroes per layer (None: every group the adapter has)",
        metadata={"tags": ["parameters"]},
    ),
    new_markdown_cell("## 1. The clip"),
    new_code_cell(
        "%matplotlib inline\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "import torch\n\n"
        "from f2l.pipeline import Frames2LoRA\n"
        "from f2l.world import captions, render_clip\n\n"
        "torch.manual_seed(0)\n"
        "f2l = Frames2LoRA.from_pretrained(hypernet)\n"
        "size = f2l.base.model.config.vision_config.image_size  # the base's frame size (64 px for tiny)\n"
        "clip = render_clip(world_seed, num_frames=num_frames, size=size)\n"
        "frames = clip.frames\n"
        'print(f"{len(frames.timestamps)} frames of {frames.pixels.shape[2]} x {frames.pixels.shape[1]} px")\n'
        'print("ground truth:", captions(clip.truth)["detailed"])'
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, len(frames.timestamps), figsize=(2 * len(frames.timestamps), 2.4))\n"
        "for ax, pixels, t in zip(np.atleast_1d(axes), frames.pixels, frames.timestamps, strict=True):\n"
        "    ax.imshow(pixels)\n"
        '    ax.set_title(f"t = {t:.1f} s", fontsize=10)\n'
        "    ax.set_axis_off()\n"
        'fig.suptitle(f"world clip {world_seed}: the frames the model sees")\n'
        "fig.tight_layout()"
    ),
    new_markdown_cell(
        "## 2. The adapter\n\n"
        "One forward pass of the frozen base over the frames and of the hypernetwork over its per-layer "
        "hidden states gives LoRA factors A (r x d_in) and B (r x d_out) for every projection of every "
        "layer. It is made once and reused for every question about the video."
    ),
    new_code_cell(
        "import time\n\n"
        "start = time.perf_counter()\n"
        "adapter = f2l.internalize(frames)\n"
        "made_s = time.perf_counter() - start\n"
        'print(f"rank {adapter.rank} x {adapter.num_layers} layers, modules {list(adapter.modules)}")\n'
        'print(f"{adapter.nbytes / 1024:.0f} KiB, made in {made_s * 1e3:.0f} ms")'
    ),
    new_markdown_cell(
        "## 3. Answers with and without the video\n\n"
        "`direct` puts the frames in the context; `f2l` answers from the adapter with the question "
        "alone; `no_video` is the base with the question alone, the floor. Token-F1 against the world's "
        "ground truth."
    ),
    new_code_cell(
        "from f2l.answer import answer\n"
        "from f2l.data import clip_prompts, world_example\n"
        "from f2l.eval.metrics import token_f1\n\n"
        "example = world_example(world_seed, frames=num_frames)\n"
        "prompts = clip_prompts(example)[:n_prompts]\n"
        "rows = []\n"
        "for p in prompts:\n"
        "    direct = answer(f2l.base, frames, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    adapted = f2l.generate(adapter, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    alone = answer(f2l.base, None, p.prompt, max_new_tokens=max_new_tokens)\n"
        "    rows.append(\n"
        "        {\n"
        '            "benchmark": p.label,\n'
        '            "question": p.prompt,\n'
        '            "reference": p.reference,\n'
        '            "direct": direct.text,\n'
        '            "f2l": adapted.text,\n'
        '            "no_video": alone.text,\n'
        '            "F1 direct": token_f1(direct.text, p.reference),\n'
        '            "F1 f2l": token_f1(adapted.text, p.reference),\n'
        '            "F1 no_video": token_f1(alone.text, p.reference),\n'
        '            "input tokens direct / f2l": f"{sum(direct.input_tokens.values())} / '
        '{sum(adapted.input_tokens.values())}",\n'
        "        }\n"
        "    )\n"
        'answers = pd.DataFrame(rows).set_index("benchmark")\n'
        'pd.set_option("display.max_colwidth", 120)\n'
        "answers"
    ),
    new_code_cell('answers[["F1 direct", "F1 f2l", "F1 no_video"]].mean().round(3)'),
    new_markdown_cell(
        "## 4. Probes on this adapter\n\n"
        "How large is the update dW = scaling * B^T A of each layer and module (`probes.delta_norms`), "
        "and what happens to the answers when one layer's LoRA is zeroed (`probes.layer_removal`, the "
        "flagship analysis)? The studies run the same probes over many clips; here, this one."
    ),
    new_code_cell(
        "from probes.delta_norms import delta_norms\n\n"
        "norms = delta_norms(f2l, [example], frames=num_frames)\n"
        'norms["fro_norm"].isel(clip=0).to_pandas().round(2)  # ||dW||_F per layer (rows) and module'
    ),
    new_code_cell(
        "from analyses import figures\n"
        "from probes.layer_removal import layer_removal\n\n"
        "removal = layer_removal(\n"
        "    f2l, [example], frames=num_frames, module_groups=module_groups, max_new_tokens=max_new_tokens\n"
        ")\n"
        "fig = figures.layer_removal_effects(removal, norms=norms)"
    ),
    new_code_cell('removal["effect"].sel(adapter="real").mean("example_id").to_pandas().round(3)'),
]


def _notebook(cells: list, name: str) -> nbformat.NotebookNode:
    """A notebook without outputs, with stable cell ids (so a rebuild changes only what was edited)."""
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{i}"
    return new_notebook(cells=cells, metadata=KERNEL)


def build() -> dict[str, nbformat.NotebookNode]:
    """Every notebook, by file stem."""
    books = {nb.study: _notebook(_cells_of(nb), nb.study) for nb in STUDIES}
    books["overview"] = _notebook(OVERVIEW, "overview")
    for book in books.values():
        nbformat.validate(book)
    return books


def main() -> None:
    for name, book in build().items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(book, path)
        print(path)


if __name__ == "__main__":
    main()
