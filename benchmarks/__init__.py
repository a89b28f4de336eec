"""Benchmarks: one script per op family, kernel vs named baselines, writing JSON and a plot."""
