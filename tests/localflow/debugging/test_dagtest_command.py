"""``python -m localflow dag-test`` as a command, on DAG files of a fresh workspace: what F5 runs.

Separate from ``test_dagtest.py``, which runs in-process (and is the file launch.json's "debug this test
file" case debugs): these start ``dag-test`` processes, some of which fail on purpose.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit import debug_runs
from testkit.native_stack import (
    FAILING_LINE,
    failing_dag_source,
    make_workspace,
    run_localflow,
    stack_environment,
)

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


THIRD_TIME_LUCKY = """
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
     default_args={"retries": 2, "retry_delay": timedelta(minutes=10)})
def third_time_lucky():
    @task
    def flaky(ti=None) -> None:
        if ti.try_number < 3:
            raise ValueError(f"try {ti.try_number} fails")
        print("the third try succeeds")

    flaky()


third_time_lucky()
"""


def test_a_task_that_succeeds_on_a_retry_is_not_summed_up_as_failed(tmp_path: Path):
    """With ``--retries`` a task that fails twice, then succeeds, ends the run in success (exit 0), and no
    line after "finished: success" calls it failed."""
    workspace = make_workspace(tmp_path / "workspace")
    dag_file = workspace / "dags" / "third_time_lucky.py"
    dag_file.write_text(THIRD_TIME_LUCKY)
    result = run_localflow(stack_environment(workspace, None), "dag-test", str(dag_file), "--retries")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("Task failed with exception") == 2
    assert "the third try succeeds" in output
    finished = "localflow: third_time_lucky finished: success"
    assert finished in output, output[-3000:]
    assert output[output.index(finished) :].splitlines()[1:] == []


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


@pytest.mark.parametrize("args", [(), ("--task-id", "total")], ids=["whole-dag", "one-task"])
def test_a_dag_with_mapped_tasks_runs(tmp_path: Path, args: tuple[str, ...]):
    """Decorated mapped tasks still expand in the run's copy of the DAG (apache/airflow#41160: a copied
    DAG's mapped @task failed each instance with "unexpected expand_input")."""
    workspace = make_workspace(tmp_path / "workspace")
    debug_runs.write_dags(workspace)
    dag_file = workspace / "dags" / "isolation_mapped.py"
    result = run_localflow(stack_environment(workspace, None), "dag-test", str(dag_file), *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "isolation_mapped finished: success" in output


def test_a_run_prints_no_warning(tmp_path: Path):
    """``dag-test`` of example_etl from a shell prints no warning: airflow.env's PYTHONWARNINGS holds here
    too, though Python read its own before ``dag-test`` put airflow.env into the environment."""
    workspace = make_workspace(tmp_path / "workspace")
    result = run_localflow(
        stack_environment(workspace, None), "dag-test", str(workspace / "dags/example_etl.py")
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warned = [line for line in output.replace(str(tmp_path), "").splitlines() if "warning" in line.lower()]
    assert warned == [], "\n".join(warned)
