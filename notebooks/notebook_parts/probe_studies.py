"""The notebooks of the probe studies: layer removal, delta norms, rank ablation, logit attribution,
patching, similarity and the logit lens."""

from __future__ import annotations

from notebook_parts.template import StudyNotebook

PROBE_STUDIES = [
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
                'by_kind = ds["similarity"].sel(adapter="real").groupby("kind").mean("example_id", skipna=True)\n'
                'by_kind.to_dataframe("value")["value"].unstack(["kind", "measure"]).round(3)',
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
                "pd.Series(\n"
                "    linear_cka(\n"
                '        means.sel(run="f2l").transpose("layer", "example_id", "hidden").values,\n'
                '        means.sel(run="direct").transpose("layer", "example_id", "hidden").values,\n'
                "    ),\n"
                '    index=ds["layer"].values,\n'
                '    name="CKA, qa prompts",\n'
                ").round(3)",
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
