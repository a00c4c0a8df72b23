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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The container tests (marker ``containers``) stay out unless ``-m`` names them (``-m containers``).

    pyproject.toml's ``-m "not containers"`` leaves them out, but pytest keeps only the last ``-m``: a
    user's own (``-m "not stack"``) would bring in the tests that need a Docker engine.
    """
    if "containers" in (config.option.markexpr or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("containers")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("containers")]


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
