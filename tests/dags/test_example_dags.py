"""Every example DAG runs to success with ``dag.test()``, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest

from testkit.environment import EXAMPLE_DAGS
from testkit.native_stack import run_localflow


@pytest.mark.parametrize("dag_id", EXAMPLE_DAGS)
def test_dag_test_succeeds(migrated_env: dict[str, str], dag_id: str):
    """``python -m localflow dag-test`` runs the DAG in-process and reports success."""
    result = run_localflow(migrated_env, "dag-test", f"dags/{dag_id}.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"{dag_id} finished: success" in output
