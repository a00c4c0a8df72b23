"""Name the plugin and DAG files that are slow to import, with their time, once per ``up`` or F5.

A plugin that takes 20 s to import costs 20 s in each Airflow component at start, in every task, and
twice under F5 (Airflow 3.3.2 has two plugin managers, the scheduler's and the Task SDK's, and each
executes the plugin files): nothing in Airflow names it (its plugin manager logs the total at debug
level only). ``timed`` measures each module file that a block executes, ``slow_lines`` says which took
longer than ``LOCALFLOW_SLOW_IMPORT`` seconds. Standard library only: imported before Airflow.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from importlib.machinery import SourceFileLoader
from pathlib import Path

SLOW_IMPORT = "LOCALFLOW_SLOW_IMPORT"  # seconds (.env); a file that takes longer is named
DEFAULT_SLOW_IMPORT = 3.0


def threshold(env: Mapping[str, str] = os.environ) -> float:
    """``LOCALFLOW_SLOW_IMPORT`` in seconds; a value that is not a number keeps the default."""
    try:
        return float(env.get(SLOW_IMPORT, DEFAULT_SLOW_IMPORT))
    except ValueError:
        return DEFAULT_SLOW_IMPORT


@contextlib.contextmanager
def timed(folders: list[Path]) -> Iterator[dict[Path, list[float]]]:
    """Within the block, the seconds of each execution of a module file under ``folders``, by file.

    A file counts with what it imports (a plugin's slow ``import tensorflow`` is the plugin's time), so
    a file under ``folders`` that another one imports is not counted again on its own.
    """
    roots = [folder.resolve() for folder in folders]
    times: dict[Path, list[float]] = {}
    depth = threading.local()
    stock = SourceFileLoader.exec_module

    def exec_module(loader: SourceFileLoader, module) -> None:
        path = Path(loader.path).resolve()
        if getattr(depth, "value", 0) or not any(path.is_relative_to(root) for root in roots):
            stock(loader, module)
            return
        depth.value = 1
        started = time.monotonic()
        try:
            stock(loader, module)
        finally:
            depth.value = 0
            times.setdefault(path, []).append(time.monotonic() - started)

    SourceFileLoader.exec_module = exec_module  # inherited otherwise: deleting it restores Python's
    try:
        yield times
    finally:
        del SourceFileLoader.exec_module


def slow_lines(times: Mapping[Path, list[float]], limit: float, base: Path, what: str) -> list[str]:
    """One line per file whose imports took longer than ``limit`` seconds in all, slowest first."""
    lines = []
    for path, seconds in sorted(times.items(), key=lambda item: -sum(item[1])):
        total = sum(seconds)
        if total <= limit:
            continue
        name = path.relative_to(base) if path.is_relative_to(base) else path
        each = f" ({len(seconds)} times here, up to {max(seconds):.1f} s each)" if len(seconds) > 1 else ""
        lines.append(
            f"localflow: {name} took {total:.1f} s to import{each}; {what} "
            f"(more than {SLOW_IMPORT}={limit:g} s)."
        )
    return lines
