"""Fixtures of the container tests: the engine, a desktop user, stacks on fresh copies, torn down always.

Only one stack runs at a time (the machines have 2 cores): each test module brings its own up in a
module-scoped fixture, and pytest tears it down (``docker compose down -v``) before the next module
starts. The engine is stopped at the end only if this session started it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.containers import ACTIVE_STACKS, DesktopUser, Engine, make_base


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine of ../shared/containers, running, with the stand-in images built."""
    engine = Engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def base_dir() -> Iterator[Path]:
    """Where this session's copies and the desktop user's files live; removed at the end."""
    base = make_base()
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def desktop_user(engine: Engine, base_dir: Path) -> DesktopUser:
    """The ordinary user who runs docker, docker compose and devcontainer."""
    return DesktopUser.create(engine, base_dir)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a failure, add each running service's state and last log lines to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for stack in ACTIVE_STACKS:
            report.sections.append((f"stack {stack.project}: services and logs", stack.diagnostics()))
