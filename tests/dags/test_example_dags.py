"""Every example DAG runs to success with ``dag.test()``, on SQLite and on the real PostgreSQL.

(Triggered in the native stack: ``tests/localflow/stack/test_supervisor.py``; in compose: the container
suite. This folder runs in the dev container's terminal too, where no native stack starts.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testkit.environment import EXAMPLE_DAGS, REPO
from testkit.native_stack import run_localflow


@pytest.mark.parametrize("dag_id", EXAMPLE_DAGS)
def test_dag_test_succeeds(migrated_env: dict[str, str], dag_id: str):
    """``python -m localflow dag-test`` runs the DAG in-process and reports success."""
    result = run_localflow(migrated_env, "dag-test", f"dags/{dag_id}.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"{dag_id} finished: success" in output
    if dag_id == "example_postgres_query":  # the test environment defines the stack's connection
        assert "through localflow_postgres: PostgreSQL" in output, output[-4000:]


@pytest.mark.parametrize("migrated_env", ["sqlite"], indirect=True)
def test_postgres_example_succeeds_on_a_fresh_clone(migrated_env: dict[str, str], tmp_path: Path):
    """With no PostgreSQL anywhere it queries the SQLite connection of airflow_settings.yaml, made from
    the example, and still succeeds."""
    settings = tmp_path / "airflow_settings.yaml"
    shutil.copy(REPO / "airflow_settings.example.yaml", settings)
    env = {name: value for name, value in migrated_env.items() if name != "AIRFLOW_CONN_LOCALFLOW_POSTGRES"}
    env["LOCALFLOW_SETTINGS_FILE"] = str(settings)
    result = run_localflow(env, "dag-test", "dags/example_postgres_query.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "example_postgres_query finished: success" in output
    assert "Connected to :memory: through localflow_sqlite: SQLite 3." in output, output[-4000:]
