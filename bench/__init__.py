"""Benchmarks of issue 11's targets: `python3 -m bench` (see bench/__main__.py)."""
