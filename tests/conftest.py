"""Shared fixtures: a throwaway Airflow home for in-process tests, real PostgreSQL databases.

Airflow reads its configuration when it is first imported, so the environment of in-process tests is set
here, at collection, before any test module imports Airflow. The helpers themselves are in ``testkit/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.config import settings
from localflow.debugging.warm_runner import client as warm_runner
from testkit.environment import REPO, PostgresDatabases, airflow_environment, run_airflow

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="localflow-tests-"))
# A user's shell (`export AIRFLOW_HOME=~/airflow`, a stale AIRFLOW__CORE__FERNET_KEY) must not reach the
# tests: what the workspace owns is the session's own, as in `python -m localflow test`.
settings.use_environment(settings.without_owned(os.environ) | airflow_environment(_SESSION_HOME))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the session's Airflow home."""
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


# Tests left out unless -m names their marker: they need what a clone lacks (a Docker engine, code-server).
OPT_IN = ("containers", "vscode")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The container tests (marker ``containers``) and the VS Code tests (``vscode``) stay out unless ``-m``
    names them (``-m containers``, ``-m vscode``).

    pyproject.toml's ``-m "not containers and not vscode"`` leaves them out, but pytest keeps only the last
    ``-m``: a user's own (``-m "not stack"``) would bring in the tests that need a Docker engine.
    """
    asked = config.option.markexpr or ""
    opt_in = [marker for marker in OPT_IN if marker not in asked]
    left_out = [item for item in items if any(item.get_closest_marker(marker) for marker in opt_in)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        gone = set(map(id, left_out))
        items[:] = [item for item in items if id(item) not in gone]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    """Factory of throwaway databases on the PostgreSQL server at 127.0.0.1:5432."""
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def migrated_env(
    request: pytest.FixtureRequest, postgres: PostgresDatabases, tmp_path_factory
) -> Iterator[dict[str, str]]:
    """An Airflow environment on a migrated throwaway database, once per backend.

    F5 runs in it start a warm runner (localflow/debugging/warm_runner/): stopped here, before the database goes.
    """
    home = tmp_path_factory.mktemp(f"airflow-{request.param}")
    url = postgres.create() if request.param == "postgres" else None
    env = airflow_environment(home, url)
    run_airflow(env, "db", "migrate")
    yield env
    warm_runner.stop(env, str(REPO))
