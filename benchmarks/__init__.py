"""Benchmarks of the workspace: `python -m benchmarks.NAME` (see each module)."""
