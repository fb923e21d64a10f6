"""Runnable experiments and benchmarks built on entjax (not part of the installed library)."""
