"""Benchmarks of hybridrec (``make bench``); results land in ``bench/results/``."""
