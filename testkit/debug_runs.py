"""DAGs that race a running stack when debugged, and the check that each of their tasks ran once.

Shared by the native test (``tests/localflow/debugging/test_isolation.py``) and the dev container's.
Each task execution appends a line to ``records.jsonl`` in the workspace; ``check_each_ran_once`` reads it
back together with the runs and task instances the REST API reports.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

from localflow.rest import AirflowClient

RECORDS_FILE = "records.jsonl"

# Each task execution appends one line to records.jsonl in the workspace: who ran what, in which process.
RECORD = """
import json, os
from pathlib import Path


def record(context) -> None:
    ti = context["ti"]
    line = {"run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index, "pid": os.getpid()}
    with (Path(__file__).resolve().parent.parent / "records.jsonl").open("a") as records:
        records.write(json.dumps(line) + "\\n")
"""

DAGS = {
    # Six mapped instances are scheduled at once and run one after another by dag.test(): the scheduler
    # had plenty of time to queue the later ones.
    "isolation_mapped": """
        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
        def isolation_mapped():
            @task
            def numbers() -> list[int]:
                record(get_current_context())
                return list(range(6))

            @task
            def square(number: int) -> int:
                record(get_current_context())
                time.sleep(0.3)
                return number * number

            @task
            def total(squares: list[int]) -> int:
                record(get_current_context())
                return sum(squares)

            total(square.expand(number=numbers()))

        isolation_mapped()
    """,
    # A deferrable sensor: its trigger must run inline in the debug run, not in the stack's triggerer.
    "isolation_deferrable": """
        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
        def isolation_deferrable():
            @task
            def before() -> None:
                record(get_current_context())

            wait = TimeDeltaSensor(task_id="wait", delta=timedelta(seconds=2), deferrable=True)

            @task
            def after() -> None:
                record(get_current_context())

            before() >> wait >> after()

        isolation_deferrable()
    """,
}
HEADER = """
import time
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import dag, get_current_context, task
"""
DEBUG_RUNS_PER_DAG = 3


def write_dags(workspace: Path) -> None:
    """Save the racing DAGs into ``workspace/dags`` and make the records file writable by every user."""
    for dag_id, body in DAGS.items():
        source = HEADER + RECORD + textwrap.dedent(body)
        (workspace / "dags" / f"{dag_id}.py").write_text(source)

    records = workspace / RECORDS_FILE
    records.touch()
    records.chmod(0o666)  # in compose the scheduler's tasks may run as another user than the editor


def check_each_ran_once(api: AirflowClient, workspace: Path, debug_runs_per_dag: int) -> None:
    """Every run of the racing DAGs succeeded, each task instance ran exactly once on its first try, each
    debug run ran all its tasks in its own process, and every debug run shows in the UI."""
    runs = {
        (dag_id, run["dag_run_id"]): run
        for dag_id in DAGS
        for run in api.get(f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
    }
    debug_runs = [key for key, run in runs.items() if run["triggered_by"] == "test"]
    assert len(debug_runs) == debug_runs_per_dag * len(DAGS), "every debug run shows in the UI"
    assert all(runs[key]["state"] == "success" for key in runs), {k: r["state"] for k, r in runs.items()}

    lines = (workspace / RECORDS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    executions = Counter((r["run_id"], r["task_id"], r["map_index"]) for r in records)
    assert [key for key, count in executions.items() if count > 1] == [], "tasks that ran twice"
    for dag_id, run_id in runs:
        for ti in api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            assert (ti["state"], ti["try_number"]) == ("success", 1), f"{dag_id} {run_id} {ti['task_id']}"
    for _, run_id in debug_runs:
        pids = {r["pid"] for r in records if r["run_id"] == run_id}
        assert len(pids) == 1, f"debug run {run_id} ran its tasks in processes {pids}, not only its own"
