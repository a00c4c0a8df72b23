"""``localflow.dagtest`` in the test process itself, as F5 runs it (and what "debug this test file" runs).

The in-process runs use the session's own SQLite database, which the runner migrates on first use, as it
does on a fresh clone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localflow.debugging import dagtest
from localflow.errors import LocalflowError
from testkit.environment import REPO

EXAMPLE_ETL = REPO / "dags" / "example_etl.py"


def task_states(dag_run) -> dict[str, str]:
    """Task id to final state of a finished run."""
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_runs_the_file_in_process():
    """The fast path runs every task of the file's DAG to success, in this process."""
    dag_run = dagtest.run(EXAMPLE_ETL)
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == {"extract": "success", "transform": "success", "load": "success"}


def test_one_task_runs_with_its_upstream_only():
    """``--task-id transform`` runs extract (whose XCom transform reads) and transform, not load."""
    dag_run = dagtest.run(EXAMPLE_ETL, task_id="transform")
    assert str(dag_run.state) == "success"
    assert task_states(dag_run) == {"extract": "success", "transform": "success"}


def test_unknown_task_is_one_clear_error():
    """A task_id the DAG lacks names the ones it has."""
    with pytest.raises(LocalflowError, match="has no task 'nope'; it has: extract, load, transform"):
        dagtest.run(EXAMPLE_ETL, task_id="nope")


def test_several_dags_without_a_choice_ask_for_one(tmp_path: Path):
    """A file with two DAGs and no terminal to ask in says which DAGs there are and how to pick one."""
    dags = {"first": object(), "second": object()}
    with pytest.raises(LocalflowError, match=r"several DAGs \(first, second\); pass --dag-id"):
        dagtest.choose(dags, None, tmp_path / "two.py")
    assert dagtest.choose(dags, "second", tmp_path / "two.py") is dags["second"]
