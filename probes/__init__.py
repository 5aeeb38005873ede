"""Interpretability probes over the adapted VLM: where does the internalized video live?

Each probe is a function ``(pipeline, examples, ...) -> xarray.Dataset`` (layer removal, delta-W
norms, rank-direction ablation, direct logit attribution). Probes import ``f2l``; ``f2l`` never
imports probes.
"""
