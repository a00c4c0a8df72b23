"""Every DAG file imports cleanly the way the dag-processor loads it, and follows the team's policy."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from testkit.environment import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    """The DAGs folder parsed once, with BaseHook.get_connection watched: parsing must not call it."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    with mock.patch.object(
        BaseHook, "get_connection", side_effect=AssertionError("connection read at parse time")
    ) as spy:
        bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not spy.called, "a DAG reads a connection at parse time: move it into a task"
    return bag


def test_dag_files_exist():
    """The workspace ships example DAGs (so the parametrized tests below are never empty)."""
    assert len(DAG_FILES) >= 3


def test_no_import_errors(dagbag):
    """No DAG file fails to import."""
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_file_name_is_dag_id(dagbag, path: Path):
    """Each file defines the DAG named like the file."""
    assert path.stem in dagbag.dag_ids


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_dag_policy(dagbag, path: Path):
    """Every DAG has tags, an owner and retries on its tasks."""
    dag = dagbag.dags[path.stem]
    assert dag.tags, f"{dag.dag_id} has no tags"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
        assert task.retries >= 1, f"{dag.dag_id}.{task.task_id} has no retries"
