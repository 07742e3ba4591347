"""Benchmarks: ``make bench`` (``python -m bench``) writes figures to ``bench/results/``."""
