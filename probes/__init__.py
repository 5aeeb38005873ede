"""Interpretability probes over the adapted VLM: where does the internalized video live?

Each probe is a function ``(pipeline, examples, ...) -> xarray.Dataset`` (layer removal, delta-W
norms, rank-direction ablation, direct logit attribution, activation patching between the video's route and
the adapter's, and residual-stream similarity). ``linear_probes`` reads a base alone, no
adapter: softmax-regression probes of its states at the visual tokens against the world's ground
truth (``python -m probes.linear_probes``). Probes import ``f2l``; ``f2l`` never imports probes.
"""
