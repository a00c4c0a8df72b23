"""``localflow.dagtest`` in the test process itself, as F5 runs it (and what "debug this test file" runs).

The in-process runs use the session's own SQLite database, which the runner migrates on first use, as it
does on a fresh clone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localflow.debugging import dagtest
from localflow.errors import LocalflowError
from testkit.environment import REPO
from testkit.native_stack import (
    FAILING_LINE,
    failing_dag_source,
    make_workspace,
    run_localflow,
    stack_environment,
)

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


RETRY_DELAY_MINUTES = 10


@pytest.mark.parametrize(
    ("args", "attempts"), [((), 1), (("--retries",), 3)], ids=["default-no-retry", "retries-at-once"]
)
def test_a_failing_task_ends_the_run_at_once(tmp_path: Path, args: tuple[str, ...], attempts: int):
    """A task that raises is not waited for: the run ends (exit 1) without its 10-minute retry delays and
    without a "No tasks to run" line each second; the error is summed up once, at the task's own line."""
    workspace = make_workspace(tmp_path / "workspace")
    dag_file = workspace / "dags" / "failing.py"
    dag_file.write_text(failing_dag_source(retries=2, retry_delay=RETRY_DELAY_MINUTES * 60))
    started = time.monotonic()
    result = run_localflow(stack_environment(workspace, None), "dag-test", str(dag_file), *args)
    assert time.monotonic() - started < RETRY_DELAY_MINUTES * 60
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert output.count("Task failed with exception") == attempts
    assert "No tasks to run" not in output
    raise_line = 1 + dag_file.read_text().splitlines().index(FAILING_LINE)
    summary = output[output.index("localflow: failing finished: failed") :].splitlines()[1:]
    assert summary == [
        "  explode failed: ValueError: no good: 3",
        f'    File "{dag_file}", line {raise_line}, in explode',
        f"      {FAILING_LINE.strip()}",
    ]


TOP_LEVEL_LOOKUPS = """
import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

# At the top level, read at every parse: from airflow_settings.yaml, and from the database (the UI's).
GREETING = Variable.get("top_greeting")
HOST = BaseHook.get_connection("top_api").host
STORED = Variable.get("top_stored")


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def top_level_lookups():
    @task
    def show() -> None:
        print(f"found: {GREETING} {HOST} {STORED}")

    show()


top_level_lookups()
"""


def test_top_level_lookups_find_the_settings_file_and_the_database(tmp_path: Path):
    """A DAG file that reads a variable and a connection at its top level runs under dag-test, with the
    values of airflow_settings.yaml and a variable stored in the database (as the stack's parse sees them)."""
    workspace = make_workspace(tmp_path / "workspace")
    (workspace / "airflow_settings.yaml").write_text(
        "connections:\n  top_api: http://api.example.com\nvariables:\n  top_greeting: hello\n"
    )
    dag_file = workspace / "dags" / "top_level_lookups.py"
    dag_file.write_text(TOP_LEVEL_LOOKUPS)
    env = stack_environment(workspace, None)
    for command in (
        ["secrets"],
        ["airflow", "db", "migrate"],
        ["airflow", "variables", "set", "top_stored", "from-the-ui"],
    ):
        done = run_localflow(env, *command)
        assert done.returncode == 0, done.stdout + done.stderr
    result = run_localflow(env, "dag-test", str(dag_file))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "found: hello api.example.com from-the-ui" in output
