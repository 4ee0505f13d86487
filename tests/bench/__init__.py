"""Benchmarks: each `bench_*.py` module here exposes `run() -> list[dict[str, object]]`."""
