"""A complete, isolated Airflow environment for a test or a benchmark: home, database, secrets, ports.

Importing this changes nothing: the test session's own environment is set by ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from localflow.config import settings
from localflow.secrets.rules import SECRETS

REPO = Path(__file__).resolve().parent.parent
# The example DAGs (file name = dag_id), which every way of running the workspace must show.
EXAMPLE_DAGS = tuple(sorted(path.stem for path in (REPO / "dags").glob("example_*.py")))
POSTGRES_SERVER_URL = os.environ.get(
    "LOCALFLOW_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432"
)


def airflow_environment(home: Path, database_url: str | None = None) -> dict[str, str]:
    """A complete native environment with its own home, database and freshly generated secrets.

    Marked as the caller's (``settings.CALLER_ENV``): ``python -m localflow`` run with it uses every value
    in it, where it would ignore a user's shell exporting the same names.
    """
    chosen = {
        settings.CALLER_ENV: "1",
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(home)),
        # In the dev container the lock is installed system-wide: without this marker a child
        # `python -m localflow` would try to build .venv from PyPI.
        "LOCALFLOW_CONTAINER": os.environ.get("LOCALFLOW_CONTAINER", ""),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / settings.PASSWORDS_FILE_NAME),
        "AIRFLOW_CONN_LOCALFLOW_POSTGRES": "postgresql://"
        + POSTGRES_SERVER_URL.split("://", 1)[1]
        + "/postgres",
        **{secret.name: secret.generate() for secret in SECRETS},
    }
    return settings.native_environment(REPO, base=chosen, read_env_file=False)


def run_airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``airflow ARGS`` with ``env``; fail the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


class PostgresDatabases:
    """Creates databases on the real PostgreSQL server and drops them at the end of the session."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(f"{POSTGRES_SERVER_URL}/postgres", isolation_level="AUTOCOMMIT")
        self._created: list[str] = []

    def create(self, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (a URL from this factory); returns its URL."""
        import sqlalchemy as sa

        name = f"localflow_test_{uuid.uuid4().hex[:12]}"
        copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with self._engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
        self._created.append(name)
        return f"{POSTGRES_SERVER_URL}/{name}"

    def drop_all(self) -> None:
        """Drop every database this object created (closing their connections first)."""
        import sqlalchemy as sa

        with self._engine.connect() as connection:
            for name in self._created:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._engine.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
