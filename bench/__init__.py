"""Benchmarks: run as `python -m bench.<name>`; each prints a table and appends it to docs/benchmarks.md."""
