"""What the tests and the benchmarks drive: isolated Airflow environments, the native stack, compose stacks,
the debug adapter and a headless browser, all for real.

Used by ``tests/`` and ``benchmarks/`` only; the workspace itself never imports it. Importing any module
here has no side effect (no environment change, no process started).
"""
