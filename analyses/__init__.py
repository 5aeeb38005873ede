"""Command-line studies (``python -m analyses.<name>``): run evaluations and probes over a
benchmark and write ``.nc`` datasets, Markdown tables and figures that the notebooks open."""
