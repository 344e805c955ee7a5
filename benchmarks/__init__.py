"""Benchmarks of inat, run from the repository root: python -m benchmarks.throughput."""
