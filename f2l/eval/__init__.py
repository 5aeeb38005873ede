"""Evaluation: metrics, paired statistics, baselines and efficiency timers."""
